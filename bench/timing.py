"""Timing for the benches: one command's wall time, interleaved rounds, medians, verdicts.

A case is a function returning one sample in ms: ``plain`` (a command), ``warm`` (a
command right after an untimed run of it) and ``cold`` (a command after every parse
cache of the repository is deleted). ``save`` writes a result file and prints its
verdicts.

On a shared machine a busy moment slows whatever runs during it. ``interleave`` runs
one sample of every case per round, so such a moment hits every case alike and the
ratios between cases stay fair; a round in which the package's code changed (another
engineer editing the working tree) is thrown away and taken again, and so is a round
whose case raised ``Retake`` (e.g. a warm run that found its cache rewritten).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from machine import child_env, code_marks

BIN = Path(sys.executable).parent
TASK = str(BIN / "task")
PYTHON = str(BIN / "python")


class Retake(Exception):
    """This round's sample of a case is not what the case measures; take the round again."""


def run_ms(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> float:
    """Wall time in ms of one run of ``argv`` in ``cwd``; it must succeed (a failing command
    is not a fast one)."""
    return run_output(argv, cwd, env)[0]


def run_output(
    argv: list[str], cwd: Path, env: Mapping[str, str] | None = None, *, into: Path | None = None
) -> tuple[float, bytes]:
    """Wall time in ms of one run of ``argv`` and what it printed on stdout (sent to the
    file ``into`` when given, as a shell redirect would, instead of a pipe)."""
    with into.open("wb") if into else contextlib.nullcontext() as sink:
        start = time.perf_counter()
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env or child_env()),
            stdout=sink or subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed in {cwd} (exit {done.returncode}): {done.stderr.decode()[-800:]}"
        )
    return elapsed, into.read_bytes() if into else done.stdout


def cache_folder(repo: Path) -> Path:
    """Where taskfiles keeps every cache of ``repo``: the parse results of the working tree,
    the blobs and each ref (taskfiles/plan/cache.py, source.py), the created dates
    (plan/created.py), the parsed settings (config.py)."""
    return repo / ".git" / "taskfiles"


def cache_marks(repo: Path) -> list[tuple[str, int, int, int]]:
    """(name, inode, mtime_ns, size) of each cache file: a rewrite changes them."""
    folder = cache_folder(repo)
    found = sorted(folder.iterdir()) if folder.is_dir() else []
    return [(p.name, st.st_ino, st.st_mtime_ns, st.st_size) for p in found for st in [p.stat()]]


def warm(name: str, argv: list[str], repo: Path) -> Callable[[], float]:
    """A warm sample: an untimed run first, then a timed one that must leave the caches alone."""

    def sample() -> float:
        run_ms(argv, repo)
        marks = cache_marks(repo)
        took = run_ms(argv, repo)
        if cache_marks(repo) != marks:
            raise Retake(f"{name}: the timed run rewrote a cache file, so it was not warm")
        return took

    return sample


def cold(argv: list[str], repo: Path) -> Callable[[], float]:
    """A cold sample: every cache of the repository deleted, then one timed run."""

    def sample() -> float:
        shutil.rmtree(cache_folder(repo), ignore_errors=True)
        return run_ms(argv, repo)

    return sample


def plain(argv: list[str], cwd: Path) -> Callable[[], float]:
    """A sample of a command that keeps no cache of ours."""
    return lambda: run_ms(argv, cwd)


Sample = float | Mapping[str, float]  # one value in ms, or several named ones from one run


def interleave(cases: Mapping[str, Callable[[], Sample]], runs: int) -> dict[str, Any]:
    """``runs`` rounds, each calling every case once in order; a case returns its sample in
    ms, or a mapping of named samples taken from the same run (each becomes a case of its
    own). A round is retaken, at most ``runs`` times in all, when the package's code
    changed during it or a case raised ``Retake``. Returns each case's summary and the
    reasons rounds were retaken."""
    samples: dict[str, list[float]] = {}
    retaken: list[str] = []
    taken_rounds = 0
    while taken_rounds < runs:
        marks = code_marks()
        try:
            taken = {name: case() for name, case in cases.items()}
        except Retake as why:
            retaken.append(str(why))
        else:
            if code_marks() == marks:
                for name, value in taken.items():
                    for key, ms in value.items() if isinstance(value, Mapping) else [(name, value)]:
                        samples.setdefault(key, []).append(ms)
                taken_rounds += 1
                continue
            retaken.append("the package's code changed during the round")
        if len(retaken) > runs:
            raise SystemExit(f"gave up after {len(retaken)} retaken rounds: {retaken[-3:]}")
    return {"cases": {name: summary(values) for name, values in samples.items()}, "retaken_rounds": retaken}


def summary(samples: list[float]) -> dict[str, Any]:
    """Median, min, max and every sample (ms), rounded."""
    return {
        "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "runs": len(samples),
        "samples_ms": [round(s, 1) for s in samples],
    }


def verdict(
    name: str, measured: float, limit: float, *, at_least: bool = False, unit: str = "ms"
) -> dict[str, Any]:
    """One target checked: PASS or FAIL with the measured value and the limit."""
    met = measured >= limit if at_least else measured <= limit
    sign = ">=" if at_least else "<="
    return {
        "target": f"{name} {sign} {limit:g}{unit if unit == 'x' else ' ' + unit}",
        "measured": round(measured, 1),
        "result": "PASS" if met else "FAIL",
    }


def print_verdicts(verdicts: list[dict[str, Any]]) -> None:
    """One line per target: PASS/FAIL, the target and the measured value."""
    for item in verdicts:
        measured = "" if item["measured"] is None else f"  (measured {item['measured']:g})"
        print(f"{item['result']}  {item['target']}{measured}", flush=True)


def save(report: Mapping[str, Any], out: Path) -> None:
    """Write the result file; print each target's verdict, the load seen and where it went."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_verdicts(report.get("targets", []))
    print(f"other load: {report['machine']['other_load_why']}")
    print(f"wrote {out}", flush=True)


def row(name: str, result: Mapping[str, Any]) -> str:
    """One printed line: the case, its median, min and max."""
    return (
        f"{name:<22} median {result['median_ms']:>9.1f} ms   "
        f"min {result['min_ms']:>9.1f}   max {result['max_ms']:>9.1f}   ({result['runs']} runs)"
    )
