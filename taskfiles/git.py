"""Every git call the package makes goes through this module.

Repository discovery reads ``.git`` files by hand: it runs on every command and
importing gitpython (~40 ms) costs more than the rest of a warm ``task list``. The
calls on a hot path (``ls-tree``, ``cat-file --batch``, the created dates' ``log``,
``merge-base --is-ancestor``, the slugs of every branch, the merge driver's
``merge-file``) run git as a plain process (``_plain``, ``start_folder_log``); the
rest uses gitpython, imported lazily.

git's answers (``TreeEntry``, ``LogEntry``, ...) are NamedTuples, not frozen dataclasses:
every command imports this module, and a dataclass costs ~0.4 ms to build at import.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .errors import GitError, NotFoundError

if TYPE_CHECKING:
    import subprocess

    import git as gitpython


@dataclass(frozen=True)
class RepoPaths:
    """Where a worktree lives and where its shared git data lives."""

    root: Path  # top of this worktree
    git_dir: Path  # this worktree's private git dir
    common_dir: Path  # shared by all worktrees of the repository

    @property
    def main_root(self) -> Path:
        """The main worktree's top folder (the registry's default home)."""
        return self.common_dir.parent if self.common_dir.name == ".git" else self.common_dir


def discover(start: Path) -> RepoPaths | None:
    """Find the git worktree containing ``start``, or None outside any repository."""
    here = start.resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return RepoPaths(folder, dot_git, dot_git)
        if dot_git.is_file():
            git_dir = _read_gitdir_file(dot_git)
            return RepoPaths(folder, git_dir, _common_dir(git_dir))
    return None


def _read_gitdir_file(dot_git: Path) -> Path:
    text = dot_git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        raise GitError(f"{dot_git.as_posix()}: expected 'gitdir: <path>', found {text[:40]!r}")
    target = Path(text.removeprefix("gitdir:").strip())
    return (dot_git.parent / target).resolve()


def _common_dir(git_dir: Path) -> Path:
    pointer = git_dir / "commondir"
    if not pointer.is_file():
        return git_dir
    return (git_dir / pointer.read_text(encoding="utf-8").strip()).resolve()


_HEX40 = frozenset("0123456789abcdef")


def shallow_commits(repo: RepoPaths) -> list[str]:
    """A shallow clone's boundary commits (``$GIT_COMMON_DIR/shallow``), sorted; empty for a
    full clone. git shows each as adding every file, whatever it changed."""
    try:
        return sorted((repo.common_dir / "shallow").read_text(encoding="ascii").split())
    except (OSError, UnicodeDecodeError):
        return []


def peek_ref(repo: RepoPaths, ref: str) -> str | None:
    """The object id ``ref`` names, read from ref files by hand, or None when unsure.

    A cache key for the warm path: a hit skips importing gitpython altogether. It
    follows git's lookup order for plain names (refs/, tags, heads, remotes) and
    symbolic refs; anything fancier (``main~1``, ``@{u}``) returns None, and the
    caller asks git itself.
    """
    if len(ref) == 40 and set(ref) <= _HEX40:
        return ref
    if not ref or any(c in ref for c in "~^:@{}*?[\\ ") or ".." in ref:
        return None
    names = (
        [ref]
        if ref.isupper() or ref.startswith("refs/")
        else [
            f"refs/{ref}",
            f"refs/tags/{ref}",
            f"refs/heads/{ref}",
            f"refs/remotes/{ref}",
            f"refs/remotes/{ref}/HEAD",
        ]
    )
    for name in names:
        found = _read_ref(repo, name, depth=0)
        if found is not None:
            return found
    return None


def _read_ref(repo: RepoPaths, name: str, depth: int) -> str | None:
    if depth > 5:
        return None
    folder = repo.git_dir if name.isupper() else repo.common_dir  # HEAD, ORIG_HEAD: per worktree
    try:
        text = (folder / name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return _packed_ref(repo, name)
    if text.startswith("ref:"):
        return _read_ref(repo, text.removeprefix("ref:").strip(), depth + 1)
    return text if len(text) == 40 and set(text) <= _HEX40 else None


def _packed_ref(repo: RepoPaths, name: str) -> str | None:
    try:
        lines = (repo.common_dir / "packed-refs").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        if line.endswith(" " + name) and not line.startswith(("#", "^")):
            return line.split(" ", 1)[0]
    return None


@contextmanager
def open_repo(root: Path) -> Iterator[gitpython.Repo]:
    """A gitpython Repo that is always closed (its cat-file processes reaped)."""
    import git as gitpython

    try:
        repo = gitpython.Repo(root)
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError) as exc:
        raise GitError(f"{root.as_posix()} is not a git repository; run 'git init' first") from exc
    try:
        yield repo
    finally:
        repo.close()


def _run(repo: gitpython.Repo, *args: str) -> str:
    import git as gitpython

    try:
        return str(repo.git.execute(["git", *args]))
    except gitpython.GitCommandError as exc:
        stderr = (exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
        raise GitError(f"git {' '.join(args)} failed: {stderr}") from exc


def resolve_commit(root: Path, ref: str) -> str:
    """The commit id ``ref`` names; NotFoundError with a hint when it names nothing."""
    with open_repo(root) as repo:
        try:
            return _run(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except GitError:
            raise NotFoundError(
                f"git ref {ref!r} does not exist; check 'git branch -a' or run 'git fetch'"
            ) from None


class TreeEntry(NamedTuple):
    """One file of a tree listing."""

    path: str  # relative to the repository root, posix separators
    blob: str
    mode: str
    size: int | None  # None when listed without sizes


def ls_tree(root: Path, ref: str, folder: str, *, sizes: bool = True) -> list[TreeEntry]:
    """Every file under ``folder`` at ``ref``, with blob ids (and sizes unless ``sizes=False``,
    which saves git a lookup per blob)."""
    return ls_commit(root, resolve_commit(root, ref), folder, sizes=sizes)


def ls_commit(root: Path, commit: str, folder: str, *, sizes: bool = True) -> list[TreeEntry]:
    """Like ls_tree for a commit id that resolve_commit already checked."""
    long = ["--long"] if sizes else []
    with open_repo(root) as repo:
        out = _run(repo, "ls-tree", "-r", "-z", *long, "--full-tree", commit, "--", folder)
    return _tree_entries(out)


def files_at(repo: RepoPaths, ref: str, folder: str) -> dict[str, str] | None:
    """Path -> blob id of every file under ``folder`` at ``ref``, or None when ``ref`` names no
    commit: one plain ``ls-tree`` when the ref files name the commit (no gitpython, as it runs
    on every ``task validate``), and a ``rev-parse`` first when they do not."""
    commit = peek_ref(repo, ref) or _commit_of(repo.root, ref)
    return tree_files(repo.root, commit, folder) if commit else None


def tree_files(root: Path, tree: str, folder: str = ".") -> dict[str, str]:
    """Path -> blob id of every file under ``folder`` of ``tree`` (a commit or tree id; paths
    from its top): one plain ``ls-tree``, read without a TreeEntry each (10,000 files: ~3 ms)."""
    out = _plain(root, "ls-tree", "-r", "-z", "--full-tree", tree, "--", folder).stdout
    records = (record.partition(b"\t") for record in out.split(b"\0") if record)
    return {
        path.decode("utf-8", "surrogateescape"): meta.rpartition(b" ")[2].decode("ascii")
        for meta, _, path in records
        if b" blob " in meta  # not a submodule's commit
    }


def _commit_of(root: Path, ref: str) -> str | None:
    done = _plain(
        root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", ok=(0, 1)
    )
    return done.stdout.decode("ascii", "replace").strip() or None


def _tree_entries(out: str) -> list[TreeEntry]:
    """``ls-tree -r -z [--long]`` output as entries; submodules are left out."""
    entries = []
    for record in out.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, kind, blob, *size = meta.split()
        if kind == "blob":
            entries.append(TreeEntry(path, blob, mode, _size(size[0]) if size else None))
    return entries


def _size(field: str) -> int:
    return int(field) if field != "-" else 0


def blob_sizes(root: Path, blobs: Iterable[str]) -> dict[str, int]:
    """The size of each blob, through one ``cat-file --batch-check`` process."""
    wanted = list(dict.fromkeys(blobs))
    if not wanted:
        return {}
    out = _batch(root, "--batch-check", wanted)
    sizes = {}
    for line in out.splitlines():
        blob, _kind, size = _batch_header(line)
        sizes[blob] = size
    return sizes


def read_blobs(root: Path, blobs: Iterable[str]) -> dict[str, bytes]:
    """The contents of many blobs, read through one ``cat-file --batch`` process."""
    wanted = list(dict.fromkeys(blobs))
    if not wanted:
        return {}
    out = _batch(root, "--batch", wanted)
    found: dict[str, bytes] = {}
    at = 0
    while at < len(out):
        eol = out.index(b"\n", at)
        blob, _kind, size = _batch_header(out[at:eol])
        found[blob] = out[eol + 1 : eol + 1 + size]
        at = eol + 1 + size + 1  # each object is followed by a newline
    return found


def _batch(root: Path, mode: str, objects: list[str]) -> bytes:
    """Run ``git cat-file <mode>`` once, fed every object id on stdin."""
    import tempfile

    import git as gitpython

    with tempfile.TemporaryFile() as ids, open_repo(root) as repo:
        ids.write("".join(f"{o}\n" for o in objects).encode("ascii"))
        ids.seek(0)
        try:
            out = repo.git.execute(
                ["git", "cat-file", mode], istream=ids, stdout_as_string=False, strip_newline_in_stdout=False
            )
        except gitpython.GitCommandError as exc:
            stderr = str(exc.stderr or "").removeprefix("stderr: ").strip("'\n ")
            raise GitError(f"git cat-file {mode} failed: {stderr}") from exc
    assert isinstance(out, bytes)
    return out


def _batch_header(line: bytes) -> tuple[str, str, int]:
    """``<id> <type> <size>``; anything else (``<id> missing``) is an error."""
    parts = line.decode("ascii", "replace").split()
    if len(parts) != 3:
        raise GitError(f"git cat-file: {' '.join(parts)}; the repository is missing objects, run 'git fsck'")
    return parts[0], parts[1], int(parts[2])


def blob_at(root: Path, ref: str, path: str) -> str | None:
    """The blob id of ``path`` at ``ref``, or None when the file is not there."""
    with open_repo(root) as repo:
        out = _run(repo, "ls-tree", "-z", ref, "--", path)
    if not out:
        return None
    return out.split("\t", 1)[0].split()[2]


class Change(NamedTuple):
    """A commit that changed a file: its id and its commit time (Unix seconds)."""

    commit: str
    time: int


CHANGE_WINDOW = 16  # a file's latest commits read first; its whole history only when they fall short


def change_since(root: Path, commit: str, path: str, blob: str) -> Change | None:
    """The commit that changed ``path`` away from ``blob`` in the first-parent history of ``commit``
    (the latest such, when it changed back and forth); None when it is still ``blob`` or never was.

    First parent only, and a merge compared with its first parent: a change made on a branch
    counts from the merge that landed it, not from when it was written. Cheap for a file
    changed rarely: the walk stops after ``CHANGE_WINDOW`` commits of that file when the
    answer is among them.
    """
    for window in (CHANGE_WINDOW, None):
        changes = _file_history(root, commit, path, window)
        later: Change | None = None
        for change, new_blob in changes:
            if new_blob == blob:
                return later
            later = change
        if window is None or len(changes) < window:
            return None
    return None


def _file_history(root: Path, commit: str, path: str, limit: int | None) -> list[tuple[Change, str]]:
    """Each first-parent commit that changed ``path``, newest first, with the blob it left there."""
    window = ["-n", str(limit)] if limit else []
    with open_repo(root) as repo:
        out = _run(
            repo,
            "log",
            "--first-parent",
            "--no-renames",
            "--raw",
            "--no-abbrev",
            "--format=%H %ct",
            *window,
            commit,
            "--",
            f":(top,literal){path}",
        )
    found: list[tuple[Change, str]] = []
    head: Change | None = None
    for line in out.splitlines():
        if line.startswith(":") and head is not None:  # :old_mode new_mode old_blob new_blob status\tpath
            found.append((head, line.split("\t", 1)[0].split()[3]))
            head = None
        elif line.strip():
            sha, _, stamp = line.partition(" ")
            head = Change(sha, int(stamp))
    return found


class FileChange(NamedTuple):
    """What one commit did to a file: its status (``A`` added, ``M`` modified, ``D`` deleted,
    ``R`` renamed, ``C`` copied, ...), the path before (a rename's or copy's source) and after,
    and the blob it left (None: deleted)."""

    status: str
    path: str
    old_path: str | None = None
    blob: str | None = None


class LogEntry(NamedTuple):
    """One commit of a ``git log`` walk and the file changes it listed."""

    commit: str
    author: str
    date: str  # the author date, ISO 8601 with its offset
    subject: str
    files: tuple[FileChange, ...]


_LOG_FORMAT = "--format=%x1e%H%x1f%an%x1f%aI%x1f%s"


def file_log(root: Path, path: str, *, limit: int) -> list[LogEntry]:
    """The commits of HEAD's history that changed ``path``, newest first, following renames
    (``git log --follow``), at most ``limit`` of them; each with the blob it left."""
    with open_repo(root) as repo:
        out = _run(
            repo,
            "log",
            "--follow",
            "-M",
            "--raw",
            "--no-abbrev",
            "-z",
            _LOG_FORMAT,
            "-n",
            str(limit),
            "HEAD",
            "--",
            f":(top,literal){path}",
        )
    return _parse_log(out, raw=True)


def folder_log(root: Path, folder: str, since: str | None = None) -> list[LogEntry]:
    """Every commit of HEAD's history (after ``since``, when given: ``since..HEAD``) that
    added, renamed, copied or deleted a file under ``folder``, oldest first, with those
    changes (renames detected): one ``git log`` for the whole folder."""
    return start_folder_log(root, folder, since).result()


def start_folder_log(root: Path, folder: str, since: str | None = None) -> PendingLog:
    """``folder_log`` started now and read later: git walks the history on another core
    while the caller goes on (``task list --json`` parses the tasks meanwhile)."""
    span = f"{since}..HEAD" if since else "HEAD"
    args = ("log", "--reverse", "--name-status", "-M", "--diff-filter=ACDR", "-z", _LOG_FORMAT, span)
    return PendingLog(root, *args, "--", f":(top,literal){folder}")


class PendingLog:
    """A ``git log`` running in the background as a plain process (no gitpython: importing
    it costs a cold ``task list --json`` 40 ms). Its output goes to an unnamed temporary
    file, not a pipe, which would stop git once 64 KiB of it wait unread."""

    def __init__(self, root: Path, *args: str) -> None:
        import subprocess
        import tempfile

        self._what = f"git {' '.join(args)}"
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (result() closes it)
        try:
            self._child = subprocess.Popen(
                ["git", *args],
                cwd=root,
                env={**os.environ, "LANGUAGE": "C", "LC_ALL": "C"},  # English errors, as gitpython had
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            self._out.close()
            raise GitError(f"cannot run {self._what}: {exc.strerror}") from None

    def result(self) -> list[LogEntry]:
        """The log, once git is done; GitError with git's message when it failed."""
        with self._out:
            _, err = self._child.communicate()
            if self._child.returncode != 0:
                stderr = err.decode("utf-8", "replace").strip() or f"exit status {self._child.returncode}"
                raise GitError(f"{self._what} failed: {stderr}")
            self._out.seek(0)
            return _parse_log(self._out.read().decode("utf-8", "surrogateescape"), raw=False)


def _parse_log(out: str, *, raw: bool) -> list[LogEntry]:
    """Read ``git log -z`` output in ``_LOG_FORMAT`` with ``--raw`` or ``--name-status``."""
    entries = []
    for record in out.split("\x1e")[1:]:
        head, _, rest = record.partition("\0")
        commit, author, date, subject = [*head.split("\x1f"), "", "", ""][:4]
        tokens = iter(rest.split("\0"))
        files: list[FileChange] = []
        for token in tokens:
            token = token.lstrip("\n")  # git starts the list on a line of its own
            if not token:
                continue
            meta = token.split() if raw else None
            status = meta[-1] if meta else token
            blob = meta[3] if meta and len(meta) >= 4 and set(meta[3]) != {"0"} else None
            path = next(tokens, None)
            old = None
            if status[:1] in ("R", "C") and path is not None:
                old, path = path.lstrip("\n"), next(tokens, None)
            if path is None:
                break  # a truncated record: nothing more to read in it
            files.append(FileChange(status[:1], path.lstrip("\n"), old, blob))
        entries.append(LogEntry(commit, author, date, subject, tuple(files)))
    return entries


def is_ancestor(root: Path, ancestor: str, commit: str) -> bool:
    """Whether ``ancestor`` is in ``commit``'s history (False too when either is unknown).
    A plain process: ``task list --json`` asks it each time HEAD moves, and importing
    gitpython would cost it more than the log it then reads."""
    try:
        return _plain(root, "merge-base", "--is-ancestor", ancestor, commit, ok=(0, 1)).returncode == 0
    except GitError:
        return False


def merge_base(root: Path, one: str, other: str) -> str | None:
    """The best common ancestor of two commits (what ``git diff one...other`` compares
    from), or None when their histories share no commit (or a shallow clone cut it off)."""
    with open_repo(root) as repo:
        try:
            return _run(repo, "merge-base", one, other) or None
        except GitError:  # exit 1 with no output: no common commit
            return None


# What ``git rev-parse --local-env-vars`` lists: variables that point git at one repository.
# A worker in another worktree must not inherit them; identity and config variables may stay.
LOCAL_ENV_VARS = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_CONFIG",
        "GIT_DIR",
        "GIT_GRAFT_FILE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_OBJECT_DIRECTORY",
        "GIT_PREFIX",
        "GIT_REPLACE_REF_BASE",
        "GIT_SHALLOW_FILE",
        "GIT_WORK_TREE",
    }
)


def env_for_worktree() -> dict[str, str]:
    """The environment minus the variables that tie git to one repository (GIT_DIR, GIT_INDEX_FILE, ...),
    for processes that work in another worktree. Author identity and the like are kept."""
    return {k: v for k, v in os.environ.items() if k not in LOCAL_ENV_VARS}


# -- fetch: what other hosts merged --------------------------------------------------------------


def fetch(root: Path, remote: str, branch: str, *, timeout: float) -> None:
    """Update ``refs/remotes/<remote>/<branch>`` from ``remote``'s ``branch``.

    GitError when git fails, or runs past ``timeout`` seconds: then it is killed with
    everything it started (a stuck ssh too). No prompt is ever waited for (cron has no one
    to type a password), and no tag is fetched.
    """
    import signal
    import subprocess

    spec = f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
    what = f"git fetch {remote} {branch}"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        child = subprocess.Popen(
            ["git", "fetch", "--quiet", "--no-tags", remote, spec],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise GitError(f"cannot run {what}: {exc.strerror}") from None
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.communicate(timeout=5)
        raise GitError(f"{what} timed out after {timeout:g} s") from None
    if child.returncode != 0:
        raise GitError(f"{what} failed: {_first_error(err) or f'exit status {child.returncode}'}")


def _first_error(stderr: bytes) -> str:
    """git's first ``fatal:``/``error:`` line (the advice after it says less), else its last line."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (errors or lines or [""])[0 if errors else -1]


# -- worktrees: one per dispatched task ----------------------------------------------------------


class Worktree(NamedTuple):
    """One worktree of a repository, as ``git worktree list`` reports it."""

    path: Path
    head: str | None
    branch: str | None  # short name (``task/x``); None when detached


def worktrees(root: Path) -> list[Worktree]:
    """Every worktree of the repository at ``root``, the main one first."""
    with open_repo(root) as repo:
        return _worktrees(repo)


def _worktrees(repo: gitpython.Repo) -> list[Worktree]:
    found = []
    for block in _run(repo, "worktree", "list", "--porcelain").split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
        if "worktree" in fields:
            branch = fields.get("branch", "").removeprefix("refs/heads/") or None
            found.append(Worktree(Path(fields["worktree"]).resolve(), fields.get("HEAD"), branch))
    return found


def add_worktree(root: Path, path: Path, branch: str, base: str, *, fresh: bool = False) -> bool:
    """Make ``path`` a worktree on ``branch``; return True when it was created, False when reused.

    An existing worktree on ``branch`` is reused as it is (a retry continues the last
    attempt's work). Otherwise the branch is checked out there, or created from
    ``base`` when it does not exist yet. ``fresh`` starts the branch over from ``base``,
    dropping the worktree and the branch's commits.
    """
    path = path.resolve()
    with open_repo(root) as repo:
        _run(repo, "worktree", "prune")  # forget worktrees whose folder was deleted by hand
        current = {w.path: w for w in _worktrees(repo)}.get(path)
        if current is not None:
            if current.branch != branch:
                shown = path.as_posix()
                raise GitError(
                    f"{shown} is a worktree on {current.branch or 'a detached HEAD'}, not {branch}; "
                    f"remove it with 'git worktree remove {shown}'"
                )
            if not fresh:
                return False
            _run(repo, "worktree", "remove", "--force", str(path))
        if path.exists():
            raise GitError(f"{path.as_posix()} exists but is not a git worktree; move it out of the way")
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh or not _has_branch(repo, branch):
            _run(repo, "worktree", "add", "--quiet", "-B", branch, str(path), base)
        else:
            _run(repo, "worktree", "add", "--quiet", str(path), branch)
    return True


def _has_branch(repo: gitpython.Repo, branch: str) -> bool:
    try:
        _run(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitError:
        return False
    return True


def remove_worktree(root: Path, path: Path, *, force: bool = False) -> bool:
    """Remove the worktree at ``path`` (its branch stays); False when there was none.

    Without ``force`` git refuses a worktree with uncommitted or untracked changes:
    GitError says so, and nothing is lost.
    """
    path = path.resolve()
    with open_repo(root) as repo:
        if path not in {w.path for w in _worktrees(repo)}:
            return False
        _run(repo, "worktree", "remove", *(["--force"] if force else []), str(path))
    return True


def ensure_excluded(common_dir: Path, pattern: str) -> bool:
    """Add ``pattern`` to ``info/exclude`` (never to a tracked .gitignore); True when added."""
    exclude = common_dir / "info" / "exclude"
    try:
        text = exclude.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise GitError(f"cannot read {exclude.as_posix()}: {exc.strerror}") from None
    if pattern in text.splitlines():
        return False
    try:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as handle:
            handle.write(("" if not text or text.endswith("\n") else "\n") + pattern + "\n")
    except OSError as exc:
        raise GitError(f"cannot write {exclude.as_posix()}: {exc.strerror}") from None
    return True


# -- the task-file merge driver: merge-file, the repository's own settings, attributes -----------


class FileMerge(NamedTuple):
    """What ``git merge-file`` made of three texts."""

    data: bytes
    conflicts: int  # conflicting hunks left between markers (git counts up to 127)


def merge_file(
    ours: bytes,
    base: bytes,
    theirs: bytes,
    *,
    marker_size: int = 7,
    labels: tuple[str, str, str] = ("ours", "base", "theirs"),
) -> FileMerge:
    """``git merge-file -p``: ``theirs``' changes since ``base`` applied to ``ours``, line by
    line; what both changed differently is left between markers of ``marker_size``
    characters, labelled ``labels`` (in the style of the repository's merge.conflictStyle)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="taskfiles-merge-") as folder:
        paths = []
        for name, data in zip(("ours", "base", "theirs"), (ours, base, theirs), strict=True):
            path = Path(folder) / name
            path.write_bytes(data)
            paths.append(str(path))
        names = [arg for label in labels for arg in ("-L", label)]
        done = _plain(None, "merge-file", "-p", f"--marker-size={marker_size}", *names, *paths, ok=range(128))
    return FileMerge(done.stdout, done.returncode)


def config_get(root: Path, key: str) -> str | None:
    """The repository's own (``--local``) value of ``key``; None when it is not set."""
    done = _plain(root, "config", "--local", "--get", key, ok=(0, 1))
    return done.stdout.decode("utf-8", "replace").removesuffix("\n") if done.returncode == 0 else None


def config_set(root: Path, key: str, value: str) -> None:
    """Set ``key`` in the repository's own config (``.git/config``, shared by its worktrees)."""
    _plain(root, "config", "--local", key, value)


def config_remove_section(root: Path, section: str) -> None:
    """Remove ``[section]`` and every key in it from the repository's own config."""
    _plain(root, "config", "--local", "--remove-section", section)


def check_attr(root: Path, attribute: str, path: str) -> str:
    """What ``attribute`` is for ``path`` (relative to ``root``) after every .gitattributes:
    its value, or ``set``, ``unset``, ``unspecified``."""
    done = _plain(root, "check-attr", attribute, "--", path)
    return done.stdout.decode("utf-8", "replace").rstrip("\n").rpartition(": ")[2]


def _plain(
    root: Path | None, *args: str, ok: Iterable[int] = (0,), stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """``git ARGS`` in ``root`` as a plain process, fed ``stdin`` (no gitpython: the merge
    driver runs once per file git merges, and importing it costs a warm ``task validate``
    a third more); GitError when it cannot start or exits with a status not in ``ok``."""
    import subprocess

    what = f"git {' '.join(args[:2])}"
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, input=stdin, check=False)
    except OSError as exc:
        raise GitError(f"cannot run {what}: {exc.strerror}") from None
    if done.returncode not in ok:
        raise GitError(f"{what} failed: {_first_error(done.stderr) or f'exit status {done.returncode}'}")
    return done


# -- every branch at once: names and object ids, without a checkout ------------------------------


class RefTip(NamedTuple):
    """A branch and the commit it points to."""

    name: str  # in full: refs/heads/x, refs/remotes/origin/x
    commit: str

    @property
    def short(self) -> str:
        """``x`` for a local branch, ``origin/x`` for a remote-tracking one."""
        return self.name.removeprefix("refs/heads/").removeprefix("refs/remotes/")


def ref_tips(root: Path, *prefixes: str) -> list[RefTip]:
    """Every ref under ``prefixes`` (``refs/heads``, ``refs/remotes``) that points at a commit,
    sorted by name, from one ``for-each-ref``. Symbolic refs (``origin/HEAD``) are left out:
    the ref they point to is listed anyway."""
    fmt = "--format=%(objecttype)%09%(symref)%09%(objectname)%09%(refname)"
    out = _plain(root, "for-each-ref", fmt, *prefixes).stdout.decode("utf-8", "surrogateescape")
    tips = []
    for line in out.splitlines():
        kind, symref, commit, name = line.split("\t", 3)
        if kind == "commit" and not symref:
            tips.append(RefTip(name, commit))
    return tips


def tree_ids(root: Path, names: Iterable[str]) -> dict[str, str]:
    """The tree each of ``names`` (``<commit>:<folder>``, ``main:tasks``) names, from one
    ``cat-file --batch-check``; a name that names nothing, or no tree, is left out."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    stdin = "".join(f"{name}\n" for name in wanted).encode("utf-8", "surrogateescape")
    headers = _plain(root, "cat-file", "--batch-check", stdin=stdin).stdout.splitlines()
    found = {}
    for name, header in zip(wanted, headers, strict=True):
        parts = header.split()
        if len(parts) == 3 and parts[1] == b"tree":  # else "<name> missing" (or a blob)
            found[name] = parts[0].decode("ascii")
    return found


_DIFF_HEADER = re.compile(rb"[0-9a-f]+ ([0-9a-f]+)\n")  # diff-tree --stdin echoes each pair


def added_files(root: Path, base: str, trees: Iterable[str]) -> dict[str, list[str]]:
    """For each of ``trees`` (tree ids), the paths of the files it has and the tree ``base``
    has not, from one ``diff-tree --stdin``: git compares each pair in C and skips the
    folders they share, so 200 branches that each add a file cost little more than one,
    and no tree is read into Python whole."""
    added: dict[str, list[str]] = {tree: [] for tree in dict.fromkeys(trees) if tree != base}
    if not added:
        return added
    pairs = "".join(f"{base} {tree}\n" for tree in added).encode("ascii")
    args = ("diff-tree", "--stdin", "-r", "-z", "--name-status", "--diff-filter=A")
    out = _plain(root, *args, stdin=pairs).stdout
    current: list[str] = []
    at = 0
    while at < len(out):
        header = _DIFF_HEADER.match(out, at)  # never a status: those are capital letters
        if header:
            current = added[header[1].decode("ascii")]
            at = header.end()
            continue
        status_end = out.index(b"\0", at)
        path_end = out.index(b"\0", status_end + 1)
        current.append(out[status_end + 1 : path_end].decode("utf-8", "surrogateescape"))
        at = path_end + 1
    return added
