"""Shared fixtures: a real SQLite file and a real PostgreSQL database for every contract test.

Each test run creates its own PostgreSQL database (dropped at the end); each test gets an
empty schema — a fresh SQLite file, or the PostgreSQL tables truncated. Set
LOKET_TEST_PG to another server URL; the default is the local trust-auth server.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.store.db import migrate, open_engine
from engine.store.tables import metadata

PG_SERVER = os.environ.get("LOKET_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
ORG_FILE = WORKFLOWS / "organisation.yaml"
# A Monday morning in Amsterdam, well clear of holidays.
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"loket_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    engine = open_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


def _truncate(url: str) -> None:
    engine = open_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables if t.name != "alembic_version")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind, for the contract suite."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'loket.db'}"
        engine = open_engine(url, create=True)
        migrate(engine)
        engine.dispose()
        return url
    url = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    engine = open_engine(url, create=True)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def loket(db_url: str, clock: FixedClock) -> Iterator[Loket]:
    """A Loket with the sample organisation and request types loaded."""
    engine = open_engine(db_url)
    app = Loket(engine, clock)
    app.load_organisation(ORG_FILE)
    app.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    yield app
    engine.dispose()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `loket ARGS` in this process through the real entry point (error mapping included);
    returns the exit code, stdout and stderr. A traceback on stderr fails the calling test."""
    import cli

    capsys.readouterr()
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err
