"""Every case row is what its history replays to: the replay runs the functions that wrote
the row, over histories with every kind of event, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, run_cli

from engine.app.clock import FixedClock
from engine.app.redact import redact
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.verify import replay_of, verify
from engine.core.casework import CASE_FIELDS
from engine.core.durations import Duration
from engine.core.replay import NOT_REPLAYED, REPLAYED, in_force, maybe_in_force
from engine.store.db import open_engine
from engine.store.tables import cases_t, events_t

CLERK, LEAD, HEAD = "c.devries", "b.bakker", "a.jansen"
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def _row(loket: Loket, ref: str) -> dict[str, Any]:
    with loket.read() as conn:
        return dict(conn.execute(sa.select(cases_t).where(cases_t.c.ref == ref)).mappings().one())


def assert_replays(loket: Loket, ref: str) -> None:
    """Column by column, so that a failure names the column. `next_fire_at` may also be what a
    calendar loaded since the last event gives (a sweep's write without an event)."""
    row, replay = _row(loket, ref), replay_of(loket, ref)
    replayed = replay.result()
    assert row["next_fire_at"] in replay.next_fire_candidates()
    compared = [name for name in REPLAYED if name != "next_fire_at"]
    assert {name: row[name] for name in compared} == {name: getattr(replayed, name) for name in compared}


def _events(loket: Loket, ref: str) -> list[dict[str, Any]]:
    return loket.history(ref)[1]


def test_every_column_is_either_replayed_or_said_why_not() -> None:
    assert not set(REPLAYED) & set(NOT_REPLAYED)
    assert sorted((*REPLAYED, *NOT_REPLAYED)) == sorted(CASE_FIELDS)


@pytest.mark.parametrize(("at", "expected", "maybe"), [
    (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "v1", ["v1"]),  # before every load: the first
    (dt.datetime(2026, 3, 2, tzinfo=dt.UTC), "v2", ["v2", "v1"]),  # loaded at that very instant
    (dt.datetime(2026, 3, 3, tzinfo=dt.UTC), "v2", ["v2"]),
    (dt.datetime(2026, 3, 5, tzinfo=dt.UTC), "v4", ["v4", "v3", "v2"]),
])
def test_what_was_in_force(at: dt.datetime, expected: str, maybe: list[str]) -> None:
    loaded = [(dt.datetime(2026, 3, 2, tzinfo=dt.UTC), "v1"), (dt.datetime(2026, 3, 2, tzinfo=dt.UTC), "v2"),
              (dt.datetime(2026, 3, 5, tzinfo=dt.UTC), "v3"), (dt.datetime(2026, 3, 5, tzinfo=dt.UTC), "v4")]
    assert in_force(loaded, at) == expected
    assert maybe_in_force(loaded, at) == maybe


def test_a_history_with_every_kind_of_event_replays_to_its_row(loket: Loket, clock: FixedClock) -> None:
    """Assignment and its release on a hand-over, a suspension, two extensions (the second
    counted on from where the first would have ended before the Atw moved it), a paused
    state, field changes, every rung and both breaches fired by sweeps, a timeout, a
    redaction, personal data entered again after it, comments, and the close."""
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest", "name=Jan Jansen", "email=jan@example.org",
                                                 "amount=750"], actor=CLERK, assign="l.mulder").ref
    clock.advance(DAY)
    loket.advance(ref, "in_behandeling", actor=CLERK)
    clock.advance(3 * HOUR)
    loket.suspend(ref, "wacht op situatietekening", actor=CLERK)
    clock.set(dt.datetime(2026, 3, 12, 10, tzinfo=dt.UTC))
    loket.resume(ref, actor=CLERK)
    for _ in range(2):
        clock.advance(HOUR)
        loket.extend(ref, Duration("weeks", 1), "advies brandweer", actor=LEAD)
    clock.advance(HOUR)
    loket.advance(ref, "vraag_informatie", actor=CLERK, comment="Graag de begroting")
    clock.advance(3 * DAY)
    loket.advance(ref, "informatie_ontvangen", actor=CLERK)
    loket.set_fields(ref, ["amount=1250", "description=Met springkussen"], actor=CLERK)
    loket.advance(ref, "vraag_bijdrage", actor=CLERK)
    assert loket.get_case(ref).assignee is None  # l.mulder has no role at Openbare Ruimte
    for _ in range(2):
        clock.advance(40 * DAY)
        sweep(loket)
        assert_replays(loket, ref)
    redact(loket, ref, "bewaartermijn", actor=HEAD)
    clock.advance(HOUR)
    loket.set_fields(ref, ["email=nieuw@example.org"], actor=CLERK)
    loket.comment(ref, "Teruggebeld", actor=CLERK)
    loket.advance(ref, "naar_besluit", actor=CLERK)
    loket.advance(ref, "toekennen", actor=LEAD)

    events = _events(loket, ref)
    extensions = [e["data"] for e in events if e["action"] == "extended"]
    assert "unmoved" in extensions[0] and "counted_from" in extensions[1]
    assert any(e["action"] == "transition" and e["actor"] == "system" for e in events)  # the timeout
    rungs = {e["data"]["rung"] for e in events if e["action"] == "escalated"}
    assert {"1", "2", "3", "4", "service_norm", "lead_time"} <= rungs
    assert any(e["action"] == "assigned" and e["data"].get("released") for e in events)
    case = loket.get_case(ref)
    assert case.closed_at is not None and case.redacted_at is not None and "email" in case.data
    assert_replays(loket, ref)
    assert verify(loket).ok


def test_deadlines_in_hours_timeouts_and_suspensions_replay(loket: Loket, clock: FixedClock) -> None:
    spoed = loket.new_case("melding", ["omschrijving=Lantaarnpaal hangt los", "locatie=Kerkstraat 1", "spoed=ja",
                                       "melder_naam=Piet"], actor=CLERK).ref
    overlast = loket.new_case("melding", ["omschrijving=Overlast", "locatie=Parkhof", "categorie=overlast"],
                              actor=CLERK).ref
    loket.advance(spoed, "doorzetten_spoed", actor=CLERK)
    loket.advance(overlast, "doorsturen_politie", actor=CLERK)
    clock.advance(HOUR)
    loket.suspend(spoed, "wacht op netbeheerder", actor="k.hendriks")
    clock.advance(2 * HOUR + dt.timedelta(minutes=17))
    loket.resume(spoed, actor="k.hendriks")
    for days in (1, 3, 20):
        clock.set(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC) + days * DAY)
        sweep(loket)
        for ref in (spoed, overlast):
            assert_replays(loket, ref)
    assert any(e["actor"] == "system" and e["action"] == "transition" for e in _events(loket, overlast))
    assert verify(loket).ok


def test_a_new_organisation_counts_from_when_it_was_loaded(
    loket: Loket, clock: FixedClock, tmp_path: Path
) -> None:
    """Deadlines stay counted on the calendar in force when they were written; a sweep that
    finds nothing due because a new closed day moved a rung later recomputes next_fire_at
    without an event, and verify accepts that too."""
    early = loket.new_case("bewonersinitiatief", ["title=Vroeg"], actor=CLERK).ref
    clock.set(dt.datetime(2026, 3, 10, 7, tzinfo=dt.UTC))
    sweep(loket)  # rungs 1 and 2 of `ingediend`; rung 3 is due 03-16 (5 working days after 03-09)
    closed = tmp_path / "organisation.yaml"
    closed.write_text(ORG_FILE.read_text(encoding="utf-8").replace("closed_days:\n", "closed_days:\n  - 2026-03-12\n"),
                      encoding="utf-8")
    clock.advance(HOUR)
    loket.load_organisation(closed)
    late = loket.new_case("bewonersinitiatief", ["title=Laat"], actor=CLERK).ref
    before = _row(loket, early)
    clock.set(dt.datetime(2026, 3, 17, 0, tzinfo=dt.UTC))  # 01:00 on the 17th in Amsterdam
    # Under the new calendar rung 3 of `early` is due at the end of the 17th.
    assert early not in {fired["ref"] for fired in sweep(loket).fired}
    after = _row(loket, early)
    assert (after["last_seq"], after["version"]) == (before["last_seq"], before["version"] + 1)
    assert after["next_fire_at"] > before["next_fire_at"]
    for ref in (early, late):
        assert_replays(loket, ref)
    assert replay_of(loket, early).next_fire_candidates()[1] == after["next_fire_at"]
    assert _row(loket, late)["state_due"] != _row(loket, early)["state_due"]
    assert verify(loket).ok


def test_a_case_made_on_an_older_version_replays_on_it(loket: Loket, clock: FixedClock, tmp_path: Path) -> None:
    old = loket.new_case("melding", ["omschrijving=Oud", "locatie=Dorp"], actor=CLERK).ref
    clock.advance(HOUR)
    changed = tmp_path / "melding.yaml"
    source = Path(ORG_FILE).with_name("melding.yaml").read_text(encoding="utf-8")
    changed.write_text(source.replace("deadline: {working_days: 1}", "deadline: {working_days: 3}"), encoding="utf-8")
    [loaded] = loket.load_request_types([changed])
    assert loaded.version == 2
    clock.advance(HOUR)
    new = loket.new_case("melding", ["omschrijving=Nieuw", "locatie=Dorp"], actor=CLERK).ref
    assert (loket.get_case(old).type_version, loket.get_case(new).type_version) == (1, 2)
    for ref in (old, new):
        assert_replays(loket, ref)
    assert verify(loket).ok


def test_the_demo_replays_every_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "demo"
    code, _out, err = run_cli(capsys, "demo", "--dir", str(folder), "--days", "60")
    assert code == 0, err
    loket = Loket(open_engine(f"sqlite:///{folder / 'loket.db'}"))
    try:
        assert verify(loket).ok
        with loket.read() as conn:
            refs = list(conn.execute(sa.select(cases_t.c.ref)).scalars())
            timeouts = conn.execute(sa.select(sa.func.count()).where(
                events_t.c.actor == "system", events_t.c.action == "transition")).scalar_one()
        assert len(refs) > 100 and timeouts > 0
        for ref in refs:
            assert_replays(loket, ref)
    finally:
        loket.engine.dispose()
