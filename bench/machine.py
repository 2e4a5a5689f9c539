"""Where and how a benchmark ran: the timed processes' environment and the machine record.

Every bench times its commands with ``child_env()`` and puts ``Probe.record()`` in its
result file under ``"machine"``, so a reader sees what the numbers were taken on:

- the hardware and software (CPU model, cores, RAM, OS, Python, git, the taskfiles
  commit and whether the package had uncommitted changes);
- the load: the load average before and after, the processes other than the bench
  that were busy just before and just after it, and the share of all cores' time that
  other processes used during the run (``/proc/stat``'s busy time less this process's
  and its waited-for children's CPU time, so the kernel's own threads and any process
  the bench detached count as other), plus the hypervisor's steal;
- ``other_load``: True when any of those says something else competed for the CPU,
  with ``other_load_why`` saying which;
- the bytecode: whether the timed processes could write and reuse ``.pyc`` files.

A timed process must not run with ``PYTHONDONTWRITEBYTECODE`` set: it would compile
every module on every start and the bench would time the compiler, not the program.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskfiles"
TICKS = os.sysconf("SC_CLK_TCK")
# Other processes using more than this share of the whole machine during the run, a
# process using more than BUSY_SHARE of one core, or a load average above
# LOAD_PER_CORE per core before the run: the numbers were taken on a loaded machine.
OTHER_SHARE = 0.10
BUSY_SHARE = 0.20
LOAD_PER_CORE = 0.5


def results_file(name: str, quick: bool) -> Path:
    """Where a bench writes its result file by default: bench/results/NAME, or, for a
    ``--quick`` smoke run, a temporary folder (a smoke run's numbers are no result)."""
    folder = Path(tempfile.gettempdir()) / "taskfiles-bench-quick" if quick else ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every timed process: this one's, without ``PYTHONDONTWRITEBYTECODE``
    (bytecode is written once and reused, as on a user's machine) and without ``GIT_*``
    (a caller's GIT_DIR or GIT_INDEX_FILE would point git at another repository)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class _CpuTimes:
    """Busy and steal seconds of the whole machine, and this process's own CPU seconds."""

    busy: float
    steal: float
    total: float
    own: float

    @classmethod
    def now(cls) -> _CpuTimes:
        fields = [int(x) for x in _read("/proc/stat").split("\n", 1)[0].split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        busy = sum(fields[i] for i in (0, 1, 2, 5, 6) if i < len(fields))
        steal = fields[7] if len(fields) > 7 else 0
        own = sum(
            r.ru_utime + r.ru_stime
            for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        )
        return cls(busy / TICKS, steal / TICKS, sum(fields[:8]) / TICKS, own)


class Probe:
    """The machine's load around one benchmark run: make it first, ``record()`` at the end."""

    def __init__(self, window: float = 1.0) -> None:
        """Sample the machine for ``window`` seconds before anything is timed."""
        self.window = window
        self.loadavg_before = os.getloadavg()
        self.busy_before = busy_processes(window)
        self.cpu_before = _CpuTimes.now()
        self.started = time.monotonic()

    def record(self) -> dict[str, Any]:
        """The machine record for the result file (samples the load once more)."""
        wall = time.monotonic() - self.started
        cpu = _CpuTimes.now()
        loadavg_after = os.getloadavg()
        busy_after = busy_processes(self.window)
        cores = os.cpu_count() or 1
        elapsed = max(cpu.total - self.cpu_before.total, 1e-9)
        other = max(cpu.busy - self.cpu_before.busy - (cpu.own - self.cpu_before.own), 0.0)
        other_share = other / (wall * cores) if wall > 0 else 0.0
        why = _load_reasons(self.loadavg_before, cores, other_share, self.busy_before + busy_after)
        return {
            **describe(),
            "load": {
                "loadavg_before": [round(x, 2) for x in self.loadavg_before],
                "loadavg_after": [round(x, 2) for x in loadavg_after],
                "other_busy_before": self.busy_before,
                "other_busy_after": busy_after,
                "other_cpu_share": round(other_share, 3),
                "steal_share": round((cpu.steal - self.cpu_before.steal) / elapsed, 3),
                "wall_seconds": round(wall, 1),
            },
            "other_load": bool(why),
            "other_load_why": "; ".join(why) if why else "none seen",
            "bytecode": bytecode_state(),
        }


def _load_reasons(
    loadavg: tuple[float, float, float], cores: int, other_share: float, busy: list[dict[str, Any]]
) -> list[str]:
    why = []
    if loadavg[0] > LOAD_PER_CORE * cores:
        why.append(f"load average {loadavg[0]:.2f} before the run on {cores} cores")
    if other_share > OTHER_SHARE:
        why.append(f"other processes used {other_share:.0%} of all cores' time during the run")
    if busy:
        names = sorted({f"{p['command']} ({p['cpu_share']:.0%})" for p in busy})
        why.append("busy other processes before/after: " + ", ".join(names[:6]))
    return why


def busy_processes(window: float) -> list[dict[str, Any]]:
    """Processes other than this one and its children using more than ``BUSY_SHARE`` of a
    core over ``window`` seconds, busiest first (pid, command, cpu_share of one core)."""
    if window <= 0:
        return []
    first = _process_times()
    time.sleep(window)
    second = _process_times()
    mine = {os.getpid()} | _children(os.getpid(), second)
    found = []
    for pid, (command, ticks) in second.items():
        if pid in mine or pid not in first:
            continue
        share = (ticks - first[pid][1]) / TICKS / window
        if share > BUSY_SHARE:
            found.append({"pid": pid, "command": command, "cpu_share": round(share, 2)})
    return sorted(found, key=lambda p: -p["cpu_share"])


def _process_times() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime in ticks) for every process we can read."""
    times = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        if len(fields) > 12:  # fields after the command: state ppid ... utime(12) stime(13)
            times[int(entry.name)] = (head.partition("(")[2], int(fields[11]) + int(fields[12]))
    return times


def _children(pid: int, known: dict[int, tuple[str, int]]) -> set[int]:
    """Every descendant of ``pid`` among ``known`` processes."""
    parent = {}
    for other in known:
        fields = _read(f"/proc/{other}/stat").rpartition(")")[2].split()
        if len(fields) > 1:
            parent[other] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found |= frontier
    return found


def describe() -> dict[str, Any]:
    """The hardware and software the numbers were taken on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "git": _output(["git", "--version"]).removeprefix("git version "),
        "taskfiles_commit": _output(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "package_uncommitted": bool(
            _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "taskfiles"])
        ),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timed_env": "PYTHONDONTWRITEBYTECODE and GIT_* removed"
        + (" (the bench's own environment had PYTHONDONTWRITEBYTECODE set)" if _no_bytecode() else ""),
    }


def bytecode_state() -> dict[str, Any]:
    """Whether the timed processes could keep bytecode: the package's ``__pycache__`` is
    writable, and how many modules have a ``.pyc`` as new as their source (a module that
    no timed command imports has none)."""
    sources = sorted(PACKAGE.rglob("*.py"))
    current = 0
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        current += cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime
    return {
        "pycache_writable": os.access(PACKAGE / "__pycache__", os.W_OK),
        "modules": len(sources),
        "with_current_pyc": current,
    }


def code_marks() -> tuple[tuple[str, int], ...]:
    """(path, mtime_ns) of every module of the package: a change between two samples means
    someone edited the code mid-run (its bytecode and the parse cache's fingerprint change)."""
    return tuple((str(p), p.stat().st_mtime_ns) for p in sorted(PACKAGE.rglob("*.py")))


def _no_bytecode() -> bool:
    return bool(os.environ.get("PYTHONDONTWRITEBYTECODE")) or sys.dont_write_bytecode


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=child_env()).stdout.strip()
    except OSError:
        return ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
