"""Results made visible (SPEC §12.2): outcomes, measures and areas in request types; the honest
report (filters, each clock on its own, time held per unit, bestuurlijke dekking, weekly
trend); the public results page — free of personal data, accessible (axe-core in headless
Chromium) and written only where it may be.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ORG_FILE, WORKFLOWS, run_cli

from cli import run_report
from engine.app.clock import FixedClock
from engine.app.report import gather
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.core.casework import Change, Draft
from engine.core.views import timestamp
from engine.core.vocabulary import Action, Rung
from engine.reporting.figures import Filters
from engine.reporting.public import render_public
from engine.store.db import open_engine
from notifications.delivery import MailSettings, deliver
from notifications.transports import MemoryTransport
from tests.test_report import at, build_history

UTC = dt.UTC
CLERK = "c.devries"
LEAD = "b.bakker"
HEAD = "a.jansen"
ADMIN = "wethouder.wijken"
TYPES = sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml")


def _loket(url: str, clock: FixedClock) -> Loket:
    loket = Loket(open_engine(url), clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(TYPES)
    return loket


@pytest.fixture
def sqlite_loket(sqlite_url: str, clock: FixedClock) -> Iterator[Loket]:
    loket = _loket(sqlite_url, clock)
    yield loket
    loket.engine.dispose()


# -- the request type ----------------------------------------------------------------------------


BAD_TYPE = """\
key: proef
title: Proef
prefix: PR
area: bedrag
measures: [naam, omschrijving, bestaat_niet, bedrag]
fields:
  bedrag: {type: decimal}
  naam: {type: integer, personal: true}
  omschrijving: {type: text}
  wijk: {type: text, personal: true}
initial: open
states:
  open: {label: Open, owner: wijkteam, outcome: granted}
  klaar: {label: Klaar, final: true, outcome: gelukt}
transitions:
  - {trigger: klaar, from: open, to: klaar}
"""


def test_outcomes_measures_and_area_are_checked_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "proef.yaml"
    path.write_text(BAD_TYPE, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    assert run_cli(capsys, "--db", url, "init", "--org", str(ORG_FILE))[0] == 0
    code, _, err = run_cli(capsys, "--db", url, "workflow", "validate", str(path))
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == "Error: 6 problems found; nothing was loaded"
    expected = [
        (13, "states.open.outcome: only a final state takes an outcome"),
        (14, "states.klaar.outcome: outcome must be one of granted, rejected, withdrawn, done, got 'gelukt'"),
        (5, "measures[0]: measure 'naam' holds personal data"),
        (5, "measures[1]: measure 'omschrijving' is a text field: a measure must be an integer or decimal"),
        (5, "measures[2]: measure 'bestaat_niet' is not a field"),
        (4, "area: area field 'bedrag' is of type decimal: it must be a choice or text field"),
    ]
    for line, (number, words) in zip(lines[1:], expected, strict=True):
        assert line.startswith(f"  {path}:{number}: "), line
        assert words in line, line
    # A personal area is refused too: results grouped by it are published.
    path.write_text(BAD_TYPE.replace("area: bedrag", "area: wijk").replace(
        "measures: [naam, omschrijving, bestaat_niet, bedrag]", "measures: [bedrag]").replace(
        "open: {label: Open, owner: wijkteam, outcome: granted}", "open: {label: Open, owner: wijkteam}").replace(
        "outcome: gelukt", "outcome: done"), encoding="utf-8")
    code, _, err = run_cli(capsys, "--db", url, "workflow", "validate", str(path))
    assert code == 2 and "area field 'wijk' holds personal data" in err


def test_the_bundled_types_name_outcomes_an_area_and_measures(sqlite_loket: Loket) -> None:
    types = {rt.key: rt for rt in sqlite_loket.latest_types()}
    initiative = types["bewonersinitiatief"]
    assert (initiative.area, initiative.measures) == ("buurt", ("amount", "participants"))
    assert {s.name: s.outcome for s in initiative.states.values() if s.final} == {
        "toegekend": "granted", "afgewezen": "rejected", "ingetrokken": "withdrawn",
        "buiten_behandeling": "rejected"}
    assert all(s.outcome for rt in types.values() for s in rt.states.values() if s.final)
    assert all(s.outcome is None for rt in types.values() for s in rt.states.values() if not s.final)
    assert all(rt.area == "buurt" for rt in types.values())


def test_the_residents_closing_message_says_the_decision(sqlite_loket: Loket, clock: FixedClock) -> None:
    clock.set(at(2, 9))
    ref = sqlite_loket.new_case("bewonersinitiatief", ["title=Straatfeest", "email=bewoner@example.org",
                                                       "amount=400"], actor=CLERK).ref
    for trigger, who in (("in_behandeling", CLERK), ("naar_besluit", CLERK), ("toekennen", LEAD)):
        clock.set(clock.now() + dt.timedelta(hours=1))
        sqlite_loket.advance(ref, trigger, actor=who)
    transport = MemoryTransport()
    deliver(sqlite_loket, MailSettings(sender="Wijkloket <wijkloket@voorbeeld.example>", transport=transport,
                                       template_dir=None))
    closing = [m for m in transport.sent if m["To"].addresses[0].addr_spec == "bewoner@example.org"
               and "afgehandeld" in str(m["Subject"]).lower()]
    assert len(closing) == 1
    body = closing[0].get_body(("plain",))
    assert body is not None
    assert "De uitkomst is: toegekend." in body.get_content()


# -- filters ---------------------------------------------------------------------------------------


@pytest.fixture
def history(sqlite_loket: Loket, clock: FixedClock) -> dict[str, str]:
    return build_history(sqlite_loket, clock)


def test_a_period_counts_what_happened_in_it(sqlite_loket: Loket, history: dict[str, str]) -> None:
    # Week 11 (Mon 9 March up to Mon 16 March, local): M4 received; B1 closed (Mon 9).
    week = Filters(since=dt.datetime(2026, 3, 8, 23, tzinfo=UTC), until=dt.datetime(2026, 3, 15, 23, tzinfo=UTC))
    report = gather(sqlite_loket, week)
    types = {g.key: g for g in report.types}
    assert (report.total.received, report.total.closed) == (1, 1)
    assert types["bewonersinitiatief"].results.outcomes == {"granted": 1}
    assert types["melding"].closed == 0
    # Only the escalations of sweep 1 (Thu 12 March): 7 fired, none on Fri 20 March.
    assert sum(report.total.escalations.values()) == 7
    assert {d.isoformat() for d, _, _ in report.escalations_by_day} == {"2026-03-12"}
    # Terms that ended in the week: M2's in_behandeling (end Thu 12) late, B3's ingediend
    # (end Wed 11) open past; B1's besluit (left Mon 9) and M4's ontvangen (left Wed 11) met.
    # Service norms: M2 (end Mon 09) late, M3 (end Tue 10) open past.
    stays_ = report.total.clocks["state_deadlines"]
    assert (stays_.met, stays_.late, stays_.open_past) == (2, 1, 1)
    norm = report.total.clocks["service_norm"]
    assert (norm.met, norm.late, norm.open_past) == (1, 1, 1)  # and B1 met its own when it closed
    assert [w.label for w in report.weeks] == ["2026-W11"]
    assert (report.weeks[0].received, report.weeks[0].closed) == (1, 1)


def test_type_and_unit_filters(sqlite_loket: Loket, history: dict[str, str]) -> None:
    report = gather(sqlite_loket, Filters(type_key="melding"))
    assert [g.key for g in report.types] == ["melding"]
    assert (report.total.received, report.total.open, report.total.closed) == (4, 2, 2)
    assert report.total.escalations == {"1": 2, "2": 2, "3": 1, "service_norm": 3}
    assert {s.type_key for s in report.states} == {"melding"}

    report = gather(sqlite_loket, Filters(unit="openbare_ruimte"))
    assert [u.key for u in report.units] == ["openbare_ruimte"]
    # The cases the unit held (M1, M2, M4), only its own stays and the escalations while it held them.
    assert report.total.received == 3 and report.total.closed == 2
    assert report.total.open == 1  # M4; M3 is at the wijkteam
    assert {(s.type_key, s.state) for s in report.states} == {("melding", "in_behandeling")}
    assert report.units[0].held_days == pytest.approx(2 + 12 + 9 + 2 / 24)
    assert report.total.escalations == {"1": 1, "2": 1, "service_norm": 2}


@pytest.mark.parametrize(("args", "words"), [
    (["--type", "bestaat_niet"], "unknown request type 'bestaat_niet'"),
    (["--unit", "bestaat_niet"], "unknown unit 'bestaat_niet'"),
    (["--since", "2026-03-10", "--until", "2026-03-10"], "--until must be after --since"),
    (["--since", "2026-03-10", "--until", "2026-03-01"], "--until must be after --since"),
    (["--since", "volgende week"], "--since expects a date"),
    (["--until", "2026-13-01"], "--until expects a date"),
])
@pytest.mark.parametrize("output", [[], ["--json"], ["--public", "publiek.html"], ["--html", "rapport.html"]])
def test_filters_that_name_nothing_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    args: list[str], words: str, output: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    assert run_cli(capsys, "--db", url, "init", "--sample")[0] == 0
    code, out, err = run_cli(capsys, "--db", url, "report", *args, *output)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], err
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("loket.db")) == []


def test_filters_on_the_command_line(sqlite_loket: Loket, history: dict[str, str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url = sqlite_loket.engine.url.render_as_string(hide_password=False)
    code, out, err = run_cli(capsys, "--db", url, "report", "--json", "--type", "melding",
                             "--since", "2026-03-09", "--until", "2026-03-16")
    assert code == 0, err
    data = json.loads(out)
    assert data["filters"] == {"since": "2026-03-08T23:00:00.000000Z", "until": "2026-03-15T23:00:00.000000Z",
                               "type": "melding", "unit": None}
    assert [t["key"] for t in data["types"]] == ["melding"]
    code, out, _ = run_cli(capsys, "--db", url, "report", "--unit", "politie")
    assert code == 0 and "unit politie" in out.splitlines()[0]


# -- the unit that held a case, and each clock on its own --------------------------------------------


def test_time_at_the_police_is_the_polices_and_each_clock_is_named(sqlite_loket: Loket, clock: FixedClock) -> None:
    """The issue's complaint: a case that broke its service norm but met its legal term, the
    police holding most of it. The report must not say one "on time 100%", nor credit the
    police's days to the wijkteam that closed it."""
    april = dt.datetime(2026, 4, 1, tzinfo=UTC)
    clock.set(at(2, 9))
    ref = sqlite_loket.new_case("bijdrage", ["title=Verlichting achterpad", "buurt=Noord"], actor=CLERK).ref
    clock.set(at(2, 10))
    sqlite_loket.advance(ref, "in_behandeling", actor=CLERK)
    clock.set(at(3, 9))
    sqlite_loket.advance(ref, "vraag_politie", actor=CLERK, assignments=["requested=Extra surveillance"])
    clock.set(april.replace(day=17, hour=9))  # 45 days at the police
    sqlite_loket.advance(ref, "bijdrage_toegezegd", actor="m.schouten",
                         assignments=["partner_response=Wij surveilleren vaker"])
    clock.set(april.replace(day=20, hour=9))  # 49 days: past the service norm (6 weeks), within 8 weeks
    sqlite_loket.advance(ref, "afronden", actor=CLERK, assignments=["agreement=Afgesproken"])
    report = gather(sqlite_loket)
    units = {u.key: u for u in report.units}
    assert units["politie"].held_days == pytest.approx(45.0)
    assert units["wijkteam"].held_days == pytest.approx(4.0)  # 1 h + 23 h + 3 days
    bijdrage = next(g for g in report.types if g.key == "bijdrage")
    assert bijdrage.lead_days.median == 49.0
    assert bijdrage.clocks["service_norm"].share == 0.0
    assert bijdrage.clocks["legal_term"].share == 1.0
    assert bijdrage.clocks["state_deadlines"].late == 1  # the police's 10 working days
    assert bijdrage.results.outcomes == {"granted": 1}
    lines: list[str] = []
    run_report(sqlite_loket, None, False, lines.append)
    assert "on time" not in lines[0].lower()


# -- bestuurlijke dekking ------------------------------------------------------------------------------


def _write(loket: Loket, ref: str, draft: Draft, actor: str) -> None:
    """An event written through the engine's own path (chained, verifiable), as the
    administrators' commands and the sweep write theirs."""
    with loket.engine.begin() as conn:
        case = loket.get_case(ref, conn)
        loket.write_case(conn, loket.type_of(case), case, Change({}, [draft]), actor, loket.clock.now())


def _directed(state: str, due: dt.datetime, behalf: str | None = None, replaces: Any = None) -> Draft:
    data: dict[str, Any] = {"text": "Besluit deze week", "within": "5wd", "due": timestamp(due), "state": state,
                            "replaces": replaces}
    if behalf is not None:
        data["on_behalf_of"] = behalf
    return Draft(Action.DIRECTED, data=data)


def _escalation(to: str, rung: str, due: dt.datetime) -> Draft:
    return Draft(Action.ESCALATED, data={"rung": rung, "kind": "escalation", "to": to, "asked": "act",
                                         "due_at": timestamp(due)})


def test_bestuurlijke_dekking_from_the_events(db_url: str, clock: FixedClock) -> None:
    """On both databases: the events are found by their JSON data (`data.to`, `data.rung`)."""
    loket = _loket(db_url, clock)
    clock.set(at(2, 9))
    refs = [loket.new_case("bewonersinitiatief", [f"title=Initiatief {n}"], actor=CLERK).ref for n in range(3)]
    # ingediend: 5 working days, end Mon 09-03; the administrator's rung (+10 wd) at the end
    # of Mon 23-03. The sweep on Tue 24-03 fires the whole ladder for all three.
    clock.set(at(24, 7))
    fired = sweep(loket).fired
    assert sum(1 for f in fired if f["to"] == ADMIN) == 3
    # Case 0: the administrator comments on Thu 26-03 (Tue 24 and Wed 25 ended in between: 2
    # working days) and gives an instruction, met when the case moves on Mon 30-03.
    clock.set(at(26, 10))
    _write(loket, refs[0], Draft(Action.COMMENT, comment="Graag vandaag oppakken."), ADMIN)
    _write(loket, refs[0], _directed("ingediend", at(31, 21)), ADMIN)
    # Case 1: an assistant gives an instruction on the administrator's behalf (a reaction too);
    # the sweep fires it when its term ends: missed.
    _write(loket, refs[1], _directed("ingediend", at(27, 22), behalf=ADMIN), "s.secretaris")
    # Case 2: no reaction; later an instruction replaced by a second, which still runs.
    clock.set(at(30, 9))
    loket.advance(refs[0], "in_behandeling", actor=CLERK)
    _write(loket, refs[1], _escalation(ADMIN, Rung.DIRECTIVE, at(27, 22)), "system")
    _write(loket, refs[1], _escalation(HEAD, Rung.DIRECTIVE, at(27, 22)), "system")
    clock.set(at(31, 9))
    before = gather(loket).dekking
    _write(loket, refs[2], _directed("ingediend", dt.datetime(2026, 4, 7, 21, tzinfo=UTC)), ADMIN)
    clock.set(at(31, 10))
    _write(loket, refs[2], _directed("ingediend", dt.datetime(2026, 4, 8, 21, tzinfo=UTC),
                                     replaces={"given_at": timestamp(at(31, 9))}), ADMIN)

    report = gather(loket)
    admin = next(a for a in report.dekking if a.id == ADMIN)
    # Three ladder escalations and the missed instruction's escalation to the administrator.
    # Reactions: case 0 (comment) and case 1 (the assistant's instruction) on Thu 26 10:00,
    # after Tue 24 and Wed 25 ended: 2 working days; case 2 (instruction Tue 31) after Tue 24
    # to Mon 30: 5. The missed instruction's escalation got none.
    assert admin.escalations == 4
    assert admin.reacted == 3
    assert admin.reaction_working_days.count == 3
    assert (admin.reaction_working_days.median, admin.slowest_reaction) == (2, 5)
    assert (admin.given, admin.met, admin.missed, admin.replaced, admin.running) == (4, 1, 1, 1, 1)
    # Before case 2's instructions: its escalation had no reaction yet.
    before_admin = next(a for a in before if a.id == ADMIN)
    assert (before_admin.escalations, before_admin.reacted, before_admin.given) == (4, 2, 2)
    # Other administrators: nothing, and the section still lists them.
    assert all(a.escalations == a.given == 0 for a in report.dekking if a.id != ADMIN)
    data = next(a for a in report.as_json()["bestuurlijke_dekking"] if a["administrator"] == ADMIN)
    assert data["unanswered"] == 1 and data["instructions"] == {
        "given": 4, "met": 1, "missed": 1, "replaced": 1, "running": 1}
    # The period: only what fired or was given in it.
    late = gather(loket, Filters(since=at(31, 0)))
    assert next(a for a in late.dekking if a.id == ADMIN).given == 2
    assert next(a for a in late.dekking if a.id == ADMIN).escalations == 0
    loket.engine.dispose()


def test_dekking_on_a_database_without_any_of_its_events(sqlite_loket: Loket) -> None:
    report = gather(sqlite_loket)
    assert [a.id for a in report.dekking] == list(sqlite_loket.organisation().administrators)
    assert all((a.escalations, a.reacted, a.given, a.slowest_reaction) == (0, 0, 0, None) for a in report.dekking)


# -- the public page -------------------------------------------------------------------------------------


MARK = "ZZMARK"


def _planted(loket: Loket, clock: FixedClock) -> list[str]:
    """Cases of every type with a marker in every personal field, every text field (free text a
    resident or civil servant typed: a title, a location, a description) and comment (staff's,
    the administrator's and an instruction's), some realised. No marker may reach the public
    page."""
    planted: list[str] = []
    n = 0

    def mark(what: str) -> str:
        nonlocal n
        n += 1
        value = f"{MARK}{n:03d}{what}"
        planted.append(value)
        return value

    def personal(key: str) -> list[str]:
        rt = loket.request_type(key)
        out = []
        for name, spec in rt.fields.items():
            if not spec.personal:
                continue
            value = mark(name)
            out.append(f"{name}={value.lower()}@example.org" if spec.type == "email" else f"{name}={value}")
        return out

    def texts(key: str) -> list[str]:
        rt = loket.request_type(key)
        return [f"{name}={mark(name)}" for name, spec in rt.fields.items()
                if spec.type == "text" and not spec.personal]

    def step(ref: str, trigger: str, actor: str, *data: str) -> None:
        clock.set(clock.now() + dt.timedelta(hours=2))
        loket.advance(ref, trigger, actor=actor, comment=mark("comment"), assignments=list(data))

    clock.set(at(2, 9))
    refs = []
    for buurt in ("Noord", "Oost", "Noord"):
        ref = loket.new_case("bewonersinitiatief", [f"buurt={buurt}", "amount=1250", "category=groen",
                                                   "participants=30", *texts("bewonersinitiatief"),
                                                   *personal("bewonersinitiatief")],
                             actor=CLERK).ref
        refs.append(ref)
        step(ref, "in_behandeling", CLERK)
        clock.set(clock.now() + dt.timedelta(hours=1))
        loket.comment(ref, mark("note"), actor=CLERK)
        step(ref, "naar_besluit", CLERK)
    step(refs[0], "toekennen", LEAD)
    step(refs[1], "toekennen", LEAD)
    step(refs[2], "afwijzen", LEAD)
    melding = loket.new_case("melding", [*texts("melding"), "buurt=Centrum", *personal("melding")],
                             actor=CLERK).ref
    step(melding, "doorzetten", CLERK, "categorie=verlichting")
    step(melding, "afhandelen", CLERK, "terugmelding=" + mark("terugmelding"))
    bijdrage = loket.new_case("bijdrage", [*texts("bijdrage"), "buurt=Oost", "estimated_cost=800",
                                           *personal("bijdrage")], actor=CLERK).ref
    step(bijdrage, "in_behandeling", CLERK)
    # An administrator's comment and instruction carry markers too.
    _write(loket, bijdrage, Draft(Action.COMMENT, comment=mark("admin")), ADMIN)
    _write(loket, bijdrage, Draft(Action.DIRECTED, data={
        "text": mark("instruction"), "within": "5wd", "due": timestamp(at(20, 21)), "state": "voorbereiding",
        "replaces": None}), ADMIN)
    clock.set(at(5, 12))
    return planted


def test_the_public_page_holds_no_personal_data_names_ids_comments_or_references(
    sqlite_loket: Loket, clock: FixedClock, tmp_path: Path
) -> None:
    planted = _planted(sqlite_loket, clock)
    path = tmp_path / "resultaten.html"
    lines: list[str] = []
    report = run_report(sqlite_loket, None, False, lines.append, public=str(path))
    assert lines == [f"public results page written to {path} ({path.stat().st_size // 1024} KiB,"
                     f" {report.total.closed} closed cases)"]
    page = path.read_text(encoding="utf-8")
    assert not [m for m in planted if m.lower() in page.lower()]
    assert MARK.lower() not in page.lower()
    org = sqlite_loket.organisation()
    people = [(p.id, p.name, p.email) for p in org.people.values()]
    people += [(a.id, a.name, a.email) for a in org.administrators.values()]
    for ident, name, address in people:
        assert ident not in page and name not in page and address not in page
    with sqlite_loket.read() as conn:
        import sqlalchemy as sa

        from engine.store.tables import cases_t

        refs = [r for (r,) in conn.execute(sa.select(cases_t.c.ref))]
    assert refs and not [r for r in refs if r in page]
    for prefix in ("BI-", "ME-", "BD-", "PR-"):
        assert f"{prefix}2026" not in page
    # What it does show: results per type and area, measure totals, recent realisations.
    assert '<html lang="nl">' in page
    assert "Bewonersinitiatief (wijkbudget)" in page and "Noord" in page and "Oost" in page
    # The amounts granted per area: Noord 1.250 (its rejected 1.250 is not a result), Oost 1.250.
    assert page.count("1.250") == 2 and "Gevraagd bedrag (EUR), toegekend" in page
    # The realised cases by the summary values the definition fixes (a choice), not by their
    # title, location or amount: text someone typed.
    assert "Onlangs gerealiseerd" in page and "Categorie: groen" in page and "Categorie: verlichting" in page
    assert "Naam van het initiatief" not in page and "Locatie:" not in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert len(page) < 60_000  # light: SVG charts, no script


def test_the_public_page_escapes_text_and_leaves_typed_text_out(sqlite_loket: Loket, clock: FixedClock) -> None:
    clock.set(at(2, 9))
    ref = sqlite_loket.new_case("melding", ["omschrijving=x", "locatie=<script>alert(1)</script>",
                                            "buurt=Noord"], actor=CLERK).ref
    clock.set(at(2, 10))
    sqlite_loket.advance(ref, "doorzetten", actor=CLERK, assignments=["categorie=groen"])
    clock.set(at(2, 11))
    sqlite_loket.advance(ref, "afhandelen", actor=CLERK, assignments=["terugmelding=Gedaan"])
    # A location is typed text: not on the page at all, escaped or not.
    page = render_public(gather(sqlite_loket), sqlite_loket.latest_types())
    assert "alert(1)" not in page and "Categorie: groen" in page
    # What is shown comes from the definitions, and is escaped too.
    types = [dataclasses.replace(rt, title="<b>Melding</b>") if rt.key == "melding" else rt
             for rt in sqlite_loket.latest_types()]
    page = render_public(gather(sqlite_loket), types)
    assert "<b>Melding</b>" not in page and "&lt;b&gt;Melding&lt;/b&gt;" in page


def test_the_public_page_leaves_out_an_area_that_is_a_text_field(
    sqlite_loket: Loket, clock: FixedClock
) -> None:
    """An area typed as text could be an address: the type gets one row for all its cases, and
    the realised cases show no area; a choice area is split as before."""
    planted = _planted(sqlite_loket, clock)
    report = gather(sqlite_loket)
    page = render_public(report, sqlite_loket.latest_types())
    assert "<th scope=\"row\">Noord</th>" in page and "(Noord)" in page
    types = []
    for rt in sqlite_loket.latest_types():
        if rt.area is not None:
            spec = dataclasses.replace(rt.fields[rt.area], type="text", options=())
            rt = dataclasses.replace(rt, fields={**rt.fields, rt.area: spec})
        types.append(rt)
    page = render_public(report, types)
    assert not [m for m in planted if m.lower() in page.lower()]
    for buurt in ("Noord", "Oost", "Centrum"):
        assert buurt not in page
    assert page.count("<th scope=\"row\">Alle verzoeken</th>") == 2  # the two types with closed cases
    # An area value outside the choice's options (an older version's) also gives one row.
    types = [dataclasses.replace(rt, fields={**rt.fields, "buurt": dataclasses.replace(
        rt.fields["buurt"], options=("Centrum",))}) for rt in sqlite_loket.latest_types()]
    page = render_public(report, types)
    assert "Noord" not in page and "Oost" not in page


def test_the_public_page_goes_through_the_guarded_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'loket.db'}"
    assert run_cli(capsys, "--db", url, "init", "--sample")[0] == 0
    before = (tmp_path / "loket.db").read_bytes()
    code, _, err = run_cli(capsys, "--db", url, "report", "--public", "loket.db")
    assert code == 2 and "refusing to write loket.db" in err
    assert (tmp_path / "loket.db").read_bytes() == before
    code, _, err = run_cli(capsys, "--db", url, "report", "--public", str(tmp_path / "nergens" / "p.html"))
    assert code == 2 and "no such folder" in err
    code, out, err = run_cli(capsys, "--db", url, "report", "--public", "publiek.html", "--html", "rapport.html")
    assert code == 0, err
    assert "public results page written to publiek.html" in out and "report page written to rapport.html" in out


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _axe_source() -> str:
    """axe-core from the npm registry, installed once into a cache folder (the project ships no
    browser tooling)."""
    cache = Path(os.environ.get("LOKET_AXE_DIR") or Path.home() / ".cache" / "wijkloket-axe")
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to fetch axe-core (CI installs it: apt-get install -y npm)")
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), "axe-core@4"],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
    return script.read_text(encoding="utf-8")


def axe_runner(context: str) -> str:
    """Scripts that run axe-core's WCAG 2.1 A and AA rules on `context` (a JavaScript axe
    context) and write the violations, or the error, into `<pre id="axe-result">`."""
    return (
        "<script>" + _axe_source().replace("</script", "<\\/script") + "</script>"
        f"<script>axe.run({context}, {{runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}},"
        " resultTypes: ['violations']}).then(function (r) {"
        " var out = document.createElement('pre'); out.id = 'axe-result';"
        " out.textContent = JSON.stringify({violations: r.violations.map(function (v) {"
        "  return {id: v.id, nodes: v.nodes.map(function (n) { return n.target.join(' '); })}; }),"
        "  passes: r.passes.length});"
        " document.body.appendChild(out); }).catch(function (e) {"
        " var out = document.createElement('pre'); out.id = 'axe-result';"
        " out.textContent = JSON.stringify({error: String(e)}); document.body.appendChild(out); });</script>"
    )


def test_the_public_page_passes_axe_in_headless_chromium(
    sqlite_loket: Loket, clock: FixedClock, tmp_path: Path
) -> None:
    """WCAG 2.1 A and AA rules (contrast included), run by axe-core inside the system's Chromium."""
    from tests.test_report import _browse

    binary = _chromium()
    if binary is None:
        pytest.fail("no chromium on this machine (CI installs it: apt-get install -y chromium)")
    _planted(sqlite_loket, clock)
    page = render_public(gather(sqlite_loket), sqlite_loket.latest_types())
    runner = axe_runner("document")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", runner + "</body>"), encoding="utf-8")
    dom = _browse(binary, tmp_path / "profile", "--dump-dom", checked.as_uri()).stdout
    start = dom.find('<pre id="axe-result">')
    assert start >= 0, "axe-core gave no result"
    import html as html_module

    text = html_module.unescape(dom[start + len('<pre id="axe-result">'):dom.index("</pre>", start)])
    result = json.loads(text)
    assert "error" not in result, result
    assert result["violations"] == []
    assert result["passes"] > 10  # it really ran: contrast, headings, tables, images, language ...


def test_an_instruction_whose_term_ended_first_is_missed_before_any_sweep(sqlite_loket: Loket) -> None:
    """Pure: the dekking tally on plain events. Left after the term, or still there after it
    with no sweep run since: missed; left in time: met; term still running: running."""
    from engine.reporting.builder import WorkingDayCounter
    from engine.reporting.dekking import DekkingTally
    from engine.reporting.figures import AdminEvent, Move

    org = sqlite_loket.organisation()
    now = at(20, 12)
    tally = DekkingTally(org, Filters(), WorkingDayCounter(sqlite_loket.calendar()).between, now)

    def directed(due: dt.datetime) -> AdminEvent:
        return AdminEvent(1, 2, at(9, 10), ADMIN, Action.DIRECTED,
                          {"text": "x", "within": "2wd", "due": timestamp(due), "state": "beoordeling"})

    def left(when: dt.datetime) -> list[Move]:
        return [Move(1, at(2, 9), Action.CREATED, None, "ingediend"),
                Move(1, at(3, 9), Action.TRANSITION, "ingediend", "beoordeling"),
                Move(1, when, Action.TRANSITION, "beoordeling", "besluit")]

    tally.add_case([directed(at(11, 22))], left(at(10, 9)), None)   # left in time: met
    tally.add_case([directed(at(11, 22))], left(at(13, 9)), None)   # left after the term: missed
    tally.add_case([directed(at(11, 22))], left(at(2, 9))[:2], None)  # still there, term over: missed
    tally.add_case([directed(at(25, 22))], left(at(2, 9))[:2], None)  # term still running
    admin = next(a for a in tally.finish() if a.id == ADMIN)
    assert (admin.given, admin.met, admin.missed, admin.replaced, admin.running) == (4, 1, 2, 0, 1)
