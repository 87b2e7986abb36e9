"""The clocks of a case (SPEC §5): deadlines set on entry, paused states, suspension, extension.

Every expected instant is counted by hand on the Atw calendar in a comment beside it. The
clock starts on Mon 2026-03-02 10:00 in Amsterdam (09:00Z). Amsterdam is UTC+1 until Sunday
2026-03-29 and UTC+2 from then on: the end of a day, 23:59:59 local, is 22:59:59Z up to
03-28 and 21:59:59Z after. The 2026 holidays met below: Goede Vrijdag Fri 04-03, tweede
Paasdag Mon 04-06, Koningsdag Mon 04-27, Bevrijdingsdag Tue 05-05, Hemelvaartsdag Thu 05-14,
tweede Pinksterdag Mon 05-25.

bewonersinitiatief: lead_time 8 weeks, service_norm 4 weeks, max_extension 6 weeks; state
`ingediend` 5 working days, `beoordeling` 10 working days, `wacht_op_bewoner` paused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import run_cli

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import forecast, sweep
from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType, parse_request_type
from engine.core.durations import Duration
from engine.core.yamlfile import load_file
from engine.errors import InvalidValue, LoketError, Refused, RoleRequired
from engine.store.db import migrate, open_engine
from engine.store.tables import cases_t, escalations_t

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
BI = "bewonersinitiatief"
STAFF, LEAD, HEAD, AUDITOR = "c.devries", "b.bakker", "a.jansen", "d.smit"


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def bewonersinitiatief() -> RequestType:
    data, locate, _ = load_file(WORKFLOWS / "bewonersinitiatief.yaml")
    return parse_request_type(data, None, "bewonersinitiatief.yaml", locate)


def new_case(loket: Loket) -> str:
    return loket.new_case(BI, ["title=Straatfeest Lindelaan"], actor=STAFF).ref


def row(loket: Loket, ref: str) -> dict[str, Any]:
    with loket.read() as conn:
        return dict(conn.execute(sa.select(cases_t).where(cases_t.c.ref == ref)).mappings().one())


def clocks(loket: Loket, ref: str) -> tuple[dt.datetime | None, ...]:
    """(state_due, service_due, case_due, case_due_limit) as stored."""
    r = row(loket, ref)
    return r["state_due"], r["service_due"], r["case_due"], r["case_due_limit"]


def footprint(loket: Loket, ref: str) -> tuple[Any, ...]:
    r = row(loket, ref)
    return tuple(r[k] for k in ("version", "last_seq", "state_due", "case_due", "suspended_at"))


def assert_refused(
    loket: Loket, ref: str, kind: type[LoketError], words: str, action: Callable[[], Any]
) -> None:
    """`action` raises exactly `kind` saying `words`, and writes nothing."""
    before = footprint(loket, ref)
    with pytest.raises(LoketError) as caught:
        action()
    assert type(caught.value) is kind, caught.value.message
    assert words in caught.value.message
    assert footprint(loket, ref) == before


START = utc("2026-03-02T09:00:00")  # where the `clock` fixture starts: Mon 10:00 in Amsterdam

# The case-wide clocks of a case created at START and never paused or extended.
SERVICE = utc("2026-03-30T21:59:59")  # 4 weeks: Mon 03-30, a working day (CEST)
LEAD_TIME = utc("2026-04-28T21:59:59")  # 8 weeks: Mon 04-27 is Koningsdag → Tue 04-28
LIMIT = utc("2026-06-09T21:59:59")  # 6 weeks more from Tue 04-28: Tue 06-09
INGEDIEND = utc("2026-03-09T22:59:59")  # 5 wd: 3, 4, 5, 6, (weekend) 9 → Mon 03-09 (CET)


# -- clocks started at creation: a pure function of (type, calendar, now) --------------------


@pytest.mark.parametrize(
    ("created", "service_due", "case_due", "limit"),
    [
        # Mon 03-02: +28 = Mon 03-30; +56 = Mon 04-27 Koningsdag → Tue 04-28; +42 = Tue 06-09.
        ("2026-03-02T09:00", "2026-03-30T21:59:59", "2026-04-28T21:59:59", "2026-06-09T21:59:59"),
        # Tue 03-10: +28 = Tue 04-07 (the day after tweede Paasdag); +56 = Tue 05-05
        # Bevrijdingsdag → Wed 05-06; +42 = Wed 06-17.
        ("2026-03-10T09:00", "2026-04-07T21:59:59", "2026-05-06T21:59:59", "2026-06-17T21:59:59"),
        # Thu 03-19: +28 = Thu 04-16; +56 = Thu 05-14 Hemelvaartsdag → Fri 05-15; +42 = Fri 06-26.
        ("2026-03-19T09:00", "2026-04-16T21:59:59", "2026-05-15T21:59:59", "2026-06-26T21:59:59"),
        # Fri 03-06: +28 = Fri 04-03 Goede Vrijdag, Sat, Sun, Mon 04-06 tweede Paasdag →
        # Tue 04-07; +56 = Fri 05-01, a working day; +42 = Fri 06-12.
        ("2026-03-06T09:00", "2026-04-07T21:59:59", "2026-05-01T21:59:59", "2026-06-12T21:59:59"),
        # Mon 03-30: +28 = Mon 04-27 Koningsdag → Tue 04-28; +56 = Mon 05-25 tweede
        # Pinksterdag → Tue 05-26; +42 = Tue 07-07.
        ("2026-03-30T09:00", "2026-04-28T21:59:59", "2026-05-26T21:59:59", "2026-07-07T21:59:59"),
        # Late on Sat 03-28 in Amsterdam (23:30 CET = 22:30Z) counts from the 28th, not the
        # 29th: +28 = Sat 04-25, Sun, Mon 04-27 Koningsdag → Tue 04-28; +56 = Sat 05-23, Sun,
        # Mon 05-25 tweede Pinksterdag → Tue 05-26; +42 from Tue 05-26 = Tue 07-07.
        ("2026-03-28T22:30", "2026-04-28T21:59:59", "2026-05-26T21:59:59", "2026-07-07T21:59:59"),
    ],
)
def test_the_case_wide_clocks_start_at_creation(
    created: str, service_due: str, case_due: str, limit: str
) -> None:
    started = casework.start_clocks(bewonersinitiatief(), WorkingCalendar(), utc(created))
    assert started == {
        "service_due": utc(service_due),
        "case_due": utc(case_due),
        "case_due_limit": utc(limit),
    }


def test_a_paused_state_stops_and_shifts_the_clocks_as_pure_functions() -> None:
    rt, cal = bewonersinitiatief(), WorkingCalendar()
    fields = {
        "id": 1, "ref": "BI-2026-00001", "type_key": BI, "type_version": 1, "state": "ingediend",
        "owner": "wijkteam", "assignee": None, "data": {}, "created_at": START,
        "created_by": STAFF, "state_entered_at": START, "stay": 1, "state_due": INGEDIEND,
        "next_fire_at": None, "suspended_at": None, "suspended_manually": False,
        "closed_at": None, "escalation_level": 0, "service_fired": False, "lead_fired": False,
        "version": 1, "last_seq": 1, "last_hash": "0" * 64, "salt": None, "redacted_at": None, "last_at": START,
        **casework.start_clocks(rt, cal, START),
    }
    case = casework.Case(**fields)
    paused = case.apply(casework.enter_state(rt, cal, case, "wacht_op_bewoner", START))
    assert (paused.state_due, paused.suspended_at, paused.stay) == (None, START, 2)
    assert casework.next_fire_at(rt, cal, paused) is None
    back = paused.apply(
        casework.enter_state(rt, cal, paused, "beoordeling", utc("2026-03-09T09:00:00"))
    )
    # 7 calendar days paused (Mon 03-02 → Mon 03-09), as in the database test below.
    assert (back.state_due, back.service_due, back.case_due, back.case_due_limit) == (
        utc("2026-03-23T22:59:59"),  # beoordeling, 10 wd from Mon 03-09 → Mon 03-23
        utc("2026-04-07T21:59:59"),  # Mon 03-30 + 7 = Mon 04-06 tweede Paasdag → Tue 04-07
        utc("2026-05-06T21:59:59"),  # Tue 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06
        # not extended yet: the maximum counts from the term as it now stands, Wed 05-06 + 42
        utc("2026-06-17T21:59:59"),  # = Wed 06-17
    )
    assert (back.suspended_at, back.stay) == (None, 3)


def test_a_new_case_stores_every_clock(loket: Loket) -> None:
    ref = new_case(loket)
    assert clocks(loket, ref) == (INGEDIEND, SERVICE, LEAD_TIME, LIMIT)
    r = row(loket, ref)
    assert (r["stay"], r["suspended_at"], r["escalation_level"]) == (1, None, 0)
    # The first thing a sweep has to do: rung 1, two working days before Mon 03-09:
    # Fri 06, Thu 05 → Thu 03-05 23:59:59 CET.
    assert r["next_fire_at"] == utc("2026-03-05T22:59:59")


def test_entering_a_state_starts_its_deadline_and_leaves_the_case_clocks(
    loket: Loket, clock: FixedClock
) -> None:
    ref = new_case(loket)
    clock.set(utc("2026-03-05T09:00:00"))
    loket.advance(ref, "in_behandeling", actor=STAFF)
    # beoordeling, 10 wd from Thu 03-05: 6, 9-13, 16-19 → Thu 03-19 23:59:59 CET.
    assert clocks(loket, ref) == (utc("2026-03-19T22:59:59"), SERVICE, LEAD_TIME, LIMIT)
    r = row(loket, ref)
    assert (r["state_entered_at"], r["stay"]) == (utc("2026-03-05T09:00:00"), 2)
    # Rung 1: two working days before Thu 03-19: Wed 18, Tue 17 → Tue 03-17.
    assert r["next_fire_at"] == utc("2026-03-17T22:59:59")


def test_a_deadline_in_hours_is_exact(loket: Loket) -> None:
    # melding `spoed`: {hours: 4} from 09:00Z is 13:00Z, not the end of a day. The melding's
    # service norm (5 working days: Mon 03-09) comes later, so the next firing is the
    # spoed ladder's first rung, 0 hours after the deadline.
    ref = loket.new_case("melding", ["omschrijving=Open put", "locatie=Lindelaan 3", "spoed=ja"],
                         actor=STAFF).ref
    loket.advance(ref, "doorzetten_spoed", actor=STAFF)
    r = row(loket, ref)
    assert (r["state_due"], r["service_due"], r["case_due"]) == (
        utc("2026-03-02T13:00:00"), utc("2026-03-09T22:59:59"), None,  # 5 wd: Mon 03-09
    )
    assert r["next_fire_at"] == utc("2026-03-02T13:00:00")


# -- a paused state ------------------------------------------------------------------------------


def test_a_paused_state_stops_the_clocks_and_leaving_it_shifts_them(
    loket: Loket, clock: FixedClock
) -> None:
    ref = new_case(loket)
    loket.advance(ref, "vraag_informatie", actor=STAFF, comment="Graag een tekening van de plek")
    r = row(loket, ref)
    assert (r["state"], r["state_due"], r["suspended_at"], r["next_fire_at"]) == (
        "wacht_op_bewoner", None, utc("2026-03-02T09:00:00"), None,
    )
    assert loket.get_case(ref).suspended_manually is False
    # Rung 1 of `ingediend` (Thu 03-05) would be due by now; a paused case has no ladder.
    swept = sweep(loket, utc("2026-03-09T08:00:00"))
    assert (swept.checked, swept.fired) == (0, [])
    clock.set(utc("2026-03-09T09:00:00"))  # Mon 03-02 → Mon 03-09: 7 calendar days
    loket.advance(ref, "informatie_ontvangen", actor=STAFF)
    assert clocks(loket, ref) == (
        # beoordeling, 10 wd from Mon 03-09: 10-13, 16-20, 23 → Mon 03-23 (CET).
        utc("2026-03-23T22:59:59"),
        # service Mon 03-30 + 7 = Mon 04-06 tweede Paasdag → Tue 04-07.
        utc("2026-04-07T21:59:59"),
        # lead time Tue 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06.
        utc("2026-05-06T21:59:59"),
        # not extended yet: the extension limit counts from the term as it now stands,
        # Wed 05-06 + 42 = Wed 06-17.
        utc("2026-06-17T21:59:59"),
    )
    assert row(loket, ref)["suspended_at"] is None


def test_a_pause_within_one_day_costs_nothing(loket: Loket, clock: FixedClock) -> None:
    ref = new_case(loket)
    loket.advance(ref, "vraag_informatie", actor=STAFF, comment="Welk bedrag?")
    clock.set(utc("2026-03-02T15:00:00"))  # 16:00 the same Monday in Amsterdam: 0 days
    loket.advance(ref, "informatie_ontvangen", actor=STAFF)
    _state, service, case, limit = clocks(loket, ref)
    assert (service, case, limit) == (SERVICE, LEAD_TIME, LIMIT)


# -- suspend and resume --------------------------------------------------------------------------


def test_suspend_and_resume_shift_the_state_deadline_too(loket: Loket, clock: FixedClock) -> None:
    ref = new_case(loket)
    suspended = loket.suspend(ref, "Wacht op de vergunning", actor=STAFF)
    assert (suspended.suspended_at, suspended.suspended_manually) == (clock.now(), True)
    assert row(loket, ref)["next_fire_at"] is None
    # Rung 1 (Thu 03-05) would be due by Mon 03-09 had the clock run.
    clock.set(utc("2026-03-09T09:00:00"))
    assert sweep(loket, clock.now()).fired == []
    loket.resume(ref, actor=STAFF)  # Mon 03-02 → Mon 03-09: 7 calendar days
    assert clocks(loket, ref) == (
        utc("2026-03-16T22:59:59"),  # ingediend Mon 03-09 + 7 = Mon 03-16, a working day
        utc("2026-04-07T21:59:59"),  # Mon 03-30 + 7 = Mon 04-06 tweede Paasdag → Tue 04-07
        utc("2026-05-06T21:59:59"),  # Tue 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06
        # not extended yet: the maximum counts from the term as it now stands, Wed 05-06 + 42
        utc("2026-06-17T21:59:59"),  # = Wed 06-17
    )
    resumed = loket.history(ref)[1][-2:]
    assert [(e["action"], e["data"]) for e in resumed] == [
        ("suspended", {"reason": "Wacht op de vergunning"}), ("resumed", {"suspended_days": 7}),
    ]
    r = row(loket, ref)
    assert (r["suspended_at"], r["suspended_manually"]) == (None, False)
    # Rung 1 now: two working days before Mon 03-16: Fri 13, Thu 12 → Thu 03-12.
    assert r["next_fire_at"] == utc("2026-03-12T22:59:59")
    assert sweep(loket, utc("2026-03-12T22:59:58")).fired == []
    assert [f["rung"] for f in sweep(loket, utc("2026-03-12T22:59:59")).fired] == [1]


def test_a_suspended_case_is_never_escalated(loket: Loket, clock: FixedClock) -> None:
    ref = new_case(loket)
    clock.set(utc("2026-03-03T09:00:00"))
    loket.suspend(ref, "Bewoner is op vakantie", actor=STAFF)
    assert row(loket, ref)["next_fire_at"] is None
    # Long after every rung, the service norm and the lead time: nothing is due.
    late = utc("2026-12-31T12:00:00")
    clock.set(late)
    assert forecast(loket, 366, late) == []
    result = sweep(loket, late)
    assert (result.checked, result.fired) == (0, [])
    with loket.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(escalations_t)).scalar_one() == 0


def test_suspension_refusals_write_nothing(loket: Loket, clock: FixedClock) -> None:
    ref = new_case(loket)
    assert_refused(loket, ref, Refused, "is not suspended", lambda: loket.resume(ref, actor=STAFF))
    loket.suspend(ref, "Wacht op de bewoner", actor=STAFF)
    assert_refused(loket, ref, Refused, "is already suspended",
                   lambda: loket.suspend(ref, "nog eens", actor=STAFF))
    assert_refused(loket, ref, Refused, "resume it first",
                   lambda: loket.advance(ref, "in_behandeling", actor=STAFF))
    assert_refused(loket, ref, RoleRequired, "auditor",
                   lambda: loket.resume(ref, actor=AUDITOR))
    assert_refused(loket, ref, InvalidValue, "give a reason",
                   lambda: loket.suspend(ref, "  ", actor=STAFF))
    loket.resume(ref, actor=STAFF)
    # In a paused state the clock already stands still: there is nothing to suspend or resume.
    loket.advance(ref, "vraag_informatie", actor=STAFF, comment="Graag een begroting")
    assert_refused(loket, ref, Refused, "already stands still",
                   lambda: loket.suspend(ref, "dubbel", actor=STAFF))
    assert_refused(loket, ref, Refused, "is not suspended", lambda: loket.resume(ref, actor=STAFF))


# -- extend --------------------------------------------------------------------------------------


EXTENSIONS = [
    # Tue 04-28 + 14 = Tue 05-12, a working day.
    ("weeks", 2, "2026-05-12T21:59:59"),
    # Tue 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06.
    ("weeks", 1, "2026-05-06T21:59:59"),
    # From Tue 04-28: Wed 29, Thu 30, Fri 05-01, Mon 05-04, (Tue 05-05 Bevrijdingsdag)
    # Wed 05-06 → Wed 05-06.
    ("working_days", 5, "2026-05-06T21:59:59"),
    # Exactly the maximum: Tue 04-28 + 42 = Tue 06-09, the limit itself.
    ("weeks", 6, "2026-06-09T21:59:59"),
]


def test_extend_moves_the_lead_time(loket: Loket) -> None:
    for unit, amount, expected in EXTENSIONS:  # one case each, all made at START
        ref = new_case(loket)
        extended = loket.extend(ref, Duration(unit, amount), "Advies nodig", actor=LEAD)
        assert extended.case_due == utc(expected), (unit, amount)
        assert clocks(loket, ref) == (INGEDIEND, SERVICE, utc(expected), LIMIT)
        event = loket.history(ref)[1][-1]
        assert (event["action"], event["actor"]) == ("extended", LEAD)
        unmoved = {"unmoved": "2026-05-05T21:59:59.000000Z"} if (unit, amount) == ("weeks", 1) else {}
        assert event["data"] == {
            "by": str(Duration(unit, amount)), "unit": unit, "amount": amount,
            "reason": "Advies nodig", "from": "2026-04-28T21:59:59.000000Z",
            "to": f"{expected}.000000Z", **unmoved,
        }


def test_extend_beyond_the_maximum_is_refused(loket: Loket, clock: FixedClock) -> None:
    ref = new_case(loket)
    # 7 weeks: Tue 04-28 + 49 = Tue 06-16, past the limit Tue 06-09.
    assert_refused(loket, ref, Refused, "until 2026-06-09 at most",
                   lambda: loket.extend(ref, Duration("weeks", 7), "Te lang", actor=LEAD))
    # 2 weeks (Tue 05-12) and 4 weeks more (Tue 06-09) reach the limit exactly...
    loket.extend(ref, Duration("weeks", 2), "Eerste verdaging", actor=LEAD)
    clock.set(utc("2026-04-01T09:00:00"))
    loket.extend(ref, Duration("weeks", 4), "Tweede verdaging", actor=HEAD)  # head includes lead
    assert row(loket, ref)["case_due"] == LIMIT
    # ...and one working day more (Wed 06-10) passes it.
    assert_refused(loket, ref, Refused, "would pass the maximum extension of 6 weeks",
                   lambda: loket.extend(ref, Duration("working_days", 1), "Eén dag", actor=LEAD))


def test_extensions_in_steps_count_on_from_the_day_before_the_atw_move(loket: Loket) -> None:
    ref = new_case(loket)
    # 1 week: Tue 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06.
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)
    assert row(loket, ref)["case_due"] == utc("2026-05-06T21:59:59")
    # 5 weeks more count on from Tue 05-05, where the week ended before the move: + 35 = Tue
    # 06-09, the limit, as 6 weeks at once would. From the moved Wed 05-06 it would be Wed
    # 06-10, past the limit: the moves would pile up.
    loket.extend(ref, Duration("weeks", 5), "Advies politie", actor=LEAD)
    assert row(loket, ref)["case_due"] == LIMIT
    event = loket.history(ref)[1][-1]
    assert (event["data"]["from"], event["data"]["to"]) == ("2026-05-06T21:59:59.000000Z",
                                                            "2026-06-09T21:59:59.000000Z")
    assert "unmoved" not in event["data"]  # Tue 06-09 is a working day: nothing moved
    assert_refused(loket, ref, Refused, "until 2026-06-09 at most",
                   lambda: loket.extend(ref, Duration("weeks", 1), "Nog een week", actor=LEAD))


def test_working_days_after_a_moved_extension_count_from_the_moved_deadline(loket: Loket) -> None:
    ref = new_case(loket)
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)  # → Wed 05-06
    # The term really ends on Wed 05-06: 2 working days more are Thu 05-07 and Fri 05-08.
    loket.extend(ref, Duration("working_days", 2), "Advies politie", actor=LEAD)
    assert row(loket, ref)["case_due"] == utc("2026-05-08T21:59:59")


def test_after_a_suspension_an_extension_counts_from_the_shifted_deadline(
    loket: Loket, clock: FixedClock
) -> None:
    ref = new_case(loket)
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)  # → Wed 05-06
    clock.set(utc("2026-03-03T09:00:00"))
    loket.suspend(ref, "Wacht op de tekening", actor=STAFF)
    clock.set(utc("2026-03-05T09:00:00"))  # Tue 03-03 → Thu 03-05: 2 calendar days
    loket.resume(ref, actor=STAFF)
    assert row(loket, ref)["case_due"] == utc("2026-05-08T21:59:59")  # Wed 05-06 + 2 = Fri 05-08
    # The deadline is no longer the one the extension set: 1 week counts from Fri 05-08, the
    # day it stands on now (+ 7 = Fri 05-15), not from the unmoved Tue 05-05.
    loket.extend(ref, Duration("weeks", 1), "Advies politie", actor=LEAD)
    assert row(loket, ref)["case_due"] == utc("2026-05-15T21:59:59")


def test_extend_needs_a_lead_a_reason_and_a_lead_time(loket: Loket) -> None:
    ref = new_case(loket)
    by = Duration("weeks", 1)
    assert_refused(loket, ref, RoleRequired, "needs role lead or head",
                   lambda: loket.extend(ref, by, "Drukte", actor=STAFF))
    assert_refused(loket, ref, RoleRequired, "needs role lead or head",
                   lambda: loket.extend(ref, by, "Drukte", actor=AUDITOR))
    # The lead of another unit holds no role in wijkteam.
    assert_refused(loket, ref, RoleRequired, "needs role lead or head",
                   lambda: loket.extend(ref, by, "Drukte", actor="e.vanleeuwen"))
    assert_refused(loket, ref, InvalidValue, "give a reason",
                   lambda: loket.extend(ref, by, "", actor=LEAD))
    melding = loket.new_case("melding", ["omschrijving=Zwerfvuil", "locatie=Park"], actor=STAFF).ref
    assert_refused(loket, melding, Refused, "no extendable lead time",
                   lambda: loket.extend(melding, by, "Drukte", actor=LEAD))


# -- the command line ----------------------------------------------------------------------------


def cli_database(path: Path) -> tuple[str, str]:
    """A SQLite file with the sample organisation and types and one case made at START."""
    url = f"sqlite:///{path}"
    engine = open_engine(url, create=True)
    migrate(engine)
    app = Loket(engine, FixedClock(START))
    app.load_organisation(WORKFLOWS / "organisation.yaml")
    app.load_request_types([p for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"])
    ref = new_case(app)
    engine.dispose()
    return url, ref


@pytest.fixture(scope="module")
def cli_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(url, ref), shared by the command-line tests that must write nothing."""
    return cli_database(tmp_path_factory.mktemp("cli") / "loket.db")


@pytest.fixture(autouse=True)
def _no_simulated_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOKET_NOW", raising=False)


def only_error(err: str) -> str:
    """The one line of an error on stderr."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--weeks", "1", "--working-days", "2", "--reason", "x"], "give exactly one of --weeks"),
        (["--reason", "x"], "give exactly one of --weeks"),
        (["--weeks", "0", "--reason", "x"], "'--weeks': 0 is not in the range x>=1"),
        (["--weeks", "-2", "--reason", "x"], "'--weeks': -2 is not in the range x>=1"),
        (["--working-days", "0", "--reason", "x"], "'--working-days': 0 is not in the range"),
        (["--weeks", "twee", "--reason", "x"], "'--weeks': 'twee' is not a valid integer"),
        (["--weeks", "1", "--reason", ""], "give a reason"),
        (["--weeks", "1", "--reason", "   "], "give a reason"),
        (["--weeks", "1"], "Missing option '--reason'"),
    ],
)
def test_case_extend_refuses_bad_input_with_exit_2(
    cli_case: tuple[str, str], capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    url, ref = cli_case
    code, out, err = run_cli(capsys, "--db", url, "--as", LEAD, "case", "extend", ref, *args)
    assert code == 2
    assert words in only_error(err)
    code, out, _ = run_cli(capsys, "--db", url, "audit", "history", ref, "--json")
    assert "extended" not in out


@pytest.mark.parametrize(
    ("actor", "args", "words"),
    [
        # 7 weeks: Tue 04-28 + 49 = Tue 06-16, past the limit Tue 06-09.
        (LEAD, ["--weeks", "7"], "(the term may run until 2026-06-09 at most)"),
        (STAFF, ["--weeks", "1"], "c.devries may not extend"),
    ],
)
def test_case_extend_refused_by_the_rules_exits_1(
    cli_case: tuple[str, str], capsys: pytest.CaptureFixture[str], actor: str, args: list[str],
    words: str,
) -> None:
    url, ref = cli_case
    code, _, err = run_cli(capsys, "--db", url, "--as", actor, "case", "extend", ref, *args,
                           "--reason", "Advies van de brandweer")
    assert code == 1
    assert words in only_error(err)


def test_case_extend_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ref = cli_database(tmp_path / "loket.db")
    code, out, _ = run_cli(capsys, "--db", url, "--as", LEAD, "case", "extend", ref,
                           "--working-days", "5", "--reason", "Advies nodig", "--json")
    assert code == 0
    # Tue 04-28 + 5 wd: 29, 30, 05-01, 05-04, (05-05 Bevrijdingsdag) 05-06.
    assert '"case_due": "2026-05-06T21:59:59.000000Z"' in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["escalate", "--forecast", "0"], "'--forecast': 0 is not in the range 1<=x<=366"),
        (["escalate", "--forecast", "-3"], "'--forecast': -3 is not in the range"),
        (["escalate", "--forecast", "banana"], "'--forecast': 'banana' is not a valid integer"),
        (["worker", "--sweep-every", "0s"], "--sweep-every: interval must be longer than zero"),
        (["worker", "--sweep-every", "0"], "--sweep-every: interval must be longer than zero"),
        (["worker", "--sweep-every", "banana"], "--sweep-every: expected an interval like 30s"),
        (["worker", "--deliver-every", "0m"], "--deliver-every: interval must be longer than"),
    ],
)
def test_bad_escalate_and_worker_options_exit_2(
    cli_case: tuple[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, args: list[str], words: str,
) -> None:
    def no_worker(*_: Any, **__: Any) -> None:
        pytest.fail("the worker started despite a bad option")

    monkeypatch.setattr("engine.app.worker.run_worker", no_worker)
    url, _ = cli_case
    code, out, err = run_cli(capsys, "--db", url, *args)
    assert (code, out) == (2, "")
    assert words in only_error(err)


# -- malformed durations and ladders in a request type -------------------------------------------

GOOD = """\
key: proef_termijnen
title: Proef met termijnen
prefix: PT
portfolio: wijken
lead_time: {weeks: 8}
fields:
  title: {type: text}
initial: open
states:
  open: {label: Open, owner: wijkteam, deadline: {working_days: 5}}
  klaar: {label: Klaar, final: true}
transitions:
  - {trigger: afronden, from: open, to: klaar}
escalation:
  - {after: {working_days: 0}, to: lead}
  - {after: {working_days: 5}, to: head}
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "problem"),
    [
        ("{working_days: 5}}", "{working_days: -1}}", 10,
         "states.open.deadline: invalid duration: amount must be a whole number >= 0, got -1"),
        ("{working_days: 5}}", "{fortnights: 2}}", 10,
         "states.open.deadline: invalid duration: unknown unit 'fortnights'"),
        ("{working_days: 5}}", "{working_days: 'x'}}", 10,
         "states.open.deadline: invalid duration: amount must be a whole number >= 0, got 'x'"),
        ("{working_days: 5}}", "{working_days: 5, weeks: 1}}", 10,
         "states.open.deadline: invalid duration: give exactly one unit"),
        ("lead_time: {weeks: 8}", "lead_time: {weeks: 2.5}", 5,
         "lead_time: invalid duration: amount must be a whole number >= 0, got 2.5"),
        ("{after: {working_days: 5}, to: head}", "{after: {working_days: -5}, to: head}", 16,
         "escalation[1].after: invalid duration: amount must be a whole number >= 0, got -5"),
        ("to: lead}", "to: teamleider}", 15,
         "escalation[0].to: unknown recipient 'teamleider'"),
        ("to: head}", "to: x.niemand}", 16,
         "escalation[1].to: unknown recipient 'x.niemand'"),
        ("{working_days: 5}}",
         "{working_days: 5}, escalation: [{after: {working_days: 0}, to: manager}]}", 10,
         "states.open.escalation[0].to: unknown recipient 'manager'"),
        ("{working_days: 5}}",
         "{working_days: 5}, timeout: {after: {fortnights: 1}, trigger: afronden}}", 10,
         "states.open.timeout.after: invalid duration: unknown unit 'fortnights'"),
    ],
)
def test_workflow_validate_names_file_and_line_of_a_bad_term(
    cli_case: tuple[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    old: str, new: str, line: int, problem: str,
) -> None:
    url, _ = cli_case
    path = tmp_path / "proef_termijnen.yaml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    code, out, err = run_cli(capsys, "--db", url, "workflow", "validate", str(path))
    assert (code, out) == (2, "")
    head, *problems = err.splitlines()
    assert head == "Error: 1 problem found; nothing was loaded"
    assert len(problems) == 1
    assert problems[0].startswith(f"  {path}:{line}: {problem}")


def test_workflow_validate_accepts_the_good_file(
    cli_case: tuple[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, _ = cli_case
    path = tmp_path / "proef_termijnen.yaml"
    path.write_text(GOOD)
    code, out, err = run_cli(capsys, "--db", url, "workflow", "validate", str(path))
    assert (code, err) == (0, "")
    assert out == f"{path}: ok (proef_termijnen: 2 states, 1 transitions)\n"
