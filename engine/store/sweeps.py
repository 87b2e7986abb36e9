"""The sweep's statements: which cases are due, claiming them, and writing a batch in bulk.

A sweep reads only cases whose `next_fire_at` has come (an indexed column kept by every
write), so its cost follows the cases that fire, not the cases that are open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from engine.core.casework import Case
from engine.store.cases import CASE_COLUMNS
from engine.store.tables import cases_t


def claim_due(conn: sa.Connection, now: dt.datetime, batch: int) -> list[Case]:
    """The next due cases no other sweep holds, locked until this batch commits.

    Ordered by `next_fire_at` alone, the order its index gives: every case that entered a
    state on one day shares one deadline (the end of a day), and a tie-break on id would make
    PostgreSQL sort all the tied rows again for each claim.
    """
    query = (
        sa.select(*CASE_COLUMNS)
        .where(cases_t.c.next_fire_at <= now)
        .order_by(cases_t.c.next_fire_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    return [Case(*row) for row in conn.execute(query)]


def due_cases(conn: sa.Connection, now: dt.datetime) -> Iterator[Case]:
    """Every case due at ``now``, read in chunks and not locked: what a dry run looks at."""
    query = sa.select(*CASE_COLUMNS).where(cases_t.c.next_fire_at <= now).order_by(cases_t.c.next_fire_at)
    for row in conn.execute(query, execution_options={"yield_per": 1000}):
        yield Case(*row)


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows of one shape straight through the driver: COPY on PostgreSQL, one
    executemany on SQLite.

    An executemany costs PostgreSQL a statement per row, and those statements were nearly
    half of the sweep's time; COPY takes the batch as one stream. On SQLite the statements are
    cheap but SQLAlchemy's handling of each row's parameters was a fifth of the sweep. Each
    value is bound exactly as an INSERT would bind it (the column types' own processors: UTC
    instants, JSON), so the rows are the same either way.
    """
    names = list(rows[0])
    dialect = conn.dialect
    binds = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    bound = ([row[name] if bind is None else bind(row[name]) for name, bind in zip(names, binds, strict=True)]
             for row in rows)
    driver: Any = conn.connection.driver_connection  # the driver's own, in this transaction
    if dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for values in bound:
                copy.write_row(values)
    elif dialect.name == "sqlite":
        driver.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                           bound)
    else:
        conn.execute(sa.insert(table), rows)
