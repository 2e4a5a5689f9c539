"""Shared fixtures: real git repositories in tmp_path, and the registry stores under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import strategies as st

from taskfiles.config import REGISTRY_ENV, REGISTRY_URL_ENV
from taskfiles.registry import Actor, Clock, Registry

from .pgserver import REQUIRE_ENV, PgServer, Unavailable, postgres_required

if TYPE_CHECKING:
    from .harness import Site

T = TypeVar("T")

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's registry override or actor name; git works without config."""
    for name in (REGISTRY_ENV, REGISTRY_URL_ENV, "TASKFILES_ACTOR", "TASKFILES_REPO", "TASKFILES_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    yield


OSLIKE = Path(__file__).with_name("oslike")


@pytest.fixture
def windows_env() -> dict[str, str]:
    """The environment of a process that runs as on Windows: POSIX-only modules do not import,
    os and signal lack what Windows lacks (tests/oslike/sitecustomize.py says exactly what)."""
    paths = [str(OSLIKE), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "TASKFILES_TEST_PLATFORM": "windows"}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its stdout; fail the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ}
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository on branch main with a tasks/ folder."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "tasks").mkdir()
    return root


def write_task(root: Path, rel: str, text: str) -> Path:
    """Write ``tasks/<rel>`` (creating folders) and return its path."""
    path = root / "tasks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")  # "\n" stays "\n" on Windows too
    return path


def commit_all(root: Path, message: str = "tasks") -> str:
    """Commit everything in ``root`` and return the commit id."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A repository set up for dispatch (tests/harness.py); its workers are killed afterwards."""
    from .harness import make_site  # harness imports this module's helpers

    made = make_site(tmp_path)
    yield made
    made.kill_all()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def take(items: Iterator[T], count: int = 1, timeout: float = 10.0) -> list[T]:
    """The next ``count`` items of a follower (``follow_events``, ``follow_logs``); fail,
    instead of hanging, when they do not come within ``timeout`` seconds."""
    return _within(lambda: [next(items) for _ in range(count)], timeout, f"{count} more item(s)")


def drain(items: Iterator[T], timeout: float = 10.0) -> list[T]:
    """Every item left in a follower that must end; fail when it has not ended in ``timeout`` seconds."""
    return _within(lambda: list(items), timeout, "the follower to end")


def _within(fn: Callable[[], T], timeout: float, what: str) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # left blocked on a timeout: it dies with us
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    if error:
        raise error[0]
    return result[0]


# -- registry stores ---------------------------------------------------------------------------

TEST_ACTOR = Actor("tester", "host-1", 4242)


class ManualClock:
    """A clock that moves only when told: the registry tests' one fake."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> ManualClock:
    """A clock at 2025-03-01 12:00 UTC that moves only with ``advance``."""
    return ManualClock()


@dataclass(frozen=True)
class StoreFactory:
    """Opens ``Registry`` handles on the stores of one test, all of one kind.

    ``store_factory(clock=..., actor=...)`` opens the test's store (``name="registry"``);
    calling it again opens another handle on the same store (a second writer, a fresh
    reader); another ``name`` (letters, digits, hyphens) is another store, empty until
    written. ``env(name)`` is the environment under which ``open_registry(config)`` opens
    that same store in a child process (tests with several processes).
    """

    kind: str
    opener: Callable[[str, Clock | None, Actor | None], Registry]
    environment: Callable[[str], dict[str, str]]

    def __call__(
        self,
        *,
        clock: Clock | None = None,
        actor: Actor | None = None,
        name: str = "registry",
    ) -> Registry:
        return self.opener(name, clock, actor)

    def env(self, name: str = "registry") -> dict[str, str]:
        """Variables that make ``open_registry(config)`` open store ``name`` (for children)."""
        return self.environment(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """This pytest process's own PostgreSQL cluster (tests/pgserver.py), started on first
    use and deleted at the end of the session. Without the server binaries (or psycopg)
    the tests that need it skip, saying why; with TASKFILES_REQUIRE_POSTGRES=1 (CI) they fail."""
    try:
        server = PgServer.start()
    except Unavailable as exc:
        missing = str(exc)
    else:
        yield server
        server.stop()
        return
    if postgres_required():
        pytest.fail(f"{missing} ({REQUIRE_ENV}=1 requires PostgreSQL)", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {missing} (with {REQUIRE_ENV}=1 this is a failure)")


@pytest.fixture
def pg_databases(pg_server: PgServer) -> Iterator[Callable[[], str]]:
    """Makes fresh migrated databases on ``pg_server`` (each call: a new one, its URL);
    every one is dropped after the test, connections still open to it included."""
    made: list[str] = []

    def new_database() -> str:
        made.append(pg_server.create_database())
        return pg_server.url(made[-1])

    yield new_database
    for name in made:
        pg_server.drop_database(name)


@pytest.fixture
def pg_url(pg_databases: Callable[[], str]) -> str:
    """The URL of a fresh database with the registry's schema, dropped after the test."""
    return pg_databases()


@pytest.fixture(params=["json", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Every registry store, one at a time: the contract suite (test_registry*.py,
    test_hostfiles.py) runs each of its tests once per param, with test ids ``[json]`` etc.

    How a new store joins: add its name to ``params`` and one ``elif`` branch below that
    makes a fresh, empty location for this test (e.g. a database schema named after
    ``tmp_path``, dropped after the ``yield``), and yields a ``StoreFactory`` whose
    ``opener(name, clock, actor)`` returns the store at location ``name`` and whose
    ``environment(name)`` returns the variables under which ``open_registry(config)``
    opens that same location (child processes open the store that way). Every contract
    test then runs on it. The contract tests never name a store class: this fixture
    does, and test_jsonstore.py, which is about the JSON store's own files.
    """
    kind = request.param
    if kind == "json":
        from taskfiles.registry.jsonstore import JsonRegistry

        def open_json(name: str, clock: Clock | None, actor: Actor | None) -> Registry:
            return JsonRegistry(tmp_path / name, clock=clock, actor=actor)

        yield StoreFactory(kind, open_json, lambda name: {REGISTRY_ENV: str(tmp_path / name)})
    elif kind == "postgres":
        new_database: Callable[[], str] = request.getfixturevalue("pg_databases")  # skips without a server
        pg_registry = _pg_registry_class()
        urls: dict[str, str] = {}  # store name -> its database, made on first use

        def url_of(name: str) -> str:
            if name not in urls:
                urls[name] = new_database()
            return urls[name]

        def open_pg(name: str, clock: Clock | None, actor: Actor | None) -> Registry:
            return pg_registry(url_of(name), clock=clock, actor=actor)

        def env_pg(name: str) -> dict[str, str]:
            # REGISTRY_ENV names a folder nothing writes: a child that ignored the URL would
            # open an empty JSON store there and fail the test instead of passing on files.
            return {REGISTRY_URL_ENV: url_of(name), REGISTRY_ENV: str(tmp_path / f"unused-{name}")}

        yield StoreFactory(kind, open_pg, env_pg)
    else:
        raise AssertionError(f"store_factory has no branch for the store {kind!r}")


def _pg_registry_class() -> Callable[..., Registry]:
    """``PgRegistry``, or a failure that says the store does not import (yet)."""
    try:
        from taskfiles.registry.pgstore import PgRegistry
    except ImportError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        store: Callable[..., Registry] = PgRegistry
        return store
    pytest.fail(f"the PostgreSQL store (registry/pgstore.py) does not import: {problem}", pytrace=False)


# -- generated sequences of registry operations (two-writer property tests) -----------------------


def registry_op(reg: Registry, op: str, slug: str) -> None:
    """Apply one step of a generated sequence (``REGISTRY_OPS``) through the interface."""
    entry = reg.find(slug)
    if op == "claim":
        reg.claim(slug, worker="w")
    elif op == "gc":
        reg.gc(0)
    elif entry is None:
        return
    elif op in ("heartbeat", "finish") and entry.is_live:
        if op == "heartbeat":
            reg.heartbeat(slug, entry.lease, cost_usd=0.01)
        else:
            reg.finish(slug, entry.lease, 1)
    elif op in ("release", "retry", "stop", "note", "prune"):
        arguments: dict[str, Any] = {"reason": "r"} if op in ("prune", "release") else {}
        getattr(reg, op)(slug, *(["n"] if op == "note" else []), **arguments)


REGISTRY_OPS = st.lists(
    st.tuples(
        st.sampled_from(["claim", "heartbeat", "finish", "release", "retry", "stop", "note", "prune", "gc"]),
        st.sampled_from("abcde"),
    ),
    max_size=25,
)


LIST_PROBE = """
import json, sys
from taskfiles.cli import app  # click's main ends in SystemExit; what follows still runs
sys.argv = ["task", "-C", sys.argv[1], "list", "--json"]
try:
    app.main(prog_name="task")
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(m for m in sys.argv[2:] if m in sys.modules)))
"""


def list_json_in_a_process(root: Path, *modules: str) -> tuple[list[dict[str, Any]], set[str]]:
    """``task list --json`` in a fresh interpreter: its rows, and which of ``modules`` it imported."""
    done = subprocess.run(
        [sys.executable, "-c", LIST_PROBE, str(root), *modules], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout), set(json.loads(done.stderr))
