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


def _paragraph(rng: random.Random, sentences: int) -> str:
    picked = [rng.choice(WORDS) for _ in range(sentences)]
    return " ".join(s[0].upper() + s[1:] + "." for s in picked)


def _body(rng: random.Random, deps: list[str]) -> str:
    parts = []
    for name in SECTIONS[: rng.randint(4, len(SECTIONS))]:
        if name in ("Plan", "Acceptance criteria"):
            items = "\n".join(f"- [ ] {rng.choice(WORDS)}" for _ in range(rng.randint(2, 6)))
            text = items
        else:
            text = _paragraph(rng, rng.randint(2, 7))
        if name == "Context" and deps:
            text += "\n\nBlocked on " + ", ".join(f"`{d}`" for d in deps) + "."
        parts.append(f"## {name}\n\n{text}\n")
    return "\n".join(parts)


def _frontmatter(rng: random.Random, index: int, slug: str, deps: list[str]) -> list[str]:
    status = _weighted(rng, STATUSES)
    title = slug.rsplit("-", 1)[0].replace("-", " ").capitalize() + f" (#{index})"
    lines = [f'title: "{title}"' if rng.random() < 0.3 else f"title: {title}", f"status: {status}"]
    if rng.random() < 0.9:
        lines.append(f"priority: {_weighted(rng, PRIORITIES)}")
    if rng.random() < 0.8:
        lines.append(f"owner: {rng.choice(OWNERS)}")
    if rng.random() < 0.5:
        lines.append(f"milestone: {rng.choice(MILESTONES)}")
    if deps:
        lines.append(f"depends_on: [{', '.join(deps)}]")
    labels = rng.sample(LABELS, rng.randint(0, 4))
    if labels:
        lines.append("labels:" + "".join(f"\n  - {label}" for label in labels))
    if status == "completed":
        lines += [
            f"completed_by: {rng.choice(OWNERS)}",
            f"completed_at: 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"pr: '#{rng.randint(100, 9999)}'",
        ]
    if rng.random() < 0.1:
        lines.append("# reviewed in the weekly planning meeting")
    return lines


def _task(rng: random.Random, index: int, slugs: list[str]) -> tuple[str, str]:
    slug = f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}-{index:05d}"
    # Dependencies only point at earlier tasks, so the graph has no cycles.
    deps = rng.sample(slugs[-200:], min(len(slugs), rng.choice((0, 0, 0, 1, 1, 2, 3))))
    text = "---\n" + "\n".join(_frontmatter(rng, index, slug, deps)) + "\n---\n\n" + _body(rng, deps)
    return slug, text


def generate(dest: Path, count: int, seed: int = 1) -> Path:
    """Write ``count`` tasks and a config under ``dest`` and commit them on ``main``."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "taskfiles.toml").write_text(CONFIG, encoding="utf-8")
    slugs: list[str] = []
    for index in range(count):
        slug, text = _task(rng, index, slugs)
        slugs.append(slug)
        folder = dest / "tasks" / rng.choice(WORKSTREAMS) if rng.random() < 0.9 else dest / "tasks"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{slug}.md").write_text(text, encoding="utf-8")
    (dest / "tasks" / "README.md").write_text("# Tasks\n\nOne file per task.\n", encoding="utf-8")
    _commit(dest)
    return dest


def _commit(dest: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "tasks")


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
