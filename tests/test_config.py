"""Reading the configuration: the TOML, kept parsed in the git folder while it is unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskfiles import config
from taskfiles.errors import ConfigError


def settle() -> None:
    """Wait out the racy window: a file changed within it is parsed but never kept."""
    time.sleep(config.RACY_NS / 1e9 + 0.2)


def kept(root: Path) -> Path:
    return root / ".git" / "taskfiles" / config.TOML_CACHE


PROBE = (
    "import sys; from pathlib import Path; from taskfiles import config; "
    "print(config.load(Path(sys.argv[1])).owners, 'tomllib' in sys.modules)"
)


def test_settled_toml_is_read_from_the_cache_and_every_edit_is_seen(repo: Path) -> None:
    toml = repo / "taskfiles.toml"
    toml.write_text('owners = ["alice"]\n', encoding="utf-8")
    assert config.load(repo).owners == ("alice",)
    assert not kept(repo).exists()  # just written: parsed, not kept
    settle()
    assert config.load(repo).owners == ("alice",)
    assert kept(repo).is_file()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(repo)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["('alice',)", "False"]  # tomllib never imported
    old = toml.stat()
    toml.write_text('owners = ["carol"]\n', encoding="utf-8")  # same size, same inode
    os.utime(toml, ns=(old.st_atime_ns, old.st_mtime_ns))  # and the same mtime: ctime tells
    assert config.load(repo).owners == ("carol",)
    kept(repo).write_bytes(b"\xff not marshal data")
    assert config.load(repo).owners == ("carol",)
    toml.write_text("owners = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"taskfiles\.toml: invalid TOML"):
        config.load(repo)


@pytest.mark.planning
def test_a_pyproject_section_and_values_the_cache_cannot_hold(repo: Path) -> None:
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.taskfiles]\nowners = ["alice"]\nsince = 2026-01-31\n', encoding="utf-8"
    )
    settle()
    for _ in range(2):  # a TOML date is not plain data: parsed each time, never kept
        loaded = config.load(repo)
        assert loaded.owners == ("alice",) and str(loaded.raw["since"]) == "2026-01-31"
    assert not kept(repo).exists()


@pytest.mark.planning
@pytest.mark.parametrize("value", ['"t\\n* merge=evil"', '""', "7", '"a\\tb"'])
def test_tasks_dir_must_be_a_folder_name_on_one_line(repo: Path, value: str) -> None:
    (repo / "taskfiles.toml").write_text(f"tasks_dir = {value}\n")
    with pytest.raises(ConfigError, match=r"taskfiles\.toml: tasks_dir must be a folder name on one line"):
        config.load(repo)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("task")), "-C", str(repo), "merge-driver", "install"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "tasks_dir must be a folder name on one line" in done.stderr
    assert not (repo / ".gitattributes").exists()
