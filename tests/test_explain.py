"""`case show REF --explain` (SPEC §8): every deadline derived step by step, as stored.

The explanation replays the history through the calendar; an auditor must be able to follow
it by hand, and it must end on the date the case holds (a "NOTE: ... differs" line means it
does not). Expected lines are counted by hand in the comments. Amsterdam is UTC+1 until
Sunday 2026-03-29 and UTC+2 after. Holidays of 2026 met below: Goede Vrijdag Fri 04-03,
tweede Paasdag Mon 04-06, Koningsdag Mon 04-27, Bevrijdingsdag Tue 05-05, tweede
Pinksterdag Mon 05-25.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

import cli
from engine.app.clock import FixedClock
from engine.app.explain import explain_case
from engine.app.service import Loket
from engine.core.durations import Duration

BI = "bewonersinitiatief"
STAFF, LEAD = "c.devries", "b.bakker"
SERVICE = "Service norm, from the case's creation (4 weeks):"
LEAD_TIME = "Legal decision term (beslistermijn), from the case's creation (8 weeks):"
_DUE = re.compile(r"^due .* \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)$")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def explain(loket: Loket, ref: str) -> list[str]:
    return explain_case(loket, loket.get_case(ref))


def section(lines: list[str], title: str) -> list[str]:
    """The lines of one deadline's explanation, without their indentation."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    out = []
    for line in lines[start + 1:]:
        if not line:
            break
        out.append(line.strip())
    return out


def final_due(lines: list[str]) -> dt.datetime:
    """The last `due ... (… UTC)` of a section: where the replay ends."""
    found = [m.group(1) for line in lines if (m := _DUE.match(line))]
    return utc(found[-1].replace(" ", "T"))


def assert_agrees(loket: Loket, ref: str) -> list[str]:
    """The explanation ends on every stored deadline and notes no difference."""
    lines = explain(loket, ref)
    assert not [line for line in lines if "NOTE" in line], "\n".join(lines)
    case = loket.get_case(ref)
    state = loket.type_of(case).states[case.state]
    if state.deadline is not None:
        assert final_due(section(lines, f"State '{state.label}' deadline")) == case.state_due
    assert final_due(section(lines, SERVICE)) == case.service_due
    assert final_due(section(lines, LEAD_TIME)) == case.case_due
    return lines


def test_explain_counts_working_days_and_names_the_holidays(
    loket: Loket, clock: FixedClock
) -> None:
    clock.set(utc("2026-03-30T09:00:00"))  # Mon 03-30, 11:00 CEST
    ref = loket.new_case(BI, ["title=Paasbrunch"], actor=STAFF).ref
    lines = assert_agrees(loket, ref)
    assert lines[0].startswith(f"Deadlines of {ref}, on the working-day calendar of Gemeente")
    # ingediend, 5 working days: Tue 03-31, Wed 04-01, Thu 04-02, then Goede Vrijdag, the
    # weekend and tweede Paasdag, then Tue 04-07, Wed 04-08.
    assert section(lines, "State 'Ingediend' deadline") == [
        "start 2026-03-30 (Mon) 11:00 Europe/Amsterdam",
        "counted 5 working days: 2026-03-31, 2026-04-01, 2026-04-02, 2026-04-07, 2026-04-08",
        "skipped 2026-04-03 Goede Vrijdag, 2026-04-04 zaterdag, 2026-04-05 zondag, "
        "2026-04-06 tweede Paasdag",
        "due 2026-04-08 (Wed) 23:59:59 Europe/Amsterdam (2026-04-08 21:59:59 UTC)",
        "escalation ladder, counted from that deadline's day:",
        # Two working days back from Wed 04-08: Tue 04-07, then past tweede Paasdag, the
        # weekend and Goede Vrijdag to Thu 04-02.
        "rung 1: 2 working days before → assignee, at 2026-04-02 (Thu) 23:59:59 Europe/Amsterdam",
        "rung 2: 0 working days after → lead, at 2026-04-08 (Wed) 23:59:59 Europe/Amsterdam",
        # +5: 9, 10, 13, 14, 15 → Wed 04-15; +10: then 16, 17, 20, 21, 22 → Wed 04-22.
        "rung 3: 5 working days after → head, at 2026-04-15 (Wed) 23:59:59 Europe/Amsterdam",
        "rung 4: 10 working days after → administrator, at 2026-04-22 (Wed) 23:59:59 Europe/Amsterdam",
    ]
    # 4 weeks: 03-30 + 28 = Mon 04-27, Koningsdag → Tue 04-28.
    assert section(lines, SERVICE) == [
        "start 2026-03-30 (Mon) 11:00 Europe/Amsterdam",
        "added 4 weeks: 2026-03-30 + 28 days = 2026-04-27 (Mon)",
        "moved from 2026-04-27 (Koningsdag) to 2026-04-28, the next working day (Atw art. 1)",
        "due 2026-04-28 (Tue) 23:59:59 Europe/Amsterdam (2026-04-28 21:59:59 UTC)",
    ]
    # 8 weeks: 03-30 + 56 = Mon 05-25, tweede Pinksterdag → Tue 05-26; at most 6 weeks
    # more: 05-26 + 42 = Tue 07-07.
    assert section(lines, LEAD_TIME) == [
        "start 2026-03-30 (Mon) 11:00 Europe/Amsterdam",
        "added 8 weeks: 2026-03-30 + 56 days = 2026-05-25 (Mon)",
        "moved from 2026-05-25 (tweede Pinksterdag) to 2026-05-26, the next working day "
        "(Atw art. 1)",
        "due 2026-05-26 (Tue) 23:59:59 Europe/Amsterdam (2026-05-26 21:59:59 UTC)",
        "may be extended by at most 6 weeks: until 2026-07-07",
    ]


def test_explain_replays_a_suspension_and_extensions(loket: Loket, clock: FixedClock) -> None:
    clock.set(utc("2026-03-30T09:00:00"))
    ref = loket.new_case(BI, ["title=Paasbrunch"], actor=STAFF).ref
    clock.set(utc("2026-03-31T09:00:00"))
    loket.suspend(ref, "Tekening ontbreekt", actor=STAFF)
    clock.set(utc("2026-04-07T09:00:00"))  # Tue 03-31 → Tue 04-07: 7 calendar days
    loket.resume(ref, actor=STAFF)
    clock.set(utc("2026-04-08T09:00:00"))
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)
    clock.set(utc("2026-04-09T09:00:00"))
    loket.extend(ref, Duration("working_days", 3), "Advies politie", actor=LEAD)
    lines = assert_agrees(loket, ref)
    suspended = [
        "suspended: Tekening ontbreekt",
        "suspended 2026-03-31 (Tue) → 2026-04-07 (Tue): 7 calendar days",
    ]
    # ingediend: Wed 04-08 + 7 = Wed 04-15, a working day.
    assert section(lines, "State 'Ingediend' deadline")[4:8] == [
        *suspended,
        "shifted 2026-04-08 (Wed) + 7 = 2026-04-15 (Wed)",
        "due 2026-04-15 (Wed) 23:59:59 Europe/Amsterdam (2026-04-15 21:59:59 UTC)",
    ]
    # service norm: Tue 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06.
    assert section(lines, SERVICE)[4:] == [
        *suspended,
        "shifted 2026-04-28 (Tue) + 7 = 2026-05-05 (Tue)",
        "moved from 2026-05-05 (Bevrijdingsdag) to 2026-05-06, the next working day",
        "due 2026-05-06 (Wed) 23:59:59 Europe/Amsterdam (2026-05-06 21:59:59 UTC)",
    ]
    # lead time: Tue 05-26 + 7 = Tue 06-02; + 1 week = Tue 06-09; + 3 working days: 10, 11,
    # 12 → Fri 06-12. The limit moved with the suspension: Tue 07-07 + 7 = Tue 07-14.
    assert section(lines, LEAD_TIME)[4:] == [
        *suspended,
        "shifted 2026-05-26 (Tue) + 7 = 2026-06-02 (Tue)",
        "due 2026-06-02 (Tue) 23:59:59 Europe/Amsterdam (2026-06-02 21:59:59 UTC)",
        "extended by 1 week on 2026-04-08 (Wed) 11:00 Europe/Amsterdam by b.bakker (Advies brandweer),"
        " counted from the deadline's day:",
        "start 2026-06-02 (Tue) 23:59:59 Europe/Amsterdam",
        "added 1 week: 2026-06-02 + 7 days = 2026-06-09 (Tue)",
        "due 2026-06-09 (Tue) 23:59:59 Europe/Amsterdam (2026-06-09 21:59:59 UTC)",
        "extended by 3 working days on 2026-04-09 (Thu) 11:00 Europe/Amsterdam by b.bakker (Advies politie),"
        " counted from the deadline's day:",
        "start 2026-06-09 (Tue) 23:59:59 Europe/Amsterdam",
        "counted 3 working days: 2026-06-10, 2026-06-11, 2026-06-12",
        "due 2026-06-12 (Fri) 23:59:59 Europe/Amsterdam (2026-06-12 21:59:59 UTC)",
        "may be extended by at most 6 weeks: until 2026-07-14",
    ]
    assert loket.get_case(ref).case_due == utc("2026-06-12T21:59:59")


def test_explain_replays_extensions_counting_on_from_the_unmoved_day(
    loket: Loket, clock: FixedClock
) -> None:
    # Created Mon 03-02: the lead time ends Tue 04-28 (Koningsdag moved it from Mon 04-27).
    ref = loket.new_case(BI, ["title=Bevrijdingsfeest"], actor=STAFF).ref
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)
    loket.extend(ref, Duration("weeks", 5), "Advies politie", actor=LEAD)
    lines = assert_agrees(loket, ref)
    assert section(lines, LEAD_TIME)[-10:] == [
        "extended by 1 week on 2026-03-02 (Mon) 10:00 Europe/Amsterdam by b.bakker (Advies brandweer),"
        " counted from the deadline's day:",
        "start 2026-04-28 (Tue) 23:59:59 Europe/Amsterdam",
        "added 1 week: 2026-04-28 + 7 days = 2026-05-05 (Tue)",
        "moved from 2026-05-05 (Bevrijdingsdag) to 2026-05-06, the next working day (Atw art. 1)",
        "due 2026-05-06 (Wed) 23:59:59 Europe/Amsterdam (2026-05-06 21:59:59 UTC)",
        "extended by 5 weeks on 2026-03-02 (Mon) 10:00 Europe/Amsterdam by b.bakker (Advies politie),"
        " counted on from 2026-05-05, the day the term ran to before the Atw moved it:",
        "start 2026-05-05 (Tue) 23:59:59 Europe/Amsterdam",
        "added 5 weeks: 2026-05-05 + 35 days = 2026-06-09 (Tue)",
        "due 2026-06-09 (Tue) 23:59:59 Europe/Amsterdam (2026-06-09 21:59:59 UTC)",
        "may be extended by at most 6 weeks: until 2026-06-09",
    ]


# Each scenario starts with a case created Mon 03-02 10:00 local: ingediend due Mon 03-09,
# service norm Mon 03-30, lead time Tue 04-28 (Mon 04-27 is Koningsdag).
SCENARIOS: dict[str, tuple[list[tuple[Any, ...]], str, str]] = {
    # Extended by 1 wd while suspended: 04-28 → Wed 04-29; resumed after 7 days (03-03 →
    # 03-10): 04-29 + 7 = Wed 05-06. The state deadline: 03-09 + 7 = Mon 03-16.
    "extend during a suspension": (
        [("03-03", "suspend", "Wacht op de tekening"), ("03-04", "extend", "working_days", 1),
         ("03-10", "resume")],
        "2026-03-16T22:59:59", "2026-05-06T21:59:59",
    ),
    # The same, with the extension and the resumption at one instant, in that order.
    "extend, then resume, at one instant": (
        [("03-03", "suspend", "Wacht op de tekening"), ("03-10", "extend", "working_days", 1),
         ("03-10", "resume")],
        "2026-03-16T22:59:59", "2026-05-06T21:59:59",
    ),
    # Resumed first: 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06; then + 1 wd → Thu 05-07.
    "resume, then extend, at one instant": (
        [("03-03", "suspend", "Wacht op de tekening"), ("03-10", "resume"),
         ("03-10", "extend", "working_days", 1)],
        "2026-03-16T22:59:59", "2026-05-07T21:59:59",
    ),
    # Free text that looks like a paused state's note is still a suspension: 03-09 + 7 =
    # Mon 03-16; 04-28 + 7 = 05-05 Bevrijdingsdag → 05-06.
    "a reason that mentions a state": (
        [("03-03", "suspend", "Plan nog niet in state 'vastgesteld'"), ("03-10", "resume")],
        "2026-03-16T22:59:59", "2026-05-06T21:59:59",
    ),
    # wacht_op_bewoner 03-02 → 03-09 (7 days): lead time 04-28 + 7 → 05-06; beoordeling from
    # Mon 03-09, 10 wd → Mon 03-23. Suspended 03-10 → 03-12 (2 days): 03-23 + 2 = Wed 03-25;
    # 05-06 + 2 = Fri 05-08. Extended by 2 weeks: 05-08 + 14 = Fri 05-22.
    "a paused state, a suspension and an extension": (
        [("03-02", "advance", "vraag_informatie", "Graag een begroting"),
         ("03-09", "advance", "informatie_ontvangen", None), ("03-10", "suspend", "Vakantie"),
         ("03-12", "resume"), ("03-12", "extend", "weeks", 2)],
        "2026-03-25T22:59:59", "2026-05-22T21:59:59",
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_explain_ends_on_the_stored_dates(loket: Loket, clock: FixedClock, name: str) -> None:
    steps, state_due, case_due = SCENARIOS[name]
    ref = loket.new_case(BI, ["title=Buurtfeest"], actor=STAFF).ref
    for day, action, *args in steps:
        clock.set(utc(f"2026-{day}T09:00:00"))
        if action == "suspend":
            loket.suspend(ref, str(args[0]), actor=STAFF)
        elif action == "resume":
            loket.resume(ref, actor=STAFF)
        elif action == "extend":
            loket.extend(ref, Duration(str(args[0]), int(args[1])), "Advies nodig", actor=LEAD)
        else:
            loket.advance(ref, str(args[0]), actor=STAFF, comment=args[1])
    case = loket.get_case(ref)
    assert (case.state_due, case.case_due) == (utc(state_due), utc(case_due))
    assert_agrees(loket, ref)


def test_explain_while_the_clock_stands_still(loket: Loket, clock: FixedClock) -> None:
    ref = loket.new_case(BI, ["title=Buurtfeest"], actor=STAFF).ref
    clock.set(utc("2026-03-03T09:00:00"))
    loket.advance(ref, "vraag_informatie", actor=STAFF, comment="Graag een begroting")
    lines = assert_agrees(loket, ref)  # nothing has moved yet: the stored dates still hold
    assert "State 'Wacht op bewoner' pauses the clock: it has no deadline of its own." in lines
    waiting = ("the clock stands still since 2026-03-03 (Tue) 10:00 Europe/Amsterdam (state 'wacht_op_bewoner'"
               " pauses the clock); on resumption this deadline moves later by the days it stood"
               " still")
    assert section(lines, SERVICE)[-1] == waiting
    assert section(lines, LEAD_TIME)[-2] == waiting


def test_explain_a_term_in_hours_moves_exactly(loket: Loket, clock: FixedClock) -> None:
    data = ["omschrijving=Open put", "locatie=Lindelaan 3", "spoed=ja"]
    ref = loket.new_case("melding", data, actor=STAFF).ref
    loket.advance(ref, "doorzetten_spoed", actor=STAFF)  # spoed: {hours: 4} → 13:00Z
    clock.set(utc("2026-03-02T10:00:00"))
    loket.suspend(ref, "Melder niet bereikbaar", actor=STAFF)
    clock.set(utc("2026-03-02T11:30:00"))
    loket.resume(ref, actor=STAFF)
    lines = explain(loket, ref)
    assert not [line for line in lines if "NOTE" in line]
    # 1.5 hours suspended: 13:00Z + 1:30 = 14:30Z exactly (15:30 local).
    assert section(lines, "State 'Spoed' deadline")[:7] == [
        "start 2026-03-02 (Mon) 10:00 Europe/Amsterdam",
        "added 4 hours exactly; a term in hours is never moved",
        "due 2026-03-02 (Mon) 14:00:00 Europe/Amsterdam (2026-03-02 13:00:00 UTC)",
        "suspended: Melder niet bereikbaar",
        "suspended 2026-03-02 (Mon) 11:00 Europe/Amsterdam → 2026-03-02 (Mon) 12:30 "
        "Europe/Amsterdam: 1:30:00 (h:mm:ss)",
        "shifted 2026-03-02 (Mon) 14:00 Europe/Amsterdam + 1:30:00 (h:mm:ss) exactly; "
        "a term in hours is never moved",
        "due 2026-03-02 (Mon) 15:30:00 Europe/Amsterdam (2026-03-02 14:30:00 UTC)",
    ]
    assert loket.get_case(ref).state_due == utc("2026-03-02T14:30:00")
    # The service norm counts in days: a suspension within one day moves it by nothing.
    service = section(lines, "Service norm, from the case's creation (5 working days):")
    assert service[-3:] == [
        "suspended 2026-03-02 (Mon) → 2026-03-02 (Mon): 0 calendar days",
        "shifted 2026-03-09 (Mon) + 0 = 2026-03-09 (Mon)",
        "due 2026-03-09 (Mon) 23:59:59 Europe/Amsterdam (2026-03-09 22:59:59 UTC)",
    ]


def test_case_show_explain_through_the_cli(
    loket: Loket, clock: FixedClock, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOKET_NOW", raising=False)
    ref = loket.new_case(BI, ["title=Buurtfeest"], actor=STAFF).ref
    clock.set(utc("2026-03-03T09:00:00"))
    loket.extend(ref, Duration("weeks", 1), "Advies nodig", actor=LEAD)
    clock.set(utc("2026-03-04T09:00:00"))
    loket.suspend(ref, "Tekening ontbreekt", actor=STAFF)
    clock.set(utc("2026-03-06T09:00:00"))  # Wed 03-04 → Fri 03-06: 2 calendar days
    loket.resume(ref, actor=STAFF)
    expected = assert_agrees(loket, ref)
    # 04-28 + 7 = Tue 05-05 Bevrijdingsdag → Wed 05-06; then + 2 days = Fri 05-08.
    assert section(expected, LEAD_TIME)[4:9] == [
        "extended by 1 week on 2026-03-03 (Tue) 10:00 Europe/Amsterdam by b.bakker (Advies nodig),"
        " counted from the deadline's day:",
        "start 2026-04-28 (Tue) 23:59:59 Europe/Amsterdam",
        "added 1 week: 2026-04-28 + 7 days = 2026-05-05 (Tue)",
        "moved from 2026-05-05 (Bevrijdingsdag) to 2026-05-06, the next working day (Atw art. 1)",
        "due 2026-05-06 (Wed) 23:59:59 Europe/Amsterdam (2026-05-06 21:59:59 UTC)",
    ]
    assert loket.get_case(ref).case_due == utc("2026-05-08T21:59:59")
    url = loket.engine.url.render_as_string(hide_password=False)

    cli.main(["--db", url, "--as", "d.smit", "case", "show", ref, "--explain"])
    out, err = capsys.readouterr()
    assert err == ""
    text = out.splitlines()
    assert text[0].startswith(f"{ref}  Bewonersinitiatief (wijkbudget) (v1)")
    assert text[-len(expected):] == expected
    assert "  decision due  2026-05-08 23:59" in text  # the stored date, in local time

    cli.main(["--db", url, "case", "show", ref, "--explain", "--json"])
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {"ref": ref, "explain": expected}


def test_the_full_extension_fits_after_a_suspension_moved_the_term_past_a_holiday(
    loket: Loket, clock: FixedClock
) -> None:
    # Created Thu 03-12: the lead time (8 weeks) ends Thu 05-07, the maximum (6 weeks more)
    # Thu 06-18. Suspended 03-13 → 03-20, 7 days: the term moves to Thu 05-14, Hemelvaartsdag,
    # so to Fri 05-15. Not extended yet, so the maximum counts from there, as it did at the
    # start: Fri 06-26. 1 week and then 5 weeks reach it exactly.
    clock.set(utc("2026-03-12T09:00:00"))
    ref = loket.new_case(BI, ["title=Hemelvaart"], actor=STAFF).ref
    clock.set(utc("2026-03-13T09:00:00"))
    loket.suspend(ref, "Wacht op de tekening", actor=STAFF)
    clock.set(utc("2026-03-20T09:00:00"))
    resumed = loket.resume(ref, actor=STAFF)
    assert (resumed.case_due, resumed.case_due_limit) == (utc("2026-05-15T21:59:59"), utc("2026-06-26T21:59:59"))

    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)  # → Fri 05-22
    extended = loket.extend(ref, Duration("weeks", 5), "Advies politie", actor=LEAD)

    assert extended.case_due == extended.case_due_limit == utc("2026-06-26T21:59:59")
    assert_agrees(loket, ref)


def test_an_extension_that_passes_the_maximum_only_by_a_move_counts_from_before_it(
    loket: Loket, clock: FixedClock
) -> None:
    # Created Thu 03-12: the term ends Thu 05-07, the maximum Thu 06-18. Extended by 1 week:
    # Thu 05-14, Hemelvaartsdag → Fri 05-15. Then suspended 03-13 → 03-23, 10 days: the term
    # to Mon 05-25, tweede Pinksterdag → Tue 05-26; the maximum (extended already, so it moves
    # along) to Sun 06-28 → Mon 06-29. 5 weeks from Tue 05-26 would be Tue 06-30, past it;
    # counted from Sat 05-23, the first of the days the move skipped, they end Sat 06-27 →
    # Mon 06-29, the maximum.
    clock.set(utc("2026-03-12T09:00:00"))
    ref = loket.new_case(BI, ["title=Pinksteren"], actor=STAFF).ref
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer", actor=LEAD)
    clock.set(utc("2026-03-13T09:00:00"))
    loket.suspend(ref, "Wacht op de tekening", actor=STAFF)
    clock.set(utc("2026-03-23T09:00:00"))
    resumed = loket.resume(ref, actor=STAFF)
    assert (resumed.case_due, resumed.case_due_limit) == (utc("2026-05-26T21:59:59"), utc("2026-06-29T21:59:59"))

    extended = loket.extend(ref, Duration("weeks", 5), "Advies politie", actor=LEAD)

    assert extended.case_due == utc("2026-06-29T21:59:59")
    assert loket.history(ref)[1][-1]["data"]["counted_from"] == "2026-05-23T21:59:59.000000Z"
    lines = assert_agrees(loket, ref)
    assert any("counted on from 2026-05-23, the day the term ran to before the Atw moved it" in line
               for line in lines)
