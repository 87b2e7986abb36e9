"""A case row edited behind the engine's back is damage, whichever column (SQLite and
PostgreSQL); and `audit seal` verifies first, refusing to seal damage."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import run_cli

from engine.app import seal as seal_module
from engine.app.clock import FixedClock
from engine.app.seal import seal
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.verify import replay_of, verify
from engine.core.durations import Duration
from engine.core.history import timestamp
from engine.core.replay import REPLAYED
from engine.errors import HistoryDamaged
from engine.store.db import open_engine

CLERK, LEAD = "c.devries", "b.bakker"


def _sql(loket: Loket, statement: str, **params: object) -> None:
    with loket.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _count(loket: Loket, table: str) -> int:
    with loket.read() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _busy_case(loket: Loket, clock: FixedClock) -> str:
    """An open case with an assignee, an extension and fired rungs; a second case after it,
    so that a damaged first case is not simply the last one read."""
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest", "amount=750", "name=Jan Jansen"],
                         actor=CLERK, assign="l.mulder").ref
    clock.advance(dt.timedelta(days=1))
    loket.advance(ref, "in_behandeling", actor=CLERK)
    loket.extend(ref, Duration("weeks", 2), "advies brandweer", actor=LEAD)
    clock.advance(dt.timedelta(days=15))
    sweep(loket)
    loket.new_case("melding", ["omschrijving=Lantaarnpaal", "locatie=Kerkstraat"], actor=CLERK)
    return ref


def _later(column: str, how: str) -> dict[str, str]:
    return {"sqlite": f"{column} = datetime({column}, '{how}')",
            "postgresql": f"{column} = {column} + interval '{how}'"}


# Each column a history decides, and an edit of it that no command would make.
EDITS: dict[str, str | dict[str, str]] = {
    "state": "state = 'besluit'",
    "assignee": "assignee = 't.visser'",
    "data": "data = :data",
    "type_key": "type_key = 'melding'",
    "type_version": "type_version = 7",
    "owner": "owner = 'politie'",
    "created_at": _later("created_at", "+1 day"),
    "created_by": "created_by = 'b.bakker'",
    "state_entered_at": _later("state_entered_at", "+1 hour"),
    "stay": "stay = stay + 1",
    "state_due": "state_due = NULL",
    "service_due": _later("service_due", "+1 day"),
    "case_due": _later("case_due", "+7 days"),
    "case_due_limit": _later("case_due_limit", "+7 days"),
    "suspended_at": "suspended_at = created_at",
    "suspended_manually": "suspended_manually = NOT suspended_manually",
    "closed_at": "closed_at = created_at",
    "escalation_level": "escalation_level = escalation_level + 1",
    "service_fired": "service_fired = NOT service_fired",
    "lead_fired": "lead_fired = NOT lead_fired",
    "next_fire_at": "next_fire_at = NULL",
    "last_seq": "last_seq = last_seq + 1",
    "last_hash": "last_hash = :hash",
    "last_at": _later("last_at", "+1 hour"),
    "redacted_at": "redacted_at = created_at",
    "directive_seq": "directive_seq = 2",
    "directive_given_at": "directive_given_at = created_at",
    "directive_state": "directive_state = 'beoordeling'",
    "directive_due": "directive_due = case_due",
    "directive_met_at": "directive_met_at = created_at",
    "directive_missed_at": "directive_missed_at = created_at",
}
WORDS = {"state": "the case is in state 'besluit' but its history ends in 'beoordeling'",
         "assignee": "the case is assigned to 't.visser' but its history says 'l.mulder'",
         "data": "field(s) amount differ from what its history says",
         "last_seq": "or the row's last_seq changed"}


def test_every_replayed_column_has_an_edit_here() -> None:
    assert sorted(EDITS) == sorted(REPLAYED)


@pytest.mark.parametrize("column", list(EDITS))
def test_a_column_edited_behind_the_engines_back_is_damage(loket: Loket, clock: FixedClock, column: str) -> None:
    ref = _busy_case(loket, clock)
    assert verify(loket).ok
    edit = EDITS[column]
    statement = edit if isinstance(edit, str) else edit[loket.engine.dialect.name]
    _sql(loket, f"UPDATE cases SET {statement} WHERE ref = :ref", ref=ref,
         data=json.dumps({"title": "Straatfeest", "amount": "75000", "name": "Jan Jansen"}), hash="f" * 64)
    result = verify(loket)
    assert (result.ok, result.ref) == (False, ref)
    assert result.failure is not None and result.failure.startswith(f"{ref}: ")
    assert WORDS.get(column, f"the case row says {column} ") in result.failure


def test_the_drills_message_names_the_case_the_column_and_both_values(
    loket: Loket, clock: FixedClock, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _busy_case(loket, clock)
    _sql(loket, "UPDATE cases SET owner = 'politie' WHERE ref = :ref", ref=ref)
    expected = f"{ref}: the case row says owner 'politie' but its history replays to 'wijkteam'"
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify")
    assert (code, out, err) == (1, "", f"Error: {expected}\n")
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify", "--json")
    assert code == 1 and err == f"Error: {expected}\n"
    last_seq = loket.get_case(ref).last_seq
    assert json.loads(out) == {"ok": False, "cases": 2, "events": json.loads(out)["events"], "config_events": 2,
                               "failure": expected, "ref": ref, "seq": last_seq}


def test_a_case_stopped_from_escalating_is_named_with_when_it_should_fire(loket: Loket, clock: FixedClock) -> None:
    ref = _busy_case(loket, clock)
    due = loket.get_case(ref).next_fire_at
    assert due is not None and replay_of(loket, ref).result().next_fire_at == due
    _sql(loket, "UPDATE cases SET next_fire_at = NULL WHERE ref = :ref", ref=ref)
    assert verify(loket).failure == (f"{ref}: the case row says next_fire_at none but its history replays to"
                                     f" {timestamp(due)}")


def test_several_columns_edited_are_named_together(loket: Loket, clock: FixedClock) -> None:
    ref = _busy_case(loket, clock)
    _sql(loket, "UPDATE cases SET owner = 'politie', created_by = 'b.bakker', next_fire_at = NULL WHERE ref = :ref",
         ref=ref)
    failure = verify(loket).failure or ""
    assert failure.startswith(f"{ref}: the case row says owner 'politie' but its history replays to 'wijkteam'")
    assert failure.endswith(" (also: created_by, next_fire_at)")


def test_a_personal_value_is_never_shown(loket: Loket, clock: FixedClock) -> None:
    ref = _busy_case(loket, clock)
    _sql(loket, "UPDATE cases SET data = :data WHERE ref = :ref", ref=ref,
         data=json.dumps({"title": "Straatfeest", "amount": "750", "name": "Geheime Naam"}))
    failure = verify(loket).failure or ""
    assert failure == f"{ref}: field(s) name differ from what its history says"


def test_damage_to_the_history_is_named_before_a_row_that_disagrees(loket: Loket, clock: FixedClock) -> None:
    """A cut or deleted history leaves rows that disagree too: the chain names the cause."""
    ref = _busy_case(loket, clock)
    other = loket.new_case("melding", ["omschrijving=Later", "locatie=Dorp"], actor=CLERK).ref
    _sql(loket, "UPDATE cases SET owner = 'politie' WHERE ref = :ref", ref=ref)
    _sql(loket, "UPDATE case_event SET comment = 'vervalst' WHERE seq = 1"
                " AND case_id = (SELECT id FROM cases WHERE ref = :ref)", ref=other)
    result = verify(loket)
    assert (result.ref, result.seq) == (other, 1)


# -- seal ------------------------------------------------------------------------------------


def test_seal_refuses_a_case_deleted_after_the_last_seal_and_records_nothing(
    loket: Loket, clock: FixedClock, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keep = loket.new_case("melding", ["omschrijving=Blijft", "locatie=Dorp"], actor=CLERK).ref
    gone = loket.new_case("melding", ["omschrijving=Verdwijnt", "locatie=Dorp"], actor=CLERK).ref
    assert seal(loket).id == 1
    _sql(loket, "DELETE FROM case_event WHERE case_id = (SELECT id FROM cases WHERE ref = :ref)", ref=gone)
    _sql(loket, "DELETE FROM cases WHERE ref = :ref", ref=gone)
    damage = f"{gone}: the case was deleted after seal 1"
    with pytest.raises(HistoryDamaged) as caught:
        seal(loket)
    assert caught.value.exit_code == 1
    assert caught.value.message == f"cannot seal: {damage}; nothing was recorded (run 'loket audit verify')"
    for args in (["audit", "seal"], ["audit", "seal", "--json"]):
        code, out, err = run_cli(capsys, "--db", db_url, *args)
        assert (code, out) == (1, "")
        assert err == f"Error: cannot seal: {damage}; nothing was recorded (run 'loket audit verify')\n"
    assert (_count(loket, "audit_seal"), _count(loket, "audit_seal_head")) == (1, 2)
    assert verify(loket).failure == damage
    assert keep != gone


def test_seal_refuses_a_row_edited_behind_the_engines_back(loket: Loket, clock: FixedClock) -> None:
    ref = _busy_case(loket, clock)
    _sql(loket, "UPDATE cases SET next_fire_at = NULL WHERE ref = :ref", ref=ref)
    with pytest.raises(HistoryDamaged, match=f"^cannot seal: {ref}: the case row says next_fire_at none"):
        seal(loket)
    assert (_count(loket, "audit_seal"), _count(loket, "audit_seal_head")) == (0, 0)


def test_seal_refuses_a_row_it_can_read_only_carefully(sqlite_url: str, clock: FixedClock) -> None:
    """A value the quick pass of verify cannot decode: the careful pass names it."""
    from conftest import ORG_FILE, WORKFLOWS

    loket = Loket(open_engine(sqlite_url), clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types([WORKFLOWS / "melding.yaml"])
    ref = loket.new_case("melding", ["omschrijving=Lantaarnpaal", "locatie=Dorp"], actor=CLERK).ref
    _sql(loket, "UPDATE cases SET state_due = 'gisteren' WHERE ref = :ref", ref=ref)
    with pytest.raises(HistoryDamaged) as caught:
        seal(loket)
    assert caught.value.message == (f"cannot seal: {ref}: its case row is damaged: state_due holds 'gisteren',"
                                    " not a time; nothing was recorded (run 'loket audit verify')")
    assert _count(loket, "audit_seal") == 0
    loket.engine.dispose()


def test_a_write_while_the_seal_verifies_is_sealed_or_left_for_the_next(
    loket: Loket, clock: FixedClock, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Others keep working while a seal verifies. On SQLite a write in between makes the seal
    start again holding the write lock; PostgreSQL seals the moment it verified."""
    ref = loket.new_case("melding", ["omschrijving=Lantaarnpaal", "locatie=Dorp"], actor=CLERK).ref
    other = Loket(open_engine(db_url), clock)
    real_check: Callable[..., Any] = seal_module.check
    calls = []

    def check_while_someone_writes(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            other.comment(ref, "Tussendoor", actor=CLERK)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(seal_module, "check", check_while_someone_writes)
    result = seal(loket)
    sqlite = loket.engine.dialect.name == "sqlite"
    assert len(calls) == (2 if sqlite else 1)
    assert result.events == (2 if sqlite else 1)
    assert verify(loket).ok
    other.engine.dispose()


def _forge(loket: Loket, ref: str, **fields: Any) -> None:
    """Append an event with a valid hash, and move the row's head onto it: a forger who
    recomputes the chain."""
    from engine.core.history import chain_hash, event_content
    from engine.store.tables import cases_t, events_t

    with loket.read() as conn:
        case = conn.execute(sa.select(cases_t).where(cases_t.c.ref == ref)).one()
    at = case.last_at + dt.timedelta(hours=1)
    event = {"at": at, "recorded_at": at, "actor": LEAD, "from_state": None, "to_state": None, "trigger": None,
             "comment": None, "data": None, **fields}
    seq = case.last_seq + 1
    digest = chain_hash(event_content(ref=ref, seq=seq, digests=None, **event), case.last_hash)
    with loket.engine.begin() as conn:
        conn.execute(sa.insert(events_t).values(case_id=case.id, seq=seq, digests=None, prev_hash=case.last_hash,
                                                hash=digest, **event))
        conn.execute(sa.update(cases_t).where(cases_t.c.id == case.id).values(last_seq=seq, last_hash=digest,
                                                                              last_at=at))


def test_a_forged_step_the_type_does_not_have_is_named(loket: Loket) -> None:
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest", "amount=750"], actor=CLERK).ref
    _forge(loket, ref, action="transition", from_state="ingediend", to_state="toegekend", trigger="toekennen")
    assert verify(loket).failure == (f"{ref} event 2: the step 'ingediend' → 'toegekend' by 'toekennen' is not one"
                                     " bewonersinitiatief v1 has from state 'ingediend'")


@pytest.mark.parametrize(("data", "words"), [
    ({"rung": "9x"}, "data.rung '9x' is no rung"),
    ({"rung": 2}, "data.rung 2 is no rung"),
])
def test_a_forged_firing_that_is_no_rung_is_damage(loket: Loket, data: dict[str, Any], words: str) -> None:
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor=CLERK).ref
    _forge(loket, ref, action="escalated", actor="system", data=data)
    assert verify(loket).failure == f"{ref} event 2: its stored row is damaged: {words}"
