"""Definition files are refused when they are written, with every problem and its line.

A request type (SPEC §4.2) and the organisation (§4.1) are data; each rule below is one edit
of a small valid file, and the test says which line of that file the problem must point to.
The bundled files must themselves pass every rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.app.bundled import definition_files
from engine.core.definition import parse_request_type
from engine.core.organisation import Organisation, parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import InvalidDefinition, Problem

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"

# A unit with a full line of command (wijkteam) and one with staff only (buitenruimte).
ORG = """\
municipality: Gemeente Proef
administrators:
  - id: wethouder.wijken
    name: Wethouder Wijken
    email: wethouder@proef.example
    portfolios: [wijken]
units:
  wijkteam: {name: Wijkteam, kind: department}
  buitenruimte: {name: Buitenruimte, kind: department}
people:
  - id: a.hoofd
    name: Anna Hoofd
    email: a.hoofd@proef.example
    roles: {wijkteam: head}
  - id: b.lead
    name: Bram Lead
    email: b.lead@proef.example
    roles: {wijkteam: lead}
  - id: c.staf
    name: Chris Staf
    email: c.staf@proef.example
    roles: {wijkteam: staff, buitenruimte: staff}
  - id: d.audit
    name: Dana Audit
    email: d.audit@proef.example
    roles: {"*": auditor}
"""

# Every needle the tests below look for occurs on exactly one line of this file. The timeout
# of `buiten` (7 working days) comes after every rung of the type's ladder, as it must.
TYPE = """\
key: proef
title: Proefaanvraag
prefix: PR
portfolio: wijken
lead_time: {weeks: 8}
fields:
  title: {type: text, required: true}
  amount: {type: decimal, min: 0}
  category: {type: choice, options: [groen, spelen]}
initial: open
states:
  open: {label: Open, owner: wijkteam, deadline: {working_days: 5}}
  buiten:
    label: Buiten
    owner: buitenruimte
    deadline: {working_days: 10}
    timeout: {after: {working_days: 7}, trigger: terug}
  klaar: {label: Klaar, final: true}
transitions:
  - {trigger: naar_buiten, from: open, to: buiten}
  - {trigger: terug, from: buiten, to: open}
  - {trigger: afronden, from: open, to: klaar, roles: [lead], when: {amount: {lte: 100}}}
escalation:
  - {after: {working_days: 0}, to: lead}
  - {after: {working_days: 5}, to: administrator}
"""


def line_of(text: str, needle: str) -> int:
    """The 1-based line on which `needle` is written; it must be written exactly once."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) == 1, f"{needle!r} occurs on lines {found}"
    return found[0]


def edited(old: str, new: str, text: str = TYPE) -> str:
    assert text.count(old) == 1, f"{old!r} is not unique in the base file"
    return text.replace(old, new)


@pytest.fixture
def org(tmp_path: Path) -> Organisation:
    path = tmp_path / "organisation.yaml"
    path.write_text(ORG, encoding="utf-8")
    data, locate, _ = load_file(path)
    return parse_organisation(data, str(path), locate)


def refuse_type(tmp_path: Path, text: str, org: Organisation | None) -> tuple[list[Problem], str]:
    path = tmp_path / "proef.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidDefinition) as info:
        data, locate, _ = load_file(path)
        parse_request_type(data, org, str(path), locate)
    return info.value.problems, str(path)


def assert_problem(problems: list[Problem], file: str, line: int, fragment: str) -> None:
    """One of the problems is about `fragment`, placed at `file:line`."""
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem mentions {fragment!r}: {[str(p) for p in problems]}"
    assert any(p.line == line and str(p).startswith(f"{file}:{line}:") for p in matching), (
        f"{fragment!r} expected at line {line}: {[str(p) for p in matching]}"
    )


def test_the_base_file_is_valid(tmp_path: Path, org: Organisation) -> None:
    path = tmp_path / "proef.yaml"
    path.write_text(TYPE, encoding="utf-8")
    data, locate, _ = load_file(path)
    rt = parse_request_type(data, org, str(path), locate)
    assert rt.key == "proef"
    assert list(rt.states) == ["open", "buiten", "klaar"]
    assert rt.transition("open", "afronden") is not None
    assert rt.transition("buiten", "afronden") is None


# (what is wrong, edits of the base file as (old, new)..., the line's needle, words of the message)
RULES: list[tuple[Any, ...]] = [
    (
        "malformed YAML: an unclosed flow mapping",
        ("  - {trigger: terug, from: buiten, to: open}\n", "  - {trigger: terug, from: buiten\n"),
        "- {trigger: afronden",
        "malformed YAML",
    ),
    (
        "malformed YAML: a key written twice",
        ("prefix: PR\n", "prefix: PR\ntitle: Nog eens\n"),
        "title: Nog eens",
        "duplicate key",
    ),
    (
        "unknown top-level key",
        ("prefix: PR\n", "prefix: PR\ncolour: red\n"),
        "colour: red",
        "unknown key 'colour'",
    ),
    (
        "unknown state key",
        ("    owner: buitenruimte\n", "    owner: buitenruimte\n    colour: red\n"),
        "colour: red",
        "unknown key 'colour'",
    ),
    (
        "unknown transition key",
        (
            "{trigger: terug, from: buiten, to: open}",
            "{trigger: terug, from: buiten, to: open, colour: red}",
        ),
        "colour: red",
        "unknown key 'colour'",
    ),
    (
        "unknown field key",
        ("amount: {type: decimal, min: 0}", "amount: {type: decimal, min: 0, colour: red}"),
        "colour: red",
        "unknown key 'colour'",
    ),
    (
        "unknown rung key",
        (
            "{after: {working_days: 0}, to: lead}",
            "{after: {working_days: 0}, to: lead, colour: red}",
        ),
        "colour: red",
        "unknown key 'colour'",
    ),
    (
        "unreachable state",
        (
            "  klaar: {label: Klaar, final: true}\n",
            "  klaar: {label: Klaar, final: true}\n"
            "  vergeten: {label: Vergeten, owner: wijkteam}\n",
        ),
        "vergeten: {label",
        "state 'vergeten' cannot be reached from 'open'",
    ),
    (
        "a non-final state with no way out",
        (
            "  klaar: {label: Klaar, final: true}\n",
            "  klaar: {label: Klaar, final: true}\n  vast: {label: Vast, owner: wijkteam}\n",
        ),
        (
            "transitions:\n",
            "transitions:\n  - {trigger: vastzetten, from: open, to: vast}\n",
        ),
        "vast: {label",
        "state 'vast' is not final and has no way out",
    ),
    (
        "a loop that never reaches a final state",
        (
            "  klaar: {label: Klaar, final: true}\n",
            "  klaar: {label: Klaar, final: true}\n"
            "  heen: {label: Heen, owner: wijkteam}\n  weer: {label: Weer, owner: wijkteam}\n",
        ),
        (
            "transitions:\n",
            "transitions:\n  - {trigger: rondje, from: open, to: heen}\n"
            "  - {trigger: naar_weer, from: heen, to: weer}\n"
            "  - {trigger: naar_heen, from: weer, to: heen}\n",
        ),
        "heen: {label",
        "from state 'heen' no final state can be reached",
    ),
    (
        "an owner the organisation lacks",
        ("    owner: buitenruimte\n", "    owner: nergens\n"),
        "owner: nergens",
        "unknown unit 'nergens'",
    ),
    (
        "an unknown role",
        (
            "{trigger: terug, from: buiten, to: open}",
            "{trigger: terug, from: buiten, to: open, roles: [baas]}",
        ),
        "roles: [baas]",
        "unknown role 'baas'",
    ),
    (
        "a role nobody in the owning unit holds",
        (
            "{trigger: terug, from: buiten, to: open}",
            "{trigger: terug, from: buiten, to: open, roles: [lead]}",
        ),
        "trigger: terug,",
        "nobody in unit 'buitenruimte' holds role lead",
    ),
    (
        "'when' on a field that does not exist",
        ("when: {amount: {lte: 100}}", "when: {kleur: {eq: rood}}"),
        "kleur",
        "condition on unknown field 'kleur'",
    ),
    (
        "an unknown operator",
        ("when: {amount: {lte: 100}}", "when: {amount: {ongeveer: 100}}"),
        "ongeveer",
        "unknown operator 'ongeveer'",
    ),
    (
        "an operand that is not of the field's type",
        ("when: {amount: {lte: 100}}", "when: {amount: {lte: veel}}"),
        "lte: veel",
        "bad operand",
    ),
    (
        "an ordering operator on a text field",
        ("when: {amount: {lte: 100}}", "when: {title: {gt: a}}"),
        "title: {gt",
        "'gt' compares numbers and dates",
    ),
    (
        "'in' without a list",
        ("when: {amount: {lte: 100}}", "when: {category: {in: groen}}"),
        "in: groen",
        "bad operand",
    ),
    (
        "'in' with an option the choice field does not have",
        ("when: {amount: {lte: 100}}", "when: {category: {in: [groen, paars]}}"),
        "paars",
        "bad operand",
    ),
    (
        "a duplicate trigger from one state",
        (
            "  - {trigger: terug, from: buiten, to: open}\n",
            "  - {trigger: terug, from: buiten, to: open}\n"
            "  - {trigger: naar_buiten, from: open, to: klaar}\n",
        ),
        "{trigger: naar_buiten, from: open, to: klaar}",
        "duplicate trigger 'naar_buiten' from state 'open'",
    ),
    (
        "'requires' names a field that does not exist",
        (
            "{trigger: naar_buiten, from: open, to: buiten}",
            "{trigger: naar_buiten, from: open, to: buiten, requires: [kleur]}",
        ),
        "requires: [kleur]",
        "unknown field 'kleur'",
    ),
    (
        "a ladder recipient that is no one",
        (
            "{after: {working_days: 5}, to: administrator}",
            "{after: {working_days: 5}, to: niemand}",
        ),
        "to: niemand",
        "unknown recipient 'niemand'",
    ),
    (
        "a timeout trigger that does not leave that state",
        ("trigger: terug}", "trigger: afronden}"),
        "trigger: afronden}",
        "timeout trigger 'afronden' is not a transition from 'buiten'",
    ),
    (
        "a timeout on a state without a deadline",
        ("    deadline: {working_days: 10}\n", ""),
        "timeout: {after",
        "a timeout counts from the deadline",
    ),
    (
        "a duration in an unknown unit",
        ("    deadline: {working_days: 10}\n", "    deadline: {days: 10}\n"),
        "deadline: {days: 10}",
        "invalid duration: unknown unit 'days'",
    ),
    (
        "a negative duration",
        ("lead_time: {weeks: 8}", "lead_time: {weeks: -8}"),
        "lead_time",
        "invalid duration: amount must be a whole number >= 0",
    ),
    (
        "a duration given as text",
        ("{after: {working_days: 0}, to: lead}", "{after: {working_days: nul}, to: lead}"),
        "working_days: nul",
        "invalid duration",
    ),
    (
        "a duration with two units",
        ("deadline: {working_days: 5}}", "deadline: {working_days: 5, weeks: 1}}"),
        "weeks: 1",
        "give exactly one unit",
    ),
    (
        "a duration that is a bare number",
        ("    deadline: {working_days: 10}\n", "    deadline: 10\n"),
        "deadline: 10",
        "invalid duration: expected a duration like",
    ),
    (
        "a field of an unknown type",
        ("category: {type: choice", "category: {type: kleur"),
        "type: kleur",
        "unknown field type 'kleur'",
    ),
    (
        "a final state with an owner",
        (
            "klaar: {label: Klaar, final: true}",
            "klaar: {label: Klaar, final: true, owner: wijkteam}",
        ),
        "klaar: {label",
        "a final state takes no owner",
    ),
    (
        "an initial state that does not exist",
        ("initial: open", "initial: begin"),
        "initial: begin",
        "initial state 'begin' is not one of the states",
    ),
    (
        "a transition to an unknown state",
        ("{trigger: terug, from: buiten, to: open}", "{trigger: terug, from: buiten, to: nergens}"),
        "to: nergens",
        "unknown state 'nergens'",
    ),
    (
        # Loaded, it made every `case new` of the type crash with OverflowError.
        "a lead time beyond any term",
        ("lead_time: {weeks: 8}", "lead_time: {weeks: 100000000000000000000000000000}"),
        "lead_time",
        "invalid duration: weeks must be at most 522 (about ten years)",
    ),
    (
        "a lead time just past the longest term",
        ("lead_time: {weeks: 8}", "lead_time: {weeks: 523}"),
        "lead_time",
        "invalid duration: weeks must be at most 522",
    ),
    (
        "a state deadline beyond any term",
        ("    deadline: {working_days: 10}\n", "    deadline: {working_days: 99999999999999999999}\n"),
        "deadline: {working_days: 9999",
        "invalid duration: working_days must be at most 2610 (about ten years)",
    ),
    (
        "a timeout beyond any term",
        ("timeout: {after: {working_days: 7}", "timeout: {after: {calendar_days: 3651}"),
        "calendar_days: 3651",
        "invalid duration: calendar_days must be at most 3650",
    ),
    (
        "a ladder rung beyond any term",
        ("{after: {working_days: 5}, to: administrator}", "{after: {hours: 87601}, to: administrator}"),
        "hours: 87601",
        "invalid duration: hours must be at most 87600",
    ),
    (
        "a field bound in exponent notation",
        ("amount: {type: decimal, min: 0}", "amount: {type: decimal, min: 0, max: 1e400}"),
        "max: 1e400",
        "bad max: field 'amount' expects a number",
    ),
    (
        "a date bound the calendar of a date field does not hold",
        ("  category: {type: choice", "  start: {type: date, min: 0001-01-01}\n  category: {type: choice"),
        "0001-01-01",
        "bad min: field 'start' takes dates in the years 1900-2200",
    ),
    (
        "a field whose max is below its min: no value could be given",
        ("amount: {type: decimal, min: 0}", "amount: {type: decimal, min: 100, max: 10}"),
        "max: 10}",
        "max 10 is below min 100",
    ),
    (
        "a state label with a terminal escape in it",
        ("    label: Buiten\n", '    label: "Buiten\\e]0;pwned\\a"\n'),
        "pwned",
        "must be one line without control characters (found U+001B)",
    ),
    (
        "a title over two lines",
        ("title: Proefaanvraag\n", 'title: "Proef\\naanvraag"\n'),
        "Proef",
        "must be one line without control characters (found U+000A)",
    ),
    (
        "a field label that is not a text",
        ("title: {type: text, required: true}", "title: {type: text, required: true, label: [a, b]}"),
        "label: [a, b]",
        "expected a non-empty text, got a list",
    ),
    (
        "a choice option with a control character",
        ("options: [groen, spelen]", 'options: [groen, "spelen\\x9b"]'),
        "options: [groen",
        "must be one line without control characters (found U+009B)",
    ),
    (
        # A value is stripped before it is matched, so this option could never be chosen.
        "a choice option with spaces around it",
        ("options: [groen, spelen]", 'options: [groen, " spelen"]'),
        "options: [groen",
        "option ' spelen' has spaces around it",
    ),
    (
        # `$` in the name pattern took a name that ends in a newline.
        "a field name that ends in a newline",
        ("  category: {type: choice", '  "kleur\\n": {type: text}\n  category: {type: choice'),
        "kleur",
        "invalid field name 'kleur\\n'",
    ),
    (
        "an unknown recipient is shown escaped",
        (
            "{after: {working_days: 5}, to: administrator}",
            '{after: {working_days: 5}, to: "niemand\\e[2J"}',
        ),
        "niemand",
        "unknown recipient 'niemand\\x1b[2J'",
    ),
    # -- terms that could never apply ---------------------------------------------------------
    (
        # A paused state has no running deadline: `case show` printed due "-", yet `case show
        # --explain` printed this deadline.
        "a paused state with a deadline",
        ("    owner: buitenruimte\n", "    owner: buitenruimte\n    clock: paused\n"),
        "deadline: {working_days: 10}",
        "a state with clock: paused takes no deadline",
    ),
    (
        # The timeout counts from a deadline that never runs: it would never fire.
        "a paused state with a timeout",
        ("    owner: buitenruimte\n", "    owner: buitenruimte\n    clock: paused\n"),
        "timeout: {after",
        "a state with clock: paused takes no timeout",
    ),
    (
        # Its own ladder counts from a deadline it cannot have: no rung would ever fire.
        "a paused state with its own escalation ladder",
        (
            "  open: {label: Open, owner: wijkteam, deadline: {working_days: 5}}\n",
            "  open: {label: Open, owner: wijkteam, clock: paused,\n"
            "         escalation: [{after: {working_days: 1}, to: lead}]}\n",
        ),
        "escalation: [{after",
        "a state with clock: paused takes no escalation",
    ),
    (
        # A lead time of zero is breached the moment a case is made.
        "a lead time of zero weeks",
        ("lead_time: {weeks: 8}", "lead_time: {weeks: 0}"),
        "lead_time",
        "a lead_time of 0 weeks leaves no time at all",
    ),
    (
        # The same for the municipality's own promise, in another unit.
        "a service norm of zero working days",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {working_days: 0}\n"),
        "service_norm",
        "a service_norm of 0 working days leaves no time at all",
    ),
    (
        # Zero allows no extension, which is what leaving max_extension out already means.
        "a maximum extension of zero weeks",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nmax_extension: {weeks: 0}\n"),
        "max_extension",
        "an extension of at most 0 weeks allows none",
    ),
    (
        # A state deadline of zero hours makes every case overdue the moment it enters.
        "a state deadline of zero hours",
        ("deadline: {working_days: 5}}", "deadline: {hours: 0}}"),
        "deadline: {hours: 0}",
        "a deadline of 0 hours leaves no time at all",
    ),
    (
        # Zero working days is no better: the deadline is the end of the day of entry.
        "a state deadline of zero working days",
        ("    deadline: {working_days: 10}\n", "    deadline: {working_days: 0}\n"),
        "deadline: {working_days: 0}",
        "a deadline of 0 working days leaves no time at all",
    ),
    (
        # The municipality's own promise may not end after the legal term it is meant to beat.
        "a service norm longer than the lead time",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {weeks: 12}\n"),
        "service_norm",
        "service_norm (12 weeks) is longer than lead_time (8 weeks)",
    ),
    (
        # Units are compared: 41 working days are about 57 days, 8 weeks are 56.
        "a service norm in working days just longer than the lead time in weeks",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {working_days: 41}\n"),
        "service_norm",
        "service_norm (41 working days) is longer than lead_time (8 weeks)",
    ),
    (
        # 40 working days are 8 weeks on paper, but a holiday in between makes them end later:
        # for a case made on Mon 2026-02-09, 8 weeks end on Tue 04-07 (tweede Paasdag moves
        # them), 40 working days, which skip Goede Vrijdag and tweede Paasdag, on Wed 04-08.
        "a service norm in working days that can end after the lead time in weeks",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {working_days: 40}\n"),
        "service_norm",
        "service_norm (40 working days) can end after lead_time (8 weeks): for a case made on 2026-02-09",
    ),
    (
        # 1345 hours are one hour more than 8 weeks.
        "a service norm in hours just longer than the lead time in weeks",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {hours: 1345}\n"),
        "service_norm",
        "service_norm (1345 hours) is longer than lead_time (8 weeks)",
    ),
    (
        # The state's own ladder replaces the type's; units are compared: 10 calendar days are
        # later than 7 working days (about 9.8 days).
        "a timeout before a rung of the state's own ladder",
        (
            "    timeout: {after: {working_days: 7}, trigger: terug}\n",
            "    timeout: {after: {working_days: 7}, trigger: terug}\n"
            "    escalation:\n"
            "      - {after: {working_days: 1}, to: lead}\n"
            "      - {after: {calendar_days: 10}, to: head}\n",
        ),
        "calendar_days: 10",
        "rung 2 (after 10 calendar days) comes after the state's timeout (after 7 working days)",
    ),
]


@pytest.mark.parametrize(
    ("edits", "needle", "fragment"),
    [(r[1:-2], r[-2], r[-1]) for r in RULES],
    ids=[r[0] for r in RULES],
)
def test_a_broken_rule_is_refused_with_its_file_and_line(
    tmp_path: Path,
    org: Organisation,
    edits: tuple[tuple[str, str], ...],
    needle: str,
    fragment: str,
) -> None:
    text = TYPE
    for old, new in edits:
        text = edited(old, new, text)
    problems, file = refuse_type(tmp_path, text, org)
    assert_problem(problems, file, line_of(text, needle), fragment)


# (what is allowed, edits of the base file as (old, new)...): each sits at the edge of a rule
# above and must still load.
ALLOWED: list[tuple[Any, ...]] = [
    (
        # The type's ladder is shared: a state whose timeout (2 wd) comes before its rung 2
        # (5 wd) cuts it off there on purpose; the sweep stops the stay's ladder at the timeout.
        "a timeout before a rung of the type's ladder",
        ("timeout: {after: {working_days: 7}", "timeout: {after: {working_days: 2}"),
    ),
    (
        # A zero offset on a rung fires at the deadline itself (the base ladder has one too).
        "a rung of zero hours",
        ("{after: {working_days: 0}, to: lead}", "{after: {hours: 0}, to: lead}"),
    ),
    (
        # A timeout of zero hands the case back at the deadline; its own ladder fires there too.
        "a timeout of zero with a rung of zero",
        (
            "    timeout: {after: {working_days: 7}, trigger: terug}\n",
            "    timeout: {after: {working_days: 0}, trigger: terug}\n"
            "    escalation: [{after: {working_days: 0}, to: lead}]\n",
        ),
    ),
    (
        # A rung at the timeout itself still fires: the sweep fires it before the timeout.
        "a rung at the moment of the timeout",
        ("timeout: {after: {working_days: 7}", "timeout: {after: {working_days: 5}"),
    ),
    (
        # 5 working days and a week are the same length to the simple comparison.
        "a rung in working days tied with a timeout in weeks",
        ("timeout: {after: {working_days: 7}", "timeout: {after: {weeks: 1}"),
    ),
    (
        # A `before` rung comes before the deadline, so before any timeout, however long.
        "a long reminder before the deadline with a short timeout",
        (
            "    timeout: {after: {working_days: 7}, trigger: terug}\n",
            "    timeout: {after: {working_days: 1}, trigger: terug}\n"
            "    escalation: [{before: {working_days: 9}, to: assignee}]\n",
        ),
    ),
    (
        # The state's own ladder replaces the type's, whose rung 2 (5 wd) would be too late.
        "a short timeout with a short ladder of its own",
        (
            "    timeout: {after: {working_days: 7}, trigger: terug}\n",
            "    timeout: {after: {working_days: 2}, trigger: terug}\n"
            "    escalation: [{after: {working_days: 2}, to: lead}]\n",
        ),
    ),
    (
        # An empty ladder of its own: nothing escalates in this state, nothing is cut off.
        "a short timeout with an empty ladder of its own",
        (
            "    timeout: {after: {working_days: 7}, trigger: terug}\n",
            "    timeout: {after: {working_days: 2}, trigger: terug}\n    escalation: []\n",
        ),
    ),
    (
        # A service norm as long as the lead time promises nothing more, but is not wrong.
        "a service norm equal to the lead time",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {weeks: 8}\n"),
    ),
    (
        # 30 working days are 6 weeks, and even the spring's six holidays (Goede Vrijdag to
        # tweede Pinksterdag) add less than two: the service norm always ends before 8 weeks.
        "a service norm in working days that always ends before the lead time in weeks",
        ("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {working_days: 30}\n"),
    ),
    (
        # Without a lead time there is nothing to compare a service norm with.
        "a service norm without a lead time",
        ("lead_time: {weeks: 8}\n", "service_norm: {weeks: 12}\n"),
    ),
    (
        # The bundled types' shape: a paused state with no deadline, timeout or ladder.
        "a paused state without a deadline",
        (
            "  klaar: {label: Klaar, final: true}\n",
            "  klaar: {label: Klaar, final: true}\n"
            "  wacht: {label: Wacht, owner: wijkteam, clock: paused}\n",
        ),
        (
            "transitions:\n",
            "transitions:\n  - {trigger: wachten, from: open, to: wacht}\n"
            "  - {trigger: verder, from: wacht, to: open}\n",
        ),
    ),
]


@pytest.mark.parametrize("edits", [r[1:] for r in ALLOWED], ids=[r[0] for r in ALLOWED])
def test_a_definition_at_the_edge_of_a_rule_is_accepted(
    tmp_path: Path, org: Organisation, edits: tuple[tuple[str, str], ...]
) -> None:
    text = TYPE
    for old, new in edits:
        text = edited(old, new, text)
    path = tmp_path / "proef.yaml"
    path.write_text(text, encoding="utf-8")
    data, locate, _ = load_file(path)
    assert parse_request_type(data, org, str(path), locate).key == "proef"


def test_terms_that_could_never_apply_are_listed_at_once(tmp_path: Path, org: Organisation) -> None:
    """`workflow validate` lists each at its own line; a paused state's timeout is not also
    told to get a deadline, which it may not have."""
    text = edited("lead_time: {weeks: 8}\n", "lead_time: {weeks: 8}\nservice_norm: {weeks: 9}\n"
                  "max_extension: {weeks: 0}\n")
    text = edited("deadline: {working_days: 5}}", "deadline: {calendar_days: 0}}", text)
    text = edited("    deadline: {working_days: 10}\n", "    clock: paused\n", text)
    text = edited(
        "  klaar: {label: Klaar, final: true}\n",
        "  klaar: {label: Klaar, final: true}\n"
        "  partner:\n    label: Partner\n    owner: wijkteam\n    deadline: {weeks: 1}\n"
        "    timeout: {after: {working_days: 1}, trigger: terug}\n",
        text,
    )
    text = edited("from: buiten, to: open}", "from: [buiten, partner], to: open}", text)
    text = edited(
        "{trigger: naar_buiten, from: open, to: buiten}",
        "{trigger: naar_buiten, from: open, to: buiten}\n  - {trigger: naar_partner, from: open, to: partner}",
        text,
    )
    problems, file = refuse_type(tmp_path, text, org)
    assert_problem(problems, file, line_of(text, "service_norm"), "is longer than lead_time")
    assert_problem(problems, file, line_of(text, "max_extension"), "allows none")
    assert_problem(problems, file, line_of(text, "calendar_days: 0"), "leaves no time at all")
    assert_problem(problems, file, line_of(text, "timeout: {after: {working_days: 7}"),
                   "clock: paused takes no timeout")
    # The `partner` state's timeout (1 wd) cuts the type's shared ladder short: allowed.
    assert len(problems) == 4, [str(p) for p in problems]


def test_an_unknown_key_on_a_later_line_of_a_flow_mapping_points_to_that_line(
    tmp_path: Path, org: Organisation
) -> None:
    text = edited(
        "  open: {label: Open, owner: wijkteam, deadline: {working_days: 5}}\n",
        "  open: {label: Open, owner: wijkteam,\n"
        "         kleur: rood, deadline: {working_days: 5}}\n",
    )
    problems, file = refuse_type(tmp_path, text, org)
    assert_problem(problems, file, line_of(text, "kleur: rood"), "unknown key 'kleur'")


def test_organisation_checks_apply_only_when_an_organisation_is_given(tmp_path: Path) -> None:
    """Read back from the database, a stored version is parsed without today's organisation."""
    text = edited("    owner: buitenruimte\n", "    owner: nergens\n")
    path = tmp_path / "proef.yaml"
    path.write_text(text, encoding="utf-8")
    data, locate, _ = load_file(path)
    assert parse_request_type(data, None, str(path), locate).states["buiten"].owner == "nergens"


def test_every_problem_in_a_file_is_listed_at_once(tmp_path: Path, org: Organisation) -> None:
    text = edited("prefix: PR\n", "prefix: PR\ncolour: red\n")
    text = edited("    owner: buitenruimte\n", "    owner: nergens\n", text)
    text = edited(
        "{after: {working_days: 5}, to: administrator}",
        "{after: {working_days: 5}, to: niemand}",
        text,
    )
    text = edited("when: {amount: {lte: 100}}", "when: {kleur: {eq: rood}}", text)
    problems, file = refuse_type(tmp_path, text, org)
    assert len(problems) == 4
    assert_problem(problems, file, line_of(text, "colour: red"), "unknown key 'colour'")
    assert_problem(problems, file, line_of(text, "owner: nergens"), "unknown unit 'nergens'")
    assert_problem(problems, file, line_of(text, "to: niemand"), "unknown recipient 'niemand'")
    assert_problem(problems, file, line_of(text, "kleur"), "condition on unknown field 'kleur'")
    with pytest.raises(InvalidDefinition) as info:
        data, locate, _ = load_file(Path(file))
        parse_request_type(data, org, file, locate)
    lines = str(info.value).splitlines()
    assert lines[0] == "4 problems found; nothing was loaded"
    assert len(lines) == 5
    assert all(line.startswith(f"  {file}:") for line in lines[1:])


def test_a_later_problem_points_at_its_own_transition_when_an_earlier_one_is_dropped(
    tmp_path: Path, org: Organisation
) -> None:
    text = edited(
        "  - {trigger: naar_buiten, from: open, to: buiten}\n",
        "  - {trigger: Naar-Buiten, from: open, to: buiten}\n"
        "  - {trigger: naar_buiten, from: open, to: buiten}\n",
    )
    text = edited(
        "{trigger: terug, from: buiten, to: open}",
        "{trigger: terug, from: buiten, to: open, roles: [head]}",
        text,
    )
    problems, file = refuse_type(tmp_path, text, org)
    assert_problem(problems, file, line_of(text, "Naar-Buiten"), "invalid trigger 'Naar-Buiten'")
    assert_problem(
        problems,
        file,
        line_of(text, "roles: [head]"),
        "nobody in unit 'buitenruimte' holds role head",
    )
    assert len(problems) == 2


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nergens.yaml"
    with pytest.raises(InvalidDefinition) as info:
        load_file(missing)
    assert str(info.value.problems[0]) == f"{missing}: file not found"


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, org: Organisation) -> None:
    problems, _ = refuse_type(tmp_path, "- just\n- a list\n", org)
    assert [p.message for p in problems] == ["expected a mapping, got a list"]


def test_the_bundled_request_types_validate_against_the_bundled_organisation() -> None:
    data, locate, _ = load_file(WORKFLOWS / "organisation.yaml")
    bundled = parse_organisation(data, "organisation.yaml", locate)
    files = definition_files(WORKFLOWS)
    assert {Path(f).name for f in files} == {
        "bewonersinitiatief.yaml",
        "bijdrage.yaml",
        "melding.yaml",
    }
    prefixes = set()
    for file in files:
        data, locate, _ = load_file(file)
        rt = parse_request_type(data, bundled, file, locate)
        assert rt.states[rt.initial].owner in bundled.units
        prefixes.add(rt.prefix)
    assert len(prefixes) == len(files)


# -- the organisation -------------------------------------------------------------------------


def refuse_org(tmp_path: Path, text: str) -> tuple[list[Problem], str]:
    path = tmp_path / "organisation.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidDefinition) as info:
        data, locate, _ = load_file(path)
        parse_organisation(data, str(path), locate)
    return info.value.problems, str(path)


ORG_RULES: list[tuple[Any, ...]] = [
    (
        "a role in a unit that does not exist",
        ("roles: {wijkteam: lead}", "roles: {wijkteam: lead, nergens: staff}"),
        "nergens: staff",
        "unknown unit 'nergens'",
    ),
    (
        "a role that does not exist",
        ("roles: {wijkteam: lead}", "roles: {wijkteam: baas}"),
        "wijkteam: baas",
        "unknown role 'baas'",
    ),
    (
        "two people with one id",
        ("  - id: b.lead\n", "  - id: a.hoofd  # tweede\n"),
        "# tweede",
        "duplicate person id 'a.hoofd'",
    ),
    (
        "two administrators with one id",
        (
            "units:\n",
            "  - id: wethouder.wijken  # tweede\n"
            "    name: Nog een\n    email: nog@proef.example\nunits:\n",
        ),
        "# tweede",
        "duplicate administrator id 'wethouder.wijken'",
    ),
    (
        "an invalid email address",
        ("email: c.staf@proef.example", "email: c.staf-at-proef"),
        "c.staf-at-proef",
        "invalid email address 'c.staf-at-proef'",
    ),
    (
        "'*' with a role other than auditor or operator",
        ('roles: {"*": auditor}', 'roles: {"*": head}'),
        '"*": head',
        "only the auditor and operator roles may be given for every unit",
    ),
    (
        "a reserved word as an id",
        ("  - id: c.staf\n", "  - id: system\n"),
        "id: system",
        "'system' is a reserved word",
    ),
    (
        "an unknown top-level key",
        ("municipality: Gemeente Proef\n", "municipality: Gemeente Proef\nprovincie: Utrecht\n"),
        "provincie",
        "unknown key 'provincie'",
    ),
    (
        "an unknown timezone",
        (
            "municipality: Gemeente Proef\n",
            "municipality: Gemeente Proef\ntimezone: Europe/Nergens\n",
        ),
        "timezone",
        "unknown timezone 'Europe/Nergens'",
    ),
    (
        # A header would refuse it at the first escalation: better refused when loaded.
        "an email address with two dots in a row",
        ("email: c.staf@proef.example", "email: c..staf@proef.example"),
        "c..staf",
        "invalid email address 'c..staf@proef.example'",
    ),
    (
        "an email address with a non-ASCII local part",
        ("email: c.staf@proef.example", "email: çstaf@proef.example"),
        "çstaf",
        "invalid email address",
    ),
    (
        "a closed day that is not a date",
        (
            "municipality: Gemeente Proef\n",
            "municipality: Gemeente Proef\nclosed_days: [2026-12-28, morgen]\n",
        ),
        "closed_days",
        "expected a date (YYYY-MM-DD), got 'morgen'",
    ),
    (
        "a closed day the calendar lacks, quoted",
        (
            "municipality: Gemeente Proef\n",
            'municipality: Gemeente Proef\nclosed_days: ["2026-02-30"]\n',
        ),
        "closed_days",
        "expected a date that exists (YYYY-MM-DD), got '2026-02-30'",
    ),
    (
        # A number to YAML; date.fromisoformat took it as 28 December.
        "a closed day without its dashes",
        ("municipality: Gemeente Proef\n", "municipality: Gemeente Proef\nclosed_days: [20261228]\n"),
        "closed_days",
        "expected a date (YYYY-MM-DD), got 20261228",
    ),
    (
        "a closed day before the working-day calendar",
        ("municipality: Gemeente Proef\n", "municipality: Gemeente Proef\nclosed_days: [0001-01-01]\n"),
        "closed_days",
        "closed day 0001-01-01 is outside the working-day calendar (2014–2200)",
    ),
    (
        "a closed day after it",
        ("municipality: Gemeente Proef\n", "municipality: Gemeente Proef\nclosed_days: [9999-12-31]\n"),
        "closed_days",
        "closed day 9999-12-31 is outside the working-day calendar (2014–2200)",
    ),
    (
        "a person's name with a terminal escape in it",
        ("name: Chris Staf", 'name: "Chris\\e]0;pwned\\a"'),
        "pwned",
        "a name must be one line without control characters (found U+001B)",
    ),
    (
        # Names go into email headers: a newline would start a header of its own.
        "a unit name over two lines",
        ("buitenruimte: {name: Buitenruimte,", 'buitenruimte: {name: "Buiten\\nBcc: x@y.nl",'),
        "Bcc",
        "a name must be one line without control characters (found U+000A)",
    ),
    (
        # `$` in the address pattern took an address that ends in a newline.
        "an email address that ends in a newline",
        ("email: c.staf@proef.example", 'email: "c.staf@proef.example\\n"'),
        "c.staf@proef.example",
        "invalid email address 'c.staf@proef.example\\n'",
    ),
    (
        "an id that ends in a newline",
        ("  - id: c.staf\n", '  - id: "c.staf\\n"\n'),
        'id: "c.staf',
        "invalid id 'c.staf\\n'",
    ),
    (
        "a role in an unknown unit is shown escaped",
        ("roles: {wijkteam: lead}", 'roles: {wijkteam: lead, "nergens\\e[2J": staff}'),
        "nergens",
        "unknown unit 'nergens\\x1b[2J'",
    ),
    (
        "a portfolio with a control character",
        ("portfolios: [wijken]", 'portfolios: [wijken, "zorg\\e[2J"]'),
        "portfolios",
        "a name must be one line without control characters (found U+001B)",
    ),
]


@pytest.mark.parametrize(
    ("edit", "needle", "fragment"), [r[1:] for r in ORG_RULES], ids=[r[0] for r in ORG_RULES]
)
def test_a_broken_organisation_is_refused_with_its_file_and_line(
    tmp_path: Path, edit: tuple[str, str], needle: str, fragment: str
) -> None:
    text = edited(*edit, text=ORG)
    problems, file = refuse_org(tmp_path, text)
    assert_problem(problems, file, line_of(text, needle), fragment)


def test_an_unquoted_closed_day_the_calendar_lacks_is_a_problem_on_its_line(tmp_path: Path) -> None:
    text = edited("municipality: Gemeente Proef\n",
                  "municipality: Gemeente Proef\nclosed_days: [2026-12-28, 2026-02-30]\n", text=ORG)
    problems, file = refuse_org(tmp_path, text)
    assert_problem(problems, file, line_of(text, "closed_days"),
                   "expected a date that exists (YYYY-MM-DD), got '2026-02-30'")


def test_the_sample_organisation_is_valid_and_ranks_roles() -> None:
    data, locate, _ = load_file(WORKFLOWS / "organisation.yaml")
    org = parse_organisation(data, "organisation.yaml", locate)
    # staff < lead < head, within one unit only
    assert org.may("a.jansen", "wijkteam", ("lead",))
    assert org.may("b.bakker", "wijkteam", ("staff",))
    assert not org.may("b.bakker", "wijkteam", ("head",))
    assert not org.may("c.devries", "wijkteam", ("lead",))
    assert not org.may("a.jansen", "openbare_ruimte", ("staff",))
    # an auditor reads everything and holds no changing role anywhere
    assert org.is_auditor("d.smit")
    assert not org.may("d.smit", "wijkteam", ("staff",))
    assert org.administrator_for("wijken") is not None
