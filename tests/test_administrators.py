"""The administrator acts (SPEC §12.1) and the unit that answers for the legal term (§12.3).

An administrator (alderman) and the assistants the organisation file names for them may
comment on cases of their portfolio and give an instruction with a term (`case direct`): the
case's fourth clock, met when the case leaves its state in time, else fired once as rung
`directive` to the administrator and the head of the unit holding the case. Administrators
still do not advance, assign or change cases. A type's `responsible` unit may extend the legal
term whoever holds the case, and its head hears of the term's breach.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, START, WORKFLOWS, run_cli

from engine.app.clock import FixedClock
from engine.app.explain import explain_case
from engine.app.service import Loket
from engine.app.sweep import forecast, sweep
from engine.app.verify import verify
from engine.core.durations import Duration, parse_term, term_text
from engine.core.organisation import parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import InvalidDefinition, InvalidValue, Refused, RoleRequired
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t

STAFF, LEAD, HEAD = "c.devries", "b.bakker", "a.jansen"  # the wijkteam
ALDERMAN, ASSISTANT = "wethouder.wijken", "j.wolters"
OTHER_ALDERMAN = "wethouder.zorg"
BI = "bewonersinitiatief"
# 5 working days from Monday 2 March 2026: the end of Monday 9 March (CET).
DUE_5WD = dt.datetime(2026, 3, 9, 22, 59, 59, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def new_bi(loket: Loket) -> str:
    return loket.new_case(BI, ["title=Speeltuin Wilgenplein", "amount=900"], actor=STAFF).ref


def history(loket: Loket, ref: str, action: str) -> list[dict[str, Any]]:
    return [e for e in loket.history(ref)[1] if e["action"] == action]


def fired(loket: Loket, at: dt.datetime) -> list[tuple[Any, Any]]:
    return [(f["rung"], f["to"]) for f in sweep(loket, at).fired]


def directives(loket: Loket, at: dt.datetime) -> list[tuple[Any, Any]]:
    """The instruction's firings of a sweep at `at` (the ladder's are left out)."""
    return [item for item in fired(loket, at) if item[0] == "directive"]


def table_rows(loket: Loket, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    with loket.read() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*(table.c[c] for c in columns)).order_by(table.c.id))]


# -- the files ---------------------------------------------------------------------------------


def _org_data() -> dict[str, Any]:
    data, _locate, _text = load_file(ORG_FILE)
    assert isinstance(data, dict)
    return data


def test_assistants_must_be_people_of_the_organisation() -> None:
    data = _org_data()
    data["administrators"][0]["assistants"] = ["j.wolters", "nobody.here", OTHER_ALDERMAN]
    with pytest.raises(InvalidDefinition) as caught:
        parse_organisation(data, "organisation.yaml")
    text = str(caught.value)
    assert "administrators[0].assistants[1]" in text and "unknown person 'nobody.here'" in text
    assert "unknown person 'wethouder.zorg' (an administrator cannot assist another)" in text
    data["administrators"][0]["assistants"] = "j.wolters"
    with pytest.raises(InvalidDefinition, match="expected a list of person ids"):
        parse_organisation(data, "organisation.yaml")


def test_the_sample_organisation_names_assistants_and_keeps_them_when_stored(loket: Loket) -> None:
    org = loket.organisation()  # read back from the database
    assert org.administrators[ALDERMAN].assistants == (ASSISTANT,)
    assert org.acting_for(ASSISTANT, "wijken") == org.administrators[ALDERMAN]
    assert org.acting_for(ASSISTANT, "zorg") is None and org.acting_for(STAFF, "wijken") is None


def test_responsible_must_be_a_unit(loket: Loket, tmp_path: Path) -> None:
    text = (WORKFLOWS / "bewonersinitiatief.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bi.yaml"
    bad.write_text(text.replace("responsible: wijkteam", "responsible: gemeentehuis"), encoding="utf-8")
    with pytest.raises(InvalidDefinition, match=r"responsible.*unknown unit 'gemeentehuis'"):
        loket.load_request_types([str(bad)])
    assert loket.request_type(BI).responsible == "wijkteam"
    assert loket.request_type(BI).answering_unit() == "wijkteam"


def test_command_line_terms() -> None:
    assert [parse_term(t) for t in ("5wd", "10d", "2w", "48h", " 3WD ")] == [
        Duration("working_days", 5), Duration("calendar_days", 10), Duration("weeks", 2),
        Duration("hours", 48), Duration("working_days", 3)]
    assert [term_text(parse_term(t)) for t in ("5wd", "10d", "2w", "48h")] == ["5wd", "10d", "2w", "48h"]
    for bad in ("0wd", "0h", "5", "wd", "5 wd", "-1d", "1.5w", "5m", "", "99999999999d", "3000w"):
        with pytest.raises(InvalidValue):
            parse_term(bad)


# -- who may act -------------------------------------------------------------------------------


def test_the_administrator_and_the_assistant_comment_on_cases_of_the_portfolio(loket: Loket) -> None:
    ref = new_bi(loket)
    loket.comment(ref, "Graag deze week oppakken.", actor=ALDERMAN)
    loket.comment(ref, "Namens de wethouder: wat is de stand?", actor=ASSISTANT)
    comments = history(loket, ref, "comment")
    assert [(e["actor"], e["data"]) for e in comments] == [
        (ALDERMAN, None), (ASSISTANT, {"on_behalf_of": ALDERMAN})]
    # Staff comment as before: no on_behalf_of.
    loket.comment(ref, "Opgepakt.", actor=STAFF)
    assert history(loket, ref, "comment")[-1]["data"] is None
    with pytest.raises(RoleRequired, match=r"wethouder\.zorg may not comment on .*wethouder\.wijken.*j\.wolters"):
        loket.comment(ref, "Niet mijn portefeuille.", actor=OTHER_ALDERMAN)
    assert len(history(loket, ref, "comment")) == 3
    assert verify(loket).ok


def test_administrators_still_do_not_advance_assign_or_change_fields(loket: Loket) -> None:
    ref = new_bi(loket)
    told = "administrators do not advance, assign or change cases"
    with pytest.raises(RoleRequired, match=told):
        loket.advance(ref, "in_behandeling", actor=ALDERMAN)
    with pytest.raises(RoleRequired, match=told):
        loket.assign(ref, STAFF, actor=ALDERMAN)
    with pytest.raises(RoleRequired, match=told):
        loket.set_fields(ref, ["amount=5"], actor=ALDERMAN)
    # The assistant holds no role in the unit: refused like anyone without one.
    with pytest.raises(RoleRequired):
        loket.advance(ref, "in_behandeling", actor=ASSISTANT)
    assert len(loket.history(ref)[1]) == 1


@pytest.mark.parametrize("actor", [LEAD, HEAD, OTHER_ALDERMAN, "d.smit"])
def test_only_the_administrator_or_an_assistant_may_direct(loket: Loket, actor: str) -> None:
    ref = new_bi(loket)
    with pytest.raises(RoleRequired) as caught:
        loket.direct(ref, parse_term("5wd"), "Doe iets", actor=actor)
    assert (f"{actor} may not give an instruction on {ref}: only the administrator of portfolio 'wijken'"
            " (wethouder.wijken) or their assistant j.wolters may") in str(caught.value)
    assert history(loket, ref, "directed") == []


def test_a_closed_case_takes_no_instruction(loket: Loket) -> None:
    ref = new_bi(loket)
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "afwijzen", actor=LEAD, comment="Buiten de regeling")
    with pytest.raises(Refused, match="is closed"):
        loket.direct(ref, parse_term("5wd"), "Doe iets", actor=ALDERMAN)


# -- the instruction ---------------------------------------------------------------------------


def test_an_assistants_instruction_records_the_contract_shape(loket: Loket) -> None:
    ref = new_bi(loket)
    case = loket.direct(ref, parse_term("5wd"), "Binnen een week beoordelen", actor=ASSISTANT)
    (event,) = history(loket, ref, "directed")
    assert event["actor"] == ASSISTANT
    assert event["data"] == {"text": "Binnen een week beoordelen", "within": "5wd",
                             "due": "2026-03-09T22:59:59.000000Z", "state": "ingediend", "replaces": None,
                             "on_behalf_of": ALDERMAN}
    assert (case.directive_due, case.directive_state, case.directive_seq) == (DUE_5WD, "ingediend", event["seq"])
    assert loket.directive_of(case) == {
        "by": ASSISTANT, "on_behalf_of": ALDERMAN, "text": "Binnen een week beoordelen", "within": "5wd",
        "state": "ingediend", "given_at": "2026-03-02T09:00:00.000000Z", "due": "2026-03-09T22:59:59.000000Z",
        "met_at": None, "missed_at": None}


def test_a_second_open_instruction_replaces_the_first(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Eerst", actor=ALDERMAN)
    clock.advance(dt.timedelta(days=1))
    case = loket.direct(ref, parse_term("2w"), "Toch twee weken", actor=ASSISTANT)
    first, second = history(loket, ref, "directed")
    assert first["data"]["replaces"] is None
    assert second["data"]["replaces"] == {"given_at": "2026-03-02T09:00:00.000000Z",
                                          "due": "2026-03-09T22:59:59.000000Z"}
    # Two weeks from Tuesday 3 March: the end of Tuesday 17 March.
    new_due = dt.datetime(2026, 3, 17, 22, 59, 59, tzinfo=dt.UTC)
    assert (case.directive_due, case.directive_seq) == (new_due, second["seq"])
    # The first term passes unnoticed: only the new one counts.
    assert directives(loket, DUE_5WD + SECOND) == []
    assert directives(loket, new_due - SECOND) == []
    assert directives(loket, new_due) == [("directive", ALDERMAN), ("directive", HEAD)]
    assert verify(loket).ok


def test_an_instruction_is_met_when_the_case_leaves_its_state_in_time(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week beoordelen", actor=ALDERMAN)
    clock.set(DUE_5WD - dt.timedelta(hours=2))
    case = loket.advance(ref, "in_behandeling", actor=STAFF)
    assert case.directive_met_at == clock.now()
    assert not case.directive_open()
    assert directives(loket, DUE_5WD + dt.timedelta(days=3)) == []
    shown = loket.directive_of(loket.get_case(ref))
    assert shown is not None and shown["met_at"] == "2026-03-09T20:59:59.000000Z"
    # A later instruction starts afresh: it replaces nothing, it was met.
    loket.direct(ref, parse_term("48h"), "Nu besluiten", actor=ALDERMAN)
    assert history(loket, ref, "directed")[-1]["data"]["replaces"] is None
    assert verify(loket).ok


def test_closing_the_case_meets_the_instruction(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.direct(ref, parse_term("10d"), "Besluit nemen", actor=ALDERMAN)
    clock.advance(dt.timedelta(days=2))
    case = loket.advance(ref, "afwijzen", actor=LEAD, comment="Buiten de regeling")
    assert case.directive_met_at == clock.now() and case.closed_at == clock.now()
    assert verify(loket).ok


def test_a_missed_instruction_fires_once_to_the_administrator_and_the_head(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week beoordelen", actor=ASSISTANT)
    assert directives(loket, DUE_5WD - SECOND) == []
    report = sweep(loket, DUE_5WD)
    assert [(f["rung"], f["to"], f["email"]) for f in report.fired if f["rung"] == "directive"] == [
        ("directive", ALDERMAN, "wethouder.wijken@voorbeeld.example"),
        ("directive", HEAD, "a.jansen@voorbeeld.example")]
    assert directives(loket, DUE_5WD + dt.timedelta(hours=1)) == []
    escalated = [e for e in history(loket, ref, "escalated") if e["data"]["rung"] == "directive"]
    assert [e["data"] for e in escalated] == [
        {"rung": "directive", "kind": "escalation", "to": ALDERMAN, "asked": "administrator",
         "due_at": "2026-03-09T22:59:59.000000Z"},
        {"rung": "directive", "kind": "escalation", "to": HEAD, "asked": "head",
         "due_at": "2026-03-09T22:59:59.000000Z"}]
    seq = loket.get_case(ref).directive_seq
    assert [r for r in table_rows(loket, escalations_t, "stay", "rung", "recipient") if r[1] == "directive"] == [
        (seq, "directive", ALDERMAN)]
    keys = {key for (key,) in table_rows(loket, outbox_t, "key") if "directive" in key}
    assert keys == {f"{ref}/{seq}/directive", f"{ref}/{seq}/directive/{HEAD}"}
    case = loket.get_case(ref)
    assert case.directive_missed_at == DUE_5WD and case.directive_met_at is None
    # Leaving the state afterwards does not make it met.
    clock.set(DUE_5WD + dt.timedelta(hours=10))
    assert loket.advance(ref, "in_behandeling", actor=STAFF).directive_met_at is None
    assert verify(loket).ok


def test_a_case_left_after_the_term_but_before_a_sweep_is_still_missed(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("48h"), "Binnen twee dagen", actor=ALDERMAN)
    due = START + dt.timedelta(hours=48)
    clock.set(due + dt.timedelta(hours=1))
    case = loket.advance(ref, "in_behandeling", actor=STAFF)
    assert case.directive_open() and case.next_fire_at == due
    assert directives(loket, clock.now()) == [("directive", ALDERMAN), ("directive", HEAD)]
    assert verify(loket).ok


def test_a_missed_instruction_at_a_partner_without_a_head_reaches_the_administrator_once(
    loket: Loket, clock: FixedClock,
) -> None:
    ref = loket.new_case("bijdrage", ["title=Buurtpreventie"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_politie", actor=STAFF, assignments=["requested=Extra surveillance"])
    case = loket.direct(ref, parse_term("3wd"), "Politie: graag binnen drie werkdagen reageren", actor=ALDERMAN)
    assert case.owner == "politie"
    due = case.directive_due
    assert due is not None
    assert directives(loket, due) == [("directive", ALDERMAN)]
    assert verify(loket).ok


def test_a_suspension_does_not_stop_the_instructions_term(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week", actor=ALDERMAN)
    loket.suspend(ref, "Wacht op de begroting", actor=STAFF)
    assert loket.get_case(ref).next_fire_at == DUE_5WD
    assert directives(loket, DUE_5WD) == [("directive", ALDERMAN), ("directive", HEAD)]
    clock.set(DUE_5WD + dt.timedelta(days=1))
    case = loket.resume(ref, actor=STAFF)
    assert case.directive_due == DUE_5WD and case.directive_missed_at == DUE_5WD
    assert verify(loket).ok


def test_the_forecast_foresees_a_missed_instruction_and_writes_nothing(loket: Loket) -> None:
    ref = new_bi(loket)
    loket.advance(ref, "in_behandeling", actor=STAFF)  # a state deadline of 10 working days
    loket.direct(ref, parse_term("5wd"), "Binnen een week", actor=ALDERMAN)
    ahead = forecast(loket, 8)
    assert [(f["ref"], f["rung"], f["to"], f["due_at"]) for f in ahead] == [
        (ref, "directive", ALDERMAN, "2026-03-09T22:59:59.000000Z"),
        (ref, "directive", HEAD, "2026-03-09T22:59:59.000000Z")]
    assert forecast(loket, 7) == []  # the horizon ends before the term
    assert table_rows(loket, escalations_t, "id") == []
    assert loket.get_case(ref).directive_missed_at is None


def test_explain_counts_the_instructions_term(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week", actor=ASSISTANT)
    lines = explain_case(loket, loket.get_case(ref))
    start = next(i for i, line in enumerate(lines) if line.startswith("Instruction"))
    block = "\n".join(lines[start:])
    assert "Instruction (bestuurlijke opdracht) by j.wolters for wethouder.wijken" in block
    assert "(5 working days)" in block and "2026-03-09" in block and "NOTE" not in block
    assert "open: met when the case leaves that state" in block
    clock.set(DUE_5WD - dt.timedelta(days=1))
    loket.advance(ref, "in_behandeling", actor=STAFF)
    lines = explain_case(loket, loket.get_case(ref))
    assert any(line.startswith("  met: the case left the state at 2026-03-08") for line in lines)


def test_verify_rebuilds_the_instruction_and_finds_it_edited(loket: Loket, clock: FixedClock) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week", actor=ALDERMAN)
    sweep(loket, DUE_5WD)
    clock.set(DUE_5WD + dt.timedelta(hours=12))
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.direct(ref, parse_term("2w"), "Nu besluiten", actor=ASSISTANT)
    assert verify(loket).ok
    with loket.engine.begin() as conn:
        conn.execute(sa.update(cases_t).where(cases_t.c.ref == ref)
                     .values(directive_due=DUE_5WD + dt.timedelta(days=30)))
    result = verify(loket)
    assert not result.ok and ref in str(result.failure) and "directive_due" in str(result.failure)


def test_an_instruction_event_with_a_damaged_term_is_reported(loket: Loket) -> None:
    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week", actor=ALDERMAN)
    with loket.engine.begin() as conn:
        conn.execute(sa.update(events_t).where(events_t.c.action == "directed")
                     .values(data={"text": "x", "due": "morgen", "state": "ingediend"}))
    result = verify(loket)
    assert not result.ok and ref in str(result.failure)


# -- the unit that answers for the legal term ------------------------------------------------------


def test_the_responsible_units_lead_extends_while_another_unit_holds_the_case(loket: Loket) -> None:
    ref = new_bi(loket)
    loket.advance(ref, "in_behandeling", actor=STAFF)
    case = loket.advance(ref, "vraag_bijdrage", actor=STAFF, assignments=["amount=900"])
    assert case.owner == "openbare_ruimte"
    extended = loket.extend(ref, Duration("weeks", 2), "Advies openbare ruimte", actor=LEAD)
    assert case.case_due is not None and extended.case_due is not None and extended.case_due > case.case_due
    # The holding unit's lead still may, as before; a lead of neither may not.
    loket.extend(ref, Duration("weeks", 1), "Nog een week", actor="e.vanleeuwen")
    with pytest.raises(RoleRequired, match="unit 'wijkteam' or 'openbare_ruimte'"):
        loket.extend(ref, Duration("weeks", 1), "Niet van mij", actor="w.bos")
    with pytest.raises(RoleRequired):
        loket.extend(ref, Duration("weeks", 1), "Ik ben staf", actor="l.mulder")
    assert verify(loket).ok


def _without_responsible(loket: Loket, tmp_path: Path) -> str:
    """The bundled initiative as a type without `responsible` (key `bi_zonder`, prefix BZ)."""
    text = (WORKFLOWS / "bewonersinitiatief.yaml").read_text(encoding="utf-8")
    text = text.replace("key: bewonersinitiatief", "key: bi_zonder").replace("prefix: BI", "prefix: BZ")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("responsible:"))
    path = tmp_path / "bi_zonder.yaml"
    path.write_text(text, encoding="utf-8")
    loket.load_request_types([str(path)])
    assert loket.request_type("bi_zonder").responsible is None
    return "bi_zonder"


def test_without_responsible_the_initial_states_unit_answers(loket: Loket, clock: FixedClock, tmp_path: Path) -> None:
    key = _without_responsible(loket, tmp_path)
    ref = loket.new_case(key, ["title=Bankje"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_bijdrage", actor=STAFF, assignments=["amount=300"])
    loket.extend(ref, Duration("weeks", 1), "Advies", actor=LEAD)  # the wijkteam owns the initial state
    # The breach of the legal term goes to the administrator alone, as before.
    case = loket.get_case(ref)
    assert case.case_due is not None
    lead_time = [f for f in fired(loket, case.case_due) if f[0] == "lead_time"]
    assert lead_time == [("lead_time", ALDERMAN)]


def test_with_responsible_the_breach_reaches_its_head_and_the_administrator(loket: Loket) -> None:
    ref = new_bi(loket)
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_bijdrage", actor=STAFF, assignments=["amount=900"])
    case = loket.get_case(ref)
    assert case.case_due is not None
    report = sweep(loket, case.case_due)
    lead_time = [(f["to"], f["email"]) for f in report.fired if f["rung"] == "lead_time"]
    assert lead_time == [(ALDERMAN, "wethouder.wijken@voorbeeld.example"), (HEAD, "a.jansen@voorbeeld.example")]
    assert [r for r in table_rows(loket, escalations_t, "rung", "recipient") if r[0] == "lead_time"] == [
        ("lead_time", ALDERMAN)]
    keys = {key for (key,) in table_rows(loket, outbox_t, "key") if "lead_time" in key}
    assert keys == {f"{ref}/0/lead_time", f"{ref}/0/lead_time/{HEAD}"}
    assert verify(loket).ok


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def sim(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A simulation database with the sample organisation, one case BI-2026-00001 in it."""
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    monkeypatch.setenv("LOKET_DB", url)
    monkeypatch.setenv("LOKET_NOW", "2026-03-02T10:00")
    assert run_cli(capsys, "init", "--sample", "--simulation")[0] == 0
    assert run_cli(capsys, "--as", STAFF, "case", "new", BI, "--data", "title=Feest")[0] == 0
    return "BI-2026-00001"


def _events(capsys: pytest.CaptureFixture[str], ref: str) -> list[dict[str, Any]]:
    code, out, _ = run_cli(capsys, "audit", "history", ref, "--json")
    assert code == 0
    events: list[dict[str, Any]] = json.loads(out)
    return events


def test_case_direct_on_the_command_line(sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--as", ASSISTANT, "case", "direct", sim, "--within", "5wd",
                             "--text", "Binnen een week beoordelen", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["directive"] == {
        "by": ASSISTANT, "on_behalf_of": ALDERMAN, "text": "Binnen een week beoordelen", "within": "5wd",
        "state": "ingediend", "given_at": "2026-03-02T09:00:00.000000Z", "due": "2026-03-09T22:59:59.000000Z",
        "met_at": None, "missed_at": None}
    code, out, _ = run_cli(capsys, "--as", ALDERMAN, "case", "direct", sim, "--within", "2w", "--text", "Twee weken")
    assert code == 0 and "(it replaces the open one)" in out
    code, out, _ = run_cli(capsys, "case", "show", sim)
    assert code == 0
    assert "instruction   open: by wethouder.wijken on 2026-03-02 10:00, within 2w (due 2026-03-16 23:59)" in out
    code, out, _ = run_cli(capsys, "case", "show", sim, "--json")
    assert json.loads(out)["directive"]["within"] == "2w"
    code, out, _ = run_cli(capsys, "case", "show", sim, "--explain")
    assert "Instruction (bestuurlijke opdracht) by wethouder.wijken" in out
    code, out, _ = run_cli(capsys, "--now", "2026-03-17T08:00", "escalate", "--json")
    assert [(f["rung"], f["to"]) for f in json.loads(out)["fired"] if f["rung"] == "directive"] == [
        ("directive", ALDERMAN), ("directive", HEAD)]
    code, out, _ = run_cli(capsys, "--now", "2026-03-17T08:00", "case", "show", sim)
    assert "instruction   MISSED (escalated 2026-03-17 08:00)" in out
    assert run_cli(capsys, "--now", "2026-03-17T08:00", "audit", "verify")[0] == 0


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--as", LEAD, "case", "direct", "{ref}", "--within", "5wd", "--text", "x"], 1,
     "only the administrator of portfolio 'wijken' (wethouder.wijken) or their assistant j.wolters may"),
    (["--as", OTHER_ALDERMAN, "case", "direct", "{ref}", "--within", "5wd", "--text", "x"], 1,
     "wethouder.zorg may not give an instruction"),
    (["--as", ALDERMAN, "case", "direct", "{ref}", "--within", "0wd", "--text", "x"], 2,
     "a term must be longer than zero"),
    (["--as", ALDERMAN, "case", "direct", "{ref}", "--within", "5 dagen", "--text", "x"], 2,
     "expected a term like 5wd"),
    (["--as", ALDERMAN, "case", "direct", "{ref}", "--within", "9999w", "--text", "x"], 2,
     "weeks must be at most 522"),
    (["--as", ALDERMAN, "--now", "2199-06-01T10:00", "case", "direct", "{ref}", "--within", "2600wd",
      "--text", "x"], 2, "runs past the end of the working-day calendar"),
    (["--as", ALDERMAN, "case", "direct", "{ref}", "--within", "5wd", "--text", "  "], 2,
     "an instruction needs text"),
    (["--as", ALDERMAN, "case", "direct", "BI-2026-09999", "--within", "5wd", "--text", "x"], 2,
     "unknown case"),
    (["--as", "niemand", "case", "direct", "{ref}", "--within", "5wd", "--text", "x"], 2,
     "unknown person 'niemand'"),
    (["--as", ALDERMAN, "case", "advance", "{ref}", "in_behandeling"], 1,
     "administrators do not advance, assign or change cases"),
    (["--as", ALDERMAN, "case", "assign", "{ref}", STAFF], 1, "administrators do not advance"),
    (["--as", ALDERMAN, "case", "set", "{ref}", "amount=5"], 1, "administrators do not advance"),
])
def test_bad_input_to_case_direct_is_one_error_line_and_writes_nothing(
    sim: str, capsys: pytest.CaptureFixture[str], args: list[str], code: int, words: str,
) -> None:
    before = _events(capsys, sim)
    got, out, err = run_cli(capsys, *(a.replace("{ref}", sim) for a in args))
    assert got == code, err
    assert err.startswith("Error:") and len(err.strip().splitlines()) == 1 and words in err, err
    assert out == ""
    assert _events(capsys, sim) == before


def test_the_unit_and_the_assignee_are_told_of_an_instruction(loket: Loket) -> None:
    ref = loket.new_case(BI, ["title=Speeltuin Wilgenplein"], actor=STAFF, assign="t.visser").ref
    loket.direct(ref, parse_term("5wd"), "Binnen een week beoordelen", actor=ASSISTANT)
    seq = loket.get_case(ref).directive_seq
    with loket.read() as conn:
        rows = conn.execute(sa.select(outbox_t.c.key, outbox_t.c.kind, outbox_t.c.context)
                            .where(outbox_t.c.key.like(f"{ref}/e{seq}/%")).order_by(outbox_t.c.key)).all()
    assert [(key, kind) for key, kind, _ in rows] == [
        (f"{ref}/e{seq}/t.visser", "case_update"), (f"{ref}/e{seq}/unit:wijkteam", "case_update")]
    context = rows[0][2]
    assert context["event"] == "directed" and context["comment"] == "Binnen een week beoordelen"
    assert context["state_due"] == "2026-03-09T22:59:59.000000Z"
    assert context["actor_name"] == "Joost Wolters (namens Fatima El Idrissi)"


def _plain(message: Any) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_a_missed_instruction_is_mailed_through_the_outbox_in_plain_dutch(loket: Loket, clock: FixedClock) -> None:
    from notifications.delivery import MailSettings, deliver
    from notifications.transports import MemoryTransport

    ref = new_bi(loket)
    loket.direct(ref, parse_term("5wd"), "Binnen een week beoordelen", actor=ALDERMAN)
    memory = MemoryTransport()
    deliver(loket, MailSettings(sender=None, transport=memory, template_dir=None))  # the unit is told
    told = {str(m["To"].addresses[0].addr_spec): _plain(m) for m in memory.sent}
    assert "bestuurlijke opdracht gegeven" in told["wijkteam.noord@voorbeeld.example"]
    assert "Binnen een week beoordelen" in told["wijkteam.noord@voorbeeld.example"]
    clock.set(DUE_5WD + SECOND)
    sweep(loket)
    memory = MemoryTransport()
    deliver(loket, MailSettings(sender=None, transport=memory, template_dir=None))
    bodies = {str(m["To"].addresses[0].addr_spec): _plain(m) for m in memory.sent}
    for address in ("wethouder.wijken@voorbeeld.example", "a.jansen@voorbeeld.example"):
        assert "bestuurlijke opdracht niet uitgevoerd" in bodies[address], bodies[address]
        assert ref in bodies[address]
