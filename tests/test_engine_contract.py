"""The contract of a case, run on a real SQLite file and a real PostgreSQL database.

One bewonersinitiatief (workflows/bewonersinitiatief.yaml) goes from `ingediend` to a
decision, advanced by the people the sample organisation gives the right roles: c.devries
(staff in wijkteam), b.bakker (lead), a.jansen (head); d.smit is the auditor. Every refusal
raises its own kind of error and writes nothing; every change is one event on an unbroken
chain, and `audit verify` names the case and event of any row changed behind its back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core.history import GENESIS, chain_hash, event_content
from engine.errors import (
    CommentRequired,
    ConditionFailed,
    Conflict,
    InvalidValue,
    LoketError,
    MissingField,
    NotFound,
    Refused,
    RoleRequired,
    TransitionNotAllowed,
)
from engine.store.tables import cases_t, events_t

BI = "bewonersinitiatief"
WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
STAFF, LEAD, HEAD, AUDITOR = "c.devries", "b.bakker", "a.jansen", "d.smit"


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def new_case(loket: Loket, **data: str) -> str:
    data.setdefault("title", "Straatfeest Lindelaan")
    return loket.new_case(BI, [f"{k}={v}" for k, v in data.items()], actor=STAFF).ref


def to_besluit(loket: Loket, ref: str, amount: str = "2500") -> None:
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "naar_besluit", actor=STAFF, assignments=[f"amount={amount}"])


def row(loket: Loket, ref: str) -> dict[str, Any]:
    with loket.read() as conn:
        return dict(conn.execute(sa.select(cases_t).where(cases_t.c.ref == ref)).mappings().one())


def events(loket: Loket, ref: str) -> list[dict[str, Any]]:
    return loket.history(ref)[1]


def footprint(loket: Loket, ref: str) -> tuple[Any, ...]:
    """What any change to a case would alter: its row's version and values, and its events."""
    r = row(loket, ref)
    return (
        r["version"],
        r["state"],
        r["assignee"],
        r["data"],
        r["last_seq"],
        r["last_hash"],
        len(events(loket, ref)),
    )


def assert_refused(
    loket: Loket,
    ref: str,
    kind: type[LoketError],
    action: Callable[[], Any],
    words: str,
    label: str = "",
) -> None:
    """`action` raises exactly `kind` with `words` in its message, and leaves the case as it was."""
    before = footprint(loket, ref)
    try:
        action()
    except LoketError as exc:
        assert type(exc) is kind, f"{label}: {type(exc).__name__}: {exc.message}"
        assert words in exc.message, f"{label}: {exc.message}"
    else:
        pytest.fail(f"{label}: not refused")
    assert footprint(loket, ref) == before, f"{label}: something was written"


def execute(loket: Loket, statement: Any) -> None:
    with loket.engine.begin() as conn:
        conn.execute(statement)


# -- creating --------------------------------------------------------------------------------


def test_a_new_case_gets_prefix_year_and_the_next_number(loket: Loket) -> None:
    first = loket.new_case(
        BI, ["title=Moestuin", "amount=12,50", "email=bewoner@voorbeeld.example"], actor=STAFF
    )
    assert first.ref == "BI-2026-00001"
    assert (first.type_key, first.type_version, first.state, first.owner) == (
        BI,
        1,
        "ingediend",
        "wijkteam",
    )
    assert first.data == {
        "title": "Moestuin",
        "amount": "12.50",
        "email": "bewoner@voorbeeld.example",
    }
    assert first.created_by == STAFF
    assert first.created_at == first.state_entered_at == utc("2026-03-02T09:00:00")
    assert new_case(loket) == "BI-2026-00002"
    # every prefix counts on its own
    melding = loket.new_case(
        "melding", ["omschrijving=Lantaarnpaal stuk", "locatie=Lindelaan 3"], actor=STAFF
    )
    assert melding.ref == "ME-2026-00001"
    assert new_case(loket) == "BI-2026-00003"


def test_the_year_of_a_ref_is_the_municipalitys_local_year(loket: Loket, clock: FixedClock) -> None:
    clock.set(utc("2026-12-31T22:30:00"))  # 23:30 in Amsterdam: still 2026
    assert new_case(loket) == "BI-2026-00001"
    clock.set(utc("2026-12-31T23:30:00"))  # 00:30 on New Year's Day in Amsterdam
    assert new_case(loket) == "BI-2027-00001"
    assert new_case(loket) == "BI-2027-00002"


def test_creating_writes_one_created_event(loket: Loket) -> None:
    ref = new_case(loket, amount="100")
    [created] = events(loket, ref)
    assert created["seq"] == 1
    assert (created["action"], created["actor"], created["from_state"], created["to_state"]) == (
        "created",
        STAFF,
        None,
        "ingediend",
    )
    assert created["data"] == {"title": "Straatfeest Lindelaan", "amount": "100"}
    assert created["prev_hash"] == GENESIS
    assert row(loket, ref)["last_hash"] == created["hash"]


def test_a_new_case_with_an_assignee_records_the_assignment(loket: Loket) -> None:
    case = loket.new_case(BI, ["title=Feest"], actor=STAFF, assign="l.mulder")
    assert case.assignee == "l.mulder"
    assert [e["action"] for e in events(loket, case.ref)] == ["created", "assigned"]


NOT_MADE: list[tuple[Any, ...]] = [
    # (actor, FIELD=VALUE..., error, words of the message)
    (STAFF, ["amount=100"], MissingField, "needs field title"),
    (STAFF, ["title=Feest", "amount=veel"], InvalidValue, "field 'amount' expects"),
    (STAFF, ["title=Feest", "kleur=rood"], NotFound, "unknown field 'kleur'"),
    (AUDITOR, ["title=Feest"], RoleRequired, "needs a role in unit 'wijkteam'"),
    ("k.hendriks", ["title=Feest"], RoleRequired, "needs a role in unit 'wijkteam'"),
    ("nobody", ["title=Feest"], NotFound, "unknown person 'nobody'"),
]


def test_a_case_that_cannot_be_made_is_not_made(loket: Loket) -> None:
    for actor, args, kind, words in NOT_MADE:
        with pytest.raises(kind, match=words):
            loket.new_case(BI, args, actor=actor)
    with loket.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cases_t)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(events_t)).scalar_one() == 0
    assert new_case(loket) == "BI-2026-00001"  # no number was used up


def test_an_unknown_request_type_is_not_found(loket: Loket) -> None:
    with pytest.raises(NotFound, match="unknown request type 'parkeervergunning'"):
        loket.new_case("parkeervergunning", ["title=x"], actor=STAFF)


# -- advancing -------------------------------------------------------------------------------


def test_a_case_goes_to_a_decision_by_the_right_people(loket: Loket, clock: FixedClock) -> None:
    ref = new_case(loket)
    assert loket.advance(ref, "in_behandeling", actor=STAFF).state == "beoordeling"
    clock.advance(dt.timedelta(days=1))
    case = loket.advance(ref, "naar_besluit", actor=STAFF, assignments=["amount=2500"])
    assert (case.state, case.owner, case.data["amount"]) == ("besluit", "wijkteam", "2500")
    clock.advance(dt.timedelta(days=1))
    case = loket.advance(ref, "toekennen", actor=LEAD, comment="Mooi initiatief")
    assert (case.state, case.owner, case.closed_at, case.state_due) == (
        "toegekend",
        None,
        clock.now(),
        None,
    )
    trail = [
        (e["seq"], e["actor"], e["action"], e["from_state"], e["to_state"], e["trigger"])
        for e in events(loket, ref)
    ]
    assert trail == [
        (1, STAFF, "created", None, "ingediend", None),
        (2, STAFF, "transition", "ingediend", "beoordeling", "in_behandeling"),
        (3, STAFF, "transition", "beoordeling", "besluit", "naar_besluit"),
        (4, LEAD, "transition", "besluit", "toegekend", "toekennen"),
    ]
    history = events(loket, ref)
    assert history[2]["data"] == {"amount": "2500"}
    assert history[3]["comment"] == "Mooi initiatief"
    assert [e["at"] for e in history] == [
        utc("2026-03-02T09:00"),
        utc("2026-03-02T09:00"),
        utc("2026-03-03T09:00"),
        utc("2026-03-04T09:00"),
    ]
    assert row(loket, ref)["version"] == 5  # written once at creation and once per step


def test_above_the_leads_mandate_only_the_head_grants(loket: Loket) -> None:
    ref = new_case(loket)
    to_besluit(loket, ref, amount="8500")
    assert_refused(
        loket,
        ref,
        ConditionFailed,
        lambda: loket.advance(ref, "toekennen", actor=LEAD),
        "amount ≤ 5000 does not hold",
    )
    assert_refused(
        loket,
        ref,
        RoleRequired,
        lambda: loket.advance(ref, "toekennen_groot", actor=LEAD),
        "needs role head in unit 'wijkteam'",
    )
    assert loket.advance(ref, "toekennen_groot", actor=HEAD).state == "toegekend"


def test_a_head_holds_the_leads_role_too(loket: Loket) -> None:
    ref = new_case(loket)
    to_besluit(loket, ref, amount="5000")
    assert loket.advance(ref, "toekennen", actor=HEAD).state == "toegekend"


REFUSALS: list[tuple[Any, ...]] = [
    # (state to bring the case to, actor, trigger, options, error, words of the message)
    (
        "ingediend",
        LEAD,
        "toekennen",
        {},
        TransitionNotAllowed,
        "'toekennen' is not allowed in state 'ingediend'",
    ),
    ("ingediend", STAFF, "goedkeuren", {}, NotFound, "has no trigger 'goedkeuren'"),
    ("besluit", STAFF, "toekennen", {}, RoleRequired, "needs role lead in unit 'wijkteam'"),
    (
        "ingediend",
        "k.hendriks",
        "in_behandeling",
        {},
        RoleRequired,
        "needs role staff in unit 'wijkteam'",
    ),
    ("ingediend", AUDITOR, "in_behandeling", {}, RoleRequired, "d.smit may not fire"),
    ("beoordeling", STAFF, "naar_besluit", {}, MissingField, "'naar_besluit' needs field amount"),
    (
        "beoordeling",
        STAFF,
        "naar_besluit",
        {"assignments": ["amount="]},
        MissingField,
        "needs field amount",
    ),
    ("beoordeling", LEAD, "afwijzen", {}, CommentRequired, "'afwijzen' needs a comment"),
    (
        "beoordeling",
        LEAD,
        "afwijzen",
        {"comment": "   "},
        CommentRequired,
        "'afwijzen' needs a comment",
    ),
    (
        "besluit",
        LEAD,
        "toekennen",
        {"assignments": ["amount=8500"]},
        ConditionFailed,
        "amount ≤ 5000",
    ),
    ("besluit", HEAD, "toekennen_groot", {}, ConditionFailed, "amount > 5000"),
    (
        "beoordeling",
        STAFF,
        "naar_besluit",
        {"assignments": ["amount=-1"]},
        InvalidValue,
        "at least 0",
    ),
    (
        "beoordeling",
        STAFF,
        "naar_besluit",
        {"assignments": ["kleur=rood"]},
        NotFound,
        "unknown field 'kleur'",
    ),
    (
        "beoordeling",
        STAFF,
        "naar_besluit",
        {"assignments": ["title="]},
        MissingField,
        "needs field title",
    ),
    ("ingediend", "nobody", "in_behandeling", {}, NotFound, "unknown person 'nobody'"),
    # during `bijdrage` the case is Openbare Ruimte's: the wijkteam's lead holds no role there
    (
        "bijdrage",
        LEAD,
        "bijdrage_geleverd",
        {},
        RoleRequired,
        "needs role staff in unit 'openbare_ruimte'",
    ),
]


def test_a_refused_step_writes_nothing(loket: Loket) -> None:
    for state, actor, trigger, options, kind, words in REFUSALS:
        ref = new_case(loket)
        if state != "ingediend":
            loket.advance(ref, "in_behandeling", actor=STAFF)
        if state in ("besluit", "bijdrage"):
            step = "naar_besluit" if state == "besluit" else "vraag_bijdrage"
            loket.advance(ref, step, actor=STAFF, assignments=["amount=2500"])
        assert row(loket, ref)["state"] == state
        assert_refused(
            loket,
            ref,
            kind,
            partial(loket.advance, ref, trigger, actor=actor, **options),
            words,
            label=f"{actor} {trigger} {options} in {state}",
        )


def test_refusals_map_to_exit_codes() -> None:
    for kind in (
        TransitionNotAllowed,
        RoleRequired,
        MissingField,
        CommentRequired,
        ConditionFailed,
        Refused,
    ):
        assert kind("x").exit_code == 1
    for bad_input in (NotFound, InvalidValue):
        assert bad_input("x").exit_code == 2


def test_an_unknown_case_is_not_found(loket: Loket) -> None:
    with pytest.raises(NotFound, match="unknown case 'BI-2026-00042'"):
        loket.advance("BI-2026-00042", "in_behandeling", actor=STAFF)


def test_data_given_with_a_step_counts_for_its_conditions(loket: Loket) -> None:
    small = new_case(loket)
    to_besluit(loket, small, amount="100")
    # the stored 100 would pass; the 8500 given with the step does not
    assert_refused(
        loket,
        small,
        ConditionFailed,
        lambda: loket.advance(small, "toekennen", actor=LEAD, assignments=["amount=8500"]),
        "amount ≤ 5000",
    )
    assert row(loket, small)["data"]["amount"] == "100"
    big = new_case(loket)
    to_besluit(loket, big, amount="8500")
    # the stored 8500 would fail; the 4000 given with the step passes, and is stored
    case = loket.advance(big, "toekennen", actor=LEAD, assignments=["amount=4000"])
    assert (case.state, case.data["amount"]) == ("toegekend", "4000")
    assert row(loket, big)["data"]["amount"] == "4000"
    assert events(loket, big)[-1]["data"] == {"amount": "4000"}


def test_a_field_emptied_with_a_step_is_gone_as_with_set(loket: Loket) -> None:
    """`FIELD=` empties a field the same way with `case advance --data` as with `case set`."""
    with_step = new_case(loket, category="groen")
    with_set = new_case(loket, category="groen")
    stepped = loket.advance(with_step, "in_behandeling", actor=STAFF, assignments=["category="])
    assert stepped.state == "beoordeling"
    loket.set_fields(with_set, ["category="], actor=STAFF)
    assert row(loket, with_set)["data"] == {"title": "Straatfeest Lindelaan"}
    assert row(loket, with_step)["data"] == row(loket, with_set)["data"]


def test_a_dry_run_shows_the_outcome_and_writes_nothing(loket: Loket) -> None:
    ref = new_case(loket)
    loket.advance(ref, "in_behandeling", actor=STAFF)
    before = footprint(loket, ref)
    outcome = loket.advance(
        ref, "naar_besluit", actor=STAFF, assignments=["amount=300"], dry_run=True
    )
    assert (outcome.state, outcome.data["amount"]) == ("besluit", "300")
    assert footprint(loket, ref) == before
    with pytest.raises(MissingField):
        loket.advance(ref, "naar_besluit", actor=STAFF, dry_run=True)
    assert footprint(loket, ref) == before


def test_a_write_based_on_a_stale_read_is_a_conflict_and_writes_nothing(
    loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone read the case, someone else changed it, then the first one writes."""
    ref = new_case(loket)
    stale = loket.get_case(ref)
    loket.comment(ref, "Tussendoor gebeld", actor=LEAD)
    monkeypatch.setattr(Loket, "get_case", lambda self, ref, conn=None: replace(stale))
    words = f"{ref} was changed by someone else meanwhile; nothing was written"
    assert_refused(
        loket, ref, Conflict, partial(loket.advance, ref, "in_behandeling", actor=STAFF), words
    )
    assert_refused(loket, ref, Conflict, partial(loket.assign, ref, "l.mulder", actor=LEAD), words)
    assert_refused(
        loket, ref, Conflict, partial(loket.set_fields, ref, ["amount=5"], actor=STAFF), words
    )
    assert Conflict(words).exit_code == 3
    monkeypatch.undo()
    assert [e["action"] for e in events(loket, ref)] == ["created", "comment"]
    assert verify(loket).ok


def test_a_closed_case_refuses_every_change(loket: Loket) -> None:
    ref = new_case(loket)
    loket.advance(ref, "intrekken", actor=STAFF, comment="Bewoner ziet ervan af")
    assert row(loket, ref)["closed_at"] is not None
    assert_refused(
        loket, ref, Refused, lambda: loket.advance(ref, "in_behandeling", actor=STAFF), "is closed"
    )
    assert_refused(
        loket, ref, Refused, lambda: loket.assign(ref, "l.mulder", actor=HEAD), "is closed"
    )
    assert_refused(
        loket, ref, Refused, lambda: loket.set_fields(ref, ["amount=5"], actor=HEAD), "is closed"
    )


# -- assign, comment, set --------------------------------------------------------------------


def test_assign_comment_and_set_are_events(loket: Loket) -> None:
    ref = new_case(loket, email="bewoner@voorbeeld.example")
    assert loket.assign(ref, "l.mulder", actor=LEAD).assignee == "l.mulder"
    loket.comment(ref, "  Bewoner gebeld  ", actor="l.mulder")
    case = loket.set_fields(ref, ["amount=300", "category=groen"], actor="l.mulder")
    assert case.data == {
        "title": "Straatfeest Lindelaan",
        "email": "bewoner@voorbeeld.example",
        "amount": "300",
        "category": "groen",
    }
    case = loket.set_fields(ref, ["category="], actor="l.mulder")  # FIELD= empties a field
    assert "category" not in case.data
    trail = [(e["actor"], e["action"], e["comment"], e["data"]) for e in events(loket, ref)][1:]
    assert trail == [
        (LEAD, "assigned", None, {"assignee": "l.mulder"}),
        ("l.mulder", "comment", "Bewoner gebeld", None),
        ("l.mulder", "data_changed", None, {"amount": "300", "category": "groen"}),
        ("l.mulder", "data_changed", None, {"category": None}),
    ]
    assert row(loket, ref)["state"] == "ingediend"
    assert verify(loket).ok


OTHER_REFUSALS: list[tuple[Any, ...]] = [
    (
        lambda lk, ref: lk.assign(ref, "k.hendriks", actor=LEAD),
        Refused,
        "no role in unit 'wijkteam'",
    ),
    (lambda lk, ref: lk.assign(ref, "nobody", actor=LEAD), NotFound, "unknown person 'nobody'"),
    (lambda lk, ref: lk.assign(ref, "l.mulder", actor=AUDITOR), RoleRequired, "auditors read"),
    (
        lambda lk, ref: lk.assign(ref, "l.mulder", actor="k.hendriks"),
        RoleRequired,
        "needs a role in unit",
    ),
    (lambda lk, ref: lk.comment(ref, "Gezien", actor=AUDITOR), RoleRequired, "auditors read"),
    (lambda lk, ref: lk.comment(ref, "   ", actor=STAFF), InvalidValue, "a comment needs text"),
    (
        lambda lk, ref: lk.set_fields(ref, ["amount=5"], actor=AUDITOR),
        RoleRequired,
        "auditors read",
    ),
    (
        lambda lk, ref: lk.set_fields(ref, ["title="], actor=STAFF),
        MissingField,
        "needs field title",
    ),
    (
        lambda lk, ref: lk.set_fields(ref, ["amount=veel"], actor=STAFF),
        InvalidValue,
        "field 'amount' expects",
    ),
    (
        lambda lk, ref: lk.set_fields(ref, ["kleur=rood"], actor=STAFF),
        NotFound,
        "unknown field 'kleur'",
    ),
    (
        lambda lk, ref: lk.set_fields(ref, ["title=Straatfeest Lindelaan"], actor=STAFF),
        Refused,
        "nothing changed",
    ),
    (lambda lk, ref: lk.set_fields(ref, [], actor=STAFF), InvalidValue, "at least one FIELD=VALUE"),
]


def test_a_refused_assign_comment_or_set_writes_nothing(loket: Loket) -> None:
    ref = new_case(loket)
    for n, (action, kind, words) in enumerate(OTHER_REFUSALS):
        assert_refused(
            loket, ref, kind, partial(action, loket, ref), words, label=f"OTHER_REFUSALS[{n}]"
        )


# -- versions of a request type ----------------------------------------------------------------


def test_a_changed_request_type_is_a_new_version_and_old_cases_keep_theirs(
    loket: Loket, tmp_path: Path
) -> None:
    original = WORKFLOWS / "bewonersinitiatief.yaml"
    old_ref = new_case(loket)
    to_besluit(loket, old_ref, amount="8000")
    [same] = loket.load_request_types([original])
    assert (same.key, same.version, same.changed) == (BI, 1, False)

    changed = tmp_path / "bewonersinitiatief.yaml"
    text = original.read_text(encoding="utf-8")
    assert text.count("{lte: 5000}") == 1 and text.count("{gt: 5000}") == 1
    changed.write_text(
        text.replace("{lte: 5000}", "{lte: 10000}").replace("{gt: 5000}", "{gt: 10000}"),
        encoding="utf-8",
    )
    [loaded] = loket.load_request_types([changed])
    assert (loaded.key, loaded.version, loaded.changed) == (BI, 2, True)
    [again] = loket.load_request_types([changed])
    assert (again.version, again.changed) == (2, False)

    new_ref = new_case(loket)
    to_besluit(loket, new_ref, amount="8000")
    assert row(loket, old_ref)["type_version"] == 1
    assert row(loket, new_ref)["type_version"] == 2
    # the old case still follows version 1: 8000 is above the lead's mandate there
    assert_refused(
        loket,
        old_ref,
        ConditionFailed,
        lambda: loket.advance(old_ref, "toekennen", actor=LEAD),
        "amount ≤ 5000",
    )
    assert loket.advance(old_ref, "toekennen_groot", actor=HEAD).state == "toegekend"
    assert loket.advance(new_ref, "toekennen", actor=LEAD).state == "toegekend"
    assert verify(loket).ok


def test_a_request_type_cannot_be_loaded_before_an_organisation(
    db_url: str, clock: FixedClock
) -> None:
    from engine.errors import ConfigurationError
    from engine.store.db import open_engine

    engine = open_engine(db_url)
    try:
        with pytest.raises(ConfigurationError, match="load the organisation first"):
            Loket(engine, clock).load_request_types([WORKFLOWS / "melding.yaml"])
    finally:
        engine.dispose()


# -- deadlines on entering a state ------------------------------------------------------------

# From Monday 2 March 2026, 10:00 in Amsterdam (UTC+1): each deadline ends at 23:59:59 local,
# and the first rung of the type's ladder fires two working days before it.
ENTERED: list[tuple[Any, ...]] = [
    # (how to get there, state, state_due, next_fire_at)
    ([], "ingediend", "2026-03-09T22:59:59", "2026-03-05T22:59:59"),  # 5 working days: Mon 9
    (
        [("in_behandeling", {})],
        "beoordeling",
        "2026-03-16T22:59:59",
        "2026-03-12T22:59:59",
    ),  # 10: Mon 16
    (
        [("in_behandeling", {}), ("naar_besluit", {"assignments": ["amount=10"]})],
        "besluit",
        "2026-03-09T22:59:59",
        "2026-03-05T22:59:59",
    ),  # 7 calendar days: Mon 9
    (
        [("in_behandeling", {}), ("vraag_bijdrage", {"assignments": ["amount=10"]})],
        "bijdrage",
        "2026-03-16T22:59:59",
        "2026-03-12T22:59:59",
    ),
    (
        [("vraag_informatie", {"comment": "Begroting ontbreekt"})],
        "wacht_op_bewoner",
        None,
        None,
    ),  # clock stands still
    ([("intrekken", {"comment": "Ingetrokken"})], "ingetrokken", None, None),  # closed
]


def test_entering_a_state_sets_its_deadline_and_next_firing(loket: Loket) -> None:
    for steps, state, due, fire in ENTERED:
        ref = new_case(loket)
        for trigger, options in steps:
            loket.advance(ref, trigger, actor=STAFF, **options)
        r = row(loket, ref)
        assert r["state"] == state
        assert (r["state_due"], r["next_fire_at"]) == (
            utc(due) if due else None,
            utc(fire) if fire else None,
        ), state


def test_the_deadline_counts_from_the_day_the_state_is_entered(
    loket: Loket, clock: FixedClock
) -> None:
    ref = new_case(loket)
    clock.set(utc("2026-03-05T15:00:00"))  # Thursday
    loket.advance(ref, "in_behandeling", actor=STAFF)
    r = row(loket, ref)
    assert r["state_entered_at"] == utc("2026-03-05T15:00:00")
    assert r["state_due"] == utc("2026-03-19T22:59:59")  # 10 working days after Thu 5: Thu 19
    assert r["next_fire_at"] == utc("2026-03-17T22:59:59")  # two working days before: Tue 17


# -- the history and its verification ---------------------------------------------------------


def busy_history(loket: Loket, clock: FixedClock) -> list[str]:
    """Three cases with some history each; the middle one has four events."""
    refs = [new_case(loket, email=f"bewoner{i}@voorbeeld.example") for i in range(3)]
    for ref in refs:
        clock.advance(dt.timedelta(hours=1))
        loket.advance(ref, "in_behandeling", actor=STAFF)
        loket.comment(ref, "Bewoner gebeld", actor=STAFF)
        loket.advance(ref, "naar_besluit", actor=STAFF, assignments=["amount=250"])
    return refs


def event_id(loket: Loket, ref: str, seq: int) -> int:
    with loket.read() as conn:
        return conn.execute(
            sa.select(events_t.c.id)
            .join(cases_t, cases_t.c.id == events_t.c.case_id)
            .where(cases_t.c.ref == ref, events_t.c.seq == seq)
        ).scalar_one()


def forged_event(loket: Loket, ref: str) -> dict[str, Any]:
    """A well-formed next event, hashed as the product would, but written behind its back."""
    r = row(loket, ref)
    at = utc("2026-03-02T12:00:00")
    seq = r["last_seq"] + 1
    content = event_content(
        ref=ref,
        seq=seq,
        at=at,
        recorded_at=at,
        actor=HEAD,
        action="comment",
        from_state=None,
        to_state=None,
        trigger=None,
        comment="Ingevoegd",
        data=None,
        digests=None,
    )
    return {
        "case_id": r["id"],
        "seq": seq,
        "at": at,
        "recorded_at": at,
        "actor": HEAD,
        "action": "comment",
        "comment": "Ingevoegd",
        "prev_hash": r["last_hash"],
        "hash": chain_hash(content, r["last_hash"]),
    }


def test_verify_passes_an_untouched_history(loket: Loket, clock: FixedClock) -> None:
    busy_history(loket, clock)
    result = verify(loket)
    assert result.ok and result.failure is None
    assert (result.cases, result.events) == (3, 12)


TAMPERING: list[tuple[Any, ...]] = [
    # (what is done, the event named, words of the finding)
    (
        "edit a comment",
        lambda lk, ref: (
            sa.update(events_t)
            .where(events_t.c.id == event_id(lk, ref, 3))
            .values(comment="Bewoner niet gebeld")
        ),
        3,
        # A comment enters the chain by a salted digest (SPEC §15): the edit no longer matches it.
        "event 3: its comment was altered",
    ),
    (
        "edit an actor",
        lambda lk, ref: (
            sa.update(events_t).where(events_t.c.id == event_id(lk, ref, 2)).values(actor=HEAD)
        ),
        2,
        "event 2: its content does not match its hash",
    ),
    (
        "edit data",
        lambda lk, ref: (
            sa.update(events_t)
            .where(events_t.c.id == event_id(lk, ref, 4))
            .values(data={"amount": "25000"})
        ),
        4,
        "event 4: its content does not match its hash",
    ),
    (
        "edit a personal value",
        lambda lk, ref: (
            sa.update(events_t)
            .where(events_t.c.id == event_id(lk, ref, 1))
            .values(data={"title": "Straatfeest Lindelaan", "email": "ander@voorbeeld.example"})
        ),
        1,
        "event 1: personal field 'email' was altered",
    ),
    (
        "edit a time",
        lambda lk, ref: (
            sa.update(events_t)
            .where(events_t.c.id == event_id(lk, ref, 2))
            .values(at=utc("2026-03-01T09:00:00"))
        ),
        2,
        "event 2: its content does not match its hash",
    ),
    (
        "delete a middle event",
        lambda lk, ref: sa.delete(events_t).where(events_t.c.id == event_id(lk, ref, 2)),
        2,
        "event 2: missing (next stored is 3)",
    ),
    (
        "delete the last event",
        lambda lk, ref: sa.delete(events_t).where(events_t.c.id == event_id(lk, ref, 4)),
        3,
        "history ends at event 4, but the chain ends at event 3",
    ),
    (
        "change the state without an event",
        lambda lk, ref: sa.update(cases_t).where(cases_t.c.ref == ref).values(state="toegekend"),
        4,
        "the case is in state 'toegekend' but its history ends in 'besluit'",
    ),
    (
        "insert an event",
        lambda lk, ref: sa.insert(events_t).values(forged_event(lk, ref)),
        5,
        "history ends at event 4, but the chain ends at event 5",
    ),
]


@pytest.mark.parametrize(
    ("change", "seq", "words"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_verify_names_the_case_and_event_of_a_tampered_row(
    loket: Loket, clock: FixedClock, change: Callable[[Loket, str], Any], seq: int, words: str
) -> None:
    refs = busy_history(loket, clock)
    tampered = refs[1]
    execute(loket, change(loket, tampered))
    result = verify(loket)
    assert not result.ok
    assert (result.ref, result.seq) == (tampered, seq)
    assert result.failure is not None
    assert result.failure.startswith(f"{tampered}")
    assert words in result.failure
    assert result.as_json() == {
        "ok": False,
        "cases": 3,
        "events": result.events,
        # Damage to a chain stops the check before the configuration history; a row that
        # disagrees with an intact history is reported after it (its org load, its types).
        "config_events": 2 if "but its history ends in" in words else None,
        "failure": result.failure,
        "ref": tampered,
        "seq": seq,
    }


def test_deleting_a_whole_history_is_detected(loket: Loket, clock: FixedClock) -> None:
    refs = busy_history(loket, clock)
    execute(loket, sa.delete(events_t).where(events_t.c.case_id == row(loket, refs[2])["id"]))
    result = verify(loket)
    assert (result.ok, result.ref) == (False, refs[2])
    assert "its whole history is missing" in (result.failure or "")


def test_redacting_a_personal_value_keeps_the_chain_verifiable(loket: Loket) -> None:
    """The chain holds only a salted digest of `email`: erasing the value breaks nothing."""
    ref = new_case(loket, email="bewoner@voorbeeld.example")
    loket.advance(ref, "in_behandeling", actor=STAFF)
    [created, _] = events(loket, ref)
    # `email` by the case's salt; the text field `title` by a salt of its own (SPEC §15).
    assert set(created["digests"]) == {"email", "title"}
    assert not created["digests"]["email"].startswith("s:") and created["digests"]["title"].startswith("s:")
    execute(
        loket,
        sa.update(events_t)
        .where(events_t.c.id == created["id"])
        .values(data={"title": "Straatfeest Lindelaan"}),
    )
    assert verify(loket).ok


def test_the_chain_stays_unbroken_over_many_operations(loket: Loket, clock: FixedClock) -> None:
    refs = [new_case(loket) for _ in range(4)]
    for round_ in range(3):
        for ref in refs:
            clock.advance(dt.timedelta(minutes=7))
            loket.comment(ref, f"ronde {round_}", actor=STAFF)
            loket.set_fields(ref, [f"participants={round_ + 1}"], actor=STAFF)
    for ref in refs:
        loket.assign(ref, "t.visser", actor=LEAD)
        to_besluit(loket, ref)
        loket.advance(ref, "heroverwegen", actor=STAFF, comment="Bedrag bijstellen")
        loket.advance(ref, "afwijzen", actor=LEAD, comment="Past niet in het budget")
    for ref in refs:
        history = events(loket, ref)
        assert [e["seq"] for e in history] == list(range(1, 13))
        previous = GENESIS
        for e in history:
            assert e["prev_hash"] == previous
            previous = e["hash"]
        r = row(loket, ref)
        assert (r["last_seq"], r["last_hash"], r["state"]) == (12, previous, "afgewezen")
    result = verify(loket)
    assert (result.ok, result.cases, result.events) == (True, 4, 48)
