"""`case_stay`: every ended stay written with the transition that ends it, equal to what the
history gives (and to what migration 0009 fills in), counted by the report as the full pass
over the state changes counts it, removed with a destroyed case, and checked by verify."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.app import report as app_report
from engine.app.clock import FixedClock
from engine.app.report import gather
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.verify import verify
from engine.core.calendar import WorkingCalendar
from engine.reporting.figures import Filters
from engine.store import stays
from engine.store.db import open_engine
from engine.store.tables import stays_t
from tests.conftest import ORG_FILE, WORKFLOWS
from tests.test_report import REPORT_AT, build_history

CLERK = "c.devries"
UTC = dt.UTC


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, 0, tzinfo=UTC)


def stored(loket: Loket) -> list[tuple[Any, ...]]:
    with loket.read() as conn:
        return [tuple(row) for row in stays.stored(conn)]


def expected(loket: Loket) -> list[tuple[Any, ...]]:
    with loket.read() as conn:
        return [tuple(row[name] for name in stays.COLUMNS)
                for row in stays.expected(conn, loket.calendar(), loket.request_type)]


@pytest.fixture
def town(db_url: str) -> tuple[Loket, FixedClock, dict[str, str]]:
    """The report tests' history (advances, a paused state, sweeps), and more: a stay whose
    clock stood still, a timeout the sweep fires, a case closed."""
    clock = FixedClock(at(2, 8))
    loket = Loket(open_engine(db_url), clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    refs = build_history(loket, clock)
    # B5: suspended and resumed within its stay in beoordeling (the deadline moves), then to
    # bijdrage, where nobody answers: the sweep's timeout sends it back to beoordeling.
    clock.set(at(2, 9))
    ref = loket.new_case("bewonersinitiatief", ["title=Speeltuin"], actor=CLERK).ref
    refs["B5"] = ref
    clock.set(at(2, 10))
    loket.advance(ref, "in_behandeling", actor=CLERK)
    clock.set(at(3, 10))
    loket.suspend(ref, "Tekening ontbreekt", actor=CLERK)
    clock.set(at(6, 10))
    loket.resume(ref, actor=CLERK)
    clock.set(at(18, 10))  # after its deadline as first set, before it as moved
    loket.advance(ref, "vraag_bijdrage", actor=CLERK, assignments=["amount=900"])
    clock.set(REPORT_AT + dt.timedelta(days=40))
    sweep(loket)
    loket.engine.dispose()
    return loket, clock, refs


def test_each_ended_stay_is_written_with_its_transition_as_the_history_gives_it(town: Any) -> None:
    loket, _clock, refs = town
    rows = stored(loket)
    assert rows == expected(loket)
    by_case: dict[str, list[tuple[Any, ...]]] = {}
    with loket.read() as conn:
        for row in rows:
            by_case.setdefault(stays.ref_of(conn, row[0]) or "", []).append(row)
    columns = stays.COLUMNS
    b5 = [dict(zip(columns, row, strict=True)) for row in by_case[refs["B5"]]]
    # ingediend, beoordeling (its clock stood still three days), bijdrage (ended by the timeout).
    assert [(r["stay"], r["state"], r["unit"]) for r in b5] == [
        (1, "ingediend", "wijkteam"), (2, "beoordeling", "wijkteam"), (3, "bijdrage", "openbare_ruimte")]
    beoordeling = b5[1]
    cal = loket.calendar()
    rt = loket.request_type("bewonersinitiatief")
    unmoved = cal.due(beoordeling["entered_at"], rt.states["beoordeling"].deadline)
    assert unmoved < beoordeling["left_at"] < beoordeling["due_at"] and beoordeling["met"] is True
    assert beoordeling["due_on"] == cal.local_date(beoordeling["due_at"])
    assert b5[2]["left_at"] == REPORT_AT + dt.timedelta(days=40)  # the sweep's timeout
    assert b5[0]["days"] == pytest.approx(1 / 24) and b5[0]["stay_us"] == 3600 * 10**6
    # A closed case has its last non-final stay; none in the final state.
    assert all(row[5] not in ("toegekend", "afgehandeld", "ingetrokken") for row in rows)


def test_the_report_from_the_stays_is_the_full_pass_over_the_state_changes(
        town: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    loket, clock, _refs = town
    # Open cases whose stay now was suspended: still (S1), and resumed since (S2). B5 was
    # suspended in an earlier stay. On PostgreSQL the report reads the events of S1 and S2
    # only; the other open cases' stays now come from their rows (`_begun_from_rows`).
    later = REPORT_AT + dt.timedelta(days=10)  # in_behandeling overdue by the report, unless it stands still
    for name, resumed in (("S1", False), ("S2", True)):
        clock.set(later + dt.timedelta(hours=1))
        ref = loket.new_case("bewonersinitiatief", [f"title=Pauze {name}"], actor=CLERK).ref
        clock.set(later + dt.timedelta(hours=2))
        loket.advance(ref, "in_behandeling", actor=CLERK)
        clock.set(later + dt.timedelta(hours=3))
        loket.suspend(ref, "Wacht op vergunning", actor=CLERK)
        if resumed:
            clock.set(later + dt.timedelta(hours=5))
            loket.resume(ref, actor=CLERK)
    clock.set(REPORT_AT + dt.timedelta(days=41))
    periods = [Filters(), Filters(type_key="bewonersinitiatief"),
               Filters(since=at(4, 0), until=at(18, 0)), Filters(type_key="melding", since=at(10, 0))]
    from_rows: list[bool] = []
    begun = app_report._begun_from_rows

    def counted(pairs: Any) -> Any:
        for case, moves in begun(pairs):
            if case[7] is None:
                from_rows.append(len(moves) == 1 and moves[0][3] is None)
            yield case, moves

    monkeypatch.setattr(app_report, "_begun_from_rows", counted)
    fast = [gather(loket, f) for f in periods]
    if loket.engine.dialect.name == "postgresql":  # both ways were taken: the test can fail
        assert any(from_rows) and not all(from_rows)

    class FullPass(app_report.ReportBuilder):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{**kwargs, "stored_stays": False})

    monkeypatch.setattr(app_report, "ReportBuilder", FullPass)
    full = [gather(loket, f) for f in periods]
    for a, b in zip(fast, full, strict=True):
        assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert any(s.stays for s in fast[0].states) and any(u.stays for u in fast[0].units)
    # Without the closed cases' values in the stream (a type with no area and no measures), the
    # summaries of the realised cases the report keeps are read afterwards: the same ones.
    monkeypatch.setattr(app_report, "_valued", lambda loket: set())
    assert fast[0].realised and any(r.summary for r in fast[0].realised)
    assert gather(loket, periods[0]).realised == full[0].realised
    loket.engine.dispose()


def test_migration_0009_fills_in_what_the_engine_writes(town: Any, tmp_path: Path) -> None:
    loket, _clock, _refs = town
    live = stored(loket)
    assert live
    with loket.engine.begin() as conn:
        conn.execute(sa.delete(stays_t))
    from tests.test_migrations import alembic

    alembic(loket.engine, "downgrade", "0008")
    assert not sa.inspect(loket.engine).has_table("case_stay")
    alembic(loket.engine, "upgrade", "head")
    assert stored(loket) == live
    assert verify(loket).ok
    loket.engine.dispose()


def test_verify_names_a_stay_that_is_not_what_the_history_gives(town: Any) -> None:
    loket, _clock, _refs = town
    assert verify(loket).ok
    with loket.engine.begin() as conn:
        target = conn.execute(sa.select(stays_t.c.id, stays_t.c.case_id, stays_t.c.stay)
                              .where(stays_t.c.met.is_(True)).order_by(stays_t.c.id).limit(1)).one()
        conn.execute(sa.update(stays_t).where(stays_t.c.id == target.id).values(met=False))
        ref = stays.ref_of(conn, target.case_id)
    result = verify(loket)
    assert not result.ok and result.ref == ref
    assert result.failure == (f"case_stay: stay {target.stay} of {ref} disagrees with its history (met stored"
                              " false, history gives true); the report's time per state and unit would be wrong"
                              " (derived from the history, which holds: 'loket db repair-stays' rebuilds it)")
    with loket.engine.begin() as conn:
        conn.execute(sa.delete(stays_t).where(stays_t.c.id == target.id))
    result = verify(loket)
    assert not result.ok and result.failure is not None and f"stay {target.stay} of {ref} is missing" in result.failure
    loket.engine.dispose()


def test_retention_takes_the_stays_of_a_destroyed_case_with_it(db_url: str, tmp_path: Path) -> None:
    from engine.app import retention
    from tests.test_retention import OPERATOR, YEAR, closed_case, later, make_loket

    loket = make_loket(db_url, tmp_path / "wf")
    gone = closed_case(loket, "Verdwijnt")
    kept = loket.new_case("bewonersinitiatief", ["title=Blijft"], actor=CLERK).ref
    loket.advance(kept, "in_behandeling", actor=CLERK)  # open: it stays
    with loket.read() as conn:
        assert sorted(stays.ref_of(conn, row[0]) or "" for row in stays.stored(conn)) == sorted([gone, kept])
    later(loket, YEAR)
    result = retention.run(loket, "selectielijst 2020, categorie 1.1", by=loket.identity(OPERATOR))
    assert result.destroyed == 1
    with loket.read() as conn:
        assert [stays.ref_of(conn, row[0]) for row in stays.stored(conn)] == [kept]
    assert verify(loket).ok
    loket.engine.dispose()


def test_the_zones_offsets_change_to_the_second_the_clocks_do() -> None:
    from engine.core.organisation import parse_organisation
    from engine.core.yamlfile import load_file
    from engine.reporting.builder import ReportBuilder

    data, locate, _ = load_file(ORG_FILE)
    org = parse_organisation(data, str(ORG_FILE), locate)
    cal = WorkingCalendar(org.timezone, org.closed_days)
    builder = ReportBuilder(now=at(2, 9), org=org, calendar=cal, latest=[], type_of=lambda key, version: None)  # type: ignore[arg-type, return-value]
    spring, autumn = dt.datetime(2026, 3, 29, 1, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert builder.zone_offsets(at(1, 0), dt.datetime(2026, 12, 31, tzinfo=UTC)) == [
        (None, 3600), (spring, 7200), (autumn, 3600)]
    assert builder.zone_offsets(None, None) == [(None, 3600)]
    assert builder.zone_offsets(at(1, 0), at(20, 0)) == [(None, 3600)]


def test_a_plain_advance_writes_its_stay_from_the_case_and_one_after_a_suspension_from_the_history(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The advance's own path (`Loket.ended_stay_row`): a stay whose clock never stood still is
    written from the case as it was read, without reading the history again; one that was
    suspended (its deadline moved) reads the history. Both equal what the history gives."""
    clock = FixedClock(at(2, 9))
    loket = Loket(open_engine(db_url), clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    read: list[list[int]] = []
    real = stays.moves

    def spied(conn: sa.Connection, ids: list[int]) -> Any:
        read.append(list(ids))
        return real(conn, ids)

    monkeypatch.setattr(stays, "moves", spied)
    plain = loket.new_case("bewonersinitiatief", ["title=Bankje"], actor=CLERK)
    moved = loket.new_case("bewonersinitiatief", ["title=Boom"], actor=CLERK)
    clock.set(at(2, 10))
    loket.advance(plain.ref, "in_behandeling", actor=CLERK)
    loket.advance(moved.ref, "in_behandeling", actor=CLERK)
    clock.set(at(3, 10))
    loket.suspend(moved.ref, "Tekening ontbreekt", actor=CLERK)
    clock.set(at(6, 10))
    loket.resume(moved.ref, actor=CLERK)
    assert read == []
    clock.set(at(18, 10))
    loket.advance(plain.ref, "vraag_bijdrage", actor=CLERK, assignments=["amount=900"])
    assert read == []
    loket.advance(moved.ref, "vraag_bijdrage", actor=CLERK, assignments=["amount=900"])
    assert read == [[moved.id]]
    rows = stored(loket)
    assert rows == expected(loket) and len(rows) == 4
    loket.engine.dispose()


# -- loket db repair-stays ------------------------------------------------------------------------


def _damage(loket: Loket) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    """One case's row changed, another's deleted, a third given one its history does not give;
    the ids of those cases, and every other case's rows with their ids (to see them untouched)."""
    with loket.engine.begin() as conn:
        ids = [row[0] for row in conn.execute(sa.select(stays_t.c.case_id).group_by(stays_t.c.case_id)
                                              .having(sa.func.count() >= 2).order_by(stays_t.c.case_id))]
        assert len(ids) >= 4
        changed, deleted, extra = ids[0], ids[1], ids[-1]
        first = sa.select(sa.func.min(stays_t.c.id)).where(stays_t.c.case_id == changed).scalar_subquery()
        conn.execute(sa.update(stays_t).where(stays_t.c.id == first).values(unit="welzijn", days=99.5))
        conn.execute(sa.delete(stays_t).where(stays_t.c.id == sa.select(sa.func.max(stays_t.c.id))
                                              .where(stays_t.c.case_id == deleted).scalar_subquery()))
        copy = dict(conn.execute(sa.select(stays_t).where(stays_t.c.case_id == extra)
                                 .order_by(stays_t.c.stay.desc()).limit(1)).mappings().one())
        del copy["id"]
        conn.execute(sa.insert(stays_t).values({**copy, "stay": copy["stay"] + 5}))
        others = [tuple(row) for row in conn.execute(
            sa.select(stays_t).where(stays_t.c.case_id.not_in([changed, deleted, extra])).order_by(stays_t.c.id))]
    return {"changed": changed, "deleted": deleted, "extra": extra}, others


def test_repair_rebuilds_a_changed_a_missing_and_an_extra_stay_row_and_nothing_else(town: Any) -> None:
    from engine.app.repair import repair_stays, stays_to_repair

    loket, _clock, _refs = town
    assert stays_to_repair(loket).cases == 0
    assert repair_stays(loket, loket.identity()).as_json() == {
        "check": False, "cases": 0, "removed": 0, "written": 0, "refs": [], "tally": False, "config_events": []}
    config_before = len(loket.config_history())
    damaged, others = _damage(loket)
    with loket.read() as conn:
        refs = sorted(stays.ref_of(conn, case_id) or "" for case_id in damaged.values())
        counts = {case_id: conn.execute(sa.select(sa.func.count()).where(stays_t.c.case_id == case_id)).scalar()
                  for case_id in damaged.values()}
    assert not verify(loket).ok
    found = stays_to_repair(loket)
    assert (found.cases, sorted(found.refs)) == (3, refs)
    assert found.removed == sum(counts.values()) and found.written == sum(counts.values())  # -1 + 1
    assert not verify(loket).ok and len(loket.config_history()) == config_before  # --check changes nothing
    done = repair_stays(loket, loket.identity())
    assert (done.cases, sorted(done.refs), done.removed, done.written) == (3, refs, found.removed, found.written)
    assert stored(loket) == expected(loket)
    assert verify(loket).ok
    with loket.read() as conn:
        assert [tuple(row) for row in conn.execute(
            sa.select(stays_t).where(stays_t.c.case_id.not_in(list(damaged.values()))).order_by(stays_t.c.id))] \
            == others
    history = loket.config_history()
    assert len(history) == config_before + 1 and done.events == [history[-1]["seq"]]
    assert (history[-1]["action"], history[-1]["detail"]) == ("stays_repaired", {
        "cases": 3, "removed": done.removed, "written": done.written, "refs": done.refs})
    again = repair_stays(loket, loket.identity())
    assert again.cases == 0 and len(loket.config_history()) == config_before + 1
    loket.engine.dispose()


def test_repair_refuses_to_rebuild_from_a_history_that_does_not_hold(town: Any) -> None:
    """The stay rows are worked out from the history: where the history of a case whose rows
    differ was edited, neither the check nor the repair goes on (exit 1, naming the damage),
    and nothing is written; once the history holds again, the repair does its work."""
    from engine.app.repair import repair_stays, stays_to_repair
    from engine.errors import HistoryDamaged
    from engine.store.tables import events_t

    loket, _clock, _refs = town
    damaged, _others = _damage(loket)
    config_before = len(loket.config_history())
    before = stored(loket)
    with loket.engine.begin() as conn:
        ref = stays.ref_of(conn, damaged["changed"])
        event = events_t.c
        second = sa.and_(event.case_id == damaged["changed"], event.seq == 2)
        actor = conn.execute(sa.select(event.actor).where(second)).scalar_one()
        conn.execute(sa.update(events_t).where(second).values(actor="m.vervalst"))
    for attempt in (stays_to_repair, lambda loket: repair_stays(loket, loket.identity())):
        with pytest.raises(HistoryDamaged) as refused:
            attempt(loket)
        assert str(refused.value).startswith(f"{ref} event 2: its content does not match its hash (edited)")
        assert "not rebuilt from one that does not hold" in str(refused.value)
        assert refused.value.exit_code == 1
    assert stored(loket) == before and len(loket.config_history()) == config_before  # nothing written
    with loket.engine.begin() as conn:
        conn.execute(sa.update(events_t).where(second).values(actor=actor))
    assert repair_stays(loket, loket.identity()).cases == 3 and verify(loket).ok
    loket.engine.dispose()


def test_repair_works_in_batches_each_recorded(town: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.app import repair

    loket, _clock, _refs = town
    with loket.engine.begin() as conn:
        conn.execute(sa.delete(stays_t))  # every case's rows missing
    missing = repair.stays_to_repair(loket)
    assert missing.cases >= 3 and missing.removed == 0
    monkeypatch.setattr(repair, "CHUNK", 2)
    done = repair.repair_stays(loket, loket.identity())
    assert (done.cases, done.written) == (missing.cases, missing.written)
    assert len(done.events) == (missing.cases + 1) // 2
    assert stored(loket) == expected(loket) and verify(loket).ok
    loket.engine.dispose()


def test_db_repair_stays_on_the_command_line(town: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tests.conftest import run_cli
    from tests.test_identity import OPERATOR, organisation, write

    loket, _clock, _refs = town
    loket.load_organisation(write(tmp_path / "org.yaml", organisation({})))  # names an operator
    url = loket.engine.url.render_as_string(hide_password=False)
    loket.engine.dispose()
    assert run_cli(capsys, "--db", url, "db", "repair-stays", "--check") == (
        0, "nothing to repair: every stay row (case_stay) is what the history gives, and the stay counts"
        " (stay_tally) are what the rows give\n", "")
    damaged, _others = _damage(loket)
    loket.engine.dispose()
    code, out, err = run_cli(capsys, "--db", url, "db", "repair-stays", "--check")
    assert (code, err) == (1, "") and out.startswith("3 case(s) whose stay rows differ from their history"), out
    code, out, err = run_cli(capsys, "--db", url, "--as", CLERK, "db", "repair-stays")
    assert (code, out) == (1, "")
    assert err == f"Error: db repair-stays is for an operator ({OPERATOR}); you act as '{CLERK}'\n"
    code, out, err = run_cli(capsys, "--db", url, "db", "repair-stays", "--bogus")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("Error: No such option '--bogus'")
    code, out, err = run_cli(capsys, "--db", url, "--as", OPERATOR, "db", "repair-stays", "--json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert (shown["check"], shown["cases"], len(shown["config_events"])) == (False, 3, 1)
    code, out, _err = run_cli(capsys, "--db", url, "audit", "config")
    assert "stays_repaired" in out and "stay rows of 3 case(s) rebuilt from their history" in out
    assert run_cli(capsys, "--db", url, "audit", "verify")[0] == 0
    assert run_cli(capsys, "--db", url, "--as", OPERATOR, "db", "repair-stays") == (
        0, "nothing to repair: every stay row (case_stay) is what the history gives, and the stay counts"
        " (stay_tally) are what the rows give\n", "")
    assert damaged


def test_verify_names_a_missing_or_an_extra_last_stay_row(town: Any) -> None:
    """The last row in case order: the streams end at different rows, and the check still
    compares the one that is left over."""
    loket, _clock, _refs = town
    last = sa.select(stays_t).order_by(stays_t.c.case_id.desc(), stays_t.c.stay.desc()).limit(1)
    with loket.engine.begin() as conn:
        row = dict(conn.execute(last).mappings().one())
        ref = stays.ref_of(conn, row["case_id"])
        conn.execute(sa.delete(stays_t).where(stays_t.c.id == row["id"]))
    result = verify(loket)
    assert not result.ok and result.failure is not None
    assert result.failure.startswith(f"case_stay: stay {row['stay']} of {ref} is missing;"), result.failure
    with loket.engine.begin() as conn:
        del row["id"]
        conn.execute(sa.insert(stays_t).values(row))
    assert verify(loket).ok
    with loket.engine.begin() as conn:
        conn.execute(sa.insert(stays_t).values({**row, "stay": row["stay"] + 1}))
    result = verify(loket)
    assert not result.ok and result.failure is not None
    assert result.failure.startswith(f"case_stay: stay {row['stay'] + 1} of {ref} is not in its history;"), \
        result.failure
    loket.engine.dispose()


def test_a_transition_between_the_repairs_two_passes_is_kept(town: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repair finds a damaged case in one snapshot and rewrites it later, comparing again:
    a stay that a transition ended in between is neither lost nor doubled."""
    from engine.app import repair

    loket, clock, _refs = town
    case = loket.new_case("bewonersinitiatief", ["title=Bankje"], actor=CLERK)
    clock.set(clock.now() + dt.timedelta(hours=1))
    loket.advance(case.ref, "in_behandeling", actor=CLERK)
    with loket.engine.begin() as conn:
        assert conn.execute(sa.delete(stays_t).where(stays_t.c.case_id == case.id)).rowcount == 1
    real = repair._repair

    def meanwhile(*args: Any) -> None:
        clock.set(clock.now() + dt.timedelta(days=2))
        loket.advance(case.ref, "vraag_bijdrage", actor=CLERK, assignments=["amount=900"])
        real(*args)

    monkeypatch.setattr(repair, "_repair", meanwhile)
    done = repair.repair_stays(loket, loket.identity())
    assert (done.cases, done.refs, done.removed, done.written) == (1, [case.ref], 1, 2)
    assert stored(loket) == expected(loket) and verify(loket).ok
    loket.engine.dispose()
