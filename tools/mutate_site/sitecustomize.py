"""Started in every Python process of a `make mutate` run (tools/mutate.py puts this folder on
PYTHONPATH): while mutmut collects which tests reach which function (MUTANT_UNDER_TEST=stats),
a child process the tests started (the `task` CLI, a worker, a merge driver) records the
functions it reached in the file TASKFILES_MUTATE_HITS names, for mutate_hits.py to hand to
mutmut. mutmut records only its own process's calls, so without this a function the tests reach
only through a subprocess would have no tests, and its mutants would never be run.
"""

from __future__ import annotations

import os


def _record_hits_to_file(path: str) -> None:
    from mutmut.mutation import trampoline

    seen: set[str] = set()

    def record(name: str, caller: str | None = None) -> None:
        if name not in seen:  # one line per function and process: a cycle calls classify 50,000 times
            seen.add(name)
            with open(path, "a", encoding="utf-8") as hits:
                hits.write(name + "\n")

    trampoline.record_trampoline_hit = record  # type: ignore[attr-defined]


if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("TASKFILES_MUTATE_HITS"):
    _record_hits_to_file(os.environ["TASKFILES_MUTATE_HITS"])
