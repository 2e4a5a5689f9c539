"""The PostgreSQL registry's schema: versioned SQL migrations shipped in the package.

``migrations/NNNN_name.sql`` are applied in order by ``migrate`` (``task registry
migrate``), each in its own transaction, and recorded in ``taskfiles_schema``.
Migrating is explicit, and serialised by an advisory lock: the one place the store
uses one, so two hosts running it at once apply each migration once. Every other
command checks the schema first (``check``) and refuses a database that is not
migrated, or that a newer taskfiles migrated further, saying what to run.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ..config import redacted
from ..errors import ConfigError, RegistryError

if TYPE_CHECKING:
    import psycopg

MIGRATE_LOCK = 0x7461736B  # "task": the advisory lock key of `task registry migrate`
EXTRA_HINT = (
    "install the PostgreSQL extra where taskfiles is installed: pipx install --force "
    "'taskfiles[postgres]', uv tool install 'taskfiles[postgres]', or pip install 'taskfiles[postgres]'"
)


def psycopg_module() -> object:
    """psycopg, or a ConfigError naming the extra that provides it."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(f"a PostgreSQL registry needs psycopg 3: {EXTRA_HINT}") from None
    return psycopg


def migrations() -> list[tuple[int, str, str]]:
    """Every shipped migration as (version, name, SQL), in order."""
    found = []
    for item in resources.files("taskfiles.registry").joinpath("migrations").iterdir():
        if item.name.endswith(".sql"):
            number, _, rest = item.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), item.read_text(encoding="utf-8")))
    return sorted(found)


def latest() -> int:
    """The schema version this taskfiles needs."""
    return migrations()[-1][0]


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The database's schema version (0: never migrated)."""
    row = conn.execute("SELECT to_regclass('taskfiles_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    top = conn.execute("SELECT coalesce(max(version), 0) FROM taskfiles_schema").fetchone()
    return int(str(top[0])) if top else 0


def check(conn: psycopg.Connection[tuple[object, ...]], url: str) -> None:
    """Refuse a database whose schema is not the one this taskfiles reads."""
    have, want = applied(conn), latest()
    if have == want:
        return
    where = redacted(url)
    if have < want:
        raise RegistryError(
            f"the registry database {where} is at schema version {have}, this taskfiles needs {want}; "
            "run 'task registry migrate' (once, from any host)"
        )
    raise RegistryError(
        f"the registry database {where} is at schema version {have}, newer than this taskfiles "
        f"reads ({want}); upgrade taskfiles on this host"
    )


def migrate(url: str) -> list[str]:
    """Apply the migrations the database lacks; return their names (empty: it was current)."""
    import psycopg

    done: list[str] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS taskfiles_schema ("
                    "version integer PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                )
                have = applied(conn)
                if have > latest():
                    check(conn, url)
                for version, name, sql in migrations():
                    if version <= have:
                        continue
                    with conn.transaction():
                        conn.execute(sql.encode())
                        conn.execute(
                            "INSERT INTO taskfiles_schema (version, name) VALUES (%s, %s)", (version, name)
                        )
                    done.append(f"{version:04d}_{name}")
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
    except psycopg.OperationalError as exc:
        raise RegistryError(
            f"cannot reach the registry database {redacted(url)}: {_first_line(exc)}"
        ) from None
    return done


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
