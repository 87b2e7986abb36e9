"""The `loket` command (SPEC §10): output, JSON shapes and exit codes, pinned.

Most tests call `cli.main` in-process, so the error mapping of `cli.run` applies exactly as
for a user: exit 0 done, 1 refused by the rules, 2 bad usage or input, 3 conflict, and an
error is one `Error:` line on stderr, never a traceback. A few run `python cli.py` for real.
Every test works on its own copy of a simulation database made by `init --sample
--simulation`, with the clock set by `--now` to Monday 2 March 2026, 10:00 in Amsterdam.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import click
import pytest

import cli

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
NOW = "2026-03-02T10:00"
STAFF, LEAD, HEAD = "c.devries", "b.bakker", "a.jansen"

CASE_KEYS = {
    "id",
    "ref",
    "type",
    "type_version",
    "state",
    "state_label",
    "owner",
    "assignee",
    "data",
    "created_at",
    "state_entered_at",
    "due",
    "case_due",
    "overdue",
    "suspended",
    "closed_at",
    "escalation_level",
    "triggers",
}
EVENT_KEYS = {
    "seq",
    "at",
    "recorded_at",
    "actor",
    "action",
    "from_state",
    "to_state",
    "trigger",
    "comment",
    "data",
    "prev_hash",
    "hash",
}


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


def invoke(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Run:
    """`loket ARGV` through the real entry point; the exit code as the shell would see it."""
    try:
        cli.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    out, err = capsys.readouterr()
    return Run(code, out, err)


class Loket:
    """`loket --db URL --now NOW [--as PERSON] ...` against one database."""

    def __init__(self, capsys: pytest.CaptureFixture[str], url: str) -> None:
        self.capsys = capsys
        self.url = url

    def __call__(self, *args: str, actor: str | None = None, now: str | None = NOW) -> Run:
        argv = ["--db", self.url]
        if now is not None:
            argv += ["--now", now]
        if actor is not None:
            argv += ["--as", actor]
        return invoke(self.capsys, [*argv, *args])


def assert_error(run: Run, code: int, words: str) -> None:
    """Exit `code`, and stderr is exactly one `Error:` line saying `words`."""
    assert run.code == code, (run.code, run.err)
    assert "Traceback" not in run.err
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("Error: "), run.err
    assert words in lines[0], run.err


def assert_definition_error(run: Run, problems: list[tuple[Path, int, str]]) -> None:
    """Exit 2; one `Error:` line, then each problem as `  FILE:LINE: ...` on its own line."""
    assert run.code == 2, run.err
    assert "Traceback" not in run.err
    head, *rest = run.err.splitlines()
    count = len(problems)
    assert head == f"Error: {count} problem{'s' if count > 1 else ''} found; nothing was loaded"
    assert len(rest) == count, run.err
    for line, (file, number, words) in zip(rest, problems, strict=True):
        assert line.startswith(f"  {file}:{number}: "), line
        assert words in line, line


ENVIRONMENT = ("LOKET_DB", "LOKET_USER", "LOKET_NOW", "LOKET_DEBUG")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One simulation database made by the CLI; each test gets a copy."""
    folder = tmp_path_factory.mktemp("template")
    path = folder / "loket.db"
    with pytest.MonkeyPatch.context() as mp:
        for name in ENVIRONMENT:
            mp.delenv(name, raising=False)
        try:
            cli.main(
                ["--db", f"sqlite:///{path}", "--now", NOW, "init", "--sample", "--simulation"]
            )
        except SystemExit as exc:
            assert not exc.code
    yield path


@pytest.fixture
def loket(template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Loket:
    for file in template.parent.glob(template.name + "*"):
        shutil.copy(file, tmp_path / file.name)
    capsys.readouterr()
    return Loket(capsys, f"sqlite:///{tmp_path / template.name}")


def new_case(loket: Loket, *data: str) -> str:
    args = [f"--data={d}" for d in (data or ("title=Feest", "amount=100"))]
    return loket("case", "new", "bewonersinitiatief", *args, "--json", actor=STAFF).json()["ref"]


def to_besluit(loket: Loket, ref: str, amount: str = "100") -> None:
    assert loket("case", "advance", ref, "in_behandeling", actor=STAFF).code == 0
    assert (
        loket("case", "advance", ref, "naar_besluit", f"--data=amount={amount}", actor=STAFF).code
        == 0
    )


def sql(loket: Loket, statement: str, *params: Any) -> None:
    """Change the database behind the product's back, as a tamperer would."""
    with closing(sqlite3.connect(loket.url.removeprefix("sqlite:///"))) as conn, conn:
        conn.execute(statement, params)


# -- init ------------------------------------------------------------------------------------


def test_init_sample_simulation_creates_and_then_upgrades(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    run = invoke(capsys, ["--db", url, "init", "--sample", "--simulation"])
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        "organisation: Gemeente Voorbeeld (6 units, 24 people)",
        "bewonersinitiatief: loaded as version 1",
        "bijdrage: loaded as version 1",
        "melding: loaded as version 1",
        f"simulation database ready: {url} (created)",
    ]
    assert run.err == ""
    again = invoke(capsys, ["--db", url, "init", "--sample"])
    assert again.code == 0, again.err
    assert again.out.splitlines()[1:] == [
        "bewonersinitiatief: unchanged, version 1",
        "bijdrage: unchanged, version 1",
        "melding: unchanged, version 1",
        f"simulation database ready: {url} (already up to date)",
    ]


@pytest.mark.postgres
def test_init_does_not_print_the_password_in_the_database_url(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Terminals and logs keep what they are shown: the URL is printed with its password masked."""
    import sqlalchemy as sa

    url = sa.engine.make_url(pg_url).set(password="geheim-wachtwoord").render_as_string(hide_password=False)
    run = invoke(capsys, ["--db", url, "init"])
    assert run.code == 0, run.err
    assert "geheim-wachtwoord" not in run.out + run.err
    assert "database ready: postgresql+psycopg://postgres:***@" in run.out


def test_a_database_with_real_cases_cannot_become_a_simulation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert invoke(capsys, ["--db", url, "init", "--sample"]).code == 0
    assert_error(
        invoke(capsys, ["--db", url, "init", "--simulation"]),
        2,
        "cannot become a simulation database",
    )


def test_now_is_refused_on_a_real_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert invoke(capsys, ["--db", url, "init", "--sample"]).code == 0
    assert invoke(capsys, ["--db", url, "case", "list"]).code == 0
    words = "--now is only allowed on a simulation database"
    assert_error(invoke(capsys, ["--db", url, "--now", NOW, "case", "list"]), 2, words)
    assert_error(
        invoke(
            capsys,
            [
                "--db",
                url,
                "--now",
                NOW,
                "--as",
                STAFF,
                "case",
                "new",
                "melding",
                "--data",
                "omschrijving=x",
                "--data",
                "locatie=y",
            ],
        ),
        2,
        words,
    )
    monkeypatch.setenv("LOKET_NOW", NOW)
    assert_error(invoke(capsys, ["--db", url, "case", "list"]), 2, words)


def test_a_bad_now_is_bad_input(loket: Loket) -> None:
    assert_error(
        loket("case", "list", now="volgende week"), 2, "--now expects an ISO-8601 date or time"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["case", "list"],
        ["case", "show", "BI-2026-00001"],
        ["workflow", "list"],
        ["audit", "verify"],
        ["org", "show"],
        ["--as", STAFF, "case", "new", "bewonersinitiatief", "--data", "title=x"],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_missing_database_says_to_run_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    missing = tmp_path / "nergens.db"
    assert_error(invoke(capsys, ["--db", f"sqlite:///{missing}", *args]), 2, "run 'loket init'")
    assert not missing.exists()


def test_a_database_without_schema_says_to_run_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "leeg.db"
    sqlite3.connect(empty).close()
    assert_error(
        invoke(capsys, ["--db", f"sqlite:///{empty}", "case", "list"]), 2, "run 'loket init' first"
    )


# -- cases -----------------------------------------------------------------------------------


def test_case_new_json_has_the_keys_of_a_case(loket: Loket) -> None:
    case = loket(
        "case",
        "new",
        "bewonersinitiatief",
        "--data",
        "title=Feest",
        "--data",
        "amount=12,50",
        "--json",
        actor=STAFF,
    ).json()
    assert case.keys() >= CASE_KEYS
    assert {k: case[k] for k in CASE_KEYS} == {
        "id": case["id"],
        "ref": "BI-2026-00001",
        "type": "bewonersinitiatief",
        "type_version": 1,
        "state": "ingediend",
        "state_label": "Ingediend",
        "owner": "wijkteam",
        "assignee": None,
        "data": {"title": "Feest", "amount": "12.50"},
        "created_at": "2026-03-02T09:00:00.000000Z",
        "state_entered_at": "2026-03-02T09:00:00.000000Z",
        "due": "2026-03-09T22:59:59.000000Z",  # 5 working days
        "case_due": "2026-04-28T21:59:59.000000Z",  # 8 weeks: Koningsdag 27 April moves it a day
        "overdue": False,
        "suspended": False,
        "closed_at": None,
        "escalation_level": 0,
        "triggers": ["in_behandeling", "vraag_informatie", "intrekken"],
    }
    assert new_case(loket) == "BI-2026-00002"


def test_case_show_text(loket: Loket) -> None:
    ref = new_case(loket)
    run = loket("case", "show", ref, actor=STAFF)
    assert run.code == 0
    assert run.out == (
        "BI-2026-00001  Bewonersinitiatief (wijkbudget) (v1)\n"
        "  state         Ingediend (ingediend)\n"
        "  status        open\n"
        "  owner         Wijkteam Noord (wijkteam)\n"
        "  assignee      -\n"
        "  due           2026-03-09 23:59\n"
        "  service norm  2026-03-30 23:59\n"
        "  decision due  2026-04-28 23:59\n"
        "  created       2026-03-02 10:00 by c.devries\n"
        "  escalation    0\n"
        "  data\n"
        "    title            Feest\n"
        "    amount           100\n"
        "  latest events (audit history shows all)\n"
        "    2026-03-02 10:00  c.devries    created      Ingediend\n"
        "  you (c.devries) may: in_behandeling, vraag_informatie, intrekken\n"
    )


def test_case_show_json_follows_the_clock(loket: Loket) -> None:
    ref = new_case(loket)
    assert loket("case", "show", ref, "--json").json()["overdue"] is False
    later = loket("case", "show", ref, "--json", now="2026-03-10T08:00").json()
    assert later.keys() >= CASE_KEYS
    assert later["overdue"] is True
    assert (
        later["triggers"] == []
    )  # reading needs no actor, and shows what nobody in particular may do
    overdue = loket("case", "list", "--overdue", "--json", now="2026-03-10T08:00").json()
    assert [c["ref"] for c in overdue] == [ref]
    assert loket("case", "list", "--overdue", "--json").json() == []


def test_case_list_filters(loket: Loket) -> None:
    first, second = new_case(loket), new_case(loket)
    melding = loket(
        "case",
        "new",
        "melding",
        "--data",
        "omschrijving=Lamp stuk",
        "--data",
        "locatie=Dorpsstraat",
        "--json",
        actor=STAFF,
    ).json()["ref"]
    loket("case", "advance", second, "intrekken", "--comment", "Teruggetrokken", actor=STAFF)
    loket("case", "assign", first, "l.mulder", actor=LEAD)

    def refs(*args: str, actor: str | None = None) -> list[str]:
        items = loket("case", "list", *args, "--json", actor=actor).json()
        assert all(item.keys() >= CASE_KEYS for item in items)
        return [item["ref"] for item in items]

    assert refs() == [first, second, melding]
    assert refs("--type", "melding") == [melding]
    assert refs("--state", "ingetrokken") == [second]
    assert refs("--closed") == [second]
    assert refs("--open") == [first, melding]
    assert refs("--mine", actor="l.mulder") == [first]
    assert refs("--unit", "wijkteam") == [first, melding]
    text = loket("case", "list", "--type", "melding")
    assert text.out.splitlines()[0].split() == ["REF", "TYPE", "STATE", "OWNER", "ASSIGNEE", "DUE"]
    assert text.out.splitlines()[1].split()[:2] == [melding, "melding"]


def test_case_triggers_show_who_may_fire_what(loket: Loket) -> None:
    ref = new_case(loket)
    to_besluit(loket, ref)
    as_staff = loket("case", "triggers", ref, "--json", actor=STAFF).json()
    assert (as_staff["ref"], as_staff["state"], as_staff["actor"]) == (ref, "besluit", STAFF)
    allowed = {t["trigger"]: t["allowed"] for t in as_staff["triggers"]}
    assert allowed == {
        "vraag_informatie": True,
        "toekennen": False,
        "toekennen_groot": False,
        "afwijzen": False,
        "heroverwegen": True,
        "intrekken": True,
    }
    as_lead = loket("case", "triggers", ref, "--json", actor=LEAD).json()
    # the lead may grant 100; toekennen_groot is the head's, and its condition fails anyway
    assert [t["trigger"] for t in as_lead["triggers"] if t["allowed"]] == [
        "vraag_informatie",
        "toekennen",
        "afwijzen",
        "heroverwegen",
        "intrekken",
    ]
    text = loket("case", "triggers", ref, actor=LEAD).out.splitlines()
    assert text[0].split() == ["TRIGGER", "TO", "ROLES", "RULES"]
    assert text[-1] == "* = you (b.bakker) may fire it now"
    assert any(line.startswith("* toekennen ") and "amount ≤ 5000" in line for line in text)
    assert any(line.startswith("  toekennen_groot ") for line in text)


def test_case_advance_dry_run_then_for_real(loket: Loket) -> None:
    ref = new_case(loket)
    dry = loket("case", "advance", ref, "in_behandeling", "--dry-run", actor=STAFF)
    assert dry.code == 0
    assert (
        dry.out.splitlines()[0]
        == "would move: Ingediend → In beoordeling (dry run: nothing written)"
    )
    assert "  state         In beoordeling (beoordeling)" in dry.out.splitlines()
    assert loket("case", "show", ref, "--json").json()["state"] == "ingediend"
    assert len(loket("audit", "history", ref, "--json").json()) == 1
    real = loket("case", "advance", ref, "in_behandeling", actor=STAFF)
    assert real.out.splitlines()[0] == "moved: Ingediend → In beoordeling"
    moved = loket(
        "case", "advance", ref, "naar_besluit", "--data", "amount=300", "--json", actor=STAFF
    ).json()
    assert (moved["state"], moved["data"]["amount"]) == ("besluit", "300")
    assert loket("case", "show", ref, "--json").json()["state"] == "besluit"


def test_assign_comment_and_set_are_in_the_history(loket: Loket) -> None:
    ref = new_case(loket)
    assigned = loket("case", "assign", ref, "l.mulder", "--json", actor=LEAD).json()
    assert assigned["assignee"] == "l.mulder"
    assert (
        loket("case", "comment", ref, "Bewoner gebeld", actor="l.mulder").out.splitlines()[0]
        == "comment added"
    )
    changed = loket(
        "case", "set", ref, "amount=250", "category=groen", "--json", actor="l.mulder"
    ).json()
    assert changed["data"] == {"title": "Feest", "amount": "250", "category": "groen"}
    history = loket("audit", "history", ref, "--json").json()
    assert all(e.keys() >= EVENT_KEYS for e in history)
    assert [(e["seq"], e["actor"], e["action"]) for e in history] == [
        (1, STAFF, "created"),
        (2, LEAD, "assigned"),
        (3, "l.mulder", "comment"),
        (4, "l.mulder", "data_changed"),
    ]
    assert history[1]["data"] == {"assignee": "l.mulder"}
    assert history[2]["comment"] == "Bewoner gebeld"
    assert history[3]["data"] == {"amount": "250", "category": "groen"}
    assert [e["at"] for e in history] == ["2026-03-02T09:00:00.000000Z"] * 4
    assert history[0]["prev_hash"] == "0" * 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(history))
    text = loket("audit", "history", ref).out.splitlines()
    assert text[0] == f"{ref}: 4 events"
    assert text[1].split() == ["#", "AT", "ACTOR", "ACTION", "WHAT", "HASH"]


def test_the_actor_may_come_from_loket_user(loket: Loket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKET_USER", "l.mulder")
    case = loket("case", "new", "bewonersinitiatief", "--data", "title=Feest", "--json").json()
    assert case["triggers"] == ["in_behandeling", "vraag_informatie", "intrekken"]
    assert loket("audit", "history", case["ref"], "--json").json()[0]["actor"] == "l.mulder"


# -- bad input: exit 2 -----------------------------------------------------------------------


def test_unknown_things_are_bad_input(loket: Loket) -> None:
    ref = new_case(loket)
    before = loket("audit", "history", ref, "--json").json()
    assert_error(loket("case", "show", "BI-2026-00099"), 2, "unknown case 'BI-2026-00099'")
    assert_error(loket("audit", "history", "BI-2026-00099"), 2, "unknown case 'BI-2026-00099'")
    assert_error(
        loket("case", "advance", "BI-2026-00099", "in_behandeling", actor=STAFF),
        2,
        "unknown case 'BI-2026-00099'",
    )
    assert_error(
        loket("case", "new", "parkeervergunning", actor=STAFF),
        2,
        "unknown request type 'parkeervergunning'",
    )
    assert_error(loket("case", "list", "--type", "parkeervergunning"), 2, "unknown request type")
    assert_error(loket("case", "list", "--unit", "nergens"), 2, "unknown unit 'nergens'")
    assert_error(
        loket("case", "advance", ref, "goedkeuren", actor=STAFF), 2, "has no trigger 'goedkeuren'"
    )
    assert_error(loket("case", "set", ref, "kleur=rood", actor=STAFF), 2, "unknown field 'kleur'")
    assert_error(
        loket(
            "case",
            "new",
            "bewonersinitiatief",
            "--data",
            "title=x",
            "--data",
            "kleur=rood",
            actor=STAFF,
        ),
        2,
        "unknown field 'kleur'",
    )
    assert_error(
        loket("case", "advance", ref, "in_behandeling", actor="nobody"),
        2,
        "unknown person 'nobody'",
    )
    assert_error(loket("case", "assign", ref, "nobody", actor=LEAD), 2, "unknown person 'nobody'")
    assert_error(loket("workflow", "show", "parkeervergunning"), 2, "unknown request type")
    assert_error(loket("workflow", "diagram", "parkeervergunning"), 2, "unknown request type")
    assert loket("audit", "history", ref, "--json").json() == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["case", "new", "bewonersinitiatief", "--data", "title=x", "--data", "amount=veel"],
            "field 'amount' expects",
        ),
        (
            ["case", "new", "bewonersinitiatief", "--data", "title=x", "--data", "amount=-5"],
            "must be at least 0",
        ),
        (
            ["case", "new", "bewonersinitiatief", "--data", "title=x", "--data", "category=paars"],
            "one of straatfeest",
        ),
        (["case", "new", "bewonersinitiatief", "--data", "title"], "expected FIELD=VALUE"),
        (["case", "new", "bewonersinitiatief", "--kleur", "rood"], "No such option '--kleur'"),
        (["case", "new"], "Missing argument 'TYPE'"),
        (["case", "frobnicate"], "No such command 'frobnicate'"),
        (
            ["workflow", "diagram", "melding", "--format", "png"],
            "'png' is not one of 'mermaid', 'dot'",
        ),
    ],
    ids=[
        "type",
        "range",
        "option",
        "no-equals",
        "unknown-option",
        "missing-argument",
        "unknown-command",
        "bad-choice",
    ],
)
def test_bad_values_and_usage_are_bad_input(loket: Loket, args: list[str], words: str) -> None:
    assert_error(loket(*args, actor=STAFF), 2, words)
    assert loket("case", "list", "--json").json() == []


# -- refused by the rules: exit 1 ------------------------------------------------------------


def test_refusals_exit_1_and_write_nothing(loket: Loket) -> None:
    ref = new_case(loket, "title=Feest")
    assert_error(
        loket("case", "advance", ref, "toekennen", actor=LEAD),
        1,
        "'toekennen' is not allowed in state",
    )
    assert_error(
        loket("case", "advance", ref, "in_behandeling", actor="d.smit"), 1, "d.smit may not fire"
    )
    assert_error(loket("case", "comment", ref, "Gezien", actor="d.smit"), 1, "auditors read")
    assert_error(loket("case", "set", ref, "title=", actor=STAFF), 1, "needs field title: it cannot be emptied")
    loket("case", "advance", ref, "in_behandeling", actor=STAFF)
    assert_error(
        loket("case", "advance", ref, "naar_besluit", actor=STAFF),
        1,
        "'naar_besluit' needs field amount",
    )
    assert_error(
        loket("case", "advance", ref, "afwijzen", actor=LEAD), 1, "'afwijzen' needs a comment"
    )
    loket("case", "advance", ref, "naar_besluit", "--data", "amount=100", actor=STAFF)
    before = loket("audit", "history", ref, "--json").json()
    assert_error(
        loket("case", "advance", ref, "toekennen", actor=STAFF),
        1,
        "needs role lead in unit 'wijkteam'",
    )
    assert_error(
        loket("case", "advance", ref, "toekennen", "--data", "amount=8500", actor=LEAD),
        1,
        "amount ≤ 5000 does not hold",
    )
    assert_error(
        loket(
            "case", "advance", ref, "toekennen", "--dry-run", "--data", "amount=8500", actor=LEAD
        ),
        1,
        "amount ≤ 5000 does not hold",
    )
    assert loket("audit", "history", ref, "--json").json() == before
    assert loket("case", "show", ref, "--json").json()["data"]["amount"] == "100"
    assert loket("case", "advance", ref, "toekennen", actor=LEAD).code == 0
    assert_error(loket("case", "assign", ref, "l.mulder", actor=LEAD), 1, "is closed")
    assert_error(
        loket("case", "advance", ref, "heroverwegen", "--comment", "x", actor=LEAD), 1, "is closed"
    )


# -- the organisation ------------------------------------------------------------------------


def test_a_broken_organisation_is_refused_and_the_old_one_stays(
    loket: Loket, tmp_path: Path
) -> None:
    before = loket("org", "show", "--json").json()
    text = (ROOT / "workflows" / "organisation.yaml").read_text(encoding="utf-8")
    assert text.count("roles: {wijkteam: lead}") == 1
    broken = tmp_path / "organisation.yaml"
    broken.write_text(
        text.replace("roles: {wijkteam: lead}", "roles: {wijkteam: baas}"), encoding="utf-8"
    )
    line = next(
        n for n, s in enumerate(broken.read_text().splitlines(), 1) if "wijkteam: baas" in s
    )
    assert_definition_error(
        loket("org", "load", str(broken)), [(broken, line, "unknown role 'baas'")]
    )
    assert loket("org", "show", "--json").json() == before


def test_an_organisation_that_would_orphan_a_request_type_is_refused(
    loket: Loket, tmp_path: Path
) -> None:
    """Bijdrage and melding hand cases to the police: the police cannot simply disappear."""
    before = loket("org", "show", "--json").json()
    lines = (ROOT / "workflows" / "organisation.yaml").read_text(encoding="utf-8").splitlines()
    kept = [
        line.replace("{politie:", "{wijkteam:")
        for line in lines
        if not line.startswith("  politie:")
    ]
    smaller = tmp_path / "organisation.yaml"
    smaller.write_text("\n".join(kept) + "\n", encoding="utf-8")
    run = loket("org", "load", str(smaller))
    assert run.code == 2
    assert run.err.splitlines() == [
        "Error: 2 problems found; nothing was loaded",
        "  request type 'bijdrage': states.bij_politie.owner: unknown unit 'politie'"
        " (not in the organisation)",
        "  request type 'melding': states.doorgestuurd.owner: unknown unit 'politie'"
        " (not in the organisation)",
    ]
    assert loket("org", "show", "--json").json() == before


# -- conflict: exit 3 ------------------------------------------------------------------------


def test_a_conflict_exits_3_and_writes_nothing(
    loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case changed between this command's read and its write."""
    from engine.app.service import Loket as Service
    from engine.store.db import open_engine

    ref = new_case(loket)
    engine = open_engine(loket.url)
    stale = Service(engine).get_case(ref)
    engine.dispose()
    assert loket("case", "comment", ref, "Tussendoor gebeld", actor=LEAD).code == 0
    monkeypatch.setattr(Service, "get_case", lambda self, ref, conn=None: replace(stale))
    run = loket("case", "advance", ref, "in_behandeling", actor=STAFF)
    assert_error(run, 3, f"{ref} was changed by someone else meanwhile; nothing was written")
    assert run.out == ""
    monkeypatch.undo()
    history = loket("audit", "history", ref, "--json").json()
    assert [e["action"] for e in history] == ["created", "comment"]


# -- workflows -------------------------------------------------------------------------------


def workflow_keys(loket: Loket) -> list[tuple[str, int]]:
    return [(w["key"], w["version"]) for w in loket("workflow", "list", "--json").json()]


BROKEN: list[tuple[Any, ...]] = [
    ("malformed.yaml", [(3, "malformed YAML: mapping values are not allowed here")]),
    (
        "unknown_keys.yaml",
        [(5, "unknown key 'colour'"), (9, "states.vergund.colour: unknown key 'colour'")],
    ),
    ("unreachable.yaml", [(9, "state 'vergeten' cannot be reached from 'aangevraagd'")]),
    ("dead_end.yaml", [(9, "state 'in_de_la' is not final and has no way out")]),
]


@pytest.mark.parametrize(("name", "problems"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_request_type_is_refused_and_nothing_is_loaded(
    loket: Loket, name: str, problems: list[tuple[int, str]]
) -> None:
    file = DATA / name
    expected = [(file, line, words) for line, words in problems]
    before = workflow_keys(loket)
    assert_definition_error(loket("workflow", "validate", str(file)), expected)
    assert_definition_error(loket("workflow", "load", str(file)), expected)
    # one bad file refuses the good ones loaded with it
    assert_definition_error(
        loket("workflow", "load", str(DATA / "straatfeest.yaml"), str(file)), expected
    )
    assert workflow_keys(loket) == before


def test_a_good_request_type_validates_and_loads_once(loket: Loket) -> None:
    file = DATA / "straatfeest.yaml"
    run = loket("workflow", "validate", str(file))
    assert (run.code, run.out) == (0, f"{file}: ok (straatfeest: 3 states, 2 transitions)\n")
    assert "straatfeest" not in dict(workflow_keys(loket))
    assert loket("workflow", "load", str(file)).out == "straatfeest: loaded as version 1\n"
    assert loket("workflow", "load", str(file)).out == "straatfeest: unchanged, version 1\n"
    assert workflow_keys(loket) == [
        ("bewonersinitiatief", 1),
        ("bijdrage", 1),
        ("melding", 1),
        ("straatfeest", 1),
    ]
    ref = loket(
        "case", "new", "straatfeest", "--data", "title=Lindelaan", "--json", actor=STAFF
    ).json()["ref"]
    assert ref == "SF-2026-00001"


def test_validate_refuses_a_prefix_that_load_would_refuse(loket: Loket) -> None:
    """`workflow validate` is the dry run of `workflow load`: what load refuses is not ok."""
    file = DATA / "prefix_clash.yaml"
    words = "prefix 'BI' is already used by 'bewonersinitiatief'"
    load = loket("workflow", "load", str(file))
    assert load.code == 2 and words in load.err, load.err
    validate = loket("workflow", "validate", str(file))
    assert validate.code == 2, validate.out
    assert words in validate.err
    assert "feest" not in dict(workflow_keys(loket))


def test_a_prefix_clash_points_at_the_prefix_line(loket: Loket) -> None:
    file = DATA / "prefix_clash.yaml"
    words = "prefix 'BI' is already used by 'bewonersinitiatief'"
    assert_definition_error(loket("workflow", "load", str(file)), [(file, 4, words)])


def test_workflow_validate_without_a_database_checks_the_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nergens.db"
    good = invoke(
        capsys,
        ["--db", f"sqlite:///{missing}", "workflow", "validate", str(DATA / "straatfeest.yaml")],
    )
    assert good.code == 0, good.err
    bad = invoke(
        capsys,
        ["--db", f"sqlite:///{missing}", "workflow", "validate", str(DATA / "dead_end.yaml")],
    )
    assert_definition_error(bad, [(DATA / "dead_end.yaml", 9, "is not final and has no way out")])
    assert not missing.exists()


def test_a_missing_request_type_file_is_bad_input(loket: Loket, tmp_path: Path) -> None:
    missing = tmp_path / "nergens.yaml"
    run = loket("workflow", "load", str(missing))
    assert run.code == 2
    assert run.err.splitlines() == [
        "Error: 1 problem found; nothing was loaded",
        f"  {missing}: file not found",
    ]


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("key", ["bewonersinitiatief", "bijdrage", "melding"])
def test_a_diagram_shows_every_state(loket: Loket, key: str, fmt: str) -> None:
    run = loket("workflow", "diagram", key, "--format", fmt)
    assert run.code == 0, run.err
    states = loket("workflow", "show", key, "--json").json()["states"]
    for name, spec in states.items():
        declared = (
            f'state "{spec["label"]}' if fmt == "mermaid" else f'    {name} [label="{spec["label"]}'
        )
        assert (
            sum(line.strip().startswith(declared.strip()) for line in run.out.splitlines()) == 1
        ), name
    if fmt == "dot":
        assert run.out.startswith(f"digraph {key} {{\n") and run.out.rstrip().endswith("}")
    else:
        assert run.out.startswith("stateDiagram-v2\n")


def test_a_dot_diagram_keeps_a_state_called_start(loket: Loket) -> None:
    """`start` is a natural first state; the diagram's own entry point must not take its name."""
    assert loket("workflow", "load", str(DATA / "start_state.yaml")).code == 0
    run = loket("workflow", "diagram", "buurtpreventie", "--format", "dot")
    assert run.code == 0, run.err
    lines = [line.strip() for line in run.out.splitlines()]
    declared = [line for line in lines if line.startswith("start [")]
    assert declared == ['start [label="Start (wijkteam, 5 werkdagen)"];'], declared
    assert "start -> start;" not in lines


# -- audit -----------------------------------------------------------------------------------


def test_audit_verify_ok_then_names_the_tampered_case_and_event(loket: Loket) -> None:
    first, second = new_case(loket), new_case(loket)
    for ref in (first, second):
        to_besluit(loket, ref)
    ok = loket("audit", "verify")
    assert (ok.code, ok.out, ok.err) == (
        0, "ok: 2 cases, 6 events, every chain intact; 3 configuration changes, their history intact\n", "")
    assert loket("audit", "verify", "--json").json() == {
        "ok": True,
        "cases": 2,
        "events": 6,
        "config_events": 3,
        "failure": None,
        "ref": None,
        "seq": None,
    }
    sql(
        loket,
        "UPDATE case_event SET data = ? WHERE seq = 3"
        " AND case_id = (SELECT id FROM cases WHERE ref = ?)",
        '{"amount": "99000"}',
        second,
    )
    run = loket("audit", "verify")
    assert run.out == ""
    assert run.err == f"Error: {second} event 3: its content does not match its hash (edited)\n"
    assert run.code == 1
    as_json = loket("audit", "verify", "--json")
    assert as_json.code == 1
    assert json.loads(as_json.out) | {"events": None} == {
        "ok": False,
        "cases": 2,
        "events": None,
        "config_events": None,
        "ref": second,
        "seq": 3,
        "failure": f"{second} event 3: its content does not match its hash (edited)",
    }
    assert_error(as_json, 1, f"{second} event 3")


def test_audit_verify_finds_a_deleted_event(loket: Loket) -> None:
    ref = new_case(loket)
    to_besluit(loket, ref)
    sql(loket, "DELETE FROM case_event WHERE seq = 2")
    assert_error(loket("audit", "verify"), 1, f"{ref} event 2: missing (next stored is 3)")


# -- help ------------------------------------------------------------------------------------


def command_paths(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += command_paths(command, (*prefix, name))
    return found


COMMANDS = command_paths(cli.cli)


def test_the_command_tree_has_the_commands_of_the_spec() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {
        "init",
        "org load",
        "org show",
        "workflow list",
        "workflow show",
        "workflow load",
        "workflow validate",
        "workflow diagram",
        "case new",
        "case list",
        "case show",
        "case triggers",
        "case advance",
        "case assign",
        "case comment",
        "case set",
        "audit history",
        "audit verify",
    } <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], command: click.Command
) -> None:
    assert (command.help or "").strip(), f"'loket {' '.join(path)}' has no help text"
    run = invoke(capsys, [*path, "--help"])
    assert run.code == 0, run.err
    assert run.out.startswith(f"Usage: loket {' '.join(path)} ")
    first_paragraph = (command.help or "").strip().split("\n\n")[0]
    assert " ".join(first_paragraph.split()) in " ".join(run.out.split())


def test_loket_alone_and_loket_help_show_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--help"], ["-h"]):
        run = invoke(capsys, argv)
        assert run.code == 0, (argv, run.err)
        assert run.out.startswith("Usage: loket [OPTIONS] COMMAND [ARGS]...")
        for name in ("init", "org", "workflow", "case", "audit"):
            assert f"  {name} " in run.out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    run = invoke(capsys, ["--version"])
    assert run.code == 0, run.err
    assert run.out.startswith("loket, version ")


# -- for real: python cli.py -----------------------------------------------------------------


def python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_help_does_not_load_the_database_libraries() -> None:
    script = (
        "import sys, cli\n"
        "for argv in (['--help'], ['case', '--help'], ['case', 'advance', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'transitions', 'alembic')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = python("-c", script)
    assert done.returncode == 0, done.stderr
    assert "Usage: loket case advance" in done.stdout


def test_end_to_end_with_python_cli_py(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}", "--now", NOW]
    init = python("cli.py", *db, "init", "--sample", "--simulation", cwd=ROOT)
    assert init.returncode == 0, init.stderr
    made = python(
        str(ROOT / "cli.py"),
        *db,
        "--as",
        STAFF,
        "case",
        "new",
        "bewonersinitiatief",
        "--data",
        "title=Feest",
        "--json",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    ref = json.loads(made.stdout)["ref"]
    assert ref == "BI-2026-00001"
    refused = python(
        str(ROOT / "cli.py"), *db, "--as", STAFF, "case", "advance", ref, "toekennen", cwd=tmp_path
    )
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("Error: 'toekennen' is not allowed in state 'ingediend'")
    assert len(refused.stderr.splitlines()) == 1
    bad = python(
        str(ROOT / "cli.py"),
        *db,
        "--as",
        STAFF,
        "case",
        "new",
        "bewonersinitiatief",
        "--data",
        "title=x",
        "--data",
        "amount=veel",
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr == "Error: field 'amount' expects a number (e.g. 1250.50), got 'veel'\n"


def test_workflow_show_says_who_answers_for_the_term_what_is_counted_and_how_long_it_is_kept(loket: Loket) -> None:
    text = loket("workflow", "show", "bewonersinitiatief")
    assert text.code == 0, text.err
    assert "answers for the legal term: wijkteam; results by buurt, totals of amount, participants" in text.out
    assert re.search(r"^toegekend +Toegekend +final \(granted\)$", text.out, re.MULTILINE)
    melding = loket("workflow", "show", "melding")
    assert "(owner of the initial state)" in melding.out and "retention: redact 1 year after closing" in melding.out
    shown = loket("workflow", "show", "bewonersinitiatief", "--json").json()
    assert (shown["responsible"], shown["answering_unit"], shown["area"], shown["measures"]) == (
        "wijkteam", "wijkteam", "buurt", ["amount", "participants"])
    assert shown["retention"] is None and shown["states"]["afgewezen"]["outcome"] == "rejected"
    assert loket("workflow", "show", "melding", "--json").json()["retention"] == {"after": "1 year",
                                                                                "action": "redact"}
