"""Rendering notification emails from Jinja2 templates, sandboxed.

A deployment may override any template from a folder (``LOKET_TEMPLATE_DIR``), so templates
are treated as semi-trusted code and resident-typed data as hostile: rendering happens in an
immutable sandbox, HTML is autoescaped, a typo'd variable fails instead of printing nothing,
and the subject is forced onto one line so nothing can add a header. Every failure that comes
from a template is a :class:`~engine.errors.ConfigurationError` naming the file (and the line
where Jinja knows it), because fixing it is the job of whoever maintains the override folder.

The context is plain data (:class:`EmailContext`); the engine prepares every value, including
the language-dependent ones (:func:`rung_label`, :func:`format_moment`), so templates only lay
them out.
"""

from __future__ import annotations

import operator
import traceback
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NotRequired, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import ConfigurationError, InvalidValue

LANGUAGES: Final = ("nl", "en")
KINDS: Final = ("escalation", "reminder", "timeout")
PARTS: Final = ("subject", "txt", "html")

#: Override files larger than this are refused: a template is a page of text, not a payload.
MAX_TEMPLATE_BYTES: Final = 64 * 1024
#: The sandbox does not bound ``'x' * 10**8``; results longer than this are refused.
MAX_SEQUENCE_RESULT: Final = 100_000
#: ... nor ``10 ** 10 ** 9``; exponents larger than this are refused.
MAX_EXPONENT: Final = 1_000


class EmailEvent(TypedDict):
    """One line of a case's recent history, preformatted for reading."""

    at: str  # local date and time, already formatted
    actor: str  # a person's name, or "system"
    action: str  # the event's action code ("transition", "comment", ...); templates translate it
    summary: str  # one line: "ingediend → beoordeling", the comment, ... ("" when none)


class EmailContext(TypedDict):
    """Everything a notification template may use; the one place these keys are defined.

    Every value is plain data (str, int, None, lists and dicts of those): the sandbox stops
    method tricks on plain data, and nothing here can call back into the engine.
    """

    # -- every kind ------------------------------------------------------------------------
    municipality: str  # "Gemeente Voorbeeld"
    recipient_name: str  # who the email is addressed to
    ref: str  # case reference, "BI-2026-00042"
    type_title: str  # request type title
    state_label: str  # label of the case's current state (for `timeout`: the state it left)
    unit_name: str  # name of the unit owning that state
    assignee_name: str | None  # who holds the case; None when nobody does
    due: str  # the deadline this email is about, local time, preformatted (format_moment)
    events: list[EmailEvent]  # the last few events, oldest first
    command: str  # the command that opens the case: "loket case show BI-2026-00042"
    reader: str  # in which role the email reached its reader, after vacancies: one of READERS
    days_overdue: int  # whole working days past `due` (0: passed since today, or a reminder's
    #                    deadline still to come; `deadline_passed` tells which)
    # -- escalation ------------------------------------------------------------------------
    rung: NotRequired[int | str]  # 1-based place on the ladder, "service_norm" or "lead_time"
    rung_label: NotRequired[str]  # what that means, in the email's language (rung_label())
    extendable: NotRequired[bool]  # the case has a decision term a lead may extend (default true)
    # -- reminder --------------------------------------------------------------------------
    days_left: NotRequired[int]  # whole working days left before `due` (0 once it passed)
    deadline_passed: NotRequired[bool]  # the sweep ran late: `due` had passed when it fired
    # -- timeout ---------------------------------------------------------------------------
    to_state_label: NotRequired[str]  # the state the system moved the case to
    to_unit_name: NotRequired[str]  # the unit owning that state


_COMMON_KEYS: Final = (
    "municipality",
    "recipient_name",
    "ref",
    "type_title",
    "state_label",
    "unit_name",
    "assignee_name",
    "due",
    "events",
    "command",
    "reader",
    "days_overdue",
)
#: The keys each kind requires (a key not listed for a kind may still be passed).
REQUIRED_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "escalation": (*_COMMON_KEYS, "rung", "rung_label"),
    "reminder": (*_COMMON_KEYS, "days_left", "deadline_passed"),
    "timeout": (*_COMMON_KEYS, "to_state_label", "to_unit_name"),
}
#: Every key a template may be given (``from __future__ import annotations`` leaves
#: ``__required_keys__`` unreliable, so the annotations are the list).
CONTEXT_KEYS: Final = frozenset(EmailContext.__annotations__)
_EVENT_KEYS: Final = ("at", "actor", "action", "summary")
#: The values of ``reader``: the role a rung reached its reader in after vacancies moved it
#: up, or ``person`` for someone a ladder names directly. Templates fit their advice to it:
#: a team lead is not told to consult their team lead, an administrator (who cannot extend a
#: term) is not told to extend it.
READERS: Final = ("assignee", "lead", "head", "administrator", "person")


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered email: one-line subject, plain-text body and HTML body."""

    subject: str
    text: str
    html: str


def template_name(kind: str, language: str, part: str) -> str:
    """The file name of one template: ``{kind}.{language}.{part}.j2``."""
    return f"{kind}.{language}.{part}.j2"


KNOWN_TEMPLATES: Final = frozenset(
    template_name(kind, language, part)
    for kind in KINDS
    for language in LANGUAGES
    for part in PARTS
)


class _SizeLimitedLoader(FileSystemLoader):
    """Loads override templates, refusing files larger than :data:`MAX_TEMPLATE_BYTES`."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
        try:
            source, filename, uptodate = super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            where = Path(self.searchpath[0]) / template
            raise ConfigurationError(f"template {where} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        size = len(source.encode("utf-8"))
        if size > MAX_TEMPLATE_BYTES:
            raise ConfigurationError(
                f"template {filename} is {size} bytes; the limit is {MAX_TEMPLATE_BYTES}"
            )
        return source, filename, uptodate


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus bounds on the two operators that can exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int) and abs(right) > MAX_EXPONENT:
                raise OverflowError(f"exponent {right} is larger than {MAX_EXPONENT}")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list | tuple)
                and isinstance(count, int)
                and len(seq) * count > MAX_SEQUENCE_RESULT
            ):
                raise OverflowError(f"result longer than {MAX_SEQUENCE_RESULT} items")
        return operator.mul(left, right)


class Renderer:
    """Renders the notification emails of one language, with an optional override folder.

    Templates in ``override_dir`` replace the packaged ones of the same name; a file there whose
    name starts with ``_`` is a partial (for ``{% include %}``, ``{% extends %}``, macros).
    """

    def __init__(self, language: str = "nl", override_dir: Path | None = None) -> None:
        _check_language(language)
        if override_dir is not None and not override_dir.is_dir():
            what = "is not a folder" if override_dir.exists() else "does not exist"
            raise ConfigurationError(f"template folder {override_dir} {what}")
        self.language = language
        self.override_dir = override_dir
        loaders: list[BaseLoader] = [PackageLoader("notifications", "templates")]
        if override_dir is not None:
            loaders.insert(0, _SizeLimitedLoader(override_dir))
        self._env = _Sandbox(
            loader=ChoiceLoader(loaders),
            # Escape everything except the known plain-text parts: `select_autoescape(["html"])`
            # alone would not match `*.html.j2`, and a new kind of file should fail safe.
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2"),
                disabled_extensions=("txt.j2", "subject.j2"),
                default_for_string=False,
                default=True,
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, kind: str, context: EmailContext | Mapping[str, Any]) -> RenderedEmail:
        """Render the subject, text and HTML of one email of ``kind``."""
        data = _plain_context(kind, context)
        subject = self._render(template_name(kind, self.language, "subject"), data)
        return RenderedEmail(
            subject=one_line(subject),
            text=self._render(template_name(kind, self.language, "txt"), data),
            html=self._render(template_name(kind, self.language, "html"), data),
        )

    def check(self) -> list[str]:
        """Compile every template the override folder provides; render the known ones.

        Meant for start-up (``loket worker``, ``loket outbox send``), so that a broken override
        is reported before an escalation depends on it. Returns the names checked; raises
        :class:`ConfigurationError` naming the file and line of the first problem.
        """
        if self.override_dir is None:
            return []
        names = sorted(
            name
            for name in _SizeLimitedLoader(self.override_dir).list_templates()
            if name.endswith(".j2")
        )
        for name in names:
            if name not in KNOWN_TEMPLATES and not Path(name).name.startswith("_"):
                raise ConfigurationError(
                    f"template {self.override_dir / name}: unknown template name; expected "
                    "{kind}.{language}.{subject|txt|html}.j2 with kind one of "
                    f"{', '.join(KINDS)} and language one of {', '.join(LANGUAGES)}, "
                    "or a partial whose name starts with '_'"
                )
            self._load(name)
        for name in names:
            if name in KNOWN_TEMPLATES:
                kind = name.split(".", 1)[0]
                for sample in sample_contexts(kind, self.language):
                    self._render(name, _plain_context(kind, sample))
        return names

    def _load(self, name: str) -> Template:
        try:
            return self._env.get_template(name)
        except TemplateSyntaxError as exc:
            where = exc.filename or name
            raise ConfigurationError(f"template {where}, line {exc.lineno}: {exc.message}") from exc
        except TemplateNotFound as exc:
            raise ConfigurationError(f"template {exc.name} not found") from exc

    def _render(self, name: str, data: dict[str, Any]) -> str:
        template = self._load(name)
        try:
            return template.render(data)
        except ConfigurationError:
            raise
        except (
            TemplateError,
            ArithmeticError,
            LookupError,
            TypeError,
            ValueError,
            RuntimeError,
        ) as exc:
            where = _template_frame(exc) or template.filename or name
            if isinstance(exc, TemplateNotFound):
                message = f"{exc.name} not found"
            else:
                message = getattr(exc, "message", None) or str(exc)
            raise ConfigurationError(f"template {where}: {message}") from exc


def _template_frame(exc: BaseException) -> str | None:
    """``file, line N`` of the innermost template frame in the traceback, if any.

    Jinja rewrites tracebacks so that template code shows up as frames of the template file,
    which also finds the right file when the error is inside an included partial.
    """
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return None
    return f"{frames[-1].filename}, line {frames[-1].lineno}"


def one_line(subject: str) -> str:
    """Turn control characters (CR and LF included) into spaces, collapse whitespace, strip.

    A line break that reaches the subject from the data becomes a space, so it cannot start a
    new header, and the escalation is still sent: refusing would let what a resident typed stop
    an escalation. :func:`notifications.message.build_message` refuses any line break that
    bypasses this.
    """
    visible = "".join(" " if unicodedata.category(char) == "Cc" else char for char in subject)
    return " ".join(visible.split())


def _plain_context(kind: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``context`` has the keys of ``kind`` and holds plain data only; copy it."""
    if kind not in REQUIRED_KEYS:
        raise InvalidValue(f"unknown email kind {kind!r}; known: {', '.join(KINDS)}")
    missing = [key for key in REQUIRED_KEYS[kind] if key not in context]
    if missing:
        raise InvalidValue(f"{kind} email context lacks {', '.join(missing)}")
    if context["reader"] not in READERS:
        raise InvalidValue(
            f"email context: reader {context['reader']!r} is none of {', '.join(READERS)}"
        )
    for number, event in enumerate(context["events"], start=1):
        if not isinstance(event, Mapping) or any(key not in event for key in _EVENT_KEYS):
            raise InvalidValue(f"event {number} of the email context needs {_EVENT_KEYS}")
    plain = _plain(context, "context")
    assert isinstance(plain, dict)
    if kind == "escalation":
        plain.setdefault("extendable", True)  # optional: most request types have a decision term
    return plain


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise InvalidValue(f"email context: {where} has a key that is not a string")
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidValue(
        f"email context: {where} is a {type(value).__name__}; only plain data may be passed"
    )


# -- preparing values --------------------------------------------------------------------------

_ROLES: Final[Mapping[str, Mapping[str, str]]] = {
    "nl": {
        "assignee": "behandelaar",
        "lead": "teamleider",
        "head": "afdelingshoofd",
        "administrator": "bestuurder",
    },
    "en": {
        "assignee": "assignee",
        "lead": "team lead",
        "head": "head of department",
        "administrator": "administrator",
    },
}
_CLOCKS: Final[Mapping[str, Mapping[str, str]]] = {
    "nl": {
        "service_norm": "servicenorm overschreden",
        "lead_time": "wettelijke beslistermijn overschreden",
        "timeout": "termijn verstreken, zaak teruggezet",
    },
    "en": {
        "service_norm": "service norm exceeded",
        "lead_time": "legal decision period exceeded",
        "timeout": "timed out, case moved back",
    },
}


def reader_of(resolved: str) -> str:
    """The ``reader`` of an email whose rung reached ``resolved``: the role (``assignee``,
    ``lead``, ``head``, ``administrator``) or, for anything else (the id of a person a
    ladder names), ``person``."""
    return resolved if resolved in READERS else "person"


def rung_label(rung: int | str, *, of: int | None, to: str, language: str) -> str:
    """Describe a rung for a reader: ``trede 2 van 4: teamleider``, ``servicenorm overschreden``.

    ``rung`` is the 1-based place on a ladder of ``of`` rungs, or the name of a special clock
    (``service_norm``, ``lead_time``, ``timeout``). ``to`` is the role the email went to after
    vacancies moved it up (``assignee``, ``lead``, ``head``, ``administrator``), or the name
    of the person a rung names directly.
    """
    _check_language(language)
    if isinstance(rung, str):
        if rung not in _CLOCKS[language]:
            raise InvalidValue(f"unknown rung {rung!r}")
        return _CLOCKS[language][rung]
    who = _ROLES[language].get(to, to)
    if of is None:
        return f"trede {rung}: {who}" if language == "nl" else f"rung {rung}: {who}"
    return f"trede {rung} van {of}: {who}" if language == "nl" else f"rung {rung} of {of}: {who}"


_DAYS: Final[Mapping[str, tuple[str, ...]]] = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS: Final[Mapping[str, tuple[str, ...]]] = {
    "nl": (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def format_moment(moment: datetime, *, timezone: str, language: str) -> str:
    """A moment as a reader in ``timezone`` says it: ``vrijdag 13 maart 2026 om 23:59``.

    Day and month names are spelled out here rather than taken from the system locale, which
    is rarely Dutch on a server.
    """
    _check_language(language)
    if moment.tzinfo is None:
        raise InvalidValue("format_moment needs a timezone-aware datetime")
    try:
        local = moment.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {timezone!r}") from exc
    day = _DAYS[language][local.weekday()]
    month = _MONTHS[language][local.month - 1]
    at = "om" if language == "nl" else "at"
    return f"{day} {local.day} {month} {local.year} {at} {local:%H:%M}"


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ConfigurationError(
            f"unknown email language {language!r}; choose one of {', '.join(LANGUAGES)}"
        )


def sample_contexts(kind: str, language: str = "nl") -> list[EmailContext]:
    """Example contexts for ``kind``, one for each variant a template must handle.

    The first has an assignee and history (and, for a reminder, time left); the second has
    neither (a reminder due today); then a reminder that fired after its deadline had passed,
    working days ago and since today; between them every ``reader`` of :data:`READERS` for
    each kind. Used by :meth:`Renderer.check` to try override templates before real mail
    depends on them, and handy for previewing a template.
    """
    if kind not in REQUIRED_KEYS:
        raise InvalidValue(f"unknown email kind {kind!r}; known: {', '.join(KINDS)}")
    zone = "Europe/Amsterdam"
    escalation = kind == "escalation"

    def moment(day: int, hour: int, minute: int) -> str:
        local = datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(zone))
        return format_moment(local, timezone=zone, language=language)

    def label(rung: int | str, to: str) -> str:
        return rung_label(rung, of=None if isinstance(rung, str) else 4, to=to, language=language)

    base: EmailContext = {
        "municipality": "Gemeente Voorbeeld",
        "recipient_name": "Bram Bakker",
        "ref": "BI-2026-00042",
        "type_title": "Bewonersinitiatief (wijkbudget)",
        "state_label": "Bijdrage openbare ruimte",
        "unit_name": "Openbare Ruimte",
        "assignee_name": "Chris de Vries",
        "due": moment(13, 23, 59),
        "events": [
            {
                "at": moment(2, 9, 12),
                "actor": "Anna Jansen",
                "action": "created",
                "summary": "Straatfeest Lindelaan",
            },
            {
                "at": moment(4, 14, 30),
                "actor": "Chris de Vries",
                "action": "transition",
                "summary": "In beoordeling → Bijdrage openbare ruimte",
            },
        ],
        "command": "loket case show BI-2026-00042",
        "reader": "lead" if escalation else "assignee",
        "days_overdue": 0 if kind == "reminder" else 3,
        "rung": 2,
        "rung_label": label(2, "lead"),
        "days_left": 2,
        "deadline_passed": False,
        "to_state_label": "In beoordeling",
        "to_unit_name": "Wijkteam Noord",
    }
    bare: EmailContext = {
        **base,
        "assignee_name": None,
        "events": [],
        "reader": "administrator" if escalation else "lead",
        "days_overdue": 0,
        "rung": "lead_time",
        "rung_label": label("lead_time", "administrator"),
        "days_left": 0,
    }
    # A sweep that ran late: the reminder's deadline had passed when it fired.
    late: EmailContext = {
        **base,
        "reader": "head",
        "days_overdue": 36,
        "rung": 3,
        "rung_label": label(3, "head"),
        "days_left": 0,
        "deadline_passed": True,
    }
    late_today: EmailContext = {
        **late,
        "extendable": False,  # a type without a decision term: nobody is told to extend it
        "assignee_name": None,
        "reader": "person",
        "days_overdue": 0,
        "rung": 1,
        "rung_label": label(1, "Noor Genoemd"),
    }
    late_by_a_day: EmailContext = {
        **late,
        "reader": "assignee" if escalation else "administrator",
        "days_overdue": 1,
        "rung": 1,
        "rung_label": label(1, "assignee" if escalation else "administrator"),
    }
    return [base, bare, late, late_today, late_by_a_day]
