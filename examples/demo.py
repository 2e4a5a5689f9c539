"""`make demo`: build a sample repository in a temp folder and run taskfiles on it.

Every step is the real `task` command in a subprocess, printed as a transcript.
Part 1 plans work by hand; part 2 lets the heartbeat (`task-manager-heartbeat`)
dispatch it to the sample agent (examples/sample_worker.py): tasks go ready ->
active -> review -> done, one failure is retried, and each branch is squash-merged
as a pull request would be. Pass --keep to leave the sample repository behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SAMPLE_WORKER = Path(__file__).resolve().with_name("sample_worker.py")
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    "TASKFILES_ACTOR": "demo-agent",
}


def sh(repo: Path, *args: str, check: bool = True) -> str:
    """Run a command in the sample repository, echo it and its output."""
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"\n$ {shown}")
    program = str(BIN / args[0]) if args[0] in ("task", "taskfiles", "task-manager-heartbeat") else args[0]
    done = subprocess.run([program, *args[1:]], cwd=repo, env=ENV, capture_output=True, text=True)
    output = (done.stdout + done.stderr).rstrip()
    if output:
        print(output)
    if check and done.returncode != 0:
        raise SystemExit(f"demo step failed with exit code {done.returncode}: {shown}")
    return done.stdout


def build(repo: Path) -> None:
    """A git repository with a small backlog, one dependency chain and one bad file."""
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "task", "init")
    sh(repo, "task", "new", "Design the user model", "--workstream", "backend", "--priority", "p1", "--ready")
    sh(
        repo,
        "task",
        "new",
        "Add login page",
        "--workstream",
        "web",
        "--priority",
        "p1",
        "--depends-on",
        "design-the-user-model",
        "--label",
        "web",
    )
    sh(repo, "task", "new", "Write the privacy policy", "--priority", "p3", "--owner", "legal")
    sh(repo, "task", "ready", "add-login-page")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "Plan the first milestone")


def quiet(repo: Path, *args: str) -> str:
    """Run a command without showing it (the demo's own bookkeeping)."""
    program = str(BIN / args[0]) if args[0] == "task" else args[0]
    return subprocess.run([program, *args[1:]], cwd=repo, env=ENV, capture_output=True, text=True).stdout


def buckets(repo: Path) -> dict[str, str]:
    """slug -> bucket, from `task status --json`."""
    report = json.loads(quiet(repo, "task", "status", "--json"))
    return {row["slug"]: row["bucket"] for row in report["tasks"]}


def settle(repo: Path) -> None:
    """Wait until no worker runs (the agents take a second or so)."""
    deadline = time.monotonic() + 60
    while "active" in buckets(repo).values() and time.monotonic() < deadline:
        time.sleep(0.3)


def configure_worker(repo: Path) -> None:
    """Point [worker] command at the sample agent: an argument list, never a shell string."""
    command = [sys.executable, str(SAMPLE_WORKER), "{prompt_file}"]
    settings = (
        f"\n[worker]\ncommand = {json.dumps(command)}\nheartbeat_seconds = 1\ndeadline_seconds = 60\n"
        "\n[heartbeat]\nmax_parallel = 2\nbackoff_base_seconds = 1\nbackoff_jitter = 0\n"
    )
    with (repo / "taskfiles.toml").open("a", encoding="utf-8") as handle:
        handle.write(settings)
    print("\n# taskfiles.toml now says:" + settings.replace(str(SAMPLE_WORKER), "examples/sample_worker.py"))


def run_the_queue(repo: Path) -> None:
    """Part 2: the heartbeat dispatches, the sample agent works, people merge."""
    print("\n# Part 2: the heartbeat runs the queue. It reads task files at main, so the")
    print("# hand-made completion above is dropped; agents complete tasks in their own branches.")
    sh(repo, "git", "checkout", "-q", "--", "tasks")
    configure_worker(repo)
    sh(repo, "task", "new", "Write the API docs", "--ready", "--label", "flaky")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "Configure the sample worker; plan the API docs")
    print("\n# cron would run this every minute:  * * * * * cd <repo> && task-manager-heartbeat")
    for number in range(1, 12):
        sh(repo, "task-manager-heartbeat")
        if number == 1:
            sh(repo, "task", "status")
            sh(repo, "git", "worktree", "list")
        settle(repo)
        if number == 1:
            print("\n# One agent finished (review: waiting for the merge), the flaky one failed:")
            sh(repo, "task", "status")
        state = buckets(repo)
        for slug in sorted(s for s, bucket in state.items() if bucket == "review"):
            print(f"\n# The pull request of {slug} is reviewed and squash-merged into main:")
            sh(repo, "git", "merge", "--squash", "-q", f"task/{slug}")
            sh(repo, "git", "commit", "-q", "-m", f"{slug} (squash-merged)")
        if all(bucket in ("done", "backlog") for bucket in buckets(repo).values()):
            break
        time.sleep(1.1)  # the flaky task's retry backs off for a second
    sh(repo, "task-manager-heartbeat")
    print("\n# Every ready task went ready -> active -> review -> done; the flaky one took two attempts:")
    sh(repo, "task", "status")
    sh(repo, "task", "logs", "write-the-api-docs", "--attempt", "1")
    sh(repo, "git", "log", "--oneline")
    sh(repo, "git", "status", "--short")


def main() -> None:
    keep = "--keep" in sys.argv
    repo = Path(tempfile.mkdtemp(prefix="taskfiles-demo-"))
    print(f"sample repository: {repo}")
    try:
        build(repo)
        sh(repo, "task", "validate")
        sh(repo, "task", "list")
        sh(repo, "task", "next")
        sh(repo, "task", "show", "add-login-page")
        print("\n# A legacy file with runtime state in its frontmatter is caught:")
        (repo / "tasks" / "legacy.md").write_text(
            "---\ntitle: Old\nstatus: in_progress\nclaimed_by: bot\n---\n"
        )
        sh(repo, "task", "validate", check=False)
        (repo / "tasks" / "legacy.md").unlink()
        print("\n# The agent finishes the first task in its branch; the next one becomes available:")
        sh(repo, "task", "complete", "design-the-user-model", "--pr", "https://example.invalid/pull/1")
        sh(repo, "git", "diff", "--stat")
        sh(repo, "task", "next", "--json")
        sh(repo, "task", "list", "--status", "completed")
        run_the_queue(repo)
    finally:
        if keep:
            print(f"\nkept {repo}")
        else:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
