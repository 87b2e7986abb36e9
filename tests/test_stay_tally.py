"""`stay_tally` (schema 0014): the ended stays counted per type, state, unit and met, kept by
triggers on `case_stay` in the statement that adds, removes or changes a row; what the report
reads for its time per state and unit, checked by `audit verify` and counted again by
`db repair-stays`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from engine.app.clock import FixedClock
from engine.app.repair import repair_stays, stays_to_repair
from engine.app.report import gather
from engine.app.service import Loket
from engine.app.verify import verify
from engine.errors import CountsDrifted
from engine.store.db import SCHEMA_REVISION, current_revision, migrate, open_engine
from engine.store.reports import grouped_stays, tallied
from engine.store.tables import stay_tally_t, stays_t
from tests.conftest import ORG_FILE, WORKFLOWS
from tests.test_migrations import alembic, fresh_url  # noqa: F401 - the fixture
from tests.test_report import build_history
from tests.test_stays import at, town  # noqa: F401 - the fixture


def _both(loket: Loket) -> tuple[list[Any], list[Any]]:
    """The tally's groups and those grouping `case_stay` gives, each sorted."""
    def key(row: Any) -> tuple[Any, ...]:
        return (row[0], row[1], row[2] or "", -1 if row[3] is None else int(row[3]))

    with loket.read() as conn:
        return sorted(tallied(conn), key=key), sorted(grouped_stays(conn), key=key)


def test_the_tally_counts_every_ended_stay_as_grouping_the_rows_does(town: Any) -> None:  # noqa: F811
    loket, _clock, _refs = town
    kept, rows = _both(loket)
    assert kept == rows
    with loket.read() as conn:
        assert sum(row[4] for row in rows) == conn.execute(sa.select(sa.func.count()).select_from(stays_t)).scalar_one()
    # The groups hold what the report tells apart: a unit, none, and each kind of deadline.
    assert {row[3] for row in rows} >= {True, False} and all(row[4] > 0 and row[5] >= 0 for row in rows)


def test_rows_removed_changed_and_added_behind_the_engine_are_counted_too(town: Any) -> None:  # noqa: F811
    loket, _clock, _refs = town
    before, _ = _both(loket)
    with loket.engine.begin() as conn:
        first, last = conn.execute(sa.select(sa.func.min(stays_t.c.id), sa.func.max(stays_t.c.id))).one()
        conn.execute(sa.update(stays_t).where(stays_t.c.id == first).values(unit="welzijn", stay_us=123, met=None))
        copy = dict(conn.execute(sa.select(stays_t).where(stays_t.c.id == last)).mappings().one())
        conn.execute(sa.delete(stays_t).where(stays_t.c.id == last))
        del copy["id"]
        conn.execute(sa.insert(stays_t), [{**copy, "stay": copy["stay"] + 10 + i} for i in range(3)])
    kept, rows = _both(loket)
    assert kept == rows and kept != before
    assert sum(row[4] for row in kept) == sum(row[4] for row in before) + 2


def test_the_report_reads_the_tally_and_verify_and_repair_keep_it_honest(town: Any) -> None:  # noqa: F811
    loket, clock, _refs = town
    report = gather(loket)
    assert verify(loket).ok
    # The tally changed behind the triggers' back (as the owner could): the report shows it,
    # which proves it reads the tally and not the rows.
    tampered = (stay_tally_t.c.type_key == sa.bindparam("b_key"), stay_tally_t.c.state == sa.bindparam("b_state"),
                stay_tally_t.c.met == 1)
    with loket.engine.begin() as conn:
        key, state = conn.execute(sa.select(stay_tally_t.c.type_key, stay_tally_t.c.state)
                                  .where(stay_tally_t.c.met == 1).limit(1)).one()
        conn.execute(sa.update(stay_tally_t).where(*tampered).values(stay_us=stay_tally_t.c.stay_us + 86_400_000_000),
                     {"b_key": key, "b_state": state})
    assert gather(loket) != report
    # Counting more stays than the rows hold: the report refuses, naming the fix.
    with loket.engine.begin() as conn:
        conn.execute(sa.update(stay_tally_t).where(*tampered).values(stays=stay_tally_t.c.stays + 1000),
                     {"b_key": key, "b_state": state})
    with pytest.raises(CountsDrifted, match="'loket db repair-stays' counts them again"):
        gather(loket)
    result = verify(loket)
    assert not result.ok and result.failure is not None
    assert result.failure.startswith(f"stay_tally: {key}/{state}, unit "), result.failure
    assert "'loket db repair-stays' counts it again" in result.failure
    checked = stays_to_repair(loket)
    assert (checked.cases, checked.tally) == (0, True)
    repaired = repair_stays(loket, loket.identity())
    assert (repaired.cases, repaired.tally, len(repaired.events)) == (0, True, 1)
    assert loket.config_history()[-1]["detail"]["tally"] is True
    assert verify(loket).ok
    assert gather(loket) == report
    kept, rows = _both(loket)
    assert kept == rows
    assert repair_stays(loket, loket.identity()).tally is False  # nothing left to count again
    # Transitions after the rebuild are counted on top of it.
    clock.set(clock.now() + dt.timedelta(days=1))
    ref = loket.new_case("bewonersinitiatief", ["title=Bankje"], actor="c.devries").ref
    loket.advance(ref, "in_behandeling", actor="c.devries")
    kept_after, rows_after = _both(loket)
    assert kept_after == rows_after and sum(r[4] for r in rows_after) == sum(r[4] for r in rows) + 1


def test_upgrading_from_0013_fills_the_tally_from_the_rows_and_the_report_reads_as_before(
        fresh_url: str) -> None:  # noqa: F811
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(at(2, 9))
    loket = Loket(engine, clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    build_history(loket, clock)
    clock.set(dt.datetime(2026, 4, 20, 9, tzinfo=dt.UTC))
    before = gather(loket)
    alembic(engine, "downgrade", "0013")
    assert not sa.inspect(engine).has_table("stay_tally")
    # A stay ended while the triggers are gone: the upgrade counts it all the same.
    loket.advance(loket.new_case("bewonersinitiatief", ["title=Bankje"], actor="c.devries").ref, "in_behandeling",
                  actor="c.devries")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(stays_t)).scalar_one()
    migrate(engine)
    assert current_revision(engine) == SCHEMA_REVISION
    kept, grouped = _both(loket)
    assert kept == grouped and sum(row[4] for row in kept) == rows > 0
    assert gather(loket) != before  # the new case and its ended stay
    engine.dispose()


def test_concurrent_sessions_count_into_their_own_shards_on_postgresql(town: Any) -> None:  # noqa: F811
    loket, _clock, _refs = town
    if loket.engine.dialect.name != "postgresql":
        assert _both(loket)[0] == _both(loket)[1]  # SQLite: one shard, row by row
        with loket.read() as conn:
            assert conn.execute(sa.select(sa.func.max(stay_tally_t.c.shard))).scalar_one() == 0
        return
    with loket.read() as conn:
        template = dict(conn.execute(sa.select(stays_t).limit(1)).mappings().one())
    del template["id"]
    opened = [loket.engine.connect() for _ in range(3)]
    try:
        shard = {conn: conn.exec_driver_sql("SELECT mod(pg_backend_pid(), 64)").scalar_one() for conn in opened}
        first = opened[0]
        second = next(conn for conn in opened[1:] if shard[conn] != shard[first])  # 1 in 4,096 to fail
        pids = [shard[first], shard[second]]
        # Two open transactions add to the same group at once: neither waits for the other.
        for n, conn in enumerate((first, second)):
            conn.execute(sa.insert(stays_t), [{**template, "stay": 100 + 10 * n + i} for i in range(2)])
        for conn in (first, second):
            conn.commit()
    finally:
        for conn in opened:
            conn.close()
    kept, rows = _both(loket)
    assert kept == rows
    with loket.read() as conn:
        shards = set(conn.execute(sa.select(stay_tally_t.c.shard).where(stay_tally_t.c.stays != 0)).scalars())
    assert set(pids) <= shards
