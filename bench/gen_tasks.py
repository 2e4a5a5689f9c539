"""Generate a realistic taskfiles repository for benchmarks.

``python bench/gen_tasks.py DEST --count 10000`` writes DEST/tasks/<workstream>/<slug>.md
(frontmatter + the conventional body sections, ~1-3 KB each) and a taskfiles.toml,
then commits everything on branch ``main`` so ``--ref main`` reads the same tasks.
The output is deterministic for a given count and seed.
"""

from __future__ import annotations

import argparse
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from taskfiles.plan.taskfile import BODY_SECTIONS as SECTIONS

WORKSTREAMS = ("infra", "api", "web", "mobile", "data", "docs", "security", "billing", "search", "platform")
OWNERS = ("alice", "bob", "carol", "dave", "erin", "core", "agents", "dev", "bot")
LABELS = ("bug", "feature", "tech-debt", "perf", "ux", "flaky", "oncall", "migration", "good-first-issue")
MILESTONES = ("2026-q1", "2026-q2", "2026-q3", "v1.0", "v1.1", "beta")
STATUSES = (("not_started", 40), ("ready", 25), ("completed", 30), ("cancelled", 5))
PRIORITIES = (("p0", 5), ("p1", 20), ("p2", 50), ("p3", 25))
VERBS = ("add", "fix", "remove", "migrate", "document", "speed-up", "retry", "split", "cache", "audit")
NOUNS = (
    "webhook-delivery",
    "login-flow",
    "invoice-export",
    "search-index",
    "rate-limiter",
    "session-store",
    "deploy-pipeline",
    "metrics-dashboard",
    "backup-job",
    "feature-flags",
    "email-templates",
    "audit-log",
    "schema-migrations",
    "image-resizer",
    "api-pagination",
)
WORDS = (
    "the worker retries the request after a timeout and loses the original error",
    "customers on the legacy plan see a blank page when the token expires",
    "the nightly job holds a lock on the table for several minutes",
    "we measured p99 latency at 1.8 s under the synthetic load test",
    "the config key is read in three places with three different defaults",
    "logs do not carry the request id, so support cannot correlate reports",
    "the fix must stay backward compatible with clients pinned to v2",
    "the current code path allocates a buffer per row and never frees it early",
    "a feature flag lets us roll this out to 5% of traffic first",
    "we agreed in the design review to keep the public API unchanged",
    "the integration test is flaky because it depends on wall-clock ordering",
    "the migration has to run online without blocking writes",
)
CONFIG = """\
# taskfiles settings (top-level keys in taskfiles.toml)
base_ref = "main"
owners = ["alice", "bob", "carol", "dave", "erin", "core", "agents"]
owner_aliases = { dev = "core", bot = "agents" }
"""


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


@dataclass(frozen=True)
class TaskSpec:
    """One generated task, before it is written in any tool's format."""

    index: int
    slug: str
    folder: str  # the workstream folder under tasks/, or "" for tasks/ itself
    title: str
    status: str
    priority: str | None
    owner: str | None
    milestone: str | None
    depends_on: tuple[str, ...]
    labels: tuple[str, ...]
    completed: tuple[str, str, str] | None  # completed_by, completed_at, pr
    sections: tuple[tuple[str, str], ...]  # (heading, text) in file order
    quoted_title: bool = False
    comment: bool = False


def _paragraph(rng: random.Random, sentences: int) -> str:
    picked = [rng.choice(WORDS) for _ in range(sentences)]
    return " ".join(s[0].upper() + s[1:] + "." for s in picked)


def _sections(rng: random.Random, deps: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    parts = []
    for name in SECTIONS[: rng.randint(4, len(SECTIONS))]:
        if name in ("Plan", "Acceptance criteria"):
            text = "\n".join(f"- [ ] {rng.choice(WORDS)}" for _ in range(rng.randint(2, 6)))
        else:
            text = _paragraph(rng, rng.randint(2, 7))
        if name == "Context" and deps:
            text += "\n\nBlocked on " + ", ".join(f"`{d}`" for d in deps) + "."
        parts.append((name, text))
    return tuple(parts)


def _spec(rng: random.Random, index: int, slugs: list[str]) -> TaskSpec:
    """The next task; the order of the draws fixes the output for a seed."""
    slug = f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}-{index:05d}"
    # Dependencies only point at earlier tasks, so the graph has no cycles.
    deps = tuple(rng.sample(slugs[-200:], min(len(slugs), rng.choice((0, 0, 0, 1, 1, 2, 3)))))
    status = _weighted(rng, STATUSES)
    quoted = rng.random() < 0.3
    priority = _weighted(rng, PRIORITIES) if rng.random() < 0.9 else None
    owner = rng.choice(OWNERS) if rng.random() < 0.8 else None
    milestone = rng.choice(MILESTONES) if rng.random() < 0.5 else None
    labels = tuple(rng.sample(LABELS, rng.randint(0, 4)))
    completed = None
    if status == "completed":
        by = rng.choice(OWNERS)
        when = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        completed = (by, when, f"#{rng.randint(100, 9999)}")
    comment = rng.random() < 0.1
    sections = _sections(rng, deps)
    folder = rng.choice(WORKSTREAMS) if rng.random() < 0.9 else ""
    title = slug.rsplit("-", 1)[0].replace("-", " ").capitalize() + f" (#{index})"
    return TaskSpec(
        index,
        slug,
        folder,
        title,
        status,
        priority,
        owner,
        milestone,
        deps,
        labels,
        completed,
        sections,
        quoted,
        comment,
    )


def specs(count: int, seed: int = 1) -> Iterator[TaskSpec]:
    """``count`` tasks, the same ones for the same count and seed."""
    rng = random.Random(seed)
    slugs: list[str] = []
    for index in range(count):
        spec = _spec(rng, index, slugs)
        slugs.append(spec.slug)
        yield spec


def taskfile_text(spec: TaskSpec) -> str:
    """The task as a taskfiles task file: frontmatter and the conventional sections."""
    lines = [
        f'title: "{spec.title}"' if spec.quoted_title else f"title: {spec.title}",
        f"status: {spec.status}",
    ]
    lines += [f"{key}: {value}" for key, value in _optional(spec) if value]
    if spec.depends_on:
        lines.append(f"depends_on: [{', '.join(spec.depends_on)}]")
    if spec.labels:
        lines.append("labels:" + "".join(f"\n  - {label}" for label in spec.labels))
    if spec.completed:
        by, at, pr = spec.completed
        lines += [f"completed_by: {by}", f"completed_at: {at}", f"pr: '{pr}'"]
    if spec.comment:
        lines.append("# reviewed in the weekly planning meeting")
    body = "\n".join(f"## {name}\n\n{text}\n" for name, text in spec.sections)
    return "---\n" + "\n".join(lines) + "\n---\n\n" + body


def _optional(spec: TaskSpec) -> tuple[tuple[str, str | None], ...]:
    return (("priority", spec.priority), ("owner", spec.owner), ("milestone", spec.milestone))


def generate(dest: Path, count: int, seed: int = 1) -> Path:
    """Write ``count`` tasks and a config under ``dest`` and commit them on ``main``."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "taskfiles.toml").write_text(CONFIG, encoding="utf-8")
    for spec in specs(count, seed):
        folder = dest / "tasks" / spec.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{spec.slug}.md").write_text(taskfile_text(spec), encoding="utf-8")
    (dest / "tasks" / "README.md").write_text("# Tasks\n\nOne file per task.\n", encoding="utf-8")
    commit_all(dest)
    return dest


def commit_all(dest: Path) -> None:
    """Make ``dest`` a git repository on ``main`` with everything in it committed."""

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    # Packed now, as a clone's objects are, and never again in the background: an automatic gc
    # would move files under a copy of the repository (bench/compare.py) and take CPU from the
    # timed commands; without any, --ref reads 10,000 loose objects (twice the time).
    git("config", "gc.auto", "0")
    git("add", "-A")
    git("-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "tasks")
    git("gc", "--quiet")


def main() -> None:
    """Command line: gen_tasks.py DEST [--count N] [--seed S]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.dest, args.count, args.seed)


if __name__ == "__main__":
    main()
