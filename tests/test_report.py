"""`loket report`: figures checked against a small history computed by hand, on SQLite and
PostgreSQL; the text and JSON output; the HTML page drawn in a real headless Chromium.

The history (times UTC; Amsterdam is UTC+1 throughout — summer time starts 29 March):

    Mon 02-03 09:00  M1 melding created;  B1 bewonersinitiatief created
    Mon 02-03 10:00  B2 created
    Mon 02-03 12:00  M2 created
    Tue 03-03 09:00  M1 doorzetten → in_behandeling;  B1 in_behandeling → beoordeling;  M3 created
    Wed 04-03 09:00  B3 created
    Wed 04-03 10:00  B2 in_behandeling → beoordeling
    Thu 05-03 09:00  M1 afhandelen → afgehandeld (closed);  B1 naar_besluit → besluit
    Fri 06-03 10:00  B2 vraag_informatie → wacht_op_bewoner (clock paused)
    Fri 06-03 12:00  M2 doorzetten → in_behandeling
    Mon 09-03 09:00  B1 toekennen → toegekend (closed)
    Wed 11-03 09:00  M4 created;  10:00 M4 doorzetten → in_behandeling
    Thu 12-03 12:00  sweep 1; delivery refuses every mail to b.bakker for good
    Wed 18-03 12:00  M2 afhandelen → afgehandeld (closed)
    Fri 20-03 11:00  sweep 2
    Fri 20-03 12:00  the report
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import html.parser
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import run_report
from engine.app import report as report_module
from engine.app.clock import FixedClock
from engine.app.report import gather
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.core.calendar import WorkingCalendar
from engine.errors import InvalidValue, NotFound
from engine.reporting.builder import WorkingDayCounter, stays, with_moves
from engine.reporting.figures import FAILED_SHOWN, LONGEST, Filters, Move, Report, nearest_rank
from engine.reporting.html import render_page, write_page
from notifications.delivery import MailSettings, deliver
from notifications.transports import MemoryTransport

UTC = dt.UTC
CLERK = "c.devries"  # staff in wijkteam and openbare_ruimte
LEAD = "b.bakker"  # lead of wijkteam
REPORT_AT = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
BARS = 4 + 3 + 8 + 2 * 4 + 2 * 2
"""The page's bars: lead times (median, P90 of the 2 types closed), overdue (3 unit and type
pairs), escalations (8 day and rung pairs), waiting (median, mean of 4 + 2 states)."""


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, 0, tzinfo=UTC)


def build_history(loket: Loket, clock: FixedClock) -> dict[str, str]:
    """The history of the module docstring; returns the refs by their short names."""
    refs: dict[str, str] = {}

    def new(name: str, when: dt.datetime, key: str, *data: str) -> None:
        clock.set(when)
        refs[name] = loket.new_case(key, list(data), actor=CLERK).ref

    def step(name: str, when: dt.datetime, trigger: str, *data: str, actor: str = CLERK,
             comment: str | None = None) -> None:
        clock.set(when)
        loket.advance(refs[name], trigger, actor=actor, assignments=list(data), comment=comment)

    melding = ("omschrijving=Kapotte lantaarnpaal", "locatie=Ridderstraat 4")
    new("M1", at(2, 9), "melding", *melding)
    new("B1", at(2, 9), "bewonersinitiatief", "title=Straatfeest")
    new("B2", at(2, 10), "bewonersinitiatief", "title=Moestuin")
    new("M2", at(2, 12), "melding", *melding)
    step("M1", at(3, 9), "doorzetten", "categorie=verlichting")
    step("B1", at(3, 9), "in_behandeling")
    new("M3", at(3, 9), "melding", *melding)
    new("B3", at(4, 9), "bewonersinitiatief", "title=Bloembakken")
    step("B2", at(4, 10), "in_behandeling")
    step("M1", at(5, 9), "afhandelen", "terugmelding=Lamp vervangen")
    step("B1", at(5, 9), "naar_besluit", "amount=750")
    step("B2", at(6, 10), "vraag_informatie", comment="Graag een begroting")
    step("M2", at(6, 12), "doorzetten", "categorie=zwerfvuil")
    step("B1", at(9, 9), "toekennen", actor=LEAD)
    new("M4", at(11, 9), "melding", *melding)
    step("M4", at(11, 10), "doorzetten", "categorie=bestrating")

    # Sweep 1, Thu 12-03 12:00 (13:00 local):
    #   M2 in_behandeling due end Thu 12-03 (not yet); service norm (5 wd from Mon 02-03:
    #      end Mon 09-03) breached → service_norm                                         1
    #   M3 ontvangen due end Wed 04-03: rung 1 (+0) Wed 04, rung 2 (+2 wd) Fri 06,
    #      rung 3 (+5 wd) Wed 11; service norm end Tue 10-03 → 1, 2, 3, service_norm      4
    #   B3 ingediend due end Wed 11-03 (5 wd from Wed 04): rung 1 (2 wd before) Mon 09,
    #      rung 2 (+0) Wed 11; rung 3 (+5 wd) is Wed 18 → 1, 2                           2
    #   B2 waits on the resident (clock stopped); M4 due end Tue 17-03: nothing.
    clock.set(at(12, 12))
    assert len(sweep(loket).fired) == 7
    refuse = MemoryTransport(refuse={"b.bakker@voorbeeld.example": "550 mailbox unavailable"})
    settings = MailSettings(sender="Wijkloket <wijkloket@voorbeeld.example>", transport=refuse,
                            template_dir=None)
    # b.bakker, lead of wijkteam, gets M3 rung 1 and B3 rungs 1 (no assignee) and 2.
    assert deliver(loket, settings).failed == 3

    step("M2", at(18, 12), "afhandelen", "terugmelding=Opgeruimd", actor=CLERK)

    # Sweep 2, Fri 20-03 11:00:
    #   B3 rung 3 (+5 wd from Wed 11: end Wed 18)                                          1
    #   M4 in_behandeling due end Tue 17-03: rung 1, rung 2 (+2 wd: end Thu 19);
    #      service norm (5 wd from Wed 11: end Wed 18) → 1, 2, service_norm                3
    clock.set(at(20, 11))
    assert len(sweep(loket).fired) == 4
    clock.set(REPORT_AT)
    return refs


@pytest.fixture
def history(loket: Loket, clock: FixedClock) -> dict[str, str]:
    return build_history(loket, clock)


def by_key(groups: Any) -> dict[Any, Any]:
    return {g.key: g for g in groups}


# -- figures on both databases -------------------------------------------------------------


def test_lead_times_and_on_time_per_type(loket: Loket, history: dict[str, str]) -> None:
    report = gather(loket)
    types = by_key(report.types)
    assert list(types) == ["bewonersinitiatief", "bijdrage", "melding"]

    melding = types["melding"]
    assert (melding.open, melding.closed) == (2, 2)  # open M3, M4; closed M1, M2
    # M1: Mon 02 09:00 → Thu 05 09:00 = 3 days; M2: Mon 02 12:00 → Wed 18 12:00 = 16 days.
    # Nearest rank of 2 values: median at rank ⌈0.5·2⌉ = 1, P90 at rank ⌈0.9·2⌉ = 2.
    assert (melding.lead_days.median, melding.lead_days.p90) == (3.0, 16.0)
    # Working days ended in between: M1 Mon 02, Tue 03, Wed 04 = 3; M2 Mon 02 .. Tue 17 = 12.
    assert (melding.lead_working_days.median, melding.lead_working_days.p90) == (3, 12)
    # Each clock on its own. Service norm 5 wd: M1 met (end Mon 09-03); M2 closed late; M3
    # (end Tue 10-03) and M4 (end Wed 18-03) are open past it.
    norm = melding.clocks["service_norm"]
    assert (norm.met, norm.late, norm.open_past, norm.share) == (1, 1, 2, 0.25)
    assert melding.clocks["legal_term"].counted == 0  # melding has no legal term
    # State deadlines per stay: ontvangen (1 wd) M1 met, M2 late, M3 open past, M4 met;
    # in_behandeling (4 wd) M1 met, M2 late (end Thu 12), M4 open past (end Tue 17).
    stays_ = melding.clocks["state_deadlines"]
    assert (stays_.met, stays_.late, stays_.open_past) == (3, 2, 2)
    assert melding.overdue == 2  # M3 (due Wed 04), M4 (due Tue 17)
    assert melding.received == 4
    assert melding.results.outcomes == {"done": 2}

    initiative = types["bewonersinitiatief"]
    assert (initiative.open, initiative.closed) == (2, 1)  # open B2, B3; closed B1
    assert (initiative.lead_days.median, initiative.lead_days.p90) == (7.0, 7.0)  # Mon 02 → Mon 09
    assert initiative.lead_working_days.median == 5  # Mon 02 .. Fri 06
    legal = initiative.clocks["legal_term"]
    assert (legal.met, legal.late, legal.open_past) == (1, 0, 0)  # B1 within 8 weeks; B2, B3 run
    # B1: ingediend, beoordeling, besluit met; B2: ingediend, beoordeling met (wacht_op_bewoner
    # has no deadline); B3 ingediend open past its end (Wed 11).
    stays_ = initiative.clocks["state_deadlines"]
    assert (stays_.met, stays_.late, stays_.open_past) == (5, 0, 1)
    assert initiative.overdue == 1  # B3; B2's clock stands still
    assert initiative.results.outcomes == {"granted": 1}
    assert initiative.results.measures == {"amount": {"granted": 750}}

    nothing = types["bijdrage"]
    assert (nothing.open, nothing.closed, nothing.lead_days.count) == (0, 0, 0)
    assert all(clock.share is None for clock in nothing.clocks.values())

    total = report.total
    assert (total.open, total.closed, total.overdue) == (4, 3, 3)
    # [3, 7, 16]: median rank 2 → 7, P90 rank ⌈2.7⌉ = 3 → 16; working days [3, 5, 12].
    assert (total.lead_days.median, total.lead_days.p90) == (7.0, 16.0)
    assert (total.lead_working_days.median, total.lead_working_days.p90) == (5, 12)
    assert total.clocks["service_norm"].counted == 5
    assert (total.clocks["legal_term"].met, total.clocks["legal_term"].counted) == (1, 1)


def test_figures_per_unit(loket: Loket, history: dict[str, str]) -> None:
    units = by_key(gather(loket).units)
    assert list(units)[:2] == ["wijkteam", "openbare_ruimte"]  # the organisation's order

    wijkteam = units["wijkteam"]
    # Open: M3, B2, B3.
    assert (wijkteam.open, wijkteam.overdue) == (3, 2)
    # Its own stays only: every bewonersinitiatief stay (19.125 + 4 + 14 d 2 h + 4) and the
    # melding stays in ontvangen (1/24 + 1 + 4 + 17.125); never the time at Openbare Ruimte.
    assert wijkteam.stays == 11 and wijkteam.open_stays == 3
    assert wijkteam.held_days == pytest.approx(19.125 + 4 + 14 + 2 / 24 + 4 + 1 / 24 + 1 + 4 + 17.125)
    # M3: 1, 2, 3, service_norm; B3: 1, 2, 3.
    assert wijkteam.escalations == {"1": 2, "2": 2, "3": 2, "service_norm": 1}

    public_space = units["openbare_ruimte"]
    # Open: M4. It held M1 2 days, M2 12 days and M4 9 d 2 h so far, in in_behandeling.
    assert (public_space.open, public_space.overdue) == (1, 1)
    assert (public_space.stays, public_space.open_stays) == (3, 1)
    assert public_space.held_days == pytest.approx(2 + 12 + 9 + 2 / 24)
    deadlines = public_space.state_deadlines
    assert (deadlines.met, deadlines.late, deadlines.open_past) == (1, 1, 1)
    # M2: service_norm; M4: 1, 2, service_norm.
    assert public_space.escalations == {"1": 1, "2": 1, "service_norm": 2}

    assert all(units[u].open == units[u].stays == 0 for u in ("welzijn", "politie"))


def test_time_per_state(loket: Loket, history: dict[str, str]) -> None:
    states = {(s.type_key, s.state): s for s in gather(loket).states}
    # In flow order within each type; states no case entered are left out.
    assert list(states) == [
        ("bewonersinitiatief", "ingediend"), ("bewonersinitiatief", "beoordeling"),
        ("bewonersinitiatief", "wacht_op_bewoner"), ("bewonersinitiatief", "besluit"),
        ("melding", "ontvangen"), ("melding", "in_behandeling"),
    ]

    def check(key: str, state: str, stays_: int, open_: int, median: float, mean: float) -> None:
        s = states[(key, state)]
        assert (s.stays, s.open_stays) == (stays_, open_)
        assert s.median_days == pytest.approx(median)
        assert s.mean_days == pytest.approx(mean)
        assert s.total_days == pytest.approx(mean * stays_)

    # ingediend: B1 1 day, B2 2 days, B3 still there since Wed 04 09:00: 16 d 3 h = 16.125.
    check("bewonersinitiatief", "ingediend", 3, 1, 2.0, (1 + 2 + 16.125) / 3)
    # beoordeling: B1 Tue 03 → Thu 05, B2 Wed 04 → Fri 06: 2 days each.
    check("bewonersinitiatief", "beoordeling", 2, 0, 2.0, 2.0)
    # B2 waits on the resident since Fri 06 10:00: 14 d 2 h.
    check("bewonersinitiatief", "wacht_op_bewoner", 1, 1, 14 + 2 / 24, 14 + 2 / 24)
    check("bewonersinitiatief", "besluit", 1, 0, 4.0, 4.0)  # B1 Thu 05 → Mon 09
    # ontvangen: M1 1 day, M2 4 days, M3 open 17 d 3 h, M4 1 hour → sorted
    # [1/24, 1, 4, 17.125], median at rank 2 = 1.
    check("melding", "ontvangen", 4, 1, 1.0, (1 / 24 + 1 + 4 + 17.125) / 4)
    # in_behandeling: M1 2 days, M2 12 days, M4 open 9 d 2 h → median 9 d 2 h.
    check("melding", "in_behandeling", 3, 1, 9 + 2 / 24, (2 + 12 + 9 + 2 / 24) / 3)
    assert states[("melding", "in_behandeling")].unit == "openbare_ruimte"
    assert states[("melding", "in_behandeling")].unit_name == "Openbare Ruimte"


def test_escalations_overdue_waiting_and_failed_mail(loket: Loket, history: dict[str, str]) -> None:
    report = gather(loket)
    types = by_key(report.types)
    assert types["melding"].escalations == {"1": 2, "2": 2, "3": 1, "service_norm": 3}
    assert types["bewonersinitiatief"].escalations == {"1": 1, "2": 1, "3": 1}
    assert types["bijdrage"].escalations == {}
    assert report.total.escalations == {"1": 3, "2": 3, "3": 2, "service_norm": 3}
    assert report.rungs() == ["1", "2", "3", "service_norm"]
    # Per local day of firing, rungs in ladder order.
    assert [(d.isoformat(), r, n) for d, r, n in report.escalations_by_day] == [
        ("2026-03-12", "1", 2), ("2026-03-12", "2", 2), ("2026-03-12", "3", 1),
        ("2026-03-12", "service_norm", 2),
        ("2026-03-20", "1", 1), ("2026-03-20", "2", 1), ("2026-03-20", "3", 1),
        ("2026-03-20", "service_norm", 1),
    ]
    assert report.overdue == [("wijkteam", "bewonersinitiatief", 1), ("wijkteam", "melding", 1),
                              ("openbare_ruimte", "melding", 1)]

    refs = history
    assert [(w.ref, w.state, w.unit, round(w.days, 4), w.suspended) for w in report.longest] == [
        (refs["M3"], "ontvangen", "wijkteam", 17.125, False),
        (refs["B3"], "ingediend", "wijkteam", 16.125, False),
        (refs["B2"], "wacht_op_bewoner", "wijkteam", round(14 + 2 / 24, 4), True),
        (refs["M4"], "in_behandeling", "openbare_ruimte", round(9 + 2 / 24, 4), False),
    ]
    assert report.longest[0].label == "Ontvangen (triage)"

    assert report.failed_count == 3
    assert {f.to for f in report.failed} == {"b.bakker@voorbeeld.example"}
    assert all(f.last_error and "550" in f.last_error for f in report.failed)


def test_text_report_has_every_section(loket: Loket, history: dict[str, str]) -> None:
    lines: list[str] = []
    run_report(loket, None, False, lines.append)
    text = "\n".join(lines)
    assert text.startswith("Report for Gemeente Voorbeeld at 2026-03-20 13:00 Europe/Amsterdam")
    for heading in ("Per request type", "Clocks, each on its own", "Results per type and area", "Per unit",
                    "Time per state", "Escalations per rung", "Bestuurlijke dekking", "Per week",
                    "Longest waiting", "Failed emails: 3"):
        assert f"\n{heading}" in text
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split())  # the first table naming it
    assert rows["melding"] == ["melding", "4", "2", "2", "3.0", "16.0", "3", "12", "2"]
    assert rows["(all)"] == ["(all)", "7", "4", "3", "7.0", "16.0", "5", "12", "3"]
    assert "melding             service norm                1    1     2          1/4 (25%)" in text
    assert rows["2026-W10"] == ["2026-W10", "6", "1", "2"]
    assert rows[history["B2"]][-2:] == ["14.1", "stopped"]
    headers = next(line.split() for line in text.splitlines() if line.startswith("BY "))
    assert headers == ["BY", "1", "2", "3", "SERVICE_NORM", "TOTAL"]
    assert rows["type"] == ["type", "bewonersinitiatief", "1", "1", "1", "0", "3"]
    assert next(line.split() for line in text.splitlines() if line.startswith("type melding")) == [
        "type", "melding", "2", "2", "1", "3", "8"]


def test_json_shape(loket: Loket, history: dict[str, str]) -> None:
    out: list[str] = []
    run_report(loket, None, True, out.append)
    data = json.loads("".join(out))
    assert set(data) == {"municipality", "timezone", "filters", "now", "date", "types", "units", "total",
                         "time_per_state", "escalations_by_day", "overdue", "longest_waiting",
                         "failed_emails", "results_by_area", "weeks", "bestuurlijke_dekking"}
    assert data["filters"] == {"since": None, "until": None, "type": None, "unit": None}
    assert (data["municipality"], data["date"], data["now"]) == (
        "Gemeente Voorbeeld", "2026-03-20", "2026-03-20T12:00:00.000000Z")
    melding = next(t for t in data["types"] if t["key"] == "melding")
    assert melding == {
        "key": "melding", "name": "Melding openbare ruimte", "title": "Melding openbare ruimte",
        "received": 4, "open": 2, "closed": 2,
        "lead_time_days": {"count": 2, "median": 3.0, "p90": 16.0},
        "lead_time_working_days": {"count": 2, "median": 3, "p90": 12},
        "clocks": {
            "state_deadlines": {"met": 3, "late": 2, "open_past": 2, "counted": 7, "share": 0.429},
            "service_norm": {"met": 1, "late": 1, "open_past": 2, "counted": 4, "share": 0.25},
            "legal_term": {"met": 0, "late": 0, "open_past": 0, "counted": 0, "share": None},
        },
        "overdue": 2,
        "escalations": {"1": 2, "2": 2, "3": 1, "service_norm": 3},
        "outcomes": {"done": 2}, "measures": {},
    }
    assert "on_time" not in data["total"]  # no single mixed "on time"
    assert data["units"][1] == {
        "key": "openbare_ruimte", "name": "Openbare Ruimte", "open": 1, "overdue": 1,
        "held": {"stays": 3, "open_stays": 1, "days": 23.083, "median_days_per_stay": 9.083},
        "state_deadlines": {"met": 1, "late": 1, "open_past": 1, "counted": 3, "share": 0.333},
        "escalations": {"1": 1, "2": 1, "service_norm": 2},
    }
    assert data["results_by_area"][0] == {
        "type": "bewonersinitiatief", "area": None, "closed": 1, "outcomes": {"granted": 1},
        "measures": {"amount": {"granted": 750}}, "lead_time_days": {"count": 1, "median": 7.0, "p90": 7.0},
        "legal_term": {"met": 1, "late": 0, "open_past": 0, "counted": 1, "share": 1.0},
    }
    assert data["weeks"] == [
        {"week": "2026-W10", "monday": "2026-03-02", "received": 6, "closed": 1, "overdue": 2},
        {"week": "2026-W11", "monday": "2026-03-09", "received": 1, "closed": 1, "overdue": 2},
        {"week": "2026-W12", "monday": "2026-03-16", "received": 0, "closed": 1, "overdue": 1},
    ]
    assert [a["administrator"] for a in data["bestuurlijke_dekking"]] == [
        "wethouder.wijken", "wethouder.openbare_ruimte", "wethouder.zorg"]
    assert data["time_per_state"][0] == {
        "type": "bewonersinitiatief", "state": "ingediend", "label": "Ingediend",
        "unit": "wijkteam", "unit_name": "Wijkteam Noord", "stays": 3, "open_stays": 1,
        "median_days": 2.0, "mean_days": 6.375, "total_days": 19.125,
    }
    assert data["longest_waiting"][0] == {
        "ref": history["M3"], "type": "melding", "state": "ontvangen",
        "state_label": "Ontvangen (triage)", "unit": "wijkteam", "unit_name": "Wijkteam Noord",
        "since": "2026-03-03T09:00:00.000000Z", "days_waiting": 17.125, "suspended": False,
    }
    assert data["escalations_by_day"][0] == {"date": "2026-03-12", "rung": "1", "count": 2}
    assert data["overdue"][0] == {"unit": "wijkteam", "type": "bewonersinitiatief", "count": 1}
    assert data["failed_emails"]["count"] == 3
    assert set(data["failed_emails"]["items"][0]) == {"id", "key", "to", "subject", "attempts",
                                                      "last_error", "created_at"}


# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "percent", "expected"), [
    ([], 50, None),
    ([5.0], 50, 5.0),
    ([5.0], 90, 5.0),
    ([1.0, 2.0], 50, 1.0),          # rank ⌈1⌉ = 1: the lower middle
    ([1.0, 2.0, 3.0], 50, 2.0),     # rank ⌈1.5⌉ = 2
    ([1.0, 2.0, 3.0, 4.0], 90, 4.0),  # rank ⌈3.6⌉ = 4
    ([float(i) for i in range(1, 11)], 90, 9.0),   # rank ⌈9⌉ = 9, exactly (no float error)
    ([float(i) for i in range(1, 101)], 90, 90.0),
    ([float(i) for i in range(1, 31)], 90, 27.0),  # 0.9·30 is 27.000000000000004 in floats
    ([1.0, 2.0, 3.0], 1, 1.0),
])
def test_nearest_rank(values: list[float], percent: int, expected: float | None) -> None:
    assert nearest_rank(values, percent) == expected


def test_working_day_counter_agrees_with_the_calendar() -> None:
    """Random pairs over 2026–2027, holidays and closed days included, times near midnight."""
    cal = WorkingCalendar("Europe/Amsterdam", [dt.date(2026, 12, 28), dt.date(2026, 12, 29)])
    counter = WorkingDayCounter(cal)
    rng = random.Random(7)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    moments = [base + dt.timedelta(minutes=rng.randrange(0, 730 * 24 * 60)) for _ in range(120)]
    # Around local midnight before Good Friday and Christmas Eve, and just after New Year.
    moments += [dt.datetime(2026, 4, 2, 21, 59, 59, tzinfo=UTC),
                dt.datetime(2026, 4, 2, 22, 0, tzinfo=UTC),
                dt.datetime(2026, 12, 24, 22, 59, 59, tzinfo=UTC),
                dt.datetime(2027, 1, 4, 7, tzinfo=UTC)]
    for a in moments:
        for b in moments:
            assert counter.between(a, b) == cal.working_days_between(a, b), (a, b)


def test_stays_from_moves() -> None:
    t0 = dt.datetime(2026, 3, 2, tzinfo=UTC)
    moves = [Move(1, t0, "created", None, "a"),
             Move(1, t0 + dt.timedelta(days=2), "transition", "a", "b"),
             Move(1, t0 + dt.timedelta(days=3), "transition", "b", "a")]
    now = t0 + dt.timedelta(days=4, hours=12)
    assert list(stays(moves, now, lambda s: s == "end")) == [("a", 2.0, False), ("b", 1.0, False),
                                                             ("a", 1.5, True)]
    closed = [*moves, Move(1, t0 + dt.timedelta(days=5), "transition", "a", "end")]
    assert list(stays(closed, now, lambda s: s == "end"))[-1] == ("a", 2.0, False)
    # A simulation clock set back never makes a stay shorter than nothing.
    assert list(stays(moves[:1], t0 - dt.timedelta(days=1), lambda s: False)) == [("a", 0.0, True)]


def test_with_moves_pairs_streams_in_id_order() -> None:
    t = dt.datetime(2026, 3, 2, tzinfo=UTC)
    cases = [(i, f"ref-{i}") for i in (1, 3, 4)]  # a case as its fields, the id first
    moves = [Move(i, t, "created", None, "a") for i in (1, 1, 2, 3, 5)]
    assert [(c[0], [m.case_id for m in own]) for c, own in with_moves(cases, moves)] == [
        (1, [1, 1]), (3, [3]), (4, []),
    ]


def test_empty_database(loket: Loket, tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_report(loket, None, False, lines.append)
    assert (report.total.open, report.total.closed, report.longest) == (0, 0, [])
    assert "no open cases" in lines[0] and "Failed emails: 0" in lines[0]
    page = render_page(report, loket.latest_types())
    assert "Nog geen afgesloten zaken." in page and "Geen mislukte e-mails." in page

    # --html with --json: the page is written and only the JSON is printed.
    out: list[str] = []
    run_report(loket, str(tmp_path / "leeg.html"), True, out.append)
    assert json.loads("".join(out))["total"]["open"] == 0
    assert (tmp_path / "leeg.html").stat().st_size > 0
    with pytest.raises(InvalidValue, match="no such folder"):
        write_page(report, [], tmp_path / "nergens" / "rapport.html", database=None)


def test_gather_pauses_the_garbage_collector_and_restores_it(
        loket: Loket, history: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = report_module.reports.failed_count

    def failed_count(conn: Any) -> int:
        seen.append(gc.isenabled())
        return real(conn)

    monkeypatch.setattr(report_module.reports, "failed_count", failed_count)
    was = gc.isenabled()
    try:
        gc.enable()
        assert gather(loket).total.closed > 0
        assert (seen, gc.isenabled()) == ([False], True)  # paused while gathering, then on again
        with pytest.raises(NotFound):
            gather(loket, Filters(type_key="onbekend"))
        assert gc.isenabled()  # also when the report is refused
        gc.disable()
        gather(loket)
        assert not gc.isenabled()  # left off when it was off
    finally:
        (gc.enable if was else gc.disable)()


# -- the page ------------------------------------------------------------------------------


@pytest.fixture
def sqlite_history(sqlite_url: str, clock: FixedClock) -> Iterator[Loket]:
    from engine.store.db import open_engine
    from tests.conftest import ORG_FILE, WORKFLOWS

    engine = open_engine(sqlite_url)
    loket = Loket(engine, clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(
        sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    build_history(loket, clock)
    yield loket
    engine.dispose()


class _Sources(html.parser.HTMLParser):
    """Every src/href attribute outside scripts and styles (their text is not markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "data") and value is not None:
                self.found.append((tag, name, value))


def test_page_is_self_contained_and_escaped(sqlite_history: Loket, tmp_path: Path) -> None:
    path = tmp_path / "rapport.html"
    out: list[str] = []
    run_report(sqlite_history, str(path), False, out.append)
    assert out == [f"report page written to {path} ({path.stat().st_size // 1024} KiB,"
                   " 4 open and 3 closed cases)"]
    page = path.read_text(encoding="utf-8")
    assert "<title>Rapportage Wijkloket — Gemeente Voorbeeld — 20 maart 2026</title>" in page
    parser = _Sources()
    parser.feed(page)
    external = [f for f in parser.found if re.match(r"\s*(https?:)?//", f[2], re.I)]
    assert external == []
    assert all(value.startswith("#") for _, _, value in parser.found)  # only the table of contents
    assert "<script" not in page  # the charts are drawn on the server
    # lead times, overdue, escalations, weeks, 2 types waiting: each an SVG with its own text
    # alternative, and the two whose numbers no other table holds have a table of them.
    assert page.count('<svg class="chart-svg" role="img"') == 6
    assert page.count('<desc id="chart-') == 6
    assert page.count('<details class="cijfers">') == 2
    assert "<caption>Escalaties per dag, per sport</caption>" in page
    assert len(page.encode()) < 150_000  # mostly the three Graphviz diagrams


def _large(report: Report, days: int) -> Report:
    """`report` with a long, busy period: escalations on each of `days` days at every rung, a
    week of figures for each week, twenty units with overdue cases of every type, and the
    longest-waiting and failed-mail lists full."""
    rungs = ["1", "2", "3", "4", "5", "service_norm", "lead_time", "timeout", "directive"]
    first = dt.date(2024, 1, 1)
    units = [dataclasses.replace(report.units[0], key=f"eenheid_{n}", name=f"Eenheid nummer {n}", overdue=30)
             for n in range(20)]
    weeks = [dataclasses.replace(report.weeks[0], year=2024 + n // 52, week=n % 52 + 1, received=400 + n % 37,
                                 closed=380 + n % 29, overdue=50 + n % 11) for n in range(days // 7 + 1)]
    return dataclasses.replace(
        report,
        escalations_by_day=[(first + dt.timedelta(days=d), r, 1 + (d * 7 + i) % 23)
                            for d in range(days) for i, r in enumerate(rungs)],
        weeks=weeks, units=units,
        overdue=[(u.key, key, 10) for u in units for key in report.type_titles],
        states=[dataclasses.replace(s, label=s.label + " met een vrij lange naam") for s in report.states * 3],
        longest=report.longest * (LONGEST // max(len(report.longest), 1) + 1),
        failed=report.failed * (FAILED_SHOWN // max(len(report.failed), 1) + 1),
    )


@pytest.mark.parametrize("days", [366, 3 * 365])
def test_page_stays_small_with_a_long_busy_period(sqlite_history: Loket, days: int) -> None:
    """Below 1 MB with a year of daily escalations at every rung (one column per day) and with
    three years (a column per week), a hundred weeks, twenty units: no chart library inside,
    and nothing loaded from elsewhere."""
    report = _large(gather(sqlite_history), days)
    page = render_page(report, sqlite_history.latest_types(), dot_binary=shutil.which("dot"))
    assert len(page.encode()) < 1_000_000
    assert page.count('<svg class="chart-svg" role="img"') == 3 + 3  # three types waiting
    per = "dag" if days <= 366 else "week"
    assert f"<caption>Escalaties per {per}, per sport</caption>" in page
    parser = _Sources()
    parser.feed(page)
    assert all(value.startswith("#") for _, _, value in parser.found)
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page and "@import" not in page


def test_chart_colours_stand_out_from_the_background() -> None:
    """Every colour a chart draws with is at least 3:1 against white (WCAG 1.4.11)."""
    from engine.reporting import html as page
    from engine.reporting.public import OUTCOME_COLOURS
    from engine.reporting.svg import contrast

    colours = {*page.PALETTE, *page.TYPE_COLOURS, *page.RUNG_COLOURS.values(), *page.LADDER_COLOURS,
               *OUTCOME_COLOURS.values()}
    weak = {c: round(contrast(c), 2) for c in colours if contrast(c) < 3}
    assert weak == {}
    assert round(contrast("#000000"), 1) == 21.0 and contrast("#ffffff") == 1.0


def test_page_without_graphviz_shows_mermaid(sqlite_history: Loket) -> None:
    page = render_page(gather(sqlite_history), sqlite_history.latest_types(), dot_binary=None)
    assert page.count("stateDiagram-v2") == 3
    assert "Graphviz (<code>dot</code>) is niet gevonden" in page
    assert "<svg" not in page.split('id="diagrammen"')[1]


def test_text_from_data_cannot_become_markup(
    loket: Loket, tmp_path: Path, clock: FixedClock
) -> None:
    hostile = "<img src=x onerror=alert('wk')>"
    definition = tmp_path / "kwaad.yaml"
    definition.write_text(f"""
key: kwaad
title: "Kwaad {hostile}"
prefix: KW
portfolio: wijken
fields:
  title: {{type: text, required: true}}
initial: open
states:
  open: {{label: "Open {hostile}", owner: wijkteam, deadline: {{working_days: 1}}}}
  dicht: {{label: "Dicht </script>", final: true}}
transitions:
  - {{trigger: sluiten, from: open, to: dicht}}
""", encoding="utf-8")
    loket.load_request_types([definition])
    ref = loket.new_case("kwaad", ["title=x"], actor=CLERK).ref
    clock.advance(dt.timedelta(days=3))
    loket.advance(ref, "sluiten", actor=CLERK)
    loket.new_case("kwaad", ["title=y"], actor=CLERK)
    clock.advance(dt.timedelta(days=3))
    sweep(loket)
    path = tmp_path / "page.html"
    write_page(gather(loket), loket.latest_types(), path, database=None)
    page = path.read_text(encoding="utf-8")
    assert "onerror=alert('wk')" in page.replace("&#39;", "'")  # it is there, as text...
    assert "<img src=x" not in page  # ...and never as a tag
    assert "Dicht </script>" not in page


# -- in a real browser ---------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _browse(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with every network route closed: the page must draw offline."""
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(profile)})


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_page_draws_in_headless_chromium(sqlite_history: Loket, tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium on this machine (CI installs it: apt-get install -y chromium)")
    path = tmp_path / "rapport.html"
    run_report(sqlite_history, str(path), False, lambda _: None)
    url = path.as_uri()

    shot = Path(os.environ.get("LOKET_REPORT_SCREENSHOT") or tmp_path / "rapport.png")
    _browse(binary, tmp_path / "profile-1", f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert shot.exists(), "chromium made no screenshot"
    assert _png_size(shot) == (1280, 2400)
    # A blank or unstyled page compresses to a few KiB; charts, tables and colour do not.
    assert shot.stat().st_size > 60_000

    dom = _browse(binary, tmp_path / "profile-2", "--dump-dom", url).stdout
    # The 6 charts, inline SVG: bars for lead times (median and P90 of 3 types), overdue (one
    # per unit and type with any), escalations (one per day and rung with any), waiting (median
    # and mean per state), and the weeks' lines with a marker per week and series.
    assert dom.count('class="chart-svg"') == 6
    assert dom.count('<rect class="bar"') == BARS
    assert dom.count('<g class="series">') == 3
    assert "Gemeente Voorbeeld" in dom and "Langst wachtende zaken" in dom
    drawn = dom.split('id="diagrammen"')[1]
    if shutil.which("dot"):
        assert drawn.count('class="graph"') == 3  # Graphviz's drawings, inline
    else:
        assert drawn.count("stateDiagram-v2") == 3


def test_text_report_does_not_import_the_page() -> None:
    """The text report does not pay for the page: only --html imports it."""
    code = ("import sys; import engine.app.report, engine.reporting.text; "
            "assert 'engine.reporting.html' not in sys.modules and 'engine.reporting.svg' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr


def test_the_charts_pass_axe_in_headless_chromium(sqlite_history: Loket, tmp_path: Path) -> None:
    """WCAG 2.1 A and AA rules (contrast included) on the page's charts and their tables, run by
    axe-core inside the system's Chromium (as tests/test_results.py runs it on the public page)."""
    from tests.test_results import axe_runner

    binary = _chromium()
    if binary is None:
        pytest.fail("no chromium on this machine (CI installs it: apt-get install -y chromium)")
    page = render_page(gather(sqlite_history), sqlite_history.latest_types(), dot_binary=None)
    runner = axe_runner("{include: [['.chart']]}")
    checked = tmp_path / "checked.html"
    # The folded tables are opened, so that axe checks them as a reader who opens them sees them.
    checked.write_text(page.replace('<details class="cijfers">', '<details class="cijfers" open>')
                       .replace("</body>", runner + "</body>"), encoding="utf-8")
    dom = _browse(binary, tmp_path / "profile", "--dump-dom", checked.as_uri()).stdout
    start = dom.find('<pre id="axe-result">')
    assert start >= 0, "axe-core gave no result"
    result = json.loads(html.unescape(dom[start + len('<pre id="axe-result">'):dom.index("</pre>", start)]))
    assert "error" not in result, result
    assert result["violations"] == []
    assert result["passes"] > 5  # it really ran: contrast, images' names, tables ...


def test_every_rung_has_its_dutch_name_on_the_page(sqlite_history: Loket) -> None:
    """The page is Dutch: the missed instruction's rung too (as in the emails), not "directive"."""
    report = _large(gather(sqlite_history), 14)
    page = render_page(report, sqlite_history.latest_types(), dot_binary=shutil.which("dot"))
    for english in ("directive", "service_norm", "lead_time", "timeout"):
        assert english not in page
    assert "bestuurlijke opdracht" in page and "servicenorm" in page and "beslistermijn" in page
