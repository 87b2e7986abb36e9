"""What the benchmarks share: a throwaway PostgreSQL database, and a database with the sample
municipality loaded. The benchmark scripts put the project root on sys.path before importing this."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from engine.app.bundled import sample_paths
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.store.db import migrate, open_engine

PG_SERVER = os.environ.get("LOKET_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_postgres(template: str | None = None) -> Iterator[str]:
    """Yields the URL of a new database — empty, or a copy of the database named `template`
    (`CREATE DATABASE ... TEMPLATE`); it is dropped afterwards, however the run ends."""
    name = f"loket_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def sample_loket(url: str, now: datetime) -> Loket:
    """A new database at `url` with the bundled organisation and request types, its clock at `now`."""
    engine = open_engine(url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(now))
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    return loket
