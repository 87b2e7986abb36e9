"""Who hears what (SPEC §11.1) as pure rules: `contact`, `summary` and `notify` refused with
their line when wrong, the legal defaults for residents, and the notices a change makes.

The changes are made by the very functions the service calls (`engine.core.commands`), on
cases that never touch a database; each row of a table is one change and the notices it must
make, as (key, kind).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.core import casework, commands
from engine.core.announce import announce
from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case, Change
from engine.core.definition import RequestType, parse_request_type
from engine.core.durations import Duration
from engine.core.fields import FieldSpec
from engine.core.history import timestamp
from engine.core.notices import EventFacts, Notice, subject
from engine.core.organisation import Organisation, organisation_to_data, parse_organisation
from engine.core.vocabulary import MailKind, NoticeEvent
from engine.core.yamlfile import load_file
from engine.errors import InvalidDefinition, InvalidValue, Problem

ORG = """\
municipality: Gemeente Proef
mail_domain: proef.example
administrators:
  - {id: wethouder, name: Wethouder Wijken, email: wethouder@proef.example, portfolios: [wijken]}
units:
  wijkteam: {name: Wijkteam, email: wijkteam@proef.example}
  buiten: {name: Buitenruimte}
  partner: {name: Partner, kind: partner}
  leeg: {name: Lege eenheid}
people:
  - {id: a.hoofd, name: Anna Hoofd, email: a.hoofd@proef.example, roles: {wijkteam: head, partner: head}}
  - {id: b.lead, name: Bram Lead, email: b.lead@proef.example, roles: {wijkteam: lead, buiten: lead}}
  - {id: e.lead, name: Eva Lead, email: e.lead@proef.example, roles: {buiten: lead}}
  - {id: c.staf, name: Chris Staf, email: c.staf@proef.example, roles: {wijkteam: staff, buiten: staff}}
  - {id: p.staf, name: Piet Staf, email: p.staf@proef.example, roles: {partner: staff, leeg: staff}}
"""

# Every needle the validation table looks for occurs on exactly one line.
TYPE = """\
key: proef
title: Proefaanvraag
prefix: PR
portfolio: wijken
lead_time: {weeks: 8}
max_extension: {weeks: 4}
fields:
  title: {type: text, required: true, label: Onderwerp}
  buurt: {type: choice, options: [noord, zuid], label: Buurt}
  spoed: {type: boolean, label: Spoed}
  naam: {type: text, personal: true}
  mail: {type: email, personal: true}
  werkmail: {type: email}
initial: open
contact: mail
summary: [title, buurt, spoed]
notify:
  - {on: handed_over, to: unit}
  - {on: assigned, to: assignee}
  - {on: {state: besluit}, to: [head, requester]}
  - {on: {trigger: naar_partner}, to: administrator}
  - {on: closed, to: unit}
  - {on: resumed, to: requester, enabled: false}
states:
  open: {label: Open, owner: wijkteam, deadline: {working_days: 5}}
  wacht: {label: Wacht op aanvrager, owner: wijkteam, clock: paused}
  buitenwerk: {label: Buitenwerk, owner: buiten, deadline: {working_days: 10}}
  bij_partner: {label: Bij de partner, owner: partner, deadline: {working_days: 10}}
  bij_leeg: {label: Bij niemand, owner: leeg, deadline: {working_days: 10}}
  besluit: {label: Besluit, owner: wijkteam, deadline: {working_days: 5}}
  klaar: {label: Klaar, final: true}
transitions:
  - {trigger: vraag, from: open, to: wacht, comment: required}
  - {trigger: ontvangen, from: wacht, to: open}
  - {trigger: naar_buiten, from: open, to: buitenwerk}
  - {trigger: naar_partner, from: open, to: bij_partner}
  - {trigger: naar_leeg, from: open, to: bij_leeg}
  - {trigger: terug, from: [buitenwerk, bij_partner, bij_leeg], to: open}
  - {trigger: naar_besluit, from: open, to: besluit}
  - {trigger: afronden, from: [open, besluit, buitenwerk], to: klaar}
"""


def line_of(text: str, needle: str) -> int:
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) == 1, f"{needle!r} occurs on lines {found}"
    return found[0]


def _parse_org(tmp_path: Path, text: str = ORG) -> Organisation:
    path = tmp_path / "organisation.yaml"
    path.write_text(text, encoding="utf-8")
    data, locate, _ = load_file(path)
    return parse_organisation(data, str(path), locate)


def _parse_type(tmp_path: Path, text: str, org: Organisation | None) -> tuple[RequestType, str]:
    path = tmp_path / "proef.yaml"
    path.write_text(text, encoding="utf-8")
    data, locate, _ = load_file(path)
    return parse_request_type(data, org, str(path), locate), str(path)


@pytest.fixture
def org(tmp_path: Path) -> Organisation:
    return _parse_org(tmp_path)


@pytest.fixture
def rt(tmp_path: Path, org: Organisation) -> RequestType:
    return _parse_type(tmp_path, TYPE, org)[0]


# -- the file --------------------------------------------------------------------------------


def test_the_rules_are_read_with_the_legal_defaults(rt: RequestType) -> None:
    assert rt.contact == "mail" and rt.summary == ("title", "buurt", "spoed")
    listeners = rt.notify.listeners
    for event in (NoticeEvent.CREATED, NoticeEvent.EXTENDED, NoticeEvent.SUSPENDED, NoticeEvent.CLOSED):
        assert "requester" in rt.notify.to(event)
    assert rt.notify.to(NoticeEvent.RESUMED) == ()  # switched off by `enabled: false`
    assert rt.notify.to(NoticeEvent.CLOSED) == ("requester", "unit")
    assert rt.notify.to(NoticeEvent.STATE, "besluit") == ("head", "requester")
    assert rt.notify.to(NoticeEvent.TRIGGER, "naar_partner") == ("administrator",)
    assert (NoticeEvent.STATE, "open") not in listeners


def test_a_type_without_contact_or_rules_tells_nobody(tmp_path: Path, org: Organisation) -> None:
    start, end = TYPE.index("contact: mail"), TYPE.index("states:")
    rt, _ = _parse_type(tmp_path, TYPE[:start] + TYPE[end:], org)
    assert rt.contact is None and rt.summary == () and not rt.notify.listeners


# (what is wrong, (old, new) edit of the base file, the line's needle, words of the message)
REFUSED: list[tuple[str, tuple[str, str], str, str]] = [
    ("an unknown event", ("on: handed_over,", "on: opened,"), "on: opened", "unknown event 'opened'"),
    ("an unknown state", ("{state: besluit}", "{state: nergens}"), "state: nergens", "unknown state 'nergens'"),
    ("an unknown trigger", ("{trigger: naar_partner}", "{trigger: vlieg}"), "trigger: vlieg",
     "unknown trigger 'vlieg'"),
    ("neither state nor trigger", ("{state: besluit}", "{status: besluit}"), "status: besluit",
     "unknown key 'status'"),
    ("an unknown recipient", ("to: assignee}", "to: z.niemand}"), "z.niemand", "unknown recipient 'z.niemand'"),
    ("an unknown recipient in a list", ("[head, requester]", "[head, z.niemand]"), "z.niemand",
     "unknown recipient 'z.niemand'"),
    ("a rule without a recipient", ("{on: closed, to: unit}", "{on: closed}"), "on: closed",
     "missing required key 'to'"),
    ("an unknown key in a rule", ("{on: closed, to: unit}", "{on: closed, to: unit, when: later}"), "when: later",
     "unknown key 'when'"),
    ("enabled that is no boolean", ("enabled: false", "enabled: nee"), "enabled: nee",
     "enabled must be true or false"),
    ("rules that are no list", ("notify:\n", "notify: iedereen\nrules:\n"), "notify: iedereen",
     "notify must be a list"),
    ("a contact that is no email field", ("contact: mail", "contact: title"), "contact: title",
     "is of type text: it must be of type email"),
    ("a contact that is no field", ("contact: mail", "contact: adres"), "contact: adres",
     "contact must name a field of type email (email fields: mail, werkmail)"),
    ("a contact that is not personal", ("contact: mail", "contact: werkmail"), "contact: werkmail",
     "mark the field personal: true"),
    ("a personal summary field", ("summary: [title, buurt, spoed]", "summary: [title, naam]"), "summary:",
     "field 'naam' is personal"),
    ("an unknown summary field", ("summary: [title, buurt, spoed]", "summary: [title, adres]"), "summary:",
     "unknown field 'adres'"),
    ("a summary that is no list", ("summary: [title, buurt, spoed]", "summary: title"), "summary:",
     "summary must be a list"),
    ("the administrator without a portfolio", ("portfolio: wijken\n", ""), "to: administrator",
     "'administrator' needs a portfolio"),
]


@pytest.mark.parametrize(("what", "edit", "needle", "fragment"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_wrong_rule_is_refused_with_its_line(
    tmp_path: Path, org: Organisation, what: str, edit: tuple[str, str], needle: str, fragment: str
) -> None:
    assert TYPE.count(edit[0]) == 1
    text = TYPE.replace(*edit)
    with pytest.raises(InvalidDefinition) as info:
        _parse_type(tmp_path, text, org)
    _assert_problem(info.value.problems, str(tmp_path / "proef.yaml"), line_of(text, needle), fragment)


def test_the_requester_needs_a_contact_field(tmp_path: Path, org: Organisation) -> None:
    text = TYPE.replace("contact: mail\n", "")
    with pytest.raises(InvalidDefinition) as info:
        _parse_type(tmp_path, text, org)
    file = str(tmp_path / "proef.yaml")
    # Both rules that name the requester, the one switching a default off included.
    _assert_problem(info.value.problems, file, line_of(text, "[head, requester]"), "'requester' needs")
    _assert_problem(info.value.problems, file, line_of(text, "to: requester, enabled"), "'requester' needs")


def test_a_stored_version_is_read_without_the_organisation(tmp_path: Path) -> None:
    """As for ladders, a person named in a rule is checked against the organisation at load."""
    rt, _ = _parse_type(tmp_path, TYPE.replace("to: assignee}", "to: z.vertrokken}"), None)
    assert rt.notify.to(NoticeEvent.ASSIGNED) == ("z.vertrokken",)


def _assert_problem(problems: list[Problem], file: str, line: int, fragment: str) -> None:
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem mentions {fragment!r}: {[str(p) for p in problems]}"
    assert any(str(p).startswith(f"{file}:{line}:") for p in matching), [str(p) for p in matching]


# -- the organisation ------------------------------------------------------------------------


def test_units_may_have_a_mailbox_and_the_organisation_a_mail_domain(tmp_path: Path, org: Organisation) -> None:
    assert org.units["wijkteam"].email == "wijkteam@proef.example" and org.units["buiten"].email is None
    assert org.mail_domain == "proef.example"
    again = parse_organisation(organisation_to_data(org))
    assert again == org
    assert "email" not in organisation_to_data(org)["units"]["buiten"]


@pytest.mark.parametrize(("old", "new", "needle", "fragment"), [
    ("{name: Wijkteam, email: wijkteam@proef.example}", "{name: Wijkteam, email: 'wijkteam@proef'}",
     "name: Wijkteam,", "invalid email address 'wijkteam@proef'"),
    ("mail_domain: proef.example", "mail_domain: 'proef .example'", "mail_domain", "invalid mail domain"),
    ("mail_domain: proef.example", "mail_domain: wijkloket@proef.example", "mail_domain", "invalid mail domain"),
    ("id: p.staf,", "id: requester,", "id: requester", "'requester' is a reserved word"),
])
def test_a_wrong_mailbox_or_domain_is_refused_with_its_line(
    tmp_path: Path, old: str, new: str, needle: str, fragment: str
) -> None:
    text = ORG.replace(old, new)
    with pytest.raises(InvalidDefinition) as info:
        _parse_org(tmp_path, text)
    _assert_problem(info.value.problems, str(tmp_path / "organisation.yaml"), line_of(text, needle), fragment)


# -- the address itself ----------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "geen adres", "jan@", "jan@voorbeeld", "jan@voorbeeld.example\r\nBcc: iedereen@voorbeeld.example",
    "jan@voorbeeld.example\nBcc: x@y.example", "<jan@voorbeeld.example>", "a" * 250 + "@voorbeeld.example",
])
def test_a_contact_that_is_no_address_is_refused_when_it_is_entered(address: str) -> None:
    with pytest.raises(InvalidValue):
        FieldSpec(name="mail", type="email", personal=True).parse(address)


# -- what a change announces -----------------------------------------------------------------

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CAL = WorkingCalendar()


class Run:
    """A case of the test type moved by the service's own commands, without a database: each
    step returns the notices of its change."""

    def __init__(self, rt: RequestType, org: Organisation) -> None:
        self.rt, self.org = rt, org
        self.case: Case | None = None
        self.now = NOW

    def new(self, actor: str, data: dict[str, Any], assign: str | None = None) -> list[Notice]:
        made = casework.new_case(self.rt, 1, CAL, self.now, ref="PR-2026-00001", actor=actor, data=data)
        made = made.apply({"id": 7})
        return self._write(made, commands.opened(self.rt, self.org, CAL, made, self.now, actor, assign=assign),
                           actor)

    def do(self, actor: str, command: Callable[..., Change], **kwargs: Any) -> list[Notice]:
        assert self.case is not None
        self.now += dt.timedelta(hours=1)
        change = command(self.rt, self.org, CAL, self.case, self.now, actor, **kwargs)
        return self._write(self.case, change, actor)

    def step(self, actor: str, trigger: str, comment: str | None = None) -> list[Notice]:
        return self.do(actor, commands.advance, trigger=trigger, comment=comment, assignments=())

    def _write(self, case: Case, change: Change, actor: str) -> list[Notice]:
        new = case.apply(change.updates)
        numbered = [(case.last_seq + i, draft) for i, draft in enumerate(change.drafts, start=1)]
        new.last_seq = case.last_seq + len(change.drafts)
        self.case = new
        return announce(self.rt, self.org, new, numbered, actor)


def told(notices: list[Notice]) -> set[tuple[str, MailKind]]:
    return {(n.key, n.kind) for n in notices}


RESIDENT = {"title": "Bankje", "buurt": "noord", "mail": "bewoner@voorbeeld.example", "naam": "Jan Jansen"}


def test_the_resident_is_acknowledged_with_the_decision_date(rt: RequestType, org: Organisation) -> None:
    run = Run(rt, org)
    notices = run.new("c.staf", RESIDENT)
    assert told(notices) == {("PR-2026-00001/e1/requester", MailKind.RESIDENT_CREATED)}
    notice = notices[0]
    assert (notice.recipient, notice.to_email, notice.to_name) == ("requester", "bewoner@voorbeeld.example", "")
    facts = notice.facts
    assert isinstance(facts, EventFacts) and run.case is not None
    assert facts.audience == "resident" and facts.event == NoticeEvent.CREATED
    assert run.case.case_due is not None and facts.decision_due == timestamp(run.case.case_due)
    assert facts.unit_name == "Wijkteam" and facts.unit_email == "wijkteam@proef.example"
    assert facts.summary == [["Onderwerp", "Bankje"], ["Buurt", "noord"]]
    # No civil servant, no comment, no internal key reaches a resident.
    assert facts.actor_name is None and facts.comment is None and facts.command is None
    assert facts.recipient_name is None and facts.state_due is None
    assert "Jan Jansen" not in repr(notice) and "c.staf" not in repr(facts.to_json())


def test_a_resident_without_an_address_hears_nothing_and_nothing_fails(rt: RequestType, org: Organisation) -> None:
    run = Run(rt, org)
    assert run.new("c.staf", {"title": "Bankje"}) == []
    assert run.step("c.staf", "vraag", comment="Stuur een foto") == []


def test_an_assignment_by_someone_else_is_told_and_ones_own_is_not(rt: RequestType, org: Organisation) -> None:
    run = Run(rt, org)
    assert told(run.new("b.lead", {"title": "Bankje"}, assign="c.staf")) == {
        ("PR-2026-00001/e2/c.staf", MailKind.ASSIGNED)}
    run = Run(rt, org)
    assert run.new("c.staf", {"title": "Bankje"}, assign="c.staf") == []
    notices = run.do("b.lead", commands.assign, person="a.hoofd")
    assert told(notices) == {("PR-2026-00001/e3/a.hoofd", MailKind.ASSIGNED)}
    facts = notices[0].facts
    assert isinstance(facts, EventFacts) and facts.actor_name == "Bram Lead" and facts.audience == "staff"
    assert facts.command == "loket case show PR-2026-00001" and facts.recipient_name == "Anna Hoofd"


# (trigger, actor, whom the hand-over reaches): the unit's mailbox, else its leads, else its
# heads, else nobody; never the one who handed it over.
HAND_OVERS = [
    ("naar_buiten", "c.staf", {("PR-2026-00001/e2/b.lead", MailKind.HANDED_OVER),
                               ("PR-2026-00001/e2/e.lead", MailKind.HANDED_OVER)}),
    ("naar_buiten", "b.lead", {("PR-2026-00001/e2/e.lead", MailKind.HANDED_OVER)}),
    ("naar_partner", "c.staf", {("PR-2026-00001/e2/a.hoofd", MailKind.HANDED_OVER),
                                ("PR-2026-00001/e2/wethouder", MailKind.CASE_UPDATE)}),
    ("naar_leeg", "c.staf", set()),
]


@pytest.mark.parametrize(("trigger", "actor", "expected"), HAND_OVERS)
def test_a_hand_over_reaches_the_receiving_unit(
    rt: RequestType, org: Organisation, trigger: str, actor: str, expected: set[tuple[str, MailKind]]
) -> None:
    run = Run(rt, org)
    run.new("c.staf", {"title": "Bankje"})
    notices = run.step(actor, trigger)
    assert told(notices) == expected
    for notice in notices:
        facts = notice.facts
        assert isinstance(facts, EventFacts) and facts.from_unit_name in ("Wijkteam", None)


def test_a_hand_over_back_goes_to_the_mailbox_with_its_comment(rt: RequestType, org: Organisation) -> None:
    run = Run(rt, org)
    run.new("c.staf", {"title": "Bankje"})
    run.step("c.staf", "naar_buiten")
    notices = run.step("e.lead", "terug", comment="Geen plek voor een bankje")
    assert told(notices) == {("PR-2026-00001/e3/unit:wijkteam", MailKind.HANDED_OVER)}
    notice = notices[0]
    assert (notice.recipient, notice.to_email, notice.to_name) == ("unit:wijkteam", "wijkteam@proef.example",
                                                                   "Wijkteam")
    facts = notice.facts
    assert isinstance(facts, EventFacts)
    assert (facts.from_unit_name, facts.unit_name, facts.actor_name, facts.comment) == (
        "Buitenruimte", "Wijkteam", "Eva Lead", "Geen plek voor een bankje")
    assert facts.state_due is not None and facts.state_label == "Open"


def test_suspension_resumption_and_extension_tell_the_resident_what_applies(
    rt: RequestType, org: Organisation
) -> None:
    run = Run(rt, org)
    run.new("c.staf", RESIDENT)
    asked = run.step("c.staf", "vraag", comment="Stuur een foto van de plek")
    assert told(asked) == {("PR-2026-00001/e2/requester", MailKind.RESIDENT_SUSPENDED)}
    facts = asked[0].facts
    assert isinstance(facts, EventFacts)
    # The step's comment is what the resident is asked for: told as the reason, not as a comment.
    assert (facts.reason, facts.comment, facts.state_label) == ("Stuur een foto van de plek", None,
                                                               "Wacht op aanvrager")
    assert run.step("c.staf", "ontvangen") == []  # resumed: switched off for this type
    suspended = run.do("c.staf", commands.suspend, reason="Wacht op de vergunning")
    assert told(suspended) == {("PR-2026-00001/e4/requester", MailKind.RESIDENT_SUSPENDED)}
    assert isinstance(suspended[0].facts, EventFacts) and suspended[0].facts.reason == "Wacht op de vergunning"
    assert run.do("c.staf", commands.resume) == []
    assert run.case is not None
    before = run.case.case_due
    extended = run.do("b.lead", commands.extend, by=Duration("weeks", 2), reason="Advies van de partner nodig",
                      last_extension=None)
    assert told(extended) == {("PR-2026-00001/e6/requester", MailKind.RESIDENT_EXTENDED)}
    facts = extended[0].facts
    assert isinstance(facts, EventFacts) and run.case.case_due is not None and before is not None
    assert facts.reason == "Advies van de partner nodig"
    assert (facts.previous_due, facts.decision_due) == (timestamp(before), timestamp(run.case.case_due))


def test_one_message_per_recipient_and_event_with_the_kind_that_matters_most(
    rt: RequestType, org: Organisation
) -> None:
    """Entering `besluit` tells the requester (a rule) and the head; closing tells the
    resident once (a default and no more) and the unit that closed it."""
    run = Run(rt, org)
    run.new("c.staf", RESIDENT)
    assert told(run.step("c.staf", "naar_besluit")) == {
        ("PR-2026-00001/e2/requester", MailKind.RESIDENT_UPDATE),
        ("PR-2026-00001/e2/a.hoofd", MailKind.CASE_UPDATE)}
    closed = run.step("b.lead", "afronden")
    assert told(closed) == {("PR-2026-00001/e3/requester", MailKind.RESIDENT_CLOSED),
                            ("PR-2026-00001/e3/unit:wijkteam", MailKind.CASE_UPDATE)}
    assert {n.facts.state_label for n in closed} == {"Klaar"}
    assert len({n.key for n in closed}) == len(closed)


def test_a_disabled_default_and_someone_who_left_send_nothing(tmp_path: Path, org: Organisation) -> None:
    """A person named in a rule who has left the organisation since is a vacancy: nobody."""
    text = TYPE.replace("  - {on: resumed, to: requester, enabled: false}\n",
                        "  - {on: created, to: requester, enabled: false}\n  - {on: created, to: b.weg}\n")
    rt, _ = _parse_type(tmp_path, text, None)
    assert rt.notify.to(NoticeEvent.CREATED) == ("b.weg",)
    assert Run(rt, org).new("c.staf", RESIDENT) == []


def test_nothing_personal_and_no_line_break_reaches_a_subject(rt: RequestType, org: Organisation) -> None:
    run = Run(rt, org)
    attack = "Bankje\r\nBcc: iedereen@voorbeeld.example"
    notices = run.new("b.lead", {**RESIDENT, "title": attack}, assign="c.staf")
    notices += run.step("c.staf", "naar_buiten", comment="Zie\r\nBcc: x@voorbeeld.example")
    assert len(notices) == 4
    for notice in notices:
        assert "\r" not in notice.subject and "\n" not in notice.subject and "Bcc" not in notice.subject
        assert "Jan Jansen" not in notice.subject and "bewoner@" not in notice.subject
        assert "/" not in notice.subject.split(":", 1)[0]  # no key in a subject
    # What the definition let through still cannot split a header.
    assert subject("nl", MailKind.HANDED_OVER, "PR-2026-00001", "Titel\r\nBcc: x", "Open\u2028X") == (
        "Overgedragen PR-2026-00001: Titel  Bcc: x — Open X")
    assert subject("en", MailKind.RESIDENT_CREATED, "PR-2026-00001", "Request", None) == (
        "Acknowledgement PR-2026-00001: Request")
