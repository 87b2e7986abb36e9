"""Opening a database: URLs, SQLite pragmas and write locks, migrations.

SQLite runs in WAL mode with a busy timeout, and a transaction that reads before it writes
takes the write lock up front (`BEGIN IMMEDIATE`): otherwise two writers that both read first
deadlock or lose an update. Read-only work asks for a plain `BEGIN` through the execution
option `loket_readonly`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.errors import ConfigurationError

DEFAULT_URL = "sqlite:///loket.db"


def resolve_url(url: str | None) -> str:
    url = url or os.environ.get("LOKET_DB") or DEFAULT_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def shown_url(url: str) -> str:
    """The URL as it may be printed: a password in it is masked (terminals and logs keep what
    they are shown)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return url


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL names; None for an in-memory database or another backend."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return database


def open_engine(url: str, *, create: bool = False) -> sa.Engine:
    """An engine for `url`; on SQLite, refuse a missing file unless we are creating it."""
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018 - a port that is not a number fails here, not at connect time
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigurationError(f"cannot parse database URL {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not create and not Path(database).exists():
            raise ConfigurationError(f"no database at {database}: run 'loket init' first")
        if database and database != ":memory:":
            engine = sa.create_engine(parsed)
        else:
            engine = sa.create_engine(parsed, poolclass=sa.pool.StaticPool)
        _sqlite_setup(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=False)
    raise ConfigurationError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def busy_timeout_ms(environ: Any = None) -> int:
    """How long a SQLite writer waits for another one's lock: `LOKET_BUSY_TIMEOUT` seconds,
    30 by default. A script that would rather fail fast than wait can set it lower."""
    text = (os.environ if environ is None else environ).get("LOKET_BUSY_TIMEOUT")
    if not text:
        return 30_000
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ConfigurationError(f"LOKET_BUSY_TIMEOUT must be a number of seconds from 0 to 3600, got {text!r}")
    return round(seconds * 1000)


def _sqlite_setup(engine: sa.Engine) -> None:
    busy = busy_timeout_ms()

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy}")
        # 32 MB of page cache instead of 2: a sweep or an export touches cases spread over the
        # whole table, and re-reading pages dominated once a database held a million cases.
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Freed bytes are zeroed, so an erased personal value cannot be read from free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        readonly = conn.get_execution_options().get("loket_readonly", False)
        # Straight to the driver: this runs for every transaction, on the hot path.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")


def snapshot(engine: sa.Engine) -> sa.Connection:
    """A read-only connection whose queries all see one moment (WAL snapshot on SQLite,
    REPEATABLE READ on PostgreSQL): figures read in several queries agree with each other,
    and a check that streams two tables side by side sees them as they were together,
    however busy the database is meanwhile."""
    conn = engine.connect().execution_options(loket_readonly=True)
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def export_snapshot(conn: sa.Connection) -> str:
    """PostgreSQL: the name of `conn`'s snapshot (`snapshot`), for other connections to adopt
    (`adopt`) while `conn` stays in its transaction. Begins that transaction if need be."""
    conn.exec_driver_sql("SELECT 1").close()
    return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())


def adopt(engine: sa.Engine, exported: str) -> sa.Connection:
    """PostgreSQL: a new read-only connection whose transaction sees the snapshot `exported`
    (`export_snapshot`; `SET TRANSACTION SNAPSHOT` before its first query). Queries on it and on
    the exporting connection may run at the same time, in two server processes, and their
    answers agree as if they ran on one. The caller closes it."""
    other = engine.connect().execution_options(loket_readonly=True, isolation_level="REPEATABLE READ")
    try:
        other.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{exported}'")
    except BaseException:
        other.close()
        raise
    return other


def has_function(conn: sa.Connection, name: str) -> bool:
    """Whether the database has this function in its search path (PostgreSQL): the privileged
    changes run through one once `loket db grants --apply` made it (`engine.store.grants`)."""
    return conn.execute(sa.text("SELECT to_regproc(:name) IS NOT NULL"), {"name": name}).scalar() is True


def migrate(engine: sa.Engine) -> None:
    """Create or upgrade the schema to the newest revision; existing data is kept."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


SCHEMA_REVISION = "0014"
"""The newest migration; a test keeps it equal to Alembic's head. Comparing against it at
start-up spares every command the cost of importing Alembic and its migration scripts."""


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect().execution_options(loket_readonly=True) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

