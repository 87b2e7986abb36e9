"""`loket audit export --pseudonymise` (SPEC §15): personal values, free texts and people's
ids replaced by pseudonyms stable within one export and unlinkable across exports (SQLite and
PostgreSQL). Markers are planted in every personal field, text field and comment, and the
export is searched for them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from conftest import run_cli

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.core.durations import Duration
from engine.core.fields import FieldSpec
from engine.core.pseudonyms import Pseudonyms

CLERK, LEAD = "c.devries", "b.bakker"
MARKERS = ("MARKERNAAM", "marker.melder@example.org", "MARKERTEL", "MARKEROMSCHRIJVING", "MARKERLOCATIE",
           "MARKERCOMMENT", "MARKERREDEN", "MARKERVERLENGING", "MARKERTERUG")


def _busy_melding(loket: Loket, clock: FixedClock) -> str:
    ref = loket.new_case("melding", [
        "omschrijving=Lamp kapot bij MARKEROMSCHRIJVING", "locatie=MARKERLOCATIE 4", "categorie=verlichting",
        "melder_naam=MARKERNAAM", "melder_email=marker.melder@example.org", "melder_telefoon=MARKERTEL"],
        actor=CLERK).ref
    loket.comment(ref, "Gebeld met MARKERCOMMENT", actor=CLERK)
    loket.assign(ref, "l.mulder", actor=LEAD)
    loket.set_fields(ref, ["terugmelding=MARKERTERUG"], actor=CLERK)
    loket.suspend(ref, "Wacht op foto MARKERREDEN", actor=CLERK)
    loket.resume(ref, actor=CLERK)
    clock.advance(dt.timedelta(days=8))
    sweep(loket)  # escalations name their recipients
    return ref


def _export(capsys: pytest.CaptureFixture[str], db_url: str, *options: str) -> str:
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "export", *options)
    assert code == 0, err
    return out


def test_no_marker_no_person_and_no_hash_leaves_a_pseudonymised_export(
    loket: Loket, clock: FixedClock, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _busy_melding(loket, clock)
    plain = _export(capsys, db_url)
    assert all(marker in plain for marker in MARKERS if marker != "MARKERVERLENGING")  # the markers are there
    people = set(loket.organisation().people) | set(loket.organisation().administrators)
    assert {person for person in people if f'"{person}"' in plain} >= {CLERK, LEAD, "l.mulder"}

    for fmt in ("jsonl", "csv"):
        out = _export(capsys, db_url, "--pseudonymise", "--format", fmt)
        for marker in MARKERS:
            assert marker.lower() not in out.lower(), marker
        assert not [person for person in people if person in out]
        assert not re.search(r"[0-9a-f]{64}", out)  # no chain hash to confirm a guess with
        assert ref in out and "verlichting" in out  # the course and the non-personal facts stay

    rows = [json.loads(line) for line in _export(capsys, db_url, "--pseudonymise").splitlines()]
    created = rows[0]
    assert created["action"] == "created" and created["data"]["categorie"] == "verlichting"
    assert created["data"]["melder_naam"].startswith("gegeven-")
    assert created["data"]["omschrijving"].startswith("tekst-")
    escalated = [row for row in rows if row["action"] == "escalated"]
    assert escalated and all(row["data"]["to"].startswith("persoon-") and row["actor"] == "system"
                             for row in escalated)
    assigned = next(row for row in rows if row["action"] == "assigned")
    assert assigned["data"]["assignee"].startswith("persoon-")
    assert {row["hash"] for row in rows} == {None} and {row["prev_hash"] for row in rows} == {None}


def test_pseudonyms_are_stable_within_an_export_and_unlinkable_across_exports(
    loket: Loket, clock: FixedClock, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _busy_melding(loket, clock)
    loket.new_case("melding", ["omschrijving=Tweede", "locatie=Dorp", "melder_naam=MARKERNAAM"], actor=CLERK)
    first = [json.loads(line) for line in _export(capsys, db_url, "--pseudonymise").splitlines()]
    second = [json.loads(line) for line in _export(capsys, db_url, "--pseudonymise").splitlines()]

    def clerk_steps(rows: list[dict[str, object]]) -> set[object]:
        return {row["actor"] for row in rows if row["action"] in ("created", "comment")}

    # The clerk who created both cases and commented is one pseudonym within an export ...
    assert len(clerk_steps(first)) == 1 and len(clerk_steps(second)) == 1
    names = [row["data"]["melder_naam"] for row in first if row["action"] == "created"]
    assert len(set(names)) == 1  # the same resident's name, the same pseudonym
    # ... and another pseudonym in the next export: the two cannot be linked.
    assert clerk_steps(first) != clerk_steps(second)
    every = {json.dumps(row, sort_keys=True) for row in first}
    assert not every & {json.dumps(row, sort_keys=True) for row in second}


def test_the_csv_export_is_pseudonymised_column_by_column(
    loket: Loket, clock: FixedClock, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest", "amount=750", "name=MARKERNAAM"],
                         actor=CLERK).ref
    loket.extend(ref, Duration("weeks", 1), "Advies brandweer over MARKERVERLENGING", actor=LEAD)
    out = _export(capsys, db_url, "--pseudonymise", "--format", "csv")
    assert "MARKER" not in out
    rows = list(csv.DictReader(io.StringIO(out)))
    extended = next(row for row in rows if row["action"] == "extended")
    data = json.loads(extended["data"])
    assert data["reason"].startswith("tekst-") and data["by"] == "1 week" and data["unit"] is not None
    assert json.loads(rows[0]["data"])["amount"] == "750"  # a decimal, kept as it is stored
    assert {row["hash"] for row in rows} == {""}


def test_a_pseudonym_depends_on_the_value_the_kind_and_the_secret() -> None:
    one, other = Pseudonyms(b"a" * 32), Pseudonyms(b"b" * 32)
    assert one.person("c.devries") == one.person("c.devries") != one.person("b.bakker")
    assert one.person("c.devries") != other.person("c.devries")
    assert one.of("tekst", "x") != one.of("persoon", "x")
    assert re.fullmatch(r"persoon-[0-9a-f]{12}", one.person("c.devries"))
    assert one.person("system") == "system" and one.text("") == "" and one.text(None) is None
    fields = {"naam": FieldSpec("naam", "text", personal=True), "aantal": FieldSpec("aantal", "integer"),
              "mail": FieldSpec("mail", "email")}
    row = {"actor": "c.devries", "action": "transition", "comment": None, "hash": "h", "prev_hash": "p",
           "data": {"naam": "Els", "aantal": 3, "mail": "e@x.nl", "weg": "oud"}}
    data = one.event(row, fields)["data"]
    assert data["aantal"] == 3 and data["naam"].startswith("gegeven-") and data["mail"].startswith("gegeven-")
    assert data["weg"].startswith("gegeven-")  # a field the type no longer knows is not trusted
