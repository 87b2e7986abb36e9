"""Notification templates, the sandbox around them, and building the MIME message."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import notifications.render as render_module
from engine.errors import ConfigurationError, InvalidValue
from notifications.context import KINDS, EmailContext, sample_contexts
from notifications.message import build_message, message_id_for
from notifications.render import KNOWN_TEMPLATES, MAX_TEMPLATE_BYTES, Renderer, one_line
from notifications.wording import LANGUAGES, READERS, format_moment, reader_of, rung_label

PACKAGE_TEMPLATES = Path(render_module.__file__).parent / "templates"
NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)


def context(kind: str = "escalation", language: str = "nl", **changes: Any) -> EmailContext:
    return {**sample_contexts(kind, language)[0], **changes}  # type: ignore[typeddict-item]


def parse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# -- the packaged templates -------------------------------------------------------------------


def test_every_kind_language_and_part_ships() -> None:
    shipped = {path.name for path in PACKAGE_TEMPLATES.glob("*.j2")}
    assert shipped >= KNOWN_TEMPLATES


def test_packaged_templates_pass_the_override_check() -> None:
    """The shipped set is held to the rules a deployment's override folder must meet."""
    for language in LANGUAGES:
        checked = Renderer(language, override_dir=PACKAGE_TEMPLATES).check()
        partials = {path.name for path in PACKAGE_TEMPLATES.glob("_*.j2")}
        assert partials >= {"_layout.html.j2", f"_resident.{language}.txt.j2", f"_staff.{language}.html.j2"}
        assert set(checked) == KNOWN_TEMPLATES | partials


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_email_states_the_case_facts_in_text_and_html(kind: str, language: str) -> None:
    data = context(kind, language)
    rendered = Renderer(language).render(kind, data)
    assert data["ref"] in rendered.subject
    assert data["type_title"] in rendered.subject
    for body in (rendered.text, rendered.html):
        for key in (
            "municipality",
            "recipient_name",
            "ref",
            "type_title",
            "state_label",
            "unit_name",
            "due",
            "command",
        ):
            assert str(data[key]) in body, (key, body)
        assert "Chris de Vries" in body  # the assignee
        assert "Anna Jansen" in body and "Straatfeest Lindelaan" in body  # the last events
        assert "loket case show BI-2026-00042" in body
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in rendered.html
    assert "http" not in rendered.html.lower()  # no external resources


ESCALATION_FACTS = [
    # language, overdue, rung label, nobody, no events
    ("nl", "3 werkdagen", "trede 2 van 4: teamleider", "niemand", "Geen gebeurtenissen"),
    ("en", "3 working days", "rung 2 of 4: team lead", "nobody", "No events recorded"),
]


@pytest.mark.parametrize(("language", "overdue", "rung", "nobody", "no_events"), ESCALATION_FACTS)
def test_escalation_says_how_late_which_rung_and_who_holds_it(
    language: str, overdue: str, rung: str, nobody: str, no_events: str
) -> None:
    renderer = Renderer(language)
    held = renderer.render("escalation", context("escalation", language))
    assert overdue in held.subject
    for body in (held.text, held.html):
        assert overdue in body and rung in body
    unheld = renderer.render(
        "escalation", context("escalation", language, assignee_name=None, events=[])
    )
    for body in (unheld.text, unheld.html):
        assert nobody in body and no_events in body


@pytest.mark.parametrize(
    ("language", "rung", "label", "says"),
    [
        ("nl", "service_norm", "servicenorm overschreden", "de termijn die de gemeente bewoners"),
        ("nl", "lead_time", "wettelijke beslistermijn overschreden", "dwangsom"),
        ("en", "service_norm", "service norm exceeded", "promises its residents"),
        ("en", "lead_time", "legal decision period exceeded", "penalty payment"),
    ],
)
def test_escalation_for_the_special_clocks(language: str, rung: str, label: str, says: str) -> None:
    data = context(
        "escalation",
        language,
        rung=rung,
        rung_label=rung_label(rung, of=None, to="administrator", language=language),
    )
    rendered = Renderer(language).render("escalation", data)
    days = "3 werkdagen" if language == "nl" else "3 working days"
    assert rendered.subject.endswith(f"{label} ({days})")
    for body in (rendered.text, rendered.html):
        assert label in body and says in body


@pytest.mark.parametrize(
    ("language", "days", "expected"),
    [
        ("nl", 0, "minder dan 1 werkdag"),
        ("nl", 1, "1 werkdag"),
        ("nl", 4, "4 werkdagen"),
        ("en", 0, "less than 1 working day"),
        ("en", 1, "1 working day"),
        ("en", 4, "4 working days"),
    ],
)
def test_working_days_are_counted_in_words(language: str, days: int, expected: str) -> None:
    rendered = Renderer(language).render(
        "escalation", context(language=language, days_overdue=days)
    )
    assert f"{expected}\n" in rendered.text


def test_reminder_says_how_much_time_is_left() -> None:
    nl = Renderer("nl").render("reminder", context("reminder", "nl", days_left=2))
    assert "termijn verloopt over 2 werkdagen" in nl.subject
    assert "verloopt\nover 2 werkdagen, op" in nl.text
    en = Renderer("en").render("reminder", context("reminder", "en", days_left=0))
    assert "deadline today" in en.subject


def flat(text: str) -> str:
    """The words of a body with its line breaks and indentation made single spaces."""
    return " ".join(text.split())


LATE_REMINDER = [
    # language, working days overdue, how that is said
    ("nl", 36, " (36 werkdagen geleden)"),
    ("nl", 1, " (1 werkdag geleden)"),
    ("nl", 0, ""),  # passed, but no working day has ended since
    ("en", 36, " (36 working days ago)"),
    ("en", 1, " (1 working day ago)"),
    ("en", 0, ""),
]
#: What only a reminder sent in time may say: the deadline is still to come.
ON_TIME_WORDS = {
    "nl": ("verloopt", "vandaag", "op tijd verder kan", "vóór het verstrijken"),
    "en": ("deadline is", "today", "move on in time", "before the deadline"),
}


@pytest.mark.parametrize(("language", "days", "ago"), LATE_REMINDER)
def test_a_reminder_that_fired_after_its_deadline_says_it_has_passed(language: str, days: int, ago: str) -> None:
    """Decision: a reminder a late sweep fires after the deadline is still sent (nothing else
    tells the assignee), but says when the deadline passed, in subject and body."""
    data = context("reminder", language, deadline_passed=True, days_left=0, days_overdue=days)
    rendered = Renderer(language).render("reminder", data)
    title = "BI-2026-00042 – Bewonersinitiatief (wijkbudget)"
    if language == "nl":
        subject = f"Herinnering {title}: termijn verstreken op {data['due']}{ago}"
        said = f"De termijn voor onderstaande zaak bij Gemeente Voorbeeld is verstreken op {data['due']}{ago}."
        late = "Deze herinnering komt later dan bedoeld; wij sturen haar toch"
        asked = "Wilt u de zaak zo snel mogelijk afronden of doorzetten naar de volgende stap?"
    else:
        subject = f"Reminder {title}: deadline passed on {data['due']}{ago}"
        said = f"The deadline for the case below at Gemeente Voorbeeld passed on {data['due']}{ago}."
        late = "This reminder comes later than intended; we send it anyway"
        asked = "Please complete the case or move it on to its next step as soon as possible."
    assert rendered.subject == subject
    html = rendered.html.replace("<strong>", "").replace("</strong>", "")
    for body in (flat(rendered.text), flat(html)):
        assert said in body and late in body and asked in body
        for word in ON_TIME_WORDS[language]:
            assert word not in body, word
    passed = "verstreken op" if language == "nl" else "passed on"
    assert f"<strong>{passed} {data['due']}</strong>" in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_reminder_in_time_still_counts_down(language: str) -> None:
    renderer = Renderer(language)
    for days_left, nl, en in ((2, "termijn verloopt over 2 werkdagen", "deadline in 2 working days"),
                              (1, "termijn verloopt over 1 werkdag", "deadline in 1 working day"),
                              (0, "termijn verloopt vandaag", "deadline today")):
        data = context("reminder", language, days_left=days_left, deadline_passed=False, days_overdue=0)
        rendered = renderer.render("reminder", data)
        assert rendered.subject.endswith(nl if language == "nl" else en)
        for body in (rendered.text, rendered.html):
            assert "verstreken op" not in body and "passed on" not in body
            assert ("later dan bedoeld" if language == "nl" else "later than intended") not in body


# Advice in a reminder, by reader: what must be said, and what must not.
CONSULT_LEAD = {"nl": "overleg dan met uw teamleider", "en": "talk to your team lead"}
REMINDER_ADVICE = [
    ("nl", "assignee", "Chris de Vries",
     "Wilt u de zaak vóór het verstrijken van de termijn afronden of doorzetten naar de volgende stap? "
     "Lukt dat niet, overleg dan met uw teamleider."),
    ("nl", "person", "Chris de Vries",
     "Lukt dat niet, overleg dan met de teamleider van Openbare Ruimte."),
    ("nl", "lead", None,
     "Wilt u ervoor zorgen dat de zaak vóór het verstrijken van de termijn wordt afgerond of doorgezet "
     "naar de volgende stap, bijvoorbeeld door haar aan een behandelaar toe te wijzen?"),
    ("nl", "head", "Chris de Vries",
     "Wilt u ervoor zorgen dat de zaak vóór het verstrijken van de termijn wordt afgerond of doorgezet "
     "naar de volgende stap?"),
    ("nl", "administrator", None,
     "Wilt u Openbare Ruimte vragen de zaak vóór het verstrijken van de termijn af te ronden of door te "
     "zetten naar de volgende stap, en haar daarvoor aan een behandelaar toe te wijzen?"),
    ("en", "assignee", "Chris de Vries",
     "Please complete the case or move it on to its next step before the deadline. "
     "If that is not possible, talk to your team lead."),
    ("en", "person", "Chris de Vries",
     "If that is not possible, talk to the team lead of Openbare Ruimte."),
    ("en", "lead", None,
     "Please make sure the case is completed or moved on to its next step before the deadline, "
     "for instance by assigning it to someone."),
    ("en", "head", "Chris de Vries",
     "Please make sure the case is completed or moved on to its next step before the deadline."),
    ("en", "administrator", None,
     "Please ask Openbare Ruimte to complete the case or move it on to its next step before the "
     "deadline, and to assign it to someone for that."),
]


@pytest.mark.parametrize(("language", "reader", "assignee", "advice"), REMINDER_ADVICE)
def test_a_reminders_advice_fits_its_reader(
    language: str, reader: str, assignee: str | None, advice: str
) -> None:
    """A reminder the vacancy rule moved up to a lead, head or administrator does not tell
    them to consult their team lead; only the administrator, at the top, is not told that the
    case will go higher."""
    data = context("reminder", language, reader=reader, assignee_name=assignee)
    rendered = Renderer(language).render("reminder", data)
    higher = "hoger in de organisatie" if language == "nl" else "attention of the management"
    for body in (flat(rendered.text), flat(rendered.html)):
        assert advice in body
        assert (CONSULT_LEAD[language] in body) == (reader == "assignee")
        assert (higher in body) == (reader != "administrator")
    assigning = "aan een behandelaar toe te wijzen" if language == "nl" else "it to someone"
    for body in (flat(rendered.text), flat(rendered.html)):
        # Only a case nobody holds is to be assigned.
        assert (assigning in body) == (assignee is None)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("reader", ["assignee", "lead", "head", "administrator", "person"])
def test_a_late_reminders_advice_asks_for_haste_and_says_the_case_goes_higher(
    language: str, reader: str
) -> None:
    data = context("reminder", language, reader=reader, deadline_passed=True, days_left=0, days_overdue=3)
    rendered = Renderer(language).render("reminder", data)
    if language == "nl":
        haste, higher = "zo snel mogelijk", "Omdat de termijn is verstreken, legt de escalatieregeling"
    else:
        haste, higher = "as soon as possible", "As the deadline has passed, the escalation procedure also"
    for body in (flat(rendered.text), flat(rendered.html)):
        assert haste in body
        assert (higher in body) == (reader != "administrator")
        assert (CONSULT_LEAD[language] in body) == (reader == "assignee")


ESCALATION_ADVICE = [
    ("nl", "lead", "of de beslistermijn verlengen waar de regels dat toestaan."),
    ("nl", "head", "of de beslistermijn verlengen waar de regels dat toestaan."),
    ("nl", "assignee", "of uw teamleider vragen de beslistermijn te verlengen waar de regels dat toestaan."),
    ("nl", "person",
     "of de teamleider van Openbare Ruimte vragen de beslistermijn te verlengen waar de regels dat toestaan."),
    ("nl", "administrator",
     "U kunt bijvoorbeeld Openbare Ruimte op de voortgang aanspreken, en de teamleider of het "
     "afdelingshoofd vragen de zaak (opnieuw) toe te wijzen of, waar de regels dat toestaan, de "
     "beslistermijn te verlengen."),
    ("en", "lead", "or extend the decision period where the rules allow it."),
    ("en", "head", "or extend the decision period where the rules allow it."),
    ("en", "assignee", "or ask your team lead to extend the decision period where the rules allow it."),
    ("en", "person",
     "or ask the team lead of Openbare Ruimte to extend the decision period where the rules allow it."),
    ("en", "administrator",
     "You could, for instance, ask Openbare Ruimte about its progress, and ask the team lead or head of "
     "department to (re)assign the case or, where the rules allow it, to extend the decision period."),
]


@pytest.mark.parametrize(("language", "reader", "advice"), ESCALATION_ADVICE)
@pytest.mark.parametrize("rung", [2, "lead_time"])
def test_an_escalations_advice_fits_its_reader(language: str, reader: str, advice: str, rung: int | str) -> None:
    """Only a lead or head may extend a term (`case extend`): an administrator is asked to
    have it done, staff to ask their team lead; and it is the decision period that extends."""
    data = context("escalation", language, reader=reader, rung=rung)
    rendered = Renderer(language).render("escalation", data)
    extend_it = "of de beslistermijn verlengen" if language == "nl" else "or extend the decision period"
    for body in (flat(rendered.text), flat(rendered.html)):
        assert advice in body
        assert (extend_it in body) == (reader in ("lead", "head"))
        assert "de termijn verlengen" not in body and "extend the deadline" not in body


def test_timeout_says_where_the_case_went() -> None:
    rendered = Renderer("nl").render("timeout", context("timeout"))
    assert "teruggezet naar In beoordeling" in rendered.subject
    for body in (rendered.text, rendered.html):
        assert "In beoordeling (Wijkteam Noord)" in body
        assert "Bijdrage openbare ruimte (Openbare Ruimte)" in body


def test_event_actions_are_translated_and_unknown_ones_shown_as_they_are() -> None:
    events = [
        {"at": "1 maart", "actor": "systeem", "action": "suspended", "summary": ""},
        {"at": "2 maart", "actor": "systeem", "action": "reopened", "summary": "x"},
    ]
    rendered = Renderer("nl").render("escalation", context(events=events))
    assert "- 1 maart – systeem – opgeschort\n" in rendered.text
    assert "- 2 maart – systeem – reopened: x\n" in rendered.text


# -- what a resident typed cannot break out -----------------------------------------------------


def test_html_escapes_what_a_resident_typed() -> None:
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    events = [{"at": "nu", "actor": hostile, "action": "comment", "summary": hostile}]
    rendered = Renderer("nl").render(
        "escalation", context(events=events, recipient_name=hostile, type_title=hostile)
    )
    assert "<script>" not in rendered.html and "<img" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img" in rendered.html
    assert hostile in rendered.text  # plain text is not markup: shown exactly as typed
    assert hostile in rendered.subject  # nor is a header


def test_a_line_break_in_subject_data_is_neutralised_not_a_new_header() -> None:
    """Decision: a CR/LF that reaches the subject becomes a space (the escalation still goes
    out); build_message refuses any subject that still holds one."""
    data = context(ref="BI-2026-1\r\nBcc: x@evil.example", type_title="Feest\nTo: y@evil.example")
    rendered = Renderer("nl").render("escalation", data)
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert "BI-2026-1 Bcc: x@evil.example" in rendered.subject
    message = parse(
        build_message(
            rendered,
            sender="loket@gemeente.example",
            to="b.bakker@gemeente.example",
            to_name="Bram Bakker",
            message_id="<1@gemeente.example>",
            date=NOW,
        )
    )
    assert message["Bcc"] is None
    assert message.get_all("To") == ["Bram Bakker <b.bakker@gemeente.example>"]
    assert "Bcc: x@evil.example" in message["Subject"]


def test_subject_control_characters_become_spaces_and_whitespace_collapses() -> None:
    collapsed = one_line("  Escalatie \t BI-1\r\n  over\x00de\x1b[2Jtermijn\u2028\x85 \n")
    assert collapsed == "Escalatie BI-1 over de [2Jtermijn"
    rendered = Renderer("nl").render("escalation", context(ref="BI-\x00-1"))
    assert rendered.subject.startswith("Escalatie BI- -1 – ")


def test_context_must_be_plain_data_with_the_keys_of_its_kind() -> None:
    renderer = Renderer("nl")
    incomplete = dict(context())
    del incomplete["rung_label"]
    with pytest.raises(InvalidValue, match="rung_label"):
        renderer.render("escalation", incomplete)
    no_days_left = dict(context("reminder"))
    del no_days_left["days_left"]
    with pytest.raises(InvalidValue, match="days_left"):
        renderer.render("reminder", no_days_left)
    late = dict(context("reminder"))
    del late["deadline_passed"]
    with pytest.raises(InvalidValue, match="deadline_passed"):
        renderer.render("reminder", late)
    for kind in KINDS:
        unread = dict(context(kind))
        del unread["reader"]
        with pytest.raises(InvalidValue, match="reader"):
            renderer.render(kind, unread)
    with pytest.raises(InvalidValue, match="reader 'wethouder' is none of assignee, lead"):
        renderer.render("reminder", context("reminder", reader="wethouder"))
    with pytest.raises(InvalidValue, match="only plain data"):
        renderer.render("escalation", context(ref=Path("BI")))
    with pytest.raises(InvalidValue, match="event 1"):
        renderer.render("escalation", context(events=[{"at": "nu"}]))
    with pytest.raises(InvalidValue, match="unknown email kind"):
        renderer.render("welcome", context())


def test_unknown_language_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'de'"):
        Renderer("de")


# -- override folder ----------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_override_replaces_only_its_own_template(tmp_path: Path) -> None:
    write(tmp_path, "escalation.nl.subject.j2", "Let op: {{ ref }} ligt stil bij {{ unit_name }}")
    renderer = Renderer("nl", override_dir=tmp_path)
    assert renderer.check() == ["escalation.nl.subject.j2"]
    rendered = renderer.render("escalation", context())
    assert rendered.subject == "Let op: BI-2026-00042 ligt stil bij Openbare Ruimte"
    assert "Geachte Bram Bakker" in rendered.text  # the packaged body is still used


def test_an_override_may_use_partials_and_the_packaged_layout(tmp_path: Path) -> None:
    write(tmp_path, "_groet.txt.j2", "{{ type_title }}, groet van {{ municipality }}")
    write(tmp_path, "reminder.nl.txt.j2", "Herinnering {{ ref }}\n{% include '_groet.txt.j2' %}\n")
    write(
        tmp_path,
        "reminder.nl.html.j2",
        '{% extends "_layout.html.j2" %}{% block body %}<p>{{ ref }}</p>{% endblock %}',
    )
    renderer = Renderer("nl", override_dir=tmp_path)
    assert renderer.check() == ["_groet.txt.j2", "reminder.nl.html.j2", "reminder.nl.txt.j2"]
    rendered = renderer.render("reminder", context("reminder", type_title="A & B"))
    # a text partial is not HTML-escaped; trim_blocks eats the newline after a block tag
    assert rendered.text == "Herinnering BI-2026-00042\nA & B, groet van Gemeente Voorbeeld"
    assert "<p>BI-2026-00042</p>" in rendered.html and "#1f3b5c" in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_samples_cover_every_reader_and_both_kinds_of_reminder(kind: str, language: str) -> None:
    """An override is checked against every variant a real email can take."""
    samples = sample_contexts(kind, language)
    assert {sample["reader"] for sample in samples} == set(READERS)
    assert {sample["assignee_name"] is None for sample in samples} == {True, False}
    if kind == "reminder":
        variants = {(s["deadline_passed"], s["days_left"] > 0, s["days_overdue"] > 0) for s in samples}
        # in time, due today, passed working days ago, passed since today
        assert variants >= {(False, True, False), (False, False, False), (True, False, True),
                            (True, False, False)}
    for sample in samples:
        Renderer(language).render(kind, sample)


def test_an_override_that_breaks_only_on_a_late_reminder_is_refused_at_start_up(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        "reminder.nl.subject.j2",
        "Herinnering {{ ref }}: {% if deadline_passed %}{{ dagen_te_laat }}{% else %}nog {{ days_left }}"
        "{% endif %}",
    )
    renderer = Renderer("nl", override_dir=tmp_path)
    with pytest.raises(ConfigurationError) as refused:
        renderer.check()
    assert str(override) in refused.value.message
    assert "'dagen_te_laat' is undefined" in refused.value.message
    # On a reminder in time it would have worked: only the late sample finds the mistake.
    assert renderer.render("reminder", context("reminder")).subject == "Herinnering BI-2026-00042: nog 2"


def test_an_override_that_breaks_only_for_an_administrator_is_refused_at_start_up(tmp_path: Path) -> None:
    write(tmp_path, "escalation.en.txt.j2", '{% if reader == "administrator" %}{{ wethouder }}{% endif %}{{ ref }}')
    with pytest.raises(ConfigurationError, match="'wethouder' is undefined"):
        Renderer("en", override_dir=tmp_path).check()


def test_a_broken_override_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    broken = write(tmp_path, "escalation.nl.txt.j2", "Geachte {{ recipient_name }},\n{% if ref %}")
    renderer = Renderer("nl", override_dir=tmp_path)
    with pytest.raises(ConfigurationError) as refused:
        renderer.check()
    assert str(broken) in refused.value.message and "line 2" in refused.value.message
    with pytest.raises(ConfigurationError, match=r"escalation\.nl\.txt\.j2"):
        renderer.render("escalation", context())


def test_a_typo_in_an_override_fails_instead_of_printing_nothing(tmp_path: Path) -> None:
    typo = write(tmp_path, "escalation.en.txt.j2", "Dear {{ recipient_name }},\ncase {{ reff }}\n")
    renderer = Renderer("en", override_dir=tmp_path)
    with pytest.raises(ConfigurationError) as refused:
        renderer.check()
    assert f"{typo}, line 2" in refused.value.message
    assert "'reff' is undefined" in refused.value.message
    with pytest.raises(ConfigurationError, match="reff"):
        renderer.render("escalation", context(language="en"))


def test_an_error_inside_a_partial_names_the_partial(tmp_path: Path) -> None:
    partial = write(tmp_path, "_voet.txt.j2", "ok\n{{ gemeente }}\n")
    write(tmp_path, "timeout.nl.txt.j2", "{{ ref }}\n{% include '_voet.txt.j2' %}")
    with pytest.raises(ConfigurationError) as refused:
        Renderer("nl", override_dir=tmp_path).render("timeout", context("timeout"))
    assert f"{partial}, line 2" in refused.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ref.__class__ }}",
        "{{ events.__class__.__base__ }}",
        "{% set found = [] %}{{ found.append(1) }}",  # immutable sandbox: no mutation
        "{{ 'x' * 10**8 }}",  # would take 100 MB
        "{{ 2 ** 100000000 }}",  # a 12 MB number
        "{{ range(10**9)|list|length }}",
    ],
)
def test_sandbox_refuses_template_tricks(tmp_path: Path, source: str) -> None:
    write(tmp_path, "escalation.nl.subject.j2", source)
    renderer = Renderer("nl", override_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"escalation\.nl\.subject\.j2"):
        renderer.check()
    with pytest.raises(ConfigurationError, match=r"escalation\.nl\.subject\.j2"):
        renderer.render("escalation", context())


def test_an_oversized_override_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "escalation.nl.txt.j2", "{{ ref }}" + "x" * MAX_TEMPLATE_BYTES)
    renderer = Renderer("nl", override_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"escalation\.nl\.txt\.j2 is 65545 bytes"):
        renderer.check()
    with pytest.raises(ConfigurationError, match="the limit is 65536"):
        renderer.render("escalation", context())


def test_an_override_naming_a_missing_partial_is_reported(tmp_path: Path) -> None:
    override = write(tmp_path, "timeout.en.txt.j2", "{{ ref }}\n{% include '_gone.txt.j2' %}")
    with pytest.raises(ConfigurationError) as refused:
        Renderer("en", override_dir=tmp_path).check()
    assert refused.value.message == f"template {override}, line 2: _gone.txt.j2 not found"


def test_an_override_with_an_unknown_name_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "escalaton.nl.txt.j2", "{{ ref }}")
    with pytest.raises(ConfigurationError, match=r"escalaton\.nl\.txt\.j2: unknown template name"):
        Renderer("nl", override_dir=tmp_path).check()


def test_a_missing_override_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        Renderer("nl", override_dir=tmp_path / "nergens")
    file = write(tmp_path, "notes.txt", "geen map")
    with pytest.raises(ConfigurationError, match="is not a folder"):
        Renderer("nl", override_dir=file)
    assert Renderer("nl").check() == []


def test_an_override_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "escalation.nl.txt.j2").write_bytes(b"{{ ref }} \xff\xfe")
    renderer = Renderer("nl", override_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"escalation\.nl\.txt\.j2 is not UTF-8 text \(byte 10"):
        renderer.check()
    with pytest.raises(ConfigurationError, match="is not UTF-8 text"):
        renderer.render("escalation", context())


# -- values prepared for templates ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rung", "of", "to", "language", "expected"),
    [
        (2, 4, "lead", "nl", "trede 2 van 4: teamleider"),
        (3, 4, "head", "nl", "trede 3 van 4: afdelingshoofd"),
        (4, 4, "administrator", "nl", "trede 4 van 4: bestuurder"),
        (1, 3, "Anna Jansen", "nl", "trede 1 van 3: Anna Jansen"),
        (2, 4, "lead", "en", "rung 2 of 4: team lead"),
        (1, None, "assignee", "en", "rung 1: assignee"),
        ("service_norm", None, "head", "nl", "servicenorm overschreden"),
        ("lead_time", None, "administrator", "nl", "wettelijke beslistermijn overschreden"),
        ("lead_time", None, "administrator", "en", "legal decision period exceeded"),
    ],
)
def test_rung_label(rung: int | str, of: int | None, to: str, language: str, expected: str) -> None:
    assert rung_label(rung, of=of, to=to, language=language) == expected


def test_reader_of_names_the_role_or_a_person() -> None:
    assert [reader_of(r) for r in ("assignee", "lead", "head", "administrator")] == list(READERS[:4])
    assert reader_of("n.genoemd") == "person"  # someone a ladder names directly
    assert reader_of("") == "person"


def test_rung_label_refuses_an_unknown_clock() -> None:
    with pytest.raises(InvalidValue):
        rung_label("tomorrow", of=None, to="lead", language="nl")


@pytest.mark.parametrize(
    ("moment", "language", "expected"),
    [
        # 22:59 UTC in winter is 23:59 in Amsterdam (CET, UTC+1)
        (datetime(2026, 3, 13, 22, 59, tzinfo=UTC), "nl", "vrijdag 13 maart 2026 om 23:59"),
        # summer time (CEST, UTC+2): the end of the day is 21:59 UTC
        (datetime(2026, 7, 1, 21, 59, tzinfo=UTC), "nl", "woensdag 1 juli 2026 om 23:59"),
        (datetime(2026, 7, 1, 21, 59, tzinfo=UTC), "en", "Wednesday 1 July 2026 at 23:59"),
        (
            datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5))),
            "en",
            "Thursday 1 January 2026 at 06:30",
        ),
    ],
)
def test_format_moment_in_local_time(moment: datetime, language: str, expected: str) -> None:
    assert format_moment(moment, timezone="Europe/Amsterdam", language=language) == expected


def test_format_moment_refuses_naive_times_and_unknown_zones() -> None:
    with pytest.raises(InvalidValue):
        format_moment(datetime(2026, 1, 1), timezone="Europe/Amsterdam", language="nl")
    with pytest.raises(ConfigurationError):
        format_moment(NOW, timezone="Europe/Nergens", language="nl")


# -- the MIME message ---------------------------------------------------------------------------


def built(**changes: Any) -> EmailMessage:
    arguments: dict[str, Any] = {
        "sender": "Gemeente Voorbeeld <noreply@gemeente.example>",
        "to": "a.jansen@gemeente.example",
        "to_name": "Anna Jansen-Ünal",
        "message_id": message_id_for("escalation:BI-2026-00042:1:2", "gemeente.example"),
        "date": NOW,
    }
    rendered = Renderer("nl").render("escalation", context())
    return build_message(rendered, **(arguments | changes))


def test_message_is_text_with_an_html_alternative() -> None:
    message = parse(built())
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert all(part["Content-Transfer-Encoding"] == "quoted-printable" for part in parts)
    assert "Escalatie:         trede 2 van 4: teamleider" in parts[0].get_content()
    assert "<strong>BI-2026-00042</strong>" in parts[1].get_content()
    assert message["Subject"].startswith("Escalatie BI-2026-00042 – Bewonersinitiatief")
    assert message["Date"] == "Mon, 16 Mar 2026 08:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["From"].addresses[0].display_name == "Gemeente Voorbeeld"


def test_the_display_name_is_encoded_and_reads_back() -> None:
    message = built()
    raw = message.as_bytes()
    assert raw.isascii()  # every header encoded, every body quoted-printable
    assert b"To: Anna =?utf-8?q?Jansen-=C3=9Cnal?= <a.jansen@gemeente.example>" in raw
    to = parse(message)["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Anna Jansen-Ünal", "a.jansen@gemeente.example")
    assert parse(built(to_name=None))["To"] == "a.jansen@gemeente.example"


def test_messages_share_their_header_classes_and_keep_the_default_policy() -> None:
    first, second = built(), built(to="b.bakker@gemeente.example")
    # One class per header name, made once (the standard registry makes one per header set).
    assert type(first["To"]) is type(second["To"])
    assert type(first["Subject"]) is type(second["Subject"])
    # Otherwise the standard policy: parsed address headers, 78-column folding, \n line ends.
    assert first.policy.max_line_length == policy.default.max_line_length
    assert first.policy.linesep == "\n" and not first.policy.raise_on_defect
    assert second["To"].addresses[0].addr_spec == "b.bakker@gemeente.example"


def test_message_id_is_stable_per_outbox_key() -> None:
    first = message_id_for("escalation:42:rung-2", "gemeente.example")
    assert first == message_id_for("escalation:42:rung-2", "gemeente.example")
    assert first != message_id_for("escalation:42:rung-3", "gemeente.example")
    assert first.startswith("<wijkloket.") and first.endswith("@gemeente.example>")
    assert "escalation" not in first  # the key, which names a case, does not show
    assert parse(built(message_id=first))["Message-ID"] == first
    with pytest.raises(InvalidValue):
        message_id_for("k", "gemeente.example>\r\nBcc: x@evil")


@pytest.mark.parametrize(
    "changes",
    [
        {"to_name": "Anna\r\nBcc: x@evil.example"},
        {"to": "a@gemeente.example\r\nBcc: x@evil.example"},
        {"to": "a@gemeente.example, x@evil.example"},
        {"to": "geen-adres"},
        {"sender": "a@gemeente.example, x@evil.example"},
        {"sender": ""},
        {"message_id": "<1@gemeente.example>\r\nBcc: x@evil.example"},
        {"message_id": "zonder-haken"},
        {"date": datetime(2026, 3, 16, 8, 0)},
    ],
)
def test_build_message_refuses_injection_and_malformed_headers(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        built(**changes)


def test_build_message_refuses_a_subject_with_a_line_break() -> None:
    rendered = Renderer("nl").render("escalation", context())
    smuggled = type(rendered)("Escalatie\r\nBcc: x@evil.example", rendered.text, rendered.html)
    with pytest.raises(InvalidValue, match="linefeed"):
        build_message(
            smuggled,
            sender="noreply@gemeente.example",
            to="a@gemeente.example",
            to_name=None,
            message_id="<1@gemeente.example>",
            date=NOW,
        )


@pytest.mark.parametrize("language, word", [("nl", "verlengen"), ("en", "extend the decision period")])
@pytest.mark.parametrize("reader", ["assignee", "lead", "head", "administrator"])
def test_an_escalation_about_a_case_without_a_decision_term_does_not_advise_extending_it(
    language: str, word: str, reader: str
) -> None:
    renderer = Renderer(language)
    without = renderer.render("escalation", context("escalation", language, reader=reader, extendable=False))
    assert word not in without.text and word not in without.html
    assert "(opnieuw) " in without.text or "(re)assign" in without.text
    with_term = renderer.render("escalation", context("escalation", language, reader=reader, extendable=True))
    assert word in with_term.text and word in with_term.html
