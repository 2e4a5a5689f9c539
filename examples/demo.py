"""`make demo`: build a sample repository in a temp folder and run taskfiles on it.

Every step is the real `task` command in a subprocess, printed as a transcript.
Pass --keep to leave the sample repository behind for a look around.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
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
    program = str(BIN / args[0]) if args[0] in ("task", "taskfiles") else args[0]
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
    sh(repo, "task", "new", "Add login page", "--workstream", "web", "--priority", "p1",
       "--depends-on", "design-the-user-model", "--label", "web")
    sh(repo, "task", "new", "Write the privacy policy", "--priority", "p3", "--owner", "legal")
    sh(repo, "task", "ready", "add-login-page")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "Plan the first milestone")


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
        (repo / "tasks" / "legacy.md").write_text("---\ntitle: Old\nstatus: in_progress\nclaimed_by: bot\n---\n")
        sh(repo, "task", "validate", check=False)
        (repo / "tasks" / "legacy.md").unlink()
        print("\n# The agent finishes the first task in its branch; the next one becomes available:")
        sh(repo, "task", "complete", "design-the-user-model", "--pr", "https://example.invalid/pull/1")
        sh(repo, "git", "diff", "--stat")
        sh(repo, "task", "next", "--json")
        sh(repo, "task", "list", "--status", "completed")
    finally:
        if keep:
            print(f"\nkept {repo}")
        else:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
