"""A throwaway PostgreSQL cluster for the tests: one per pytest process, a real server.

``PgServer.start()`` runs ``initdb`` and ``pg_ctl start`` in a fresh folder (in /dev/shm
when it has room: ``cluster_parent``), on a free port of 127.0.0.1 and a socket folder
of its own (so xdist workers never meet), with trust authentication; ``stop()`` stops
it (``pg_ctl stop -m fast``) and deletes the folder. PostgreSQL refuses to run as root,
and the tests run as root in CI: then every server binary runs as the ``postgres`` user
through ``runuser``, in a folder it owns.
A killed pytest runs no teardown: a small reaper process, which outlives it, stops and
deletes the cluster then.

A fresh database costs one ``CREATE DATABASE ... TEMPLATE tmpl``: ``tmpl`` is migrated
once, when the cluster starts.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REQUIRE_ENV = "TASKFILES_REQUIRE_POSTGRES"  # "1" (CI): a missing server is a failure, not a skip
SERVER_USER = "postgres"  # who runs the server when the tests run as root
TEMPLATE = "tmpl"
MIGRATIONS = Path(__file__).resolve().parent.parent / "taskfiles" / "registry" / "migrations"


class Unavailable(Exception):
    """This machine cannot run a PostgreSQL server for the tests (the message says why)."""


def postgres_required() -> bool:
    """Whether a missing PostgreSQL must fail the run (CI) rather than skip its tests."""
    return os.environ.get(REQUIRE_ENV) == "1"


def server_bindir() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``: on PATH, else Debian's folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise Unavailable(
        "the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not on PATH nor in "
        "/usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql) to run "
        "the postgres store tests"
    )


def cluster_parent() -> str:
    """Where clusters live: /dev/shm when it has room (a database copied from the template
    costs 10 ms there against 270 ms on this VM's disk, where writes are throttled), else
    the temp folder. Nothing here outlives the session, so memory is enough."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 1 << 30:
        return str(shm)
    return tempfile.gettempdir()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A running cluster: its folder, port, and the databases made in it."""

    root: Path
    bindir: Path
    port: int
    reaper: subprocess.Popen[bytes]
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls, attempts: int = 3) -> PgServer:
        """Create and start a cluster; a port taken between choosing and binding is retried."""
        try:
            import psycopg  # noqa: F401  (the tests talk to the server through it)
        except ImportError:
            raise Unavailable("psycopg 3 is not installed: pip install -e '.[dev]'") from None
        bindir = server_bindir()
        root = Path(tempfile.mkdtemp(prefix="taskfiles-pg-", dir=cluster_parent()))
        server = cls(root, bindir, 0, start_reaper(root, bindir))
        try:
            server._initdb()
            for attempt in range(attempts):
                server.port = free_port()
                if server._pg_ctl_start(last=attempt == attempts - 1):
                    break
            server._make_template()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def admin_url(self) -> str:
        """The superuser's URL of the ``postgres`` database."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """The URL of ``database`` on this cluster (trust authentication: no password)."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, migrated: bool = True) -> str:
        """A new database (a migrated copy of ``tmpl``, or an empty one); return its name."""
        name = f"test_{next(self._numbers)}"
        template = TEMPLATE if migrated else "template0"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections to it are still open."""
        import psycopg

        # DROP ... WITH (FORCE) waits for the sessions it ends in steps of 100 ms: a test
        # leaves its handles open, so end them first and watch them go in steps of 5 ms.
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            others = "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            conn.execute(f"SELECT pg_terminate_backend(pid) {others}".encode(), (name,))
            for _ in range(1000):
                row = conn.execute(f"SELECT count(*) {others}".encode(), (name,)).fetchone()
                if not row or not row[0]:
                    break
                time.sleep(0.005)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended) and delete its folder."""
        stop_cluster(self.root, self.bindir, "fast")
        if self.reaper.stdin is not None:
            self.reaper.stdin.close()  # the reaper finds nothing left to do, and ends
        self.reaper.wait(timeout=30)

    # -- inside ---------------------------------------------------------------------------------

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
        (self.root / "sock").mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root / "sock", SERVER_USER, SERVER_USER)
        run_binary(
            self.bindir, self.root, "initdb", "-D", str(self.root / "data"), "-U", SERVER_USER,
            "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _pg_ctl_start(self, last: bool) -> bool:
        options = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=on "
            "-c max_connections=200"
        )
        log = self.root / "server.log"
        done = run_binary(
            self.bindir, self.root, "pg_ctl", "-D", str(self.root / "data"), "-o", options,
            "-l", str(log), "-w", "start", check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return True
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        if last or "could not bind" not in tail:
            raise RuntimeError(f"pg_ctl start exited {done.returncode}: {done.stderr.strip()}\n{tail}")
        return False

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement.encode())

    def _make_template(self) -> None:
        """``tmpl``: a database with the registry's schema, copied by every test."""
        self._admin(f'CREATE DATABASE "{TEMPLATE}"')
        migrate(self.url(TEMPLATE))


def run_binary(
    bindir: Path, root: Path, program: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a server binary in ``root``, as the ``postgres`` user when we are root."""
    command = [str(bindir / program), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SERVER_USER, "--", *command]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{program} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def stop_cluster(root: Path, bindir: Path, mode: str) -> None:
    """Stop the server of ``root`` if it runs, and delete ``root``."""
    if (root / "data" / "postmaster.pid").exists():
        run_binary(bindir, root, "pg_ctl", "-D", str(root / "data"), "-m", mode, "-w", "stop", check=False)
    shutil.rmtree(root, ignore_errors=True)


def start_reaper(root: Path, bindir: Path) -> subprocess.Popen[bytes]:
    """A process that stops and deletes the cluster once this one ends, however it ends
    (a killed pytest runs no teardown): it waits for the end of a pipe only we hold."""
    return subprocess.Popen(
        [sys.executable, __file__, "reap", str(root), str(bindir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to our process group (Ctrl-C, kill -- -PGID) spares it
    )


def migrate(url: str) -> None:
    """Bring ``url`` to the registry's schema: ``pgschema.migrate`` once it exists; until
    then the shipped migrations in order, in one transaction, recorded nowhere."""
    try:
        from taskfiles.registry import pgschema
    except ModuleNotFoundError as exc:
        if exc.name != "taskfiles.registry.pgschema":
            raise
    else:
        pgschema.migrate(url)
        return
    import psycopg

    with psycopg.connect(url) as conn, conn.transaction():
        for path in sorted(MIGRATIONS.glob("*.sql")):
            conn.execute(path.read_bytes())


if __name__ == "__main__":  # the reaper: python pgserver.py reap ROOT BINDIR
    if sys.argv[1:2] != ["reap"] or len(sys.argv) != 4:
        sys.exit("usage: pgserver.py reap ROOT BINDIR")
    sys.stdin.buffer.read()  # returns when the owner closed the pipe or died
    stop_cluster(Path(sys.argv[2]), Path(sys.argv[3]), "immediate")
