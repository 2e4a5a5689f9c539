"""A sample agent for the heartbeat's worker wrapper: real work, in the task's own worktree.

Configure it as the agent command (an argument list, never a shell string)::

    [worker]
    command = ["python3", "examples/sample_worker.py", "{prompt_file}"]

The wrapper starts it in ``.worktrees/<slug>`` on branch ``task/<slug>`` with the
TASKFILES_* variables set. It reports through the ``task`` command like any agent:
``task log``, ``task progress``, ``task heartbeat``; writes a file and commits it;
then records the completion with ``task complete`` in its branch and commits that
too, so the completion lands on main when the branch is merged.

A task labelled ``flaky`` fails its first attempt (exit 1), to show a retry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def task(*args: str) -> str:
    """Run the ``task`` command (the wrapper puts it on PATH); return its stdout."""
    done = subprocess.run(["task", *args], check=True, capture_output=True, text=True)
    return done.stdout


def git(*args: str) -> None:
    """Run git in the worktree."""
    subprocess.run(["git", *args], check=True, capture_output=True, text=True)


def main() -> int:
    """Do the task described by the prompt file; exit 0 when it is committed."""
    slug = os.environ["TASKFILES_SLUG"]
    attempt = int(os.environ["TASKFILES_ATTEMPT"])
    prompt = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["TASKFILES_PROMPT_FILE"]).read_text()
    info = json.loads(task("show", slug, "--json"))
    task("log", slug, f"attempt {attempt}: read {len(prompt)} characters of prompt")
    print(f"working on {slug!r} in {Path.cwd()}", flush=True)
    if "flaky" in info.get("labels", []) and attempt == 1:
        print("the flaky label says: fail the first attempt", file=sys.stderr, flush=True)
        return 1
    task("progress", slug, "30", "writing the notes")
    notes = Path("notes") / f"{slug}.md"
    notes.parent.mkdir(exist_ok=True)
    notes.write_text(f"# {info['title']}\n\nDone by the sample worker, attempt {attempt}.\n")
    git("add", str(notes))
    git("commit", "-q", "-m", f"{slug}: notes")
    time.sleep(0.3)  # pretend to think, so the status shows the task active
    task("heartbeat", slug, "--note", "notes committed", "--cost-usd", "0.02")
    task("progress", slug, "90", "recording the completion")
    task("complete", slug, "--by", "sample-worker")
    git("commit", "-q", "-am", f"{slug}: complete")
    print(f"{slug}: committed on {os.environ['TASKFILES_BRANCH']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
