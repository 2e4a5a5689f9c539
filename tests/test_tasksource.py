"""Loading tasks from the working tree and from git refs, through the parse cache.

Real files and real git repositories. ``now_ns=LATER`` puts the racy-rule clock a
minute ahead, so files written by the test count as settled and get cached; the
default clock (now) treats them as racy, as a real edit would be.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from taskfiles import config
from taskfiles.errors import NotFoundError
from taskfiles.plan import cache
from taskfiles.plan import source as tasksource

from .conftest import commit_all, git, write_task


def later() -> int:
    """A clock a minute ahead: every file written so far is older than the racy window."""
    return time.time_ns() + 60_000_000_000


def task_text(title: str, **keys: str) -> str:
    extra = "".join(f"{k}: {v}\n" for k, v in keys.items())
    return f"---\ntitle: {title}\nstatus: ready\n{extra}---\n\n## Problem\n\nSomething.\n"


def load(root: Path, ref: str | None = None) -> tasksource.TaskSet:
    return tasksource.load(config.load(root), ref)


def load_later(root: Path) -> tasksource.TaskSet:
    return tasksource.load_tree(config.load(root), now_ns=later())


def tree_cache(root: Path) -> Path:
    return root / ".git" / "taskfiles" / cache.TREE_FILE


def read_cache(root: Path) -> tuple[tuple[Any, ...], bytes]:
    """The tree cache's head (fingerprint, tag, rels, ids, entries, assembled) and the
    bytes after it (the bodies)."""
    data = tree_cache(root).read_bytes()
    size = int.from_bytes(data[:8], "little")
    return marshal.loads(data[8 : 8 + size]), data[8 + size :]


def framed(head: tuple[Any, ...]) -> bytes:
    """A cache file's head as written: its length, then the head."""
    data = marshal.dumps(head)
    return len(data).to_bytes(8, "little") + data


def write_cache(root: Path, head: tuple[Any, ...], tail: bytes) -> None:
    tree_cache(root).write_bytes(framed(head) + tail)


def codes(tasks: tasksource.TaskSet) -> list[tuple[str, str]]:
    return [(p.path, p.code) for p in tasks.problems]


@pytest.fixture(params=["read", "mapped"])
def parts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a cache file's parts are loaded: read, and mapped (a large file's, from
    ``cache.MAP_FROM`` bytes; here every part's)."""
    if request.param == "mapped":
        monkeypatch.setattr(cache, "MAP_FROM", 0)
    return str(request.param)


@pytest.mark.planning
def test_load_reads_tasks_workstreams_and_sorts_by_path(repo: Path) -> None:
    write_task(repo, "web/b.md", task_text("B"))
    write_task(repo, "a.md", task_text("A"))
    tasks = load(repo)
    assert [(t.slug, t.workstream, t.path) for t in tasks.tasks] == [
        ("a", None, "tasks/a.md"),
        ("b", "web", "tasks/web/b.md"),
    ]
    assert tasks.problems == () and tasks.ref is None


@pytest.mark.planning
@pytest.mark.parametrize(
    "name", ["README.md", "readme.md", "index.md", "_draft.md", ".hidden.md", "notes.txt", ".dot/x.md"]
)
def test_files_that_are_not_tasks(repo: Path, name: str) -> None:
    write_task(repo, "real.md", task_text("Real"))
    write_task(repo, name, task_text("Not a task"))
    tasks = load_later(repo)
    assert [t.slug for t in tasks.tasks] == ["real"] and tasks.skipped == ()


@pytest.mark.planning
def test_warm_load_is_served_from_cache_and_writes_nothing(repo: Path, parts: str) -> None:
    write_task(repo, "a.md", task_text("A"))
    write_task(repo, "infra/b.md", task_text("B"))
    cold = load_later(repo)
    assert cold.stats == cache.CacheStats(hits=0, parsed=2, racy=0, stored=2)
    before = os.stat(tree_cache(repo))
    warm = load_later(repo)
    assert warm.stats == cache.CacheStats(hits=2, parsed=0, racy=0, stored=None, unchanged=True)
    after = os.stat(tree_cache(repo))
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert warm.tasks == cold.tasks and warm.problems == cold.problems


@pytest.mark.planning
def test_cached_results_equal_fresh_parses(repo: Path, parts: str) -> None:
    write_task(
        repo,
        "x/rich.md",
        "---\ntitle: 'Rich: one'\nstatus: in_progress\npriority: p1\nowner: alice\n"
        "depends_on: [a, b]\nlabels:\n  - ux\nreviewed: 2024-01-01\nnotes: {a: [1, 2]}\n"
        "claimed_by: bob\n---\nBody ü\n",
    )
    write_task(repo, "bad.md", "---\ntitle: [unclosed\n---\n")
    # Values that compare equal across types or look like the cache's own names.
    write_task(repo, "one.md", task_text("One", owner="extra", depends_on="[lines]", flag="1"))
    write_task(repo, "true.md", task_text("Truthy", owner="lines", depends_on="[extra]", flag="true"))
    cold = load_later(repo)
    warm = load_later(repo)
    assert warm.stats.hits == 4
    flags = [warm.get(slug).extra["flag"] for slug in ("one", "true")]  # type: ignore[union-attr]
    assert [(type(f), f) for f in flags] == [(int, 1), (bool, True)]
    assert warm.tasks == cold.tasks and warm.problems == cold.problems and warm.skipped == cold.skipped
    rich = warm.get("rich")
    assert rich is not None and rich.extra == {"reviewed": "2024-01-01", "notes": {"a": [1, 2]}}
    assert rich.legacy == {"status": "in_progress", "claimed_by": "bob"} and rich.body == "Body ü\n"


@pytest.mark.planning
def test_fresh_files_are_racy_parsed_but_not_cached(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    first = load(repo)  # real clock: the file was written a moment ago
    assert first.stats == cache.CacheStats(hits=0, parsed=1, racy=1, stored=None)
    assert not tree_cache(repo).exists()
    assert load(repo).stats.parsed == 1


def _rewrite_same_size_same_mtime(path: Path, text: str) -> os.stat_result:
    old = path.stat()
    assert len(text.encode()) == old.st_size
    with open(path, "r+b") as handle:  # in place: same inode
        handle.write(text.encode())
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    return old


@pytest.mark.planning
def test_a_load_without_bodies_reads_none_and_says_so(repo: Path, parts: str) -> None:
    write_task(repo, "a.md", task_text("A"))
    write_task(repo, "b.md", task_text("B"))
    cold = load_later(repo)
    head, tail = read_cache(repo)
    write_cache(repo, head, tail[:-5])  # the bodies cannot be read any more
    bodiless = tasksource.load_tree(config.load(repo), now_ns=later(), bodies=False)
    assert bodiless.stats.unchanged and not bodiless.bodies
    assert [(t.title, t.body) for t in bodiless.tasks] == [("A", ""), ("B", "")]
    full = load_later(repo)  # bodies wanted, and unreadable: the files are parsed again
    assert full.bodies and full.tasks == cold.tasks and full.stats.parsed == 2
    assert load_later(repo).stats.unchanged


@pytest.mark.planning
def test_bodies_of_another_write_are_never_joined_to_a_head(repo: Path, parts: str) -> None:
    path = write_task(repo, "a.md", task_text("A"))
    load_later(repo)
    _, old_bodies = read_cache(repo)
    path.write_text(task_text("A") + "Edited.\n", encoding="utf-8", newline="")
    assert load_later(repo).stats.parsed == 1
    head, _ = read_cache(repo)
    write_cache(repo, head, old_bodies)  # this listing's head, the bodies of the write before
    tasks = load_later(repo)
    assert tasks.get("a").body.endswith("Edited.\n") and tasks.stats.parsed == 1  # type: ignore[union-attr]


@pytest.mark.planning
def test_with_body_reads_one_body_of_a_set_read_without(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit_all(repo)
    cfg = config.load(repo)
    body = load_later(repo).get("a").body  # type: ignore[union-attr]
    assert body and load(repo, "main").get("a").body == body  # type: ignore[union-attr]
    for tasks in (
        tasksource.load_tree(cfg, now_ns=later(), bodies=False),
        tasksource.load(cfg, "main", bodies=False),
    ):
        assert tasks.stats.unchanged and not tasks.bodies and tasks.get("a").body == ""  # type: ignore[union-attr]
        assert tasksource.with_body(cfg, tasks, tasks.get("a")).body == body  # type: ignore[arg-type]


@pytest.mark.planning
def test_a_load_hands_its_objects_to_the_oldest_gc_generation(repo: Path) -> None:
    for name in "abc":
        write_task(repo, f"{name}.md", task_text(name.upper()))
    load_later(repo)
    tasks = load_later(repo)
    assert gc.isenabled()  # the pause ended
    # Not left young, where the first allocation after the pause would scan them all.
    oldest = {id(obj) for obj in gc.get_objects(generation=2)}
    assert all(id(task) in oldest for task in tasks.tasks)


@pytest.mark.planning
def test_same_size_same_mtime_edit_is_seen_at_once(repo: Path) -> None:
    path = write_task(repo, "a.md", task_text("Aaaa"))
    assert load(repo).get("a").title == "Aaaa"  # type: ignore[union-attr]
    old = _rewrite_same_size_same_mtime(path, task_text("Bbbb"))
    new = path.stat()
    assert (new.st_mtime_ns, new.st_size, new.st_ino) == (old.st_mtime_ns, old.st_size, old.st_ino)
    tasks = load(repo)
    # The racy rule kept the first read out of the cache: the file had just been written.
    assert tasks.get("a").title == "Bbbb"  # type: ignore[union-attr]
    assert tasks.stats.hits == 0


def test_same_size_same_mtime_edit_is_caught_by_ctime_once_cached(repo: Path) -> None:
    path = write_task(repo, "a.md", task_text("Aaaa"))
    assert load_later(repo).stats.stored == 1  # cached: the clock says the file is old
    old = path.stat()
    for _ in range(200):  # the kernel's ctime clock ticks every few ms
        _rewrite_same_size_same_mtime(path, task_text("Bbbb"))
        if path.stat().st_ctime_ns != old.st_ctime_ns:
            break
        time.sleep(0.01)
    new = path.stat()
    assert (new.st_mtime_ns, new.st_size, new.st_ino) == (old.st_mtime_ns, old.st_size, old.st_ino)
    assert new.st_ctime_ns != old.st_ctime_ns
    tasks = load_later(repo)
    assert tasks.get("a").title == "Bbbb"  # type: ignore[union-attr]
    assert tasks.stats.hits == 0 and tasks.stats.parsed == 1


@pytest.mark.planning
def test_replaced_file_is_caught_by_inode(repo: Path) -> None:
    path = write_task(repo, "a.md", task_text("Aaaa"))
    load_later(repo)
    old = path.stat()
    spare = path.with_name("_next.md")
    spare.write_text(task_text("Bbbb"), encoding="utf-8")
    os.utime(spare, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(spare, path)
    assert path.stat().st_ino != old.st_ino
    assert load_later(repo).get("a").title == "Bbbb"  # type: ignore[union-attr]


@pytest.mark.planning
def test_settled_files_are_cached_with_the_real_clock(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    time.sleep(cache.RACY_WINDOW_NS / 1e9 + 0.2)
    assert load(repo).stats == cache.CacheStats(hits=0, parsed=1, racy=0, stored=1)
    assert load(repo).stats == cache.CacheStats(hits=1, parsed=0, racy=0, stored=None, unchanged=True)


@pytest.mark.planning
def test_deleted_and_added_files(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    gone = write_task(repo, "b.md", task_text("B"))
    load_later(repo)
    gone.unlink()
    dropped = load_later(repo)
    assert [t.slug for t in dropped.tasks] == ["a"] and dropped.stats.stored == 1
    write_task(repo, "c.md", task_text("C"))
    added = load_later(repo)
    assert [t.slug for t in added.tasks] == ["a", "c"]
    assert (added.stats.hits, added.stats.parsed, added.stats.stored) == (1, 1, 2)


@pytest.mark.planning
def test_folders_named_between_files_keep_the_warm_load_whole(repo: Path) -> None:
    # Path order puts tasks/a/x.md before tasks/a0.md; the listing (each folder's files,
    # then its subfolders) does not: the cache must keep the listing's own order.
    for rel in ("a0.md", "a-b.md", "z.md", "a/x.md", "a/b/y.md", "b/c.md"):
        write_task(repo, rel, task_text(rel))
    cold = load_later(repo)
    assert cold.stats.stored == 6
    for _ in range(2):
        warm = load_later(repo)
        assert warm.stats == cache.CacheStats(hits=6, parsed=0, racy=0, stored=None, unchanged=True)
        assert warm.tasks == cold.tasks
    paths = [t.path for t in warm.tasks]
    assert paths == sorted(paths) and len(paths) == 6


@pytest.mark.planning
def test_a_renamed_folder_moves_its_tasks(repo: Path) -> None:
    # Renaming a folder leaves its files' identities (inode, times, size) as they were:
    # only their paths say they moved.
    write_task(repo, "web/a.md", task_text("A"))
    write_task(repo, "web/deep/b.md", task_text("B"))
    load_later(repo)
    (repo / "tasks" / "web").rename(repo / "tasks" / "api")
    tasks = load_later(repo)
    assert [(t.slug, t.path, t.workstream) for t in tasks.tasks] == [
        ("a", "tasks/api/a.md", "api"),
        ("b", "tasks/api/deep/b.md", "api/deep"),
    ]
    assert load_later(repo).stats.unchanged


@pytest.mark.planning
def test_an_edit_in_a_subfolder_is_seen(repo: Path) -> None:
    write_task(repo, "top.md", task_text("Top"))
    path = write_task(repo, "web/deep/a.md", task_text("Aaaa"))
    load_later(repo)
    path.write_text(task_text("A longer title"), encoding="utf-8")
    tasks = load_later(repo)
    assert tasks.get("a").title == "A longer title"  # type: ignore[union-attr]
    assert (tasks.stats.hits, tasks.stats.parsed) == (1, 1)


@pytest.mark.planning
@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not a cache at all",
        b"\xff" * 16,  # a head longer than the file
        pickle.dumps(("header", {"tasks/a.md": "junk"})),  # the format before marshal
        framed(("header", 1)),
    ],
)
def test_corrupt_or_foreign_cache_is_ignored_and_rebuilt(repo: Path, garbage: bytes, parts: str) -> None:
    write_task(repo, "a.md", task_text("A"))
    load_later(repo)
    tree_cache(repo).write_bytes(garbage)
    tasks = load_later(repo)
    assert tasks.get("a") is not None and tasks.stats.hits == 0 and tasks.stats.stored == 1
    assert load_later(repo).stats.hits == 1


class _Trap:
    """Unpickling this would create a folder: a cache file must never run code (no pickle
    is loaded: marshal builds plain data)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.planning
def test_cache_that_names_code_is_refused(repo: Path, tmp_path: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    load_later(repo)
    marker = tmp_path / "pwned"
    tree_cache(repo).write_bytes(pickle.dumps(_Trap(marker)))
    assert load_later(repo).get("a") is not None
    assert not marker.exists()


@pytest.mark.planning
def test_entry_of_wrong_shape_is_a_miss(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    write_task(repo, "b.md", task_text("B"))
    load_later(repo)
    (header, tag, rels, ids, entries, assembled), tail = read_cache(repo)
    assert sorted(rels.split("\0")) == ["tasks/a.md", "tasks/b.md"] and assembled is not None
    entries[0] = ({"slug": "a"}, ())
    write_cache(repo, (header, tag, rels, ids, entries, assembled), tail)
    tasks = load_later(repo)  # the whole-listing path refuses the entry
    assert [t.title for t in tasks.tasks] == ["A", "B"] and tasks.stats.parsed == 1
    write_cache(repo, (header, tag, rels, ids, entries, None), tail)
    tasks = load_later(repo)  # and so does the per-file path
    assert [t.title for t in tasks.tasks] == ["A", "B"] and tasks.stats.parsed == 1


@pytest.mark.planning
def test_other_fingerprint_invalidates_the_cache(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    load_later(repo)
    (header, *rest), tail = read_cache(repo)
    assert header[0] == cache.FORMAT
    write_cache(repo, ((cache.FORMAT + 1, *header[1:]), *rest), tail)
    assert load_later(repo).stats.hits == 0


@pytest.mark.planning
def test_schema_change_invalidates_the_cache(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A", priority="p9"))
    assert codes(load_later(repo)) == [("tasks/a.md", "bad_priority")]
    (repo / "taskfiles.toml").write_text('priorities = ["p0", "p2", "p9"]\n', encoding="utf-8")
    tasks = load_later(repo)
    assert tasks.problems == () and tasks.get("a").priority == "p9"  # type: ignore[union-attr]
    assert tasks.stats.hits == 0


@pytest.mark.planning
def test_default_priority_change_invalidates_the_cache(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    assert load_later(repo).get("a").priority == "p2"  # type: ignore[union-attr]
    (repo / "taskfiles.toml").write_text('default_priority = "p3"\n', encoding="utf-8")
    assert load_later(repo).get("a").priority == "p3"  # type: ignore[union-attr]


@pytest.mark.planning
def test_aliases_are_applied_after_the_cache(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A", owner="Dev"))
    write_task(repo, "b.md", task_text("B", owner="core"))
    toml = repo / "taskfiles.toml"
    toml.write_text('owner_aliases = { dev = "core" }\n', encoding="utf-8")
    first = load_later(repo)
    assert [t.owner for t in first.tasks] == ["core", "core"]
    toml.write_text('owner_aliases = { dev = "agents" }\n', encoding="utf-8")
    second = load_later(repo)
    assert second.stats.unchanged  # aliases are not part of what is cached
    assert [t.owner for t in second.tasks] == ["agents", "core"]
    assert load_later(repo).get("a").owner == "agents"  # type: ignore[union-attr]


@pytest.mark.planning
def test_cache_lives_in_the_private_git_dir_of_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit_all(repo)
    other = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(other), "-b", "side")
    load_later(other)
    private = Path(git(other, "rev-parse", "--absolute-git-dir").strip())
    assert (private / "taskfiles" / cache.TREE_FILE).is_file()
    assert not tree_cache(repo).exists()


@pytest.mark.planning
def test_outside_a_git_repository_nothing_is_cached(tmp_path: Path) -> None:
    write_task(tmp_path, "a.md", task_text("A"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    tasks = tasksource.load_tree(config.load(tmp_path), now_ns=later())
    assert tasks.get("a") is not None and tasks.stats.stored is None
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.planning
def test_unwritable_cache_folder_is_not_an_error(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    (repo / ".git" / "taskfiles").write_text("a file where the folder should be", encoding="utf-8")
    tasks = load_later(repo)
    assert tasks.get("a") is not None and tasks.stats.stored is None


def test_symlink_leaving_tasks_is_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text(task_text("Secret"), encoding="utf-8")
    (repo / "tasks" / "leak.md").symlink_to(outside)
    write_task(repo, "real.md", task_text("Real"))
    (repo / "tasks" / "alias.md").symlink_to(repo / "tasks" / "real.md")
    first = None
    for _ in range(2):  # symlinks are never cached, so the second load decides afresh
        tasks = load_later(repo)
        first = first or tasks
        assert codes(tasks) == [("tasks/leak.md", "symlink_outside")]
        assert [t.slug for t in tasks.tasks] == ["alias", "real"]
        assert not tasks.stats.unchanged and tasks.stats.hits == (0 if tasks is first else 1)


@pytest.mark.planning
def test_huge_file_is_refused(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text("max_file_bytes = 200\n", encoding="utf-8")
    write_task(repo, "big.md", task_text("Big") + "x" * 300)
    write_task(repo, "small.md", task_text("Small"))
    for _ in range(2):
        tasks = load_later(repo)
        assert codes(tasks) == [("tasks/big.md", "too_large")]
        assert tasks.skipped == ("tasks/big.md",)


def test_fifo_is_refused_without_blocking(repo: Path) -> None:
    os.mkfifo(repo / "tasks" / "pipe.md")
    assert codes(load_later(repo)) == [("tasks/pipe.md", "not_regular")]


@pytest.mark.planning
def test_duplicate_slugs_are_reported(repo: Path) -> None:
    write_task(repo, "a/same.md", task_text("First"))
    write_task(repo, "b/same.md", task_text("Second"))
    for _ in range(2):
        tasks = load_later(repo)
        assert [t.path for t in tasks.tasks] == ["tasks/a/same.md"]
        assert codes(tasks) == [("tasks/b/same.md", "duplicate_slug")]
        assert tasks.skipped == ("tasks/b/same.md",)
    assert tasks.stats.unchanged  # the duplicate problem came from the stored result


@pytest.mark.planning
@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty"), (b"   \n\n", "empty"), (b"---\ntitle: x\n\x00\x01---\n", "binary")],
)
def test_unusable_content_gives_a_problem_cold_and_warm(repo: Path, data: bytes, code: str) -> None:
    (repo / "tasks" / "bad.md").write_bytes(data)
    for _ in range(2):
        tasks = load_later(repo)
        assert codes(tasks) == [("tasks/bad.md", code)] and tasks.skipped == ("tasks/bad.md",)
    assert tasks.stats.hits == 1


@pytest.mark.planning
def test_only_frontmatter_is_a_task_with_an_empty_body(repo: Path) -> None:
    (repo / "tasks" / "bare.md").write_bytes(b"---\ntitle: Bare\n---\n")
    for _ in range(2):
        tasks = load_later(repo)
        bare = tasks.get("bare")
        assert bare is not None and bare.body == "" and tasks.problems == ()


@pytest.mark.planning
def test_ref_reads_committed_content_not_working_tree_edits(repo: Path) -> None:
    path = write_task(repo, "a.md", task_text("Committed"))
    commit = commit_all(repo)
    path.write_text(task_text("Edited"), encoding="utf-8")
    write_task(repo, "new.md", task_text("Uncommitted"))
    at_ref = load(repo, "main")
    assert [(t.slug, t.title) for t in at_ref.tasks] == [("a", "Committed")]
    assert (at_ref.ref, at_ref.commit) == ("main", commit)
    assert [t.title for t in load(repo).tasks] == ["Edited", "Uncommitted"]


@pytest.mark.planning
def test_blob_cache_is_reused_and_shared_by_worktrees(repo: Path, tmp_path: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    changing = write_task(repo, "w/b.md", task_text("B"))
    commit_all(repo)
    # "main~0" is beyond the hand-read ref lookup, so every load goes through git and the blob store.
    first = load(repo, "main~0")
    assert first.stats == cache.CacheStats(hits=0, parsed=2, racy=0, stored=2)
    assert (repo / ".git" / "taskfiles" / cache.BLOB_FILE).is_file()
    second = load(repo, "main~0")
    assert second.stats == cache.CacheStats(hits=2, parsed=0, racy=0, stored=None)
    assert second.tasks == first.tasks
    changing.write_text(task_text("B2"), encoding="utf-8")
    commit_all(repo)
    third = load(repo, "main~0")
    assert (third.stats.hits, third.stats.parsed) == (1, 1)
    assert third.get("b").title == "B2"  # type: ignore[union-attr]
    other = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(other), "-b", "side", "HEAD~1")
    assert load(other, "main~0").stats.hits == 2  # the common dir's cache


@pytest.mark.planning
def test_ref_store_serves_a_known_commit_without_git(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit = commit_all(repo)
    first = load(repo, "main")
    assert not first.stats.unchanged
    second = load(repo, "main")
    assert second.stats.unchanged and second.tasks == first.tasks
    assert (second.commit, second.blobs) == (commit, first.blobs)
    probe = (
        "import sys; from taskfiles import config; from taskfiles.plan import source as tasksource; "
        f"t = tasksource.load(config.load(__import__('pathlib').Path({str(repo)!r})), 'main'); "
        "print(len(t.tasks), 'git' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "False"]  # gitpython never imported


@pytest.mark.planning
def test_ref_store_follows_the_ref_when_it_moves_and_when_packed(repo: Path) -> None:
    path = write_task(repo, "a.md", task_text("One"))
    commit_all(repo)
    assert load(repo, "main").get("a").title == "One"  # type: ignore[union-attr]
    path.write_text(task_text("Two"), encoding="utf-8")
    commit_all(repo)
    assert load(repo, "main").get("a").title == "Two"  # type: ignore[union-attr]
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    packed = load(repo, "main")
    assert packed.stats.unchanged and packed.get("a").title == "Two"  # type: ignore[union-attr]
    git(repo, "checkout", "-q", "-b", "topic")
    path.write_text(task_text("Three"), encoding="utf-8")
    commit_all(repo)
    assert load(repo, "main").get("a").title == "Two"  # type: ignore[union-attr]
    assert load(repo, "HEAD").get("a").title == "Three"  # type: ignore[union-attr]
    assert load(repo, "topic").get("a").title == "Three"  # type: ignore[union-attr]


@pytest.mark.planning
def test_reads_at_commit_ids_share_one_ref_cache_file(repo: Path) -> None:
    path = write_task(repo, "a.md", task_text("Zero"))
    commits = [commit_all(repo)]
    for title in ("One", "Two", "Three"):  # as task changes reads each pull request's merge base
        path.write_text(task_text(title), encoding="utf-8")
        commits.append(commit_all(repo))
    for commit, title in zip(commits, ("Zero", "One", "Two", "Three"), strict=True):
        assert load(repo, commit).get("a").title == title  # type: ignore[union-attr]
    load(repo, "main")
    files = sorted((repo / ".git" / "taskfiles").glob("ref-*"))
    assert len(files) == 2, files  # one for main, one slot for every commit id
    assert load(repo, commits[1]).get("a").title == "One"  # type: ignore[union-attr]


def test_ref_problems_symlinks_huge_and_duplicates(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text("max_file_bytes = 200\n", encoding="utf-8")
    write_task(repo, "big.md", task_text("Big") + "x" * 300)
    write_task(repo, "a/same.md", task_text("First"))
    write_task(repo, "b/same.md", task_text("Second"))
    (repo / "tasks" / "link.md").symlink_to("a/same.md")
    write_task(repo, ".hidden/x.md", task_text("Hidden"))
    commit_all(repo)
    for _ in range(2):
        tasks = load(repo, "main")
        assert [t.path for t in tasks.tasks] == ["tasks/a/same.md"]
        assert sorted(codes(tasks)) == [
            ("tasks/b/same.md", "duplicate_slug"),
            ("tasks/big.md", "too_large"),
            ("tasks/link.md", "symlink_outside"),
        ]


@pytest.mark.planning
def test_ref_aliases_are_canonical(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text('owner_aliases = { bot = "agents" }\n', "utf-8")
    write_task(repo, "a.md", task_text("A", owner="bot"))
    commit_all(repo)
    assert load(repo, "main").get("a").owner == "agents"  # type: ignore[union-attr]


@pytest.mark.planning
def test_unknown_ref_is_not_found(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit_all(repo)
    with pytest.raises(NotFoundError, match="does not exist"):
        load(repo, "no-such-branch")


@pytest.mark.planning
def test_ref_without_tasks_folder_is_empty(repo: Path) -> None:
    (repo / "README").write_text("hi\n", encoding="utf-8")
    commit_all(repo)
    tasks = load(repo, "main")
    assert tasks.tasks == () and tasks.problems == ()
