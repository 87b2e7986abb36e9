"""Moving running cases to a new version of their request type (SPEC §14), on SQLite and
PostgreSQL: what `workflow load` says of the cases left behind, the refusal of a trigger only a
newer version has, and `workflow migrate` — its map, its recount of every deadline, its dry
run, its refusals, a verify that still holds, and workers writing while it runs.

Version 2 of bewonersinitiatief, as the tests load it: the legal term shortened from 8 to 6
weeks, `beoordeling` from 10 to 5 working days, `besluit` renamed `besluit_team`, intake
(`ingediend`) moved to the unit Welzijn, and a new step `snel_toekennen`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import WORKFLOWS, run_cli

from engine.app import migrate as migrate_module
from engine.app.clock import FixedClock
from engine.app.explain import explain_case
from engine.app.migrate import migrate
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.verify import verify
from engine.core.durations import Duration
from engine.core.migration import parse_map
from engine.errors import Conflict, InvalidValue, NotFound, TransitionNotAllowed
from engine.store.db import open_engine

KEY = "bewonersinitiatief"
STAFF = "c.devries"
LEAD = "b.bakker"


def version_two(folder: Path) -> Path:
    text = (WORKFLOWS / f"{KEY}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"\bbesluit\b", "besluit_team", text)
    text = text.replace("lead_time: {weeks: 8}", "lead_time: {weeks: 6}")
    text = text.replace("owner: wijkteam, deadline: {working_days: 10}}",
                        "owner: wijkteam, deadline: {working_days: 5}}")
    text = text.replace("ingediend:          {label: Ingediend, owner: wijkteam,",
                        "ingediend:          {label: Ingediend, owner: welzijn,")
    text = text.replace("transitions:\n", "transitions:\n  - {trigger: snel_toekennen, from: beoordeling,"
                        " to: toegekend, roles: [lead], when: {amount: {lte: 500}}}\n", 1)
    assert text.count("working_days: 5}}") >= 2 and "owner: welzijn" in text
    path = folder / f"{KEY}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _local(loket: Loket, when: dt.datetime | None) -> str | None:
    return None if when is None else loket.calendar().local_date(when).isoformat()


def _dump(loket: Loket) -> tuple[Any, ...]:
    with loket.read() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM cases ORDER BY id"))]
        events = conn.execute(sa.text("SELECT count(*) FROM case_event")).scalar_one()
        outbox = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one()
    return rows, events, outbox


def _events(loket: Loket, ref: str, action: str) -> list[dict[str, Any]]:
    return [e for e in loket.history(ref)[1] if e["action"] == action]


@pytest.fixture
def cases(loket: Loket, clock: FixedClock, tmp_path: Path) -> dict[str, str]:
    """Cases in every kind of position on version 1, then version 2 loaded three weeks on."""
    made: dict[str, str] = {}
    made["intake"] = loket.new_case(KEY, ["title=Intake", "amount=100"], actor=STAFF, assign="l.mulder").ref
    made["review"] = loket.new_case(KEY, ["title=Review", "amount=100"], actor=STAFF).ref
    loket.advance(made["review"], "in_behandeling", actor=STAFF)
    made["decision"] = loket.new_case(KEY, ["title=Besluit", "amount=100"], actor=STAFF).ref
    loket.advance(made["decision"], "in_behandeling", actor=STAFF)
    loket.advance(made["decision"], "naar_besluit", actor=STAFF)
    made["waiting"] = loket.new_case(KEY, ["title=Wacht", "amount=100"], actor=STAFF).ref
    loket.advance(made["waiting"], "vraag_informatie", actor=STAFF, comment="Graag de begroting")
    clock.advance(dt.timedelta(days=1))  # Tuesday 3 March, 10:00 in Amsterdam
    made["suspended"] = loket.new_case(KEY, ["title=Verdaagd", "amount=100"], actor=STAFF).ref
    loket.advance(made["suspended"], "in_behandeling", actor=STAFF)
    loket.suspend(made["suspended"], "wacht op vergunning", actor=STAFF)
    clock.advance(dt.timedelta(days=3))  # Friday 6 March
    loket.resume(made["suspended"], actor=STAFF)
    loket.extend(made["suspended"], Duration("weeks", 2), "drukte", actor=LEAD)
    made["closed"] = loket.new_case(KEY, ["title=Klaar", "amount=100"], actor=STAFF).ref
    loket.advance(made["closed"], "intrekken", actor=STAFF, comment="Ingetrokken")
    clock.advance(dt.timedelta(days=17))  # Monday 23 March
    loket.load_request_types([version_two(tmp_path)])
    clock.advance(dt.timedelta(hours=1))
    return made


def test_the_newest_versions_are_read_in_one_query_on_the_connection_given(
        loket: Loket, cases: dict[str, str], clock: FixedClock) -> None:
    """A report reads the request types on its own snapshot: one query for the versions, one
    for their definitions, and no other connection taken from the pool."""
    fresh = Loket(loket.engine, clock)
    statements: list[str] = []
    checkouts: list[object] = []

    def executed(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    def checked_out(*args: Any) -> None:
        checkouts.append(args)

    with fresh.read() as conn:
        sa.event.listen(loket.engine, "before_cursor_execute", executed)
        sa.event.listen(loket.engine.pool, "checkout", checked_out)
        try:
            types = fresh.latest_types(conn)
        finally:
            sa.event.remove(loket.engine, "before_cursor_execute", executed)
            sa.event.remove(loket.engine.pool, "checkout", checked_out)
    assert checkouts == []
    assert len(statements) == 2, statements
    assert [(rt.key, list(rt.states)) for rt in types] == [(rt.key, list(rt.states)) for rt in
                                                           Loket(loket.engine, clock).latest_types()]
    newest = types[[rt.key for rt in types].index(KEY)]
    assert "besluit_team" in newest.states and "besluit" not in newest.states  # version 2
    assert fresh.request_type(KEY) is newest  # kept, not read again
    assert fresh.request_type(KEY, 1) is not newest and "besluit" in fresh.request_type(KEY, 1).states


# -- workflow load, and a trigger of a newer version --------------------------------------------


def test_loading_a_new_version_lists_the_open_cases_left_on_older_ones(
    loket: Loket, clock: FixedClock, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for title in ("Een", "Twee"):
        loket.new_case(KEY, [f"title={title}"], actor=STAFF)
    ref = loket.new_case(KEY, ["title=Drie", "amount=5"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "naar_besluit", actor=STAFF)

    code, out, err = run_cli(capsys, "--db", db_url, "workflow", "load", str(version_two(tmp_path)))

    assert (code, err) == (0, "")
    assert out.splitlines()[:4] == [
        f"{KEY}: loaded as version 2",
        "  3 open case(s) still run on older versions:",
        "    version 1: besluit 1 (not in version 2), ingediend 2",
        f"  they stay on their version until moved: 'loket workflow migrate {KEY} --to 2 --map besluit=STATE"
        " --dry-run' shows what moving them does",
    ]


def test_load_json_names_the_states_the_new_version_lacks(
    loket: Loket, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = loket.new_case(KEY, ["title=Drie", "amount=5"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "naar_besluit", actor=STAFF)

    code, out, _ = run_cli(capsys, "--db", db_url, "workflow", "load", "--json", str(version_two(tmp_path)))

    assert code == 0
    assert json.loads(out) == [{"key": KEY, "version": 2, "changed": True, "missing_states": ["besluit"],
                                "open_on_older": [{"version": 1, "state": "besluit", "cases": 1,
                                                   "in_new_version": False}]}]


def test_a_trigger_only_a_newer_version_has_is_refused_naming_the_version_and_migrate(
    loket: Loket, cases: dict[str, str], db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = cases["review"]
    with pytest.raises(TransitionNotAllowed) as refused:
        loket.advance(ref, "snel_toekennen", actor=LEAD)
    assert "version 1" in str(refused.value) and f"loket workflow migrate {KEY} --to 2" in str(refused.value)

    code, _, err = run_cli(capsys, "--db", db_url, "--as", LEAD, "case", "advance", ref, "snel_toekennen")
    assert code == 1 and err.startswith("Error: 'snel_toekennen' exists only in a newer version")
    # A trigger no version has is still unknown (exit 2).
    code, _, err = run_cli(capsys, "--db", db_url, "--as", LEAD, "case", "advance", ref, "bestaat_niet")
    assert code == 2 and "has no trigger" in err


# -- migrate -------------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_shows_before_and_after(loket: Loket, cases: dict[str, str]) -> None:
    before = _dump(loket)
    shown: list[Any] = []

    result = migrate(loket, KEY, 2, actor="operator", dry_run=True, preview=shown.append)

    assert _dump(loket) == before
    assert result.exit_code == 1 and [r.ref for r in result.refused] == [cases["decision"]]
    previews = {p.ref: p for p in shown}
    review = previews[cases["review"]]
    # beoordeling entered Monday 2 March: 10 working days ended 16 March, 5 end 9 March.
    assert (review.before["due"][:10], review.after["due"][:10]) == ("2026-03-16", "2026-03-09")
    assert (review.before["version"], review.after["version"]) == (1, 2)
    # No sweep ran: the reminder and the lead's rung were due under the old term already (16
    # March); the head's, 5 working days on, falls before now (23 March) only under the new one.
    assert review.due_anyway == ["1 → b.bakker", "2 → b.bakker"]
    assert review.fires == ["3 → a.jansen"]
    intake = previews[cases["intake"]]
    assert (intake.before["owner"], intake.after["owner"]) == ("wijkteam", "welzijn")
    assert (intake.before["assignee"], intake.after["assignee"]) == ("l.mulder", None)


def test_migrate_moves_what_maps_and_refuses_and_lists_the_rest(loket: Loket, cases: dict[str, str]) -> None:
    result = migrate(loket, KEY, 2, actor="operator")

    assert result.exit_code == 1
    assert result.as_json()["refused"] == [{
        "ref": cases["decision"], "state": "besluit", "exit": 1,
        "reason": "state 'besluit' is not in version 2: map it with --map besluit=STATE"}]
    assert sorted(result.migrated) == sorted(cases[k] for k in ("intake", "review", "waiting", "suspended"))
    decision = loket.get_case(cases["decision"])
    assert (decision.type_version, decision.state) == (1, "besluit")
    assert not _events(loket, cases["decision"], "migrated")
    assert loket.get_case(cases["closed"]).type_version == 1
    review = loket.get_case(cases["review"])
    assert review.type_version == 2
    [event] = _events(loket, cases["review"], "migrated")
    assert event["data"]["from_version"] == 1 and event["data"]["to_version"] == 2
    assert event["data"]["state_map"] == {}
    assert (event["from_state"], event["to_state"]) == ("beoordeling", "beoordeling")
    assert event["actor"] == "operator"
    assert verify(loket).ok

    # The refused one, mapped: it goes now, and the trigger of version 2 works on the others.
    again = migrate(loket, KEY, 2, maps={"besluit": "besluit_team"}, actor="operator")
    assert (again.migrated, again.refused, again.exit_code) == ([cases["decision"]], [], 0)
    decision = loket.get_case(cases["decision"])
    assert (decision.type_version, decision.state) == (2, "besluit_team")
    assert _events(loket, cases["decision"], "migrated")[0]["data"]["state_map"] == {"besluit": "besluit_team"}
    loket.advance(cases["review"], "snel_toekennen", actor=LEAD)
    assert loket.get_case(cases["review"]).state == "toegekend"
    assert verify(loket).ok


def test_deadlines_are_counted_again_from_their_start_with_suspensions_and_extensions(
    loket: Loket, cases: dict[str, str]
) -> None:
    ref = cases["suspended"]
    old = loket.get_case(ref)
    # Version 1, made Tuesday 3 March: 8 weeks → 28 April, 3 days suspended → 1 May, + 2 weeks → 15 May.
    assert (_local(loket, old.case_due), _local(loket, old.state_due)) == ("2026-05-15", "2026-03-20")

    migrate(loket, KEY, 2, actor="operator", refs=[ref])

    new = loket.get_case(ref)
    # Version 2: 6 weeks → 14 April, + 3 days → 17 April, + 2 weeks → 1 May; beoordeling 5
    # working days from 3 March → 10 March, + 3 days → 13 March. The service norm did not change.
    assert _local(loket, new.case_due) == "2026-05-01"
    assert _local(loket, new.state_due) == "2026-03-13"
    assert new.service_due == old.service_due
    assert new.stay == old.stay and new.escalation_level == old.escalation_level
    assert _local(loket, new.case_due_limit) == "2026-05-29"  # 17 April + 6 weeks max_extension
    [event] = _events(loket, ref, "migrated")
    assert set(event["data"]["deadlines"]) == {"case_due", "state_due", "case_due_limit"}
    explained = explain_case(loket, new)
    assert explained[1].startswith("Migrated from version 1 to version 2 on 2026-03-23")
    assert not [line for line in explained if "NOTE" in line]
    assert "  due 2026-05-01 (Fri) 23:59:59 Europe/Amsterdam (2026-05-01 21:59:59 UTC)" in explained
    assert verify(loket).ok


def test_every_migrated_case_explains_to_its_stored_dates(loket: Loket, cases: dict[str, str]) -> None:
    migrate(loket, KEY, 2, maps={"besluit": "besluit_team"}, actor="operator")
    for ref in cases.values():
        case = loket.get_case(ref)
        assert not [line for line in explain_case(loket, case) if "NOTE" in line], ref


def test_an_assignee_without_a_role_in_the_new_owner_is_released(loket: Loket, cases: dict[str, str]) -> None:
    ref = cases["intake"]
    migrate(loket, KEY, 2, actor="operator", refs=[ref])

    case = loket.get_case(ref)
    assert (case.owner, case.assignee) == ("welzijn", None)
    [released] = [e for e in _events(loket, ref, "assigned") if e["data"].get("released")]
    assert released["data"] == {"assignee": None, "released": "l.mulder", "reason": "no role in unit 'welzijn'"}
    assert verify(loket).ok


def test_escalations_the_new_dates_make_due_fire_once(loket: Loket, clock: FixedClock, cases: dict[str, str]) -> None:
    ref = cases["review"]
    sweep(loket)  # under version 1: beoordeling due 16 March, the reminder and the lead have fired
    assert loket.get_case(ref).escalation_level == 2
    shown: list[Any] = []
    migrate(loket, KEY, 2, actor="operator", refs=[ref], dry_run=True, preview=shown.append)
    # 5 working days after 9 March is 16 March: the head's rung (3) is due now.
    assert shown[0].fires == ["3 → a.jansen"]

    migrate(loket, KEY, 2, actor="operator", refs=[ref])
    first = [f for f in sweep(loket).fired if f["ref"] == ref]
    second = [f for f in sweep(loket).fired if f["ref"] == ref]

    assert [(f["rung"], f["to"]) for f in first] == [(3, "a.jansen")]
    assert second == []
    assert verify(loket).ok


def test_a_paused_state_moves_only_to_a_state_that_pauses_too(loket: Loket, cases: dict[str, str]) -> None:
    result = migrate(loket, KEY, 2, actor="operator", maps={"wacht_op_bewoner": "beoordeling"},
                     refs=[cases["waiting"]])
    assert result.exit_code == 1 and "stops the clock" in result.refused[0].reason
    assert loket.get_case(cases["waiting"]).type_version == 1


def test_named_cases_that_cannot_move_each_get_an_answer(loket: Loket, cases: dict[str, str]) -> None:
    migrate(loket, KEY, 2, actor="operator", refs=[cases["review"]])
    result = migrate(loket, KEY, 2, actor="operator", refs=[cases["review"], cases["closed"]])
    assert [(r.ref, r.reason) for r in result.refused] == [
        (cases["review"], f"{cases['review']} is already on version 2"),
        (cases["closed"], f"{cases['closed']} is closed")]
    assert result.migrated == []


def test_batches_move_every_case(loket: Loket, cases: dict[str, str]) -> None:
    result = migrate(loket, KEY, 2, actor="operator", maps={"besluit": "besluit_team"}, batch=2)
    assert result.count == 5 and result.exit_code == 0
    assert verify(loket).ok


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--map", "besluit=bestaat_niet"], f"{KEY} v2 has no state 'bestaat_niet'"),
    (["--map", "bestaat_niet=beoordeling"], f"{KEY} v1 has no state 'bestaat_niet'"),
    (["--map", "besluit=toegekend"], "a migration moves running cases, it closes none"),
    (["--map", "besluit"], "--map takes OLD=NEW"),
    (["--map", "besluit=besluit_team", "--map", "besluit=beoordeling"], "two places"),
    (["--case", "BI-2026-99999"], "unknown case 'BI-2026-99999'"),
    (["--from", "2"], "--from and --to are both version 2"),
])
def test_bad_input_is_refused_before_anything_is_written(
    loket: Loket, cases: dict[str, str], db_url: str, capsys: pytest.CaptureFixture[str], args: list[str],
    message: str,
) -> None:
    before = _dump(loket)
    code, out, err = run_cli(capsys, "--db", db_url, "workflow", "migrate", KEY, "--to", "2", *args)
    assert (code, out) == (2, "")
    assert err.startswith("Error: ") and message in err and len(err.splitlines()) == 1
    assert _dump(loket) == before


def test_a_version_or_type_that_does_not_exist_is_bad_input(
    loket: Loket, cases: dict[str, str], db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    melding = loket.new_case("melding", ["omschrijving=Lamp", "locatie=Hoek"], actor=STAFF).ref
    for args, message in ((["--to", "7"], "has no version 7"), (["--to", "2", "--from", "5"], "has no version 5"),
                          (["--to", "1"], "no version before 1"), (["--to", "2", "--case", melding], "is a melding")):
        code, _, err = run_cli(capsys, "--db", db_url, "workflow", "migrate", KEY, *args)
        assert code == 2 and message in err, err
    code, _, err = run_cli(capsys, "--db", db_url, "workflow", "migrate", "onbekend", "--to", "2")
    assert code == 2 and "unknown request type" in err


def test_the_command_line_lists_and_exits_as_the_spec_says(
    loket: Loket, cases: dict[str, str], db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with loket.engine.begin() as conn:
        loket.mark_simulation(conn)  # so that --now sets the run's time
    before = _dump(loket)
    now = ("--now", "2026-03-23T11:00")
    code, out, _ = run_cli(capsys, "--db", db_url, *now, "workflow", "migrate", KEY, "--to", "2", "--dry-run")
    assert code == 1 and _dump(loket) == before
    assert f"{cases['review']}: v1 → v2, beoordeling" in out
    assert "  due          2026-03-16T22:59:59.000000Z → 2026-03-09T22:59:59.000000Z" in out
    assert "fires at once, as the new dates have passed (the next sweep, once): 3 → a.jansen" in out
    assert "due already before the move: 1 → b.bakker, 2 → b.bakker" in out
    assert f"{KEY}: would move 4 case(s) to version 2; 1 refused:" in out

    code, out, _ = run_cli(capsys, "--db", db_url, *now, "workflow", "migrate", KEY, "--to", "2", "--json",
                           "--map", "besluit=besluit_team")
    shown = json.loads(out)
    assert code == 0 and shown["refused"] == [] and len(shown["migrated"]) == 5
    code, out, _ = run_cli(capsys, "--db", db_url, "audit", "verify")
    assert code == 0


# -- verify --------------------------------------------------------------------------------------


def test_a_migrated_row_edited_behind_the_chains_back_is_damage(loket: Loket, cases: dict[str, str]) -> None:
    ref = cases["suspended"]
    migrate(loket, KEY, 2, actor="operator", refs=[ref])
    with loket.engine.begin() as conn:
        conn.execute(sa.text("UPDATE cases SET type_version = 1 WHERE ref = :ref"), {"ref": ref})
    result = verify(loket)
    assert not result.ok and result.ref == ref and "type_version" in str(result.failure)


def test_a_forged_migration_event_is_named(loket: Loket, cases: dict[str, str]) -> None:
    ref = cases["review"]
    migrate(loket, KEY, 2, actor="operator", refs=[ref])
    with loket.engine.begin() as conn:
        conn.execute(sa.text("UPDATE case_event SET to_state = 'ingediend' WHERE action = 'migrated'"))
    result = verify(loket)
    assert not result.ok and result.ref == ref


def test_a_case_made_the_instant_the_next_version_was_loaded_still_verifies(
    loket: Loket, clock: FixedClock, tmp_path: Path
) -> None:
    ref = loket.new_case(KEY, ["title=Gelijk"], actor=STAFF).ref
    loket.load_request_types([version_two(tmp_path)])  # the same instant: either may have come first
    clock.advance(dt.timedelta(days=1))
    migrate(loket, KEY, 2, actor="operator", refs=[ref])
    assert loket.get_case(ref).type_version == 2
    assert verify(loket).ok


# -- workers writing meanwhile ------------------------------------------------------------------


def _meanwhile(monkeypatch: pytest.MonkeyPatch, db_url: str, clock: FixedClock, target: str, act: Any) -> None:
    """Let `act` (on a Loket of its own, as another process) write to case `target` after the
    migration read it and before it writes."""
    original = migrate_module.plan
    done = threading.Event()

    def plan(*args: Any, **kwargs: Any) -> Any:
        case = args[5]
        if case.ref == target and not done.is_set():
            done.set()
            other = Loket(open_engine(db_url), FixedClock(clock.now()))
            act(other)
            other.engine.dispose()
        return original(*args, **kwargs)

    monkeypatch.setattr(migrate_module, "plan", plan)


def test_a_case_advanced_meanwhile_is_refused_as_changed_and_nothing_of_it_is_written(
    loket: Loket, clock: FixedClock, cases: dict[str, str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = cases["review"]
    _meanwhile(monkeypatch, db_url, clock, ref, lambda other: other.advance(ref, "naar_besluit", actor=STAFF))

    result = migrate(loket, KEY, 2, actor="operator", maps={"besluit": "besluit_team"})

    assert result.exit_code == 3
    [refused] = result.refused
    assert (refused.ref, refused.exit_code) == (ref, 3) and "changed meanwhile" in refused.reason
    assert len(result.migrated) == 4
    case = loket.get_case(ref)
    assert (case.type_version, case.state) == (1, "besluit")
    assert not _events(loket, ref, "migrated")
    assert verify(loket).ok
    # The next run takes it.
    assert migrate(loket, KEY, 2, actor="operator", maps={"besluit": "besluit_team"}).migrated == [ref]
    assert verify(loket).ok


@pytest.mark.parametrize("what", ["comment", "sweep", "suspend"])
def test_a_case_a_sweep_or_a_colleague_touched_meanwhile_is_planned_again_and_moved(
    loket: Loket, clock: FixedClock, cases: dict[str, str], db_url: str, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    ref = cases["suspended"]

    def act(other: Loket) -> None:
        if what == "comment":
            other.comment(ref, "Gebeld met de bewoner", actor=STAFF)
        elif what == "sweep":
            assert any(f["ref"] == ref for f in sweep(other).fired)
        else:
            other.suspend(ref, "wacht op de bewoner", actor=STAFF)

    _meanwhile(monkeypatch, db_url, clock, ref, act)

    result = migrate(loket, KEY, 2, actor="operator", maps={"besluit": "besluit_team"})

    assert result.exit_code == 0 and ref in result.migrated
    actions = [e["action"] for e in loket.history(ref)[1]]
    # Written after what happened meanwhile: planned again on the row as it then was.
    touched = {"comment": "comment", "sweep": "escalated", "suspend": "suspended"}[what]
    assert actions.count("migrated") == 1 and actions.index("migrated") > actions.index(touched)
    assert loket.get_case(ref).type_version == 2
    assert verify(loket).ok


def test_workers_writing_while_a_migration_runs_leave_every_case_whole(
    loket: Loket, clock: FixedClock, db_url: str, tmp_path: Path
) -> None:
    refs = []
    for i in range(40):
        ref = loket.new_case(KEY, [f"title=Zaak {i}", "amount=100"], actor=STAFF).ref
        loket.advance(ref, "in_behandeling", actor=STAFF)
        refs.append(ref)
    clock.advance(dt.timedelta(days=20))
    loket.load_request_types([version_two(tmp_path)])
    later = clock.now() + dt.timedelta(hours=1)
    errors: list[BaseException] = []

    def worker() -> None:
        other = Loket(open_engine(db_url), FixedClock(later))
        try:
            sweep(other)
            for ref in refs[::3]:
                # Under a migration's write its guard may miss, and the case changed: exit 3.
                with contextlib.suppress(Conflict):
                    other.advance(ref, "naar_besluit", actor=STAFF)
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.engine.dispose()

    clock.set(later)
    thread = threading.Thread(target=worker)
    thread.start()
    result = migrate(loket, KEY, 2, actor="operator", maps={"besluit": "besluit_team"}, batch=7)
    thread.join(timeout=120)

    assert not errors
    refused = {r.ref: r for r in result.refused}
    assert set(result.migrated) | set(refused) == set(refs) and not set(result.migrated) & set(refused)
    for ref in refs:
        case = loket.get_case(ref)
        moved = _events(loket, ref, "migrated")
        if ref in refused:
            assert refused[ref].exit_code == 3 and case.type_version == 1 and not moved
        else:
            assert case.type_version == 2 and len(moved) == 1
    assert verify(loket).ok


def test_parse_map_reads_old_equals_new() -> None:
    assert parse_map(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(InvalidValue):
        parse_map(["=b"])


def test_an_unknown_map_state_is_not_found(loket: Loket, cases: dict[str, str]) -> None:
    with pytest.raises(NotFound):
        migrate(loket, KEY, 2, actor="operator", maps={"besluit": "nergens"})


def test_cases_move_back_to_an_earlier_version_with_from(loket: Loket, cases: dict[str, str]) -> None:
    migrate(loket, KEY, 2, actor="operator", maps={"besluit": "besluit_team"})
    ref = cases["decision"]

    back = migrate(loket, KEY, 1, from_version=2, actor="operator", maps={"besluit_team": "besluit"}, refs=[ref])

    assert (back.migrated, back.exit_code) == ([ref], 0)
    case = loket.get_case(ref)
    assert (case.type_version, case.state) == (1, "besluit")
    assert [(e["data"]["from_version"], e["data"]["to_version"]) for e in _events(loket, ref, "migrated")] == [
        (1, 2), (2, 1)]
    assert not [line for line in explain_case(loket, case) if "NOTE" in line]
    assert verify(loket).ok
