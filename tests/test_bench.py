"""The benches run: each in --quick mode with tiny sizes, as a real subprocess, writes a result
file with the machine record and every case (the timings themselves are not checked).

The benches run side by side (they are mostly waiting on their own subprocesses), so the
whole check takes about as long as the slowest one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent / "bench"
MACHINE_KEYS = {"cpu", "cores", "ram_gib", "os", "python", "git", "load", "other_load", "other_load_why"}
LOAD_KEYS = {"loadavg_before", "loadavg_after", "other_busy_before", "other_busy_after", "other_cpu_share"}
Check = Callable[[dict[str, Any]], None]


def startup(result: dict[str, Any]) -> None:
    assert set(result["results"]) == {
        "python_bare",
        "import_click",
        "import_cli",
        "task_list_one",
        "task_note_claimed",
    }
    assert targets(result) == ["task_list_one <= 70 ms", "task_note_claimed <= 70 ms"]


def listing(result: dict[str, Any]) -> None:
    size = result["results"]["30"]
    commands = {"list", "list_ref", "validate"}
    assert {f"{c}_{how}" for c in commands for how in ("warm", "cold")} <= set(size["cases"])
    assert {"python_bare", "import_cli"} <= set(size["cases"])
    backlog = result["setup"]["backlog"]
    if shutil.which("backlog") is None:  # the result says Backlog.md did not run, and why
        assert backlog["command"] is None and "not on PATH" in backlog["found"]
        assert "backlog" not in size and "backlog_list_plain" not in size["cases"]
    else:
        assert size["backlog"]["listed"] == 30 and "backlog_list_plain" in size["cases"]


def registry(result: dict[str, Any]) -> None:
    assert [(r["entries"], r["procs"]) for r in result["results"]] == [(100, 2), (300, 2)]
    assert {"ops_per_s", "p50_ms", "p99_ms"} <= set(result["results"][0]["median"])


def heartbeat(result: dict[str, Any]) -> None:
    size = result["results"]["300"]
    assert set(size["cron"]["cases"]) == {"python_bare", "cron", "cycle_duration_ms"}
    assert size["entries"] == 30 and size["cycle_in_process"]["counts"]["active"] == 30


def status(result: dict[str, Any]) -> None:
    assert set(result["results"]) == {"python_bare", "import_cli", "list_ref_warm", "status_warm"}
    assert targets(result) == ["status_warm <= 300 ms"]


def graph(result: dict[str, Any]) -> None:
    assert set(result["results"]) == {"200"}


def serve(result: dict[str, Any]) -> None:
    assert {"api_status", "overview_html", "sse", "memory"} <= set(result)
    assert len(targets(result)) == 3


BENCHES: dict[str, tuple[list[str], Check]] = {
    "startup.py": ([], startup),
    "bench_list.py": (["--sizes", "30"], listing),
    "bench_registry.py": (["--entries", "100", "300"], registry),
    "bench_heartbeat.py": (["--sizes", "300"], heartbeat),
    "bench_status.py": (["--tasks", "300", "--entries", "50"], status),
    "bench_graph.py": ([], graph),
    "bench_serve.py": (["--tasks", "300", "--entries", "50", "--writes", "1"], serve),
}


def targets(result: dict[str, Any]) -> list[str]:
    assert all(v["result"] in ("PASS", "FAIL") for v in result["targets"])
    return [v["target"] for v in result["targets"]]


def check_machine(machine: dict[str, Any]) -> None:
    assert machine.keys() >= MACHINE_KEYS
    assert machine["load"].keys() >= LOAD_KEYS
    assert isinstance(machine["other_load"], bool) and machine["other_load_why"]
    assert "PYTHONDONTWRITEBYTECODE" in machine["timed_env"]


def test_every_bench_runs_quick_and_records_the_machine_and_its_cases(tmp_path: Path) -> None:
    running = {
        script: subprocess.Popen(
            [
                sys.executable,
                str(BENCH / script),
                "--quick",
                "--out",
                str(tmp_path / f"{script}.json"),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for script, (args, _) in BENCHES.items()
    }
    outputs = {script: process.communicate(timeout=180)[0] for script, process in running.items()}
    for script, (_, check) in BENCHES.items():
        assert running[script].returncode == 0, f"{script}: {outputs[script][-2000:]}"
        result = json.loads((tmp_path / f"{script}.json").read_text())
        check_machine(result["machine"])
        check(result)


def test_list_verdicts_check_each_target_and_never_invent_the_backlog_ratio() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from bench_list import verdicts
    finally:
        sys.path.remove(str(BENCH))
    cases = {
        name: {"median_ms": ms}
        for name, ms in [("list_warm", 140), ("list_cold", 900), ("validate_cold", 500)]
    }
    found = verdicts(
        {10_000: {"cases": cases}, 50_000: {"cases": {"list_warm": {"median_ms": 450}}}}, "no npm"
    )
    assert [(v["target"], v["result"]) for v in found] == [
        ("10000 tasks list_warm <= 150 ms", "PASS"),
        ("10000 tasks list_cold <= 600 ms", "FAIL"),
        ("10000 tasks validate_cold <= 600 ms", "PASS"),
        ("50000 tasks list_warm <= 500 ms", "PASS"),
        ("10000 tasks backlog task list --plain / list_warm >= 30x", "NOT MEASURED: no npm"),
    ]
    measured = {10_000: {"cases": cases, "backlog": {"ratio_to_list_warm": 28.5}}}
    assert verdicts(measured, "")[-1]["result"] == "FAIL"
