"""The report's queries that take shortcuts give what the plain ones gave, on both databases:
the bestuurlijke dekking's events found by their partial indexes (migration 0010) are exactly
those the condition picks from all events; the ended stays' groups and deadline counts read in
one pass equal the two queries; the escalations' span off the index holds those of the type
asked for; a closed case's dues come as far as the report uses them."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, WORKFLOWS

from engine.app import report as report_module
from engine.app.clock import FixedClock
from engine.app.report import gather
from engine.app.service import Loket
from engine.core.casework import Draft
from engine.core.vocabulary import Action, Rung
from engine.reporting.dekking import acting_for
from engine.store import reports
from engine.store.db import SCHEMA_REVISION, current_revision, migrate, open_engine
from engine.store.tables import cases_t, escalations_t, events_t
from tests.test_migrations import alembic, fresh_url  # noqa: F401 - the fixture
from tests.test_report import CLERK, at, build_history
from tests.test_results import ADMIN, HEAD, _directed, _escalation, _write

UTC = dt.UTC
TYPES = sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml")
INDEXES = {"ix_case_event_escalated_to", "ix_case_event_directives", "ix_case_event_comment_actor",
           "ix_case_event_comment_behalf"}


def _loket(engine: sa.Engine, clock: FixedClock) -> Loket:
    loket = Loket(engine, clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(TYPES)
    return loket


def _dekking_events(loket: Loket, clock: FixedClock) -> None:
    """Events of every kind the condition tells apart, for and not for the administrators."""
    clock.set(at(2, 9))
    refs = [loket.new_case("bewonersinitiatief", [f"title=Initiatief {n}"], actor=CLERK).ref for n in range(4)]
    clock.set(at(3, 9))
    _write(loket, refs[0], _escalation(ADMIN, "1", at(3, 8)), "system")  # to an administrator
    _write(loket, refs[0], _escalation(HEAD, "1", at(3, 8)), "system")  # to a head: not counted
    _write(loket, refs[1], _escalation(HEAD, Rung.DIRECTIVE, at(3, 8)), "system")  # a missed instruction
    _write(loket, refs[1], Draft(Action.COMMENT, comment="Gezien."), ADMIN)  # by an administrator
    _write(loket, refs[2], Draft(Action.COMMENT, comment="Gebeld."), CLERK)  # by a clerk: not counted
    _write(loket, refs[2], Draft(Action.COMMENT, comment="Namens.", data={"on_behalf_of": ADMIN}), CLERK)
    _write(loket, refs[2], Draft(Action.COMMENT, comment="Namens.", data={"on_behalf_of": HEAD}), CLERK)
    _write(loket, refs[3], _directed("ingediend", at(9, 21), behalf=ADMIN), "s.secretaris")
    loket.advance(refs[3], "in_behandeling", actor=CLERK)


def _by_scan(conn: sa.Connection, admins: list[str], acting: list[str]) -> list[tuple[int, int]]:
    """The events of the bestuurlijke dekking picked from all events in Python (the definition
    in engine/reporting/dekking.py)."""
    out = []
    for case_id, seq, actor, action, data in conn.execute(
            sa.select(events_t.c.case_id, events_t.c.seq, events_t.c.actor, events_t.c.action, events_t.c.data)
            .order_by(events_t.c.case_id, events_t.c.seq)):
        data = data or {}
        if ((action == Action.ESCALATED and (data.get("to") in admins or data.get("rung") == Rung.DIRECTIVE))
                or action == Action.DIRECTED
                or (action == Action.COMMENT and (actor in acting or data.get("on_behalf_of") in admins))):
            out.append((case_id, seq))
    return out


def test_the_dekking_events_found_by_index_are_those_of_the_condition(db_url: str, clock: FixedClock) -> None:
    loket = _loket(open_engine(db_url), clock)
    _dekking_events(loket, clock)
    org = loket.organisation()
    admins, acting = list(org.administrators), list(acting_for(org))
    with loket.engine.connect() as conn:
        found = [(row.case_id, row.seq) for row in reports.admin_event_rows(conn, admins, acting)]
        expected = _by_scan(conn, admins, acting)
        # Each kind is there: an escalation to an administrator, a directive one, an
        # administrator's comment, one on an administrator's behalf, an instruction.
        assert len(expected) == 5
        assert found == expected
        # By type: all these cases are of this one; none of another.
        assert [(r.case_id, r.seq) for r in reports.admin_event_rows(
            conn, admins, acting, reports.Period(type_key="bewonersinitiatief"))] == expected
        assert list(reports.admin_event_rows(conn, admins, acting, reports.Period(type_key="melding"))) == []
    loket.engine.dispose()


def test_the_state_changes_of_many_dekking_cases_are_picked_by_the_same_condition(
    db_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past `DEKKING_LISTED` cases, `move_rows` selects them by the condition rather than by
    their ids: the same rows, and the same report."""
    loket = _loket(open_engine(db_url), clock)
    _dekking_events(loket, clock)
    org = loket.organisation()
    admins = (list(org.administrators), list(acting_for(org)))
    with loket.engine.connect() as conn:
        dekking = {row.case_id for row in reports.admin_event_rows(conn, *admins)}
        listed = list(reports.move_rows(conn, stored_stays=True, dekking=dekking, admins=admins))
        monkeypatch.setattr(reports, "DEKKING_LISTED", 0)
        picked = list(reports.move_rows(conn, stored_stays=True, dekking=dekking, admins=admins))
    assert picked == listed and {row[0] for row in picked} >= dekking
    report = gather(loket)
    monkeypatch.setattr(reports, "DEKKING_LISTED", 5000)
    assert gather(loket).as_json() == report.as_json()
    loket.engine.dispose()


def test_the_moves_read_for_the_stays_now_are_those_of_the_open_and_the_dekkings_cases(
    db_url: str, clock: FixedClock,
) -> None:
    """With the stays stored, `move_rows` reads the state changes of the open cases and of
    the dekking's only: the very rows of those cases among all state changes, in the same
    order, with and without a type. On PostgreSQL each case's are looked up by index
    (`LATERAL`), an open case's only from the move that began its stay now, and only if it was
    suspended since: the others' stay now is the one their row holds (`state_entered_at`,
    `state`), which this checks too."""
    loket = _loket(open_engine(db_url), clock)
    refs = build_history(loket, clock)
    _dekking_events(loket, clock)
    org = loket.organisation()
    admins = (list(org.administrators), list(acting_for(org)))
    with loket.engine.connect() as conn:
        first = max(row.case_id for row in reports.admin_event_rows(conn, *admins))
        ref = conn.execute(sa.select(cases_t.c.ref).where(cases_t.c.id == first)).scalar_one()
    clock.set(at(28, 9))
    loket.advance(ref, "intrekken", actor=CLERK, comment="Ingetrokken.")  # a closed case of the dekking
    # Open cases suspended in their stay now: still, and resumed since.
    for resumed in (False, True):
        clock.set(at(28, 10))
        paused = loket.new_case("bewonersinitiatief", ["title=Pauze"], actor=CLERK).ref
        loket.advance(paused, "in_behandeling", actor=CLERK)
        clock.set(at(28, 11))
        loket.suspend(paused, "Wacht op vergunning", actor=CLERK)
        if resumed:
            clock.set(at(28, 12))
            loket.resume(paused, actor=CLERK)
    c = cases_t.c
    with loket.engine.connect() as conn:
        cases = {case_id: (type_key, closed is None, state, entered) for case_id, type_key, closed, state, entered
                 in conn.execute(sa.select(c.id, c.type_key, c.closed_at, c.state,
                                           reports.micros(c.state_entered_at, conn.dialect.name)))}
        dekking = {row.case_id for row in reports.admin_event_rows(conn, *admins)}
        every = list(reports.move_rows(conn))
        assert not cases[first][1] and first in dekking and len(refs) > 1
        if conn.dialect.name == "postgresql":
            began = {row[0]: i for i, row in enumerate(every) if row[2] in (Action.CREATED, Action.TRANSITION)}
            stopped = {row[0] for i, row in enumerate(every) if row[2] == Action.SUSPENDED and i > began[row[0]]}
            now_only = [row for i, row in enumerate(every)
                        if row[0] in dekking or (row[0] in stopped and i >= began[row[0]])]
            assert len(stopped) == 2 and len(now_only) < len(every)
            from_rows = [case_id for case_id, (_, is_open, _, _) in cases.items()
                         if is_open and case_id not in dekking and case_id not in stopped]
            assert from_rows  # the row holds the move that began the stay now
            for case_id in from_rows:
                _, when, _, _, to_state = every[began[case_id]]
                assert (when, to_state) == (cases[case_id][3], cases[case_id][2]), case_id
        else:
            now_only = every
        for type_key in (None, "bewonersinitiatief", "melding"):
            wanted = [row for row in now_only if (cases[row[0]][1] or row[0] in dekking)
                      and type_key in (None, cases[row[0]][0])]
            got = list(reports.move_rows(conn, reports.Period(type_key=type_key), stored_stays=True,
                                         dekking=dekking, admins=admins))
            assert got == wanted, type_key
            assert got or (type_key == "melding" and conn.dialect.name == "postgresql"), type_key
            # Closed cases outside the dekking are not read.
            assert len(got) < len([row for row in every if type_key in (None, cases[row[0]][0])])
    loket.engine.dispose()


def _sorted(rows: list[Any]) -> list[Any]:
    return sorted(rows, key=lambda row: tuple((value is None, str(value)) for value in row))


def test_the_stays_read_in_one_pass_equal_the_two_queries(db_url: str, clock: FixedClock) -> None:
    loket = _loket(open_engine(db_url), clock)
    build_history(loket, clock)
    with loket.engine.connect() as conn:
        for period in (reports.ALL, reports.Period(type_key="melding"), reports.Period(type_key="bijdrage"),
                       reports.Period(since=at(10, 0)), reports.Period(until=at(20, 0), type_key="melding")):
            groups, deadlines = reports.stay_counts(conn, period)
            assert _sorted(groups) == _sorted(reports.stay_groups(conn, period)), period
            assert _sorted(deadlines) == _sorted(reports.stay_deadline_counts(conn, period)), period
        assert reports.stay_counts(conn)[0] and reports.stay_counts(conn)[1]  # not empty: the test can fail
    loket.engine.dispose()


def test_the_stays_windows_asked_together_equal_each_asked_alone(db_url: str, clock: FixedClock) -> None:
    """`stay_windows` asks for many ranks in one statement (the report's lanes do): each window
    is the one `stay_window` gives alone, in order, whatever the order of the rows it came in."""
    loket = _loket(open_engine(db_url), clock)
    build_history(loket, clock)
    with loket.engine.connect() as conn:
        kept = conn.execute(sa.select(reports._s.type_key, reports._s.state, reports._s.unit).distinct()).all()
        asks: list[tuple[dict[str, Any], int, int]] = []
        for n, (key, state, unit) in enumerate(sorted(kept, key=str)):
            asks.append(({"type_key": key, "state": state}, n % 2, 3))
            asks.append(({"unit": (unit,)}, 0, 2 + n % 3))
        asks.append(({"type_key": "melding", "state": "nergens"}, 0, 5))  # an empty window
        for period in (reports.ALL, reports.Period(since=at(10, 0)), reports.Period(until=at(20, 0))):
            alone = [reports.stay_window(conn, period, offset, limit, **which) for which, offset, limit in asks]
            assert reports.stay_windows(conn, period, asks) == alone, period
            if period == reports.ALL:  # windows with several values, in order: the test can fail
                assert any(len(window) > 1 and window != window[::-1] for window in alone)
        assert reports.stay_windows(conn, reports.ALL, []) == []
    loket.engine.dispose()


def test_the_escalations_span_holds_those_of_the_type_asked_for(db_url: str, clock: FixedClock) -> None:
    loket = _loket(open_engine(db_url), clock)
    build_history(loket, clock)
    x, c = escalations_t.c, cases_t.c
    with loket.engine.connect() as conn:
        fired = conn.execute(sa.select(x.fired_at, c.type_key).join(cases_t, c.id == x.case_id)).all()
        assert len({key for _, key in fired}) > 1
        for period in (reports.ALL, reports.Period(since=min(f for f, _ in fired) + dt.timedelta(seconds=1)),
                       *(reports.Period(type_key=key) for _, key in fired)):
            first, last = reports.escalation_span(conn, period)
            kept = [f for f, key in fired if period.type_key in (None, key)
                    and (period.since is None or f >= period.since)]
            assert first is not None and last is not None
            assert first <= min(kept) and max(kept) <= last
            assert first.tzinfo is not None
        assert reports.escalation_span(conn) == (min(f for f, _ in fired), max(f for f, _ in fired))
        assert reports.escalation_span(conn, reports.Period(since=max(f for f, _ in fired)
                                                            + dt.timedelta(seconds=1))) == (None, None)
    loket.engine.dispose()


def test_a_closed_cases_dues_come_as_far_as_the_report_uses_them(db_url: str, clock: FixedClock) -> None:
    loket = _loket(open_engine(db_url), clock)
    build_history(loket, clock)
    now = loket.clock.now()
    c = cases_t.c
    with loket.engine.connect() as conn:
        stored = {row.id: row for row in conn.execute(sa.select(cases_t))}
        for period in (reports.ALL, reports.Period(since=at(1, 0))):
            rows = list(reports.case_rows(conn, now, period))
            assert {row[0] for row in rows} == set(stored)
            for row in rows:
                case = stored[row[0]]
                for place, due in ((9, case.service_due), (10, case.case_due)):
                    exact = None if due is None else reports_us(due)
                    if case.closed_at is None:
                        assert row[place] == exact
                    elif due is None:
                        assert row[place] is None
                    elif case.closed_at <= due:
                        assert row[place] == reports.MET_MARK
                    else:
                        assert row[place] == (exact if period.since is not None else 0)
                assert row[8] == (None if case.closed_at is not None else reports_us(case.state_entered_at))
        closed = conn.execute(sa.select(sa.func.count()).where(c.closed_at.is_not(None))).scalar_one()
        late = conn.execute(sa.select(sa.func.count()).where(
            sa.or_(c.closed_at > c.case_due, c.closed_at > c.service_due))).scalar_one()
        met = conn.execute(sa.select(sa.func.count()).where(
            sa.or_(c.closed_at <= c.case_due, c.closed_at <= c.service_due))).scalar_one()
        assert closed and late and met  # each way is there: the test can fail
    loket.engine.dispose()


def reports_us(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


def test_upgrading_from_0009_adds_the_dekking_indexes_and_keeps_the_events(fresh_url: str) -> None:  # noqa: F811
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(at(2, 9))
    loket = _loket(engine, clock)
    _dekking_events(loket, clock)
    alembic(engine, "downgrade", "0009")
    assert not (INDEXES | {"ix_case_stay_missed"}) & {
        i["name"] for table in ("case_event", "case_stay") for i in sa.inspect(engine).get_indexes(table)}

    migrate(engine)

    assert current_revision(engine) == SCHEMA_REVISION
    if engine.dialect.name == "sqlite":  # SQLAlchemy does not list SQLite's indexes on expressions
        with engine.connect() as conn:
            names = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
    else:
        names = {i["name"] for table in ("case_event", "case_stay") for i in sa.inspect(engine).get_indexes(table)}
    assert names >= INDEXES | {"ix_case_stay_missed"}
    org = loket.organisation()
    with engine.connect() as conn:
        assert len(list(reports.admin_event_rows(conn, list(org.administrators), list(acting_for(org))))) == 5
    engine.dispose()


def test_the_escalations_grouped_in_one_pass_equal_the_two_queries(db_url: str, clock: FixedClock) -> None:
    """On PostgreSQL `escalation_groups` counts per type, unit and rung and per local day and
    rung in one pass (grouping sets); it gives what the two queries give, under every filter."""
    loket = _loket(open_engine(db_url), clock)
    build_history(loket, clock)
    offsets = [(None, 3600), (dt.datetime(2026, 3, 29, 1, tzinfo=UTC), 7200),
               (dt.datetime(2026, 10, 25, 1, tzinfo=UTC), 3600)]
    with loket.engine.connect() as conn:
        for period in (reports.ALL, reports.Period(type_key="melding"), reports.Period(since=at(10, 0)),
                       reports.Period(until=at(20, 0), type_key="bewonersinitiatief")):
            counts, days = reports.escalation_groups(conn, period, offsets)
            assert _sorted(counts) == _sorted(reports.escalation_counts(conn, period)), period
            assert _sorted(days) == _sorted(reports.escalation_days(conn, period, offsets)), period
        counts, days = reports.escalation_groups(conn, reports.ALL, offsets)
        assert any(unit is None for _, unit, _, _ in counts) or len(counts) > 1  # the test can fail
        assert sum(n for *_, n in counts) == sum(n for *_, n in days) > 0
    loket.engine.dispose()


def test_upgrading_from_0010_gives_each_escalation_its_cases_type(fresh_url: str) -> None:  # noqa: F811
    """Schema 0011 stores the case's request type on each escalation row, filled from the
    cases: the report's counts per type (now without the join) are what the join gave."""
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(at(2, 9))
    loket = _loket(engine, clock)
    build_history(loket, clock)
    by_join = (sa.select(cases_t.c.type_key, escalations_t.c.unit, escalations_t.c.rung, sa.func.count())
               .join(cases_t, cases_t.c.id == escalations_t.c.case_id)
               .group_by(cases_t.c.type_key, escalations_t.c.unit, escalations_t.c.rung))
    with engine.connect() as conn:
        joined = _sorted([tuple(row) for row in conn.execute(by_join)])
        assert len({row[0] for row in joined}) >= 2  # escalations of several types: the test can fail
        assert _sorted(reports.escalation_counts(conn)) == joined
    alembic(engine, "downgrade", "0010")
    assert "type_key" not in {c["name"] for c in sa.inspect(engine).get_columns("escalation")}

    migrate(engine)

    assert current_revision(engine) == SCHEMA_REVISION
    [column] = [c for c in sa.inspect(engine).get_columns("escalation") if c["name"] == "type_key"]
    assert column["nullable"] is False
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(escalations_t).join(
            cases_t, cases_t.c.id == escalations_t.c.case_id).where(
            escalations_t.c.type_key != cases_t.c.type_key)).scalar_one() == 0
        assert _sorted(reports.escalation_counts(conn)) == joined
    engine.dispose()


def _indexes(engine: sa.Engine, table: str) -> dict[str, list[str | None]]:
    return {str(i["name"]): list(i["column_names"]) for i in sa.inspect(engine).get_indexes(table)}


# SQLAlchemy skips SQLite's indexes on expressions (the dekking's), and says so.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_upgrading_from_0011_trades_the_case_id_indexes_for_the_reports_own(fresh_url: str) -> None:  # noqa: F811
    """Schema 0012 drops the indexes on case_id alone of the events and the escalations (the
    unique keys that begin with case_id serve), and indexes the escalations for the report's
    counts: the counts and a case's history read as before."""
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(at(2, 9))
    loket = _loket(engine, clock)
    build_history(loket, clock)
    offsets: list[tuple[dt.datetime | None, int]] = [(None, 3600)]
    with engine.connect() as conn:
        before = [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in (events_t, escalations_t)]
        counted = [_sorted(found) for found in reports.escalation_groups(conn, reports.ALL, offsets)]
    assert before[1] > 0  # escalations there: the test can fail
    alembic(engine, "downgrade", "0011")
    assert _indexes(engine, "case_event")["ix_case_event_case_id"] == ["case_id"]
    assert {name: _indexes(engine, "escalation").get(name) for name in (
        "ix_escalation_case_id", "ix_escalation_fired_at", "ix_escalation_group")} == {
        "ix_escalation_case_id": ["case_id"], "ix_escalation_fired_at": ["fired_at"],
        "ix_escalation_group": None}

    migrate(engine)

    assert current_revision(engine) == SCHEMA_REVISION
    assert "ix_case_event_case_id" not in _indexes(engine, "case_event")
    escalation = _indexes(engine, "escalation")
    assert "ix_escalation_case_id" not in escalation and "ix_escalation_fired_at" not in escalation
    assert escalation["ix_escalation_group"] == ["type_key", "unit", "rung", "fired_at"]
    assert escalation["ix_escalation_fired_at_rung"] == ["fired_at", "rung"]
    keys = {tuple(u["column_names"]) for t in ("case_event", "escalation")
            for u in sa.inspect(engine).get_unique_constraints(t)}
    assert {("case_id", "seq"), ("case_id", "stay", "rung")} <= keys
    with engine.connect() as conn:
        assert [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (events_t, escalations_t)] == before
        assert [_sorted(found) for found in reports.escalation_groups(conn, reports.ALL, offsets)] == counted
    case = next(loket.list_cases(limit=1))
    assert len(loket.history(case.ref)[1]) > 1  # a case's events still read
    engine.dispose()


def _index_sql(engine: sa.Engine, name: str) -> str | None:
    """An index's definition as the database keeps it (None: no such index)."""
    query = ("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name" if engine.dialect.name == "sqlite"
             else "SELECT indexdef FROM pg_indexes WHERE indexname = :name")
    with engine.connect() as conn:
        found = conn.execute(sa.text(query), {"name": name}).scalar()
    return None if found is None else str(found)


def test_upgrading_from_0012_indexes_the_suspensions_and_the_report_reads_as_before(
        fresh_url: str) -> None:  # noqa: F811
    """Schema 0013 adds `ix_case_event_suspended` (the `suspended` events alone, by case): the
    report finds by it the open cases whose stay now was suspended. Its figures are the same
    before the downgrade and after the upgrade (the report of today reads `stay_tally`, which
    0012 lacks)."""
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(at(2, 9))
    loket = _loket(engine, clock)
    build_history(loket, clock)
    clock.set(at(21, 9))
    paused = loket.new_case("bewonersinitiatief", ["title=Pauze"], actor=CLERK).ref
    loket.advance(paused, "in_behandeling", actor=CLERK)
    clock.set(at(21, 10))
    loket.suspend(paused, "Wacht op vergunning", actor=CLERK)
    clock.set(dt.datetime(2026, 4, 20, 9, tzinfo=UTC))
    before = gather(loket)
    alembic(engine, "downgrade", "0012")
    assert _index_sql(engine, "ix_case_event_suspended") is None

    migrate(engine)

    assert current_revision(engine) == SCHEMA_REVISION
    made = _index_sql(engine, "ix_case_event_suspended")
    assert made is not None and "case_id" in made and "suspended" in made and "WHERE" in made.upper()
    assert gather(loket) == before
    assert any(state.stays for state in before.states)  # stays counted: the test can fail
    engine.dispose()


AMSTERDAM_2026 = [(None, 3600), (dt.datetime(2026, 3, 29, 1, tzinfo=UTC), 7200),
                  (dt.datetime(2026, 10, 25, 1, tzinfo=UTC), 3600)]


def _fired_around_the_clock_changes(loket: Loket) -> int:
    """Escalation rows (written directly) every 37 minutes over the days of both 2026 clock
    changes, and a second either side of each local midnight, with fractions of a second."""
    with loket.engine.begin() as conn:
        case_id, type_key = conn.execute(sa.select(cases_t.c.id, cases_t.c.type_key).limit(1)).one()
        moments = []
        for first in (dt.datetime(2026, 3, 27, tzinfo=UTC), dt.datetime(2026, 10, 23, tzinfo=UTC)):
            moments += [first + dt.timedelta(minutes=37 * k, microseconds=k % 7) for k in range(4 * 24 * 60 // 37)]
            for day in range(5):
                for offset in (1, 2):  # local midnight is 23:00 or 22:00 UTC
                    midnight = first + dt.timedelta(days=day, hours=24 - offset)
                    moments += [midnight - dt.timedelta(microseconds=1), midnight, midnight + dt.timedelta(seconds=1)]
        rows = [{"case_id": case_id, "stay": 1000 + n, "rung": ("team_lead", "department_head")[n % 2],
                 "state": "x", "unit": None, "recipient": "x", "due_at": moment, "fired_at": moment,
                 "type_key": type_key} for n, moment in enumerate(moments)]
        conn.execute(escalations_t.insert(), rows)
    return len(rows)


def test_the_escalations_per_local_day_as_ranges_of_instants_equal_each_ones_day(db_url: str, clock: FixedClock
                                                                                  ) -> None:
    """On SQLite `escalation_days` joins a table of each local day's bounds to the
    escalations; it counts what telling every escalation's local day counts, across both
    clock changes, at a second either side of midnight, and within any period."""
    loket = _loket(open_engine(db_url), clock)
    build_history(loket, clock)
    assert _fired_around_the_clock_changes(loket) > 300
    x = escalations_t.c
    with loket.engine.connect() as conn:
        for period in (reports.ALL, reports.Period(since=dt.datetime(2026, 3, 28, 22, 59, 59, 999_999, tzinfo=UTC)),
                       reports.Period(until=dt.datetime(2026, 10, 25, 0, 30, 0, 17, tzinfo=UTC)),
                       reports.Period(since=dt.datetime(2026, 3, 29, 1, tzinfo=UTC),
                                      until=dt.datetime(2026, 10, 24, 22, tzinfo=UTC)),
                       reports.Period(type_key="melding")):
            day = reports._local_day(x.fired_at, conn.dialect.name, AMSTERDAM_2026)
            each = reports._escalations_kept(sa.select(day, x.rung, sa.func.count()).group_by(day, x.rung), period)
            expected = _sorted([(int(d), rung, int(n)) for d, rung, n in conn.execute(each)])
            assert _sorted(reports.escalation_days(conn, period, AMSTERDAM_2026)) == expected, period
            assert expected  # escalations in every period: the test can fail
    loket.engine.dispose()


def test_the_local_days_bounds_follow_the_zone_and_give_way_where_a_day_goes_back() -> None:
    """`_day_bounds`: each local day begins where the one before it ends, at the zone's local
    midnight (23:00 UTC in winter, 22:00 in summer); a clock change that sets the local day
    back (here at 00:30 local time, an hour back) gives no bounds, and the report tells each
    escalation's day instead."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    bounds = reports._day_bounds(dt.datetime(2026, 3, 28, 12, tzinfo=UTC), dt.datetime(2026, 3, 30, 12, tzinfo=UTC),
                                 AMSTERDAM_2026, reports.ALL, dialect)
    epoch_day = (dt.date(2026, 3, 28) - dt.date(1970, 1, 1)).days
    assert bounds == [(epoch_day, "2026-03-27 23:00:00.000000", "2026-03-28 23:00:00.000000"),
                      (epoch_day + 1, "2026-03-28 23:00:00.000000", "2026-03-29 22:00:00.000000"),
                      (epoch_day + 2, "2026-03-29 22:00:00.000000", "2026-03-30 22:00:00.000000")]
    back = [(None, 3600), (dt.datetime(2026, 5, 1, 23, 30, tzinfo=UTC), 0)]  # 00:30 local becomes 23:30
    assert reports._day_bounds(dt.datetime(2026, 4, 30, tzinfo=UTC), dt.datetime(2026, 5, 3, tzinfo=UTC),
                               back, reports.ALL, dialect) == []
    assert reports._day_bounds(None, None, AMSTERDAM_2026, reports.ALL, dialect) == []
    assert reports._day_bounds(dt.datetime(1990, 1, 1, tzinfo=UTC), dt.datetime(2050, 1, 1, tzinfo=UTC),
                               [(None, 3600)], reports.ALL, dialect) == []  # longer than the statement takes


def test_on_sqlite_the_escalation_counts_read_their_indexes_not_the_table(db_url: str) -> None:
    """Both counts of the escalations are answered from an index that holds every column
    they read (SQLite: `COVERING INDEX`), the narrow rows of schema 0012's indexes."""
    engine = open_engine(db_url)
    if engine.dialect.name != "sqlite":
        engine.dispose()
        return
    offsets = [(None, 3600), (dt.datetime(2026, 3, 29, 1, tzinfo=UTC), 7200)]
    with engine.connect() as conn:
        for query in (reports.escalation_counts, partial(reports.escalation_days, offsets=offsets)):
            plans: list[str] = []
            real = conn.connection.dbapi_connection
            assert real is not None
            real.set_trace_callback(plans.append)
            query(conn, reports.Period(since=at(1, 0)))
            real.set_trace_callback(None)
            sql = plans[-1]  # the count (the days' asks for the span first)
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert "COVERING INDEX ix_escalation_" in plan, plan
    engine.dispose()


def test_the_reports_transaction_plans_without_jit_and_leaves_the_session_as_it_was(db_url: str) -> None:
    engine = open_engine(db_url)
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            reports.plain_plans(conn)  # nothing to set on SQLite
            return
        before = [conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in ("jit", "cursor_tuple_fraction")]
        assert before != ["off", "1"]  # the test can fail
        conn.commit()
        reports.plain_plans(conn)
        assert [conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in ("jit", "cursor_tuple_fraction")] \
            == ["off", "1"]
        conn.rollback()
        assert [conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in ("jit", "cursor_tuple_fraction")] \
            == before
    engine.dispose()


class _Lanes:
    """A stand-in for the report's lanes (`engine.app.report._Beside`): three threads, each
    with a connection named after it."""

    def __init__(self, count: int) -> None:
        self.pools = [ThreadPoolExecutor(1) for _ in range(count)]
        self.lanes = count

    def submit(self, work: Any, lane: int = 0) -> Any:
        if not self.pools:
            return partial(work, "own")
        return self.pools[lane].submit(work, f"lane {lane}").result

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True)


def test_work_offered_to_every_lane_is_done_once_by_the_first_that_comes_free() -> None:
    lanes: Any = _Lanes(3)  # in _Beside's place
    busy = threading.Event()
    for lane in (0, 2):
        lanes.submit(lambda conn: busy.wait(10), lane)
    done: list[str] = []

    def take(conn: Any) -> int:
        done.append(conn)
        return len(done)

    job = report_module._FirstFree(lanes, take)
    assert job.answer() == 1 and done == ["lane 1"]  # lane 1 was free
    busy.set()
    failing = report_module._FirstFree(lanes, lambda conn: 1 // 0)
    with pytest.raises(ZeroDivisionError):
        failing.answer()  # raised where the answer is asked for
    lanes.close()
    assert done == ["lane 1"]  # the other lanes passed it by
    alone: Any = _Lanes(0)
    assert report_module._FirstFree(alone, lambda conn: conn).answer() == "own"  # no lanes: on the report's own
