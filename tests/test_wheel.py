"""The distribution a user installs: the sdist and wheel ``python -m build`` makes, checked as PyPI
would (twine), the wheel installed (not editable) into a fresh venv, its commands run in a sample
repository. Dependencies come from the package index, through pip's usual cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from .conftest import commit_all, git

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
SCRIPTS = ("task", "taskfiles", "task-manager-heartbeat")


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``argv``; return stdout and stderr together, failing the test with them on an error."""
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}"
    return done.stdout


def _repository_files(*under: str) -> list[str]:
    """The files git would commit here (tracked and new, not ignored) that the working tree holds,
    relative to the repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *under],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [rel for rel in listed.split("\0") if rel and os.path.lexists(REPO / rel)]


def _copy_of_the_repository(dest: Path) -> Path:
    """What a clone of this working tree holds (symlinks kept as links), without its .venv and
    egg-info. A build run in the repository itself would leave build/ and egg-info behind."""
    for rel in _repository_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target, follow_symlinks=False)
    return dest


def _package_files() -> set[str]:
    """Every file of the package in the repository (modules and data), as the wheel names them."""
    return set(_repository_files("taskfiles"))


def _build(tmp_path: Path) -> tuple[Path, Path]:
    """The sdist and the wheel (built from the sdist, as ``python -m build`` does), with no
    setuptools deprecation warning in the output and both passing ``twine check --strict``."""
    source = _copy_of_the_repository(tmp_path / "source")
    out = tmp_path / "dist"
    log = _run(sys.executable, "-m", "build", "--outdir", out, source, cwd=tmp_path)
    assert not re.search(r"deprecat", log, re.IGNORECASE), log
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    assert (sdist.name, wheel.name) == (
        f"taskfiles-{VERSION}.tar.gz",
        f"taskfiles-{VERSION}-py3-none-any.whl",
    )
    checked = _run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel, cwd=tmp_path)
    assert checked.count("PASSED") == 2, checked
    return sdist, wheel


def _check_contents(sdist: Path, wheel: Path) -> None:
    """Both carry every package file, SKILL.md as the file's text (not the repository's symlink),
    and the license; the wheel's metadata names it as an SPDX expression."""
    skill = (REPO / "SKILL.md").read_bytes()
    with zipfile.ZipFile(wheel) as whl:
        assert _package_files() <= set(whl.namelist())
        assert whl.read("taskfiles/data/SKILL.md") == skill
        dist_info = f"taskfiles-{VERSION}.dist-info"
        assert whl.read(f"{dist_info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        metadata = whl.read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    with tarfile.open(sdist) as tar:
        top = f"taskfiles-{VERSION}"
        assert {f"{top}/{rel}" for rel in _package_files()} <= set(tar.getnames())
        member = tar.getmember(f"{top}/taskfiles/data/SKILL.md")
        assert member.isfile()
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == skill
        assert tar.getmember(f"{top}/LICENSE").isfile()


def _install(wheel: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh venv (no system site-packages) with ``wheel`` installed by pip; its bin folder and
    an environment in which nothing points back at this repository or its venv."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    _run(bindir / "python", "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path, env=env)
    return bindir, env


@pytest.mark.timeout(600)
def test_the_built_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    sdist, wheel = _build(tmp_path)
    _check_contents(sdist, wheel)
    bindir, env = _install(wheel, tmp_path)
    assert all((bindir / name).is_file() for name in SCRIPTS), sorted(p.name for p in bindir.iterdir())

    sample = tmp_path / "sample"
    sample.mkdir()
    git(sample, "init", "-q", "-b", "main")
    task = bindir / "task"
    imported = _run(
        bindir / "python", "-c", "import taskfiles; print(taskfiles.__file__)", cwd=sample, env=env
    )
    assert Path(imported.strip()).is_relative_to(tmp_path / "venv")
    assert _run(task, "--version", cwd=sample, env=env) == f"taskfiles {VERSION}\n"
    assert _run(bindir / "taskfiles", "--version", cwd=sample, env=env) == f"taskfiles {VERSION}\n"
    assert "usage" in _run(bindir / "task-manager-heartbeat", "--help", cwd=sample, env=env).lower()

    _run(task, "init", cwd=sample, env=env)  # writes SKILL.md from the installed package's data
    assert (sample / "SKILL.md").read_bytes() == (REPO / "SKILL.md").read_bytes()
    _run(task, "new", "User model", "--priority", "p1", cwd=sample, env=env)
    _run(task, "new", "Add login page", "--depends-on", "user-model", cwd=sample, env=env)
    commit_all(sample)

    table = _run(task, "list", cwd=sample, env=env).splitlines()
    assert table[0].split() == ["PRI", "STATUS", "STATE", "SLUG", "OWNER", "TITLE"]
    assert [line.split()[:4] for line in table[1:]] == [
        ["p2", "not_started", "-", "add-login-page"],
        ["p1", "not_started", "-", "user-model"],
    ]
    listed = json.loads(_run(task, "list", "--json", cwd=sample, env=env))
    assert [(t["slug"], t["path"], t["depends_on"]) for t in listed] == [
        ("add-login-page", "tasks/add-login-page.md", ["user-model"]),
        ("user-model", "tasks/user-model.md", []),
    ]
    assert _run(task, "validate", cwd=sample, env=env).strip() == "2 files, 0 error(s), 0 warning(s)"
