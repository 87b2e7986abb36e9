"""The mail of SPEC §11 for the people around a case: the resident's messages read as a resident
would read them, the staff messages say what the case is about, no field can add a header,
a mail folder names each file after its case, and the sender is the municipality's own.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import email
import re
from email import policy
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from conftest import START

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.core.notices import EventFacts, Notice
from engine.core.organisation import Organisation
from engine.core.vocabulary import MailKind
from engine.errors import ConfigurationError, InvalidValue
from engine.store import outbox as store
from notifications.compose import email_context, event_line
from notifications.context import DIGEST, KINDS, RESIDENT_KINDS, STAFF_KINDS, sample_contexts
from notifications.delivery import DEFAULT_SENDER, MailSettings, deliver
from notifications.digest import digest_context
from notifications.events import event_context
from notifications.message import Label, build_message, message_id_for
from notifications.render import Renderer
from notifications.requeue import list_outbox
from notifications.transports import DirectoryTransport, MemoryTransport, mail_file_name
from notifications.wording import LANGUAGES

RESIDENT = "j.devries@voorbeeld-inwoner.example"
NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
STAFF_ONLY = {"actor_name": "Chris de Vries", "comment": "Intern: bel c.devries over de vergunning",
              "command": "loket case show BI-2026-00042", "recipient_name": "Anna Jansen",
              "state_due": "2026-03-13T22:59:59.999999Z"}


def facts(event: str, audience: str = "resident", **changes: Any) -> EventFacts:
    base: dict[str, Any] = {
        "municipality": "Gemeente Voorbeeld", "ref": "BI-2026-00042", "case_id": 1, "event_seq": 1,
        "event": event, "audience": audience, "recipient_name": None,
        "type_title": "Bewonersinitiatief (wijkbudget)",
        "summary": [["Naam van het initiatief", "Straatfeest Lindelaan"], ["Categorie", "straatfeest"]],
        "state_label": "Ingediend", "unit_name": "Wijkteam Noord", "unit_email": "wijkteam@voorbeeld.nl",
        "decision_due": "2026-04-27T21:59:59.999999Z",
    }
    return EventFacts(**{**base, **changes})


RESIDENT_FACTS: dict[str, EventFacts] = {
    MailKind.RESIDENT_CREATED: facts("created"),
    MailKind.RESIDENT_EXTENDED: facts("extended", reason="Wij wachten op advies van de politie.",
                                      decision_due="2026-06-08T21:59:59.999999Z",
                                      previous_due="2026-04-27T21:59:59.999999Z"),
    MailKind.RESIDENT_SUSPENDED: facts("suspended", reason="Wij missen nog een tekening van de plek."),
    MailKind.RESIDENT_RESUMED: facts("resumed", decision_due="2026-05-04T21:59:59.999999Z"),
    MailKind.RESIDENT_CLOSED: facts("closed", state_label="Toegekend", outcome="granted", unit_name=""),
    MailKind.RESIDENT_UPDATE: facts("state", state_label="Bijdrage openbare ruimte"),
}
#: What each resident message must say, in its language: the date that applies, and more.
MUST_SAY: dict[str, dict[str, list[str]]] = {
    "nl": {
        MailKind.RESIDENT_CREATED: ["ontvangen op 2 maart 2026", "uiterlijk op 27 april 2026"],
        MailKind.RESIDENT_EXTENDED: ["uiterlijk op 8 juni 2026", "27 april 2026", "advies van de politie"],
        MailKind.RESIDENT_SUSPENDED: ["tekening van de plek", "schuift op", "27 april 2026"],
        MailKind.RESIDENT_RESUMED: ["uiterlijk op 4 mei 2026"],
        MailKind.RESIDENT_CLOSED: ["De uitkomst is: toegekend.", "2 maart 2026", "Gemeente Voorbeeld"],
        MailKind.RESIDENT_UPDATE: ["Bijdrage openbare ruimte", "Sinds 2 maart 2026"],
    },
    "en": {
        MailKind.RESIDENT_CREATED: ["received your application on 2 March 2026", "by 27 April 2026"],
        MailKind.RESIDENT_EXTENDED: ["by 8 June 2026", "27 April 2026", "advies van de politie"],
        MailKind.RESIDENT_SUSPENDED: ["tekening van de plek", "moves with the time", "27 April 2026"],
        MailKind.RESIDENT_RESUMED: ["by 4 May 2026"],
        MailKind.RESIDENT_CLOSED: ["The outcome is: granted.", "2 March 2026"],
        MailKind.RESIDENT_UPDATE: ["Bijdrage openbare ruimte", "Since 2 March 2026"],
    },
}
JARGON = ("beslistermijn", "opschort", "verdaging", "verdaagd", "awb", "artikel", "escalat", "behandelaar",
          "termijn", "status", "suspended", "escalation", "deadline")


def row_of(kind: str, event: EventFacts, language: str = "nl", **changes: Any) -> dict[str, Any]:
    notice = Notice(key=f"{event.ref}/event/{event.event_seq}/{kind}", case_id=event.case_id, kind=MailKind(kind),
                    language=language, recipient="requester" if kind in RESIDENT_KINDS else "b.bakker",
                    to_email=RESIDENT if kind in RESIDENT_KINDS else "b.bakker@voorbeeld.example",
                    to_name="" if kind in RESIDENT_KINDS else "Bram Bakker", subject=kind, facts=event)
    return {**store.pending_row(notice, NOW), **changes}


def organisation(loket: Loket, language: str = "nl") -> Organisation:
    return dataclasses.replace(loket.organisation(), language=language)


def plain(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def sentences(text: str) -> list[str]:
    """The sentences of a text: lines split at . ? ! — a table line is its own sentence."""
    found = []
    for line in text.splitlines():
        found += [part.strip() for part in re.split(r"(?<=[.?!])\s+", line) if part.strip()]
    return found


def words(sentence: str) -> int:
    return len([word for word in sentence.split() if re.search(r"\w", word)])


# -- the resident's messages, read as a resident would -------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", RESIDENT_KINDS)
def test_a_residents_message_reads_plainly_and_hides_the_office(
    loket: Loket, kind: str, language: str
) -> None:
    # Facts as an engine might store them with a slip: staff details where none belong.
    event = EventFacts(**{**RESIDENT_FACTS[kind].to_json(), **STAFF_ONLY})
    context = event_context(organisation(loket, language), row_of(kind, event, language))
    rendered = Renderer(language).render(kind, context)
    assert "BI-2026-00042" in rendered.subject
    for body in (rendered.text, plain(rendered.html)):
        assert "BI-2026-00042" in body
        for said in MUST_SAY[language][kind]:
            assert said in " ".join(body.split()), said
        # No civil servant, no internal word, key, id or command.
        for hidden in ("Chris de Vries", "Anna Jansen", "Intern", "c.devries", "loket case", "None"):
            assert hidden not in body
        assert not re.search(r"\bloket\b", body, re.IGNORECASE)
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", body), "a key (state, trigger, field or kind)"
        assert not re.search(r"\b[a-z]\.[a-z]+\b", re.sub(r"\S+@\S+", "", body)), "a person's id"
        lowered = body.lower()
        for word in JARGON:
            assert word not in lowered, word
        # The unit is the contact, with its mailbox.
        assert "wijkteam@voorbeeld.nl" in body or kind == MailKind.RESIDENT_CLOSED
        # Short sentences (B1): at most 15 words each.
        long = [s for s in sentences(body) if words(s) > 15]
        assert long == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", RESIDENT_KINDS)
def test_every_resident_sample_keeps_its_sentences_short(kind: str, language: str) -> None:
    for context in sample_contexts(kind, language):
        rendered = Renderer(language).render(kind, context)
        for body in (rendered.text, plain(rendered.html)):
            assert [s for s in sentences(body) if words(s) > 15] == []
            assert "loket" not in body.replace("Wijkloket", "")


def test_a_request_without_a_lead_time_promises_no_date(loket: Loket) -> None:
    event = facts("created", decision_due=None, unit_email=None)
    rendered = Renderer("nl").render("resident_created", event_context(loket.organisation(),
                                                                       row_of("resident_created", event)))
    assert "uiterlijk" not in rendered.text
    assert "U krijgt bericht als wij een besluit hebben genomen." in rendered.text
    assert "Neem dan contact op met Wijkteam Noord van Gemeente Voorbeeld." in rendered.text


@pytest.mark.parametrize(("outcome", "label", "said"), [
    ("rejected", "Afgewezen", "De uitkomst is: afgewezen."),
    ("withdrawn", "Ingetrokken", "De uitkomst is: ingetrokken."),
    ("done", "Klaar", "De uitkomst is: afgerond."),
    (None, "Niet in behandeling genomen", "De uitkomst is: Niet in behandeling genomen."),
])
def test_a_closed_request_says_its_outcome_in_plain_words(
    loket: Loket, outcome: str | None, label: str, said: str
) -> None:
    event = facts("closed", outcome=outcome, state_label=label)
    text = Renderer("nl").render("resident_closed", event_context(loket.organisation(),
                                                                  row_of("resident_closed", event))).text
    assert said in text


# -- staff messages say what the case is about ---------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", STAFF_KINDS)
def test_a_staff_message_says_what_the_case_is_about_who_and_until_when(
    loket: Loket, kind: str, language: str
) -> None:
    event = facts("handed_over" if kind == MailKind.HANDED_OVER else "assigned" if kind == MailKind.ASSIGNED
                  else "state", audience="staff", recipient_name="Woningcorporatie Thuis",
                  from_unit_name="Wijkteam Noord", unit_name="Woningcorporatie Thuis", **{
                      key: value for key, value in STAFF_ONLY.items() if key != "recipient_name"})
    context = event_context(organisation(loket, language), row_of(kind, event, language))
    rendered = Renderer(language).render(kind, context)
    assert "BI-2026-00042" in rendered.subject and "Straatfeest Lindelaan" in rendered.subject
    for body in (rendered.text, plain(rendered.html)):
        flat = " ".join(body.split())
        for said in ("Woningcorporatie Thuis", "Naam van het initiatief", "Straatfeest Lindelaan",
                     "Chris de Vries", "Intern: bel c.devries over de vergunning", "loket case show BI-2026-00042",
                     "13 ", "23:59"):
            assert said in flat, said
        if kind == MailKind.HANDED_OVER:
            assert "Wijkteam Noord" in flat


def test_a_staff_message_of_the_system_names_nobody(loket: Loket) -> None:
    event = facts("assigned", audience="staff", recipient_name="Dirk Kok")
    text = Renderer("nl").render("assigned", event_context(loket.organisation(), row_of("assigned", event))).text
    assert "Zaak BI-2026-00042 is aan u toegewezen." in text
    assert "Door:" not in text and "Opmerking:" not in text and "Termijn:" not in text


# -- escalations and digests say what a case is about --------------------------------------------


def test_an_escalations_history_shows_names_and_labels_not_ids_and_keys(loket: Loket, clock: FixedClock) -> None:
    ref = loket.new_case("melding", ["omschrijving=Lantaarnpaal kapot", "locatie=Lindelaan"], actor="c.devries").ref
    loket.advance(ref, "doorzetten", actor="c.devries", assignments=["categorie=verlichting"])
    loket.assign(ref, "c.devries", actor="c.devries")
    clock.set(START + dt.timedelta(days=14))
    from engine.app.sweep import sweep

    sweep(loket)
    row = next(row for row in list_outbox(loket) if row["kind"] == "escalation")
    lines = [event["summary"] for event in email_context(loket, row)["events"]]
    text = "\n".join(lines)
    assert "Ontvangen (triage) → In behandeling" in text
    assert "doorzetten" not in text and "in_behandeling" not in text
    assert "Chris de Vries" in text and "c.devries" not in text


def test_event_lines_name_people_and_rungs(loket: Loket) -> None:
    org = loket.organisation()
    escalated = {"action": "escalated", "data": {"rung": "2", "to": "b.bakker"}, "comment": None}
    breach = {"action": "escalated", "data": {"rung": "service_norm", "to": "a.jansen"}, "comment": None}
    assigned = {"action": "assigned", "data": {"assignee": "c.devries"}, "comment": None}
    for event, expected in ((escalated, "trede 2: Bram Bakker"),
                            (breach, "servicenorm overschreden → Anna Jansen"), (assigned, "Chris de Vries")):
        assert event_line(event, org, labels={}, hide=frozenset(), language="nl") == expected


def test_a_digest_lists_each_case_once_with_every_firing_about_it() -> None:
    first, second = sample_contexts("escalation")[0], sample_contexts("reminder")[0]
    rows = [{"kind": "reminder", "context": {"event_seq": 3}}, {"kind": "escalation", "context": {"event_seq": 4}}]
    context = digest_context(rows, [second, {**first, "state_label": "Later"}])
    (case,) = context["cases"]
    assert (context["count"], context["escalations"], context["reminders"], context["timeouts"]) == (1, 1, 1, 0)
    assert [firing["kind"] for firing in case["firings"]] == ["escalation", "reminder"]  # the most urgent first
    assert case["state_label"] == "Later"  # as the latest firing found it
    assert case["summary"] == [["Titel", "Straatfeest Lindelaan"], ["Buurt", "Lindenbuurt"]]
    text = Renderer("nl").render(DIGEST, context).text
    assert text.count("BI-2026-00042 –") == 1 and "Titel:" in text


# -- no field adds a header -------------------------------------------------------------------------

EVIL = "evil@evil.example"
HOSTILE = [
    f"Feest\r\nBcc: {EVIL}",
    "Feest =?utf-8?b?" + base64.b64encode(f"\r\nBcc: {EVIL}".encode()).decode() + "?=",
    f"Feest =?utf-8?q?=0D=0ABcc:_{EVIL}?=",
    "Feest\x85Bcc: x\u2028To: y",
]
HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted", "X-Loket-Queued", "X-Loket-Ref",
           "X-Loket-Kind", "X-Loket-Recipient", "MIME-Version", "Content-Type"}


def poisoned(value: Any, hostile: str) -> Any:
    """Every text of a context made hostile, down through its lists and mappings."""
    if isinstance(value, str):
        return f"{value} {hostile}"
    if isinstance(value, list):
        return [poisoned(item, hostile) for item in value]
    if isinstance(value, dict):
        return {key: value if key in ("reader", "kind", "event") else poisoned(value, hostile)
                for key, value in value.items()}
    return value


@pytest.mark.parametrize("hostile", HOSTILE, ids=["crlf", "b-word", "q-word", "unicode-breaks"])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", [*RESIDENT_KINDS, *STAFF_KINDS, DIGEST])
def test_no_field_of_a_new_kind_or_a_digest_adds_a_header(kind: str, language: str, hostile: str) -> None:
    """Every text of the context hostile (summary values, comments, reasons, unit names, ...),
    and the recipient's name too: the message has its headers and no others, each one line.
    A raw line break in the recipient's name (which the organisation file never lets in) is
    refused rather than written."""
    for sample in sample_contexts(kind, language):
        rendered = Renderer(language).render(kind, poisoned(sample, hostile))
        for to_name in ("Wijkteam Noord", f"Wijkteam Noord {hostile}"):
            try:
                message = build_message(
                    rendered, sender="Wijkloket <wijkloket@voorbeeld.nl>", to="b.bakker@voorbeeld.example",
                    to_name=to_name, message_id=message_id_for("k", "voorbeeld.nl"), date=NOW,
                    label=Label(queued=NOW.date(), ref=f"BI {hostile}", kind=kind, recipient=hostile))
            except InvalidValue:
                assert "\n" in to_name and hostile == HOSTILE[0]
                continue
            parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
            assert set(parsed.keys()) == HEADERS
            (to,) = parsed.get_all("To") or []
            assert [address.addr_spec for address in to.addresses] == ["b.bakker@voorbeeld.example"]
            for name, value in parsed.items():
                assert "\r" not in str(value) and "\n" not in str(value), name
            for name in ("X-Loket-Ref", "X-Loket-Recipient", "X-Loket-Kind", "X-Loket-Queued"):
                assert re.fullmatch(r"[A-Za-z0-9._+-]+", str(parsed[name])), name


# -- delivered: one file per message, named after its case --------------------------------------------


def queue(loket: Loket, *rows: dict[str, Any]) -> None:
    with loket.engine.begin() as conn:
        for row in rows:
            assert store.queue_once(conn, row)


def test_event_rows_are_delivered_alone_and_filed_by_case(loket: Loket, clock: FixedClock, tmp_path: Path) -> None:
    case = loket.new_case("bewonersinitiatief", ["title=Straatfeest Lindelaan"], actor="c.devries")
    acknowledgement = facts("created", case_id=case.id, ref=case.ref)
    handed = facts("handed_over", audience="staff", case_id=case.id, ref=case.ref, recipient_name="Bram Bakker",
                   actor_name="Chris de Vries", comment="Graag advies")
    queue(loket, row_of("resident_created", acknowledgement, created_at=START, next_attempt_at=START),
          row_of("handed_over", handed, created_at=START, next_attempt_at=START))
    folder = tmp_path / "mail"
    settings = MailSettings(sender=None, transport=DirectoryTransport(folder), template_dir=None)

    report = deliver(loket, settings)

    assert (report.sent, report.emails) == (2, 2)  # both to readers of their own: never gathered
    names = sorted(path.name for path in folder.glob("*.eml"))
    assert [re.sub(r"_[0-9a-f]{16}\.eml$", "", name) for name in names] == [
        f"2026-03-02_{case.ref}_handed_over_b.bakker", f"2026-03-02_{case.ref}_resident_created_requester"]
    assert not any("@" in name or "inwoner" in name for name in names)  # no resident's address
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert path.name == mail_file_name(message)
        assert message["From"] == "Wijkloket <wijkloket@voorbeeld.example>"  # from the mail_domain
        # Delivering the same message again replaces its file.
        assert DirectoryTransport(folder).write(message).ok
    assert sorted(path.name for path in folder.iterdir()) == names
    (resident,) = folder.glob("*requester*")
    message = email.message_from_bytes(resident.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    assert text is not None and "Straatfeest Lindelaan" in str(text.get_content())
    assert "Chris de Vries" not in str(text.get_content()) and "Graag advies" not in str(text.get_content())
    assert {row["status"] for row in list_outbox(loket)} == {"sent"}


def test_event_rows_and_firings_to_one_reader_do_not_mix(loket: Loket, clock: FixedClock) -> None:
    from test_outbox import escalate

    firings = escalate(loket, clock, 2)  # two rung-1 firings to the lead, Bram Bakker
    case_id = firings[0]["case_id"]
    assigned = facts("assigned", audience="staff", case_id=case_id, ref=firings[0]["key"].split("/")[0],
                     recipient_name="Bram Bakker")
    queue(loket, row_of("assigned", assigned, created_at=clock.now(), next_attempt_at=clock.now()))
    memory = MemoryTransport()

    report = deliver(loket, MailSettings(sender=None, transport=memory, template_dir=None))

    assert (report.sent, report.emails) == (3, 2)
    assert sorted(str(message["X-Loket-Kind"]) for message in memory.sent) == ["assigned", "digest"]


def test_the_sender_is_the_municipalitys_own_domain_unless_set(
    loket: Loket, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_outbox import escalate

    (row,) = escalate(loket, clock, 1)
    with_domain = copy.copy(loket.organisation())
    object.__setattr__(with_domain, "mail_domain", "voorbeeld.nl")  # as the organisation file says
    monkeypatch.setattr(loket, "organisation", lambda: with_domain)
    memory = MemoryTransport()

    deliver(loket, MailSettings(sender=None, transport=memory, template_dir=None))

    (message,) = memory.sent
    assert message["From"] == "Wijkloket <wijkloket@voorbeeld.nl>"
    assert message["Message-ID"] == message_id_for(row["key"], "voorbeeld.nl")
    settings = MailSettings.from_env({"LOKET_MAIL_FROM": "Gemeente <post@gemeente.example>"})
    assert settings.for_organisation(with_domain).sender == "Gemeente <post@gemeente.example>"
    assert MailSettings.from_env({}).sender is None
    object.__setattr__(with_domain, "mail_domain", "voorbeeld nl")
    with pytest.raises(ConfigurationError, match="mail_domain 'voorbeeld nl' is not a domain name"):
        MailSettings.from_env({}).for_organisation(with_domain)


# -- overrides of the new kinds are checked like the others ---------------------------------------


@pytest.mark.parametrize(("name", "source", "error"), [
    # Fine while a decision date is known; the sample of a type without a lead time finds it.
    ("resident_created.nl.txt.j2", "{{ ref }} {{ decision_date.upper() }}", "has no attribute 'upper'"),
    ("handed_over.en.subject.j2", "{% if not comment %}{{ opmerking }}{% endif %}", "'opmerking' is undefined"),
    ("case_update.nl.txt.j2", "{% if event == 'closed' %}{{ uitkomst }}{% endif %}", "'uitkomst' is undefined"),
    ("digest.en.txt.j2", "{% for case in cases %}{{ case.firings[0].wethouder }}{% endfor %}", "wethouder"),
    ("_resident.nl.txt.j2", "{% block message %}{% endblock %}{{ afzender }}", "'afzender' is undefined"),
])
def test_an_override_of_a_new_kind_that_breaks_on_one_variant_is_refused_at_start_up(
    tmp_path: Path, name: str, source: str, error: str
) -> None:
    (tmp_path / name).write_text(source, encoding="utf-8")
    language = name.split(".")[1] if not name.startswith("_") else "nl"
    with pytest.raises(ConfigurationError, match=error):
        Renderer(language, override_dir=tmp_path).check()


def test_the_samples_cover_the_variants_of_the_new_kinds() -> None:
    for kind in RESIDENT_KINDS:
        samples = sample_contexts(kind)
        assert {sample["decision_date"] is None for sample in samples} == {True, False}
        assert {sample["unit_email"] is None for sample in samples} == {True, False}
    events = {sample["event"] for sample in sample_contexts("case_update")}
    assert events >= {"created", "handed_over", "assigned", "suspended", "resumed", "extended", "closed",
                      "state", "trigger"}
    for kind in STAFF_KINDS:
        assert {sample["actor_name"] is None for sample in sample_contexts(kind)} == {True, False}
    firings = [firing for sample in sample_contexts(DIGEST) for case in sample["cases"] for firing in case["firings"]]
    assert {firing["kind"] for firing in firings} == {"escalation", "reminder", "timeout"}
    assert {firing["deadline_passed"] for firing in firings if firing["kind"] == "reminder"} == {True, False}


def test_the_sender_falls_back_from_the_environment_to_the_mail_domain_to_localhost(loket: Loket) -> None:
    org = loket.organisation()
    settings = MailSettings(sender=None, transport=DirectoryTransport(Path("unused")), template_dir=None)
    assert settings.for_organisation(org).sender == "Wijkloket <wijkloket@voorbeeld.example>"
    assert settings.for_organisation(dataclasses.replace(org, mail_domain=None)).sender == DEFAULT_SENDER
    chosen = dataclasses.replace(settings, sender="Loket <loket@gemeente.example>")
    assert chosen.for_organisation(org).sender == "Loket <loket@gemeente.example>"


# -- column-aligned facts stay readable with long labels ------------------------------------------

LONG_LABEL = "Naam van het initiatief of de activiteit"


def _column(text: str, value: str) -> int:
    """The column at which `value` starts on its line in `text` (it occurs on one line)."""
    lines = [line for line in text.splitlines() if value in line]
    assert len(lines) == 1, (value, text)
    return lines[0].index(value)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", [*RESIDENT_KINDS, *STAFF_KINDS, *KINDS])
def test_a_long_label_keeps_the_facts_aligned(kind: str, language: str) -> None:
    """A label longer than the column (a type's long field label) goes on its own line and its
    value starts in the same column as every other value, in the plain-text part."""
    context = {**sample_contexts(kind, language)[0],
               "summary": [[LONG_LABEL, "Moestuin achter het buurthuis"], ["Buurt", "Lindenbuurt"]]}
    text = Renderer(language).render(kind, context).text
    column = _column(text, "Lindenbuurt")
    assert _column(text, "Moestuin achter het buurthuis") == column
    assert f"{LONG_LABEL}:" in text.splitlines()
    assert _column(text, str(context["type_title"])) == column


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_digest_keeps_its_facts_aligned_with_long_labels(language: str) -> None:
    context = copy.deepcopy(sample_contexts(DIGEST, language)[0])
    context["cases"] = context["cases"][:1]
    context["cases"][0]["summary"] = [[LONG_LABEL, "Moestuin achter het buurthuis"], ["Buurt", "Lindenbuurt"]]
    text = Renderer(language).render(DIGEST, context).text
    column = _column(text, "Lindenbuurt")
    assert _column(text, "Moestuin achter het buurthuis") == column
    case = context["cases"][0]
    assert _column(text, f"{case['state_label']} ({case['unit_name']})") == column
    # Every firing's line too (a timeout's label was longer than the Dutch column).
    for firing in context["cases"][0]["firings"]:
        firing["kind"] = "timeout"
    text = Renderer(language).render(DIGEST, context).text
    firings = [line for line in text.splitlines() if "teruggezet naar" in line or "moved back to" in line]
    assert firings
    for line in firings:
        assert line[column - 1] == " " and line[column] != " ", (line, column)
