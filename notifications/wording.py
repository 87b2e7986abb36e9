"""The words of an email that depend on its language: roles, rungs, dates and times.

The engine prepares every language-dependent value of an email's context here, so templates
only lay them out, and a server whose locale is not Dutch still writes Dutch dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.vocabulary import Rung
from engine.core.words import DAYS, MONTHS, long_date
from engine.errors import ConfigurationError, InvalidValue

LANGUAGES: Final = ("nl", "en")
#: The values of ``reader``: the role a rung reached its reader in after vacancies moved it
#: up, or ``person`` for someone a ladder names directly. Templates fit their advice to it:
#: a team lead is not told to consult their team lead, an administrator (who cannot extend a
#: term) is not told to extend it.
READERS: Final = ("assignee", "lead", "head", "administrator", "person")


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
        Rung.SERVICE_NORM: "servicenorm overschreden",
        Rung.LEAD_TIME: "wettelijke beslistermijn overschreden",
        Rung.TIMEOUT: "termijn verstreken, zaak teruggezet",
        Rung.DIRECTIVE: "bestuurlijke opdracht niet uitgevoerd",
    },
    "en": {
        Rung.SERVICE_NORM: "service norm exceeded",
        Rung.LEAD_TIME: "legal decision period exceeded",
        Rung.TIMEOUT: "timed out, case moved back",
        Rung.DIRECTIVE: "administrator's instruction not carried out",
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
    check_language(language)
    if isinstance(rung, str):
        if rung not in _CLOCKS[language]:
            raise InvalidValue(f"unknown rung {rung!r}")
        return _CLOCKS[language][rung]
    who = _ROLES[language].get(to, to)
    if of is None:
        return f"trede {rung}: {who}" if language == "nl" else f"rung {rung}: {who}"
    return f"trede {rung} van {of}: {who}" if language == "nl" else f"rung {rung} of {of}: {who}"




def parse_moment(text: str | None) -> datetime | None:
    """A chain timestamp (``2026-03-02T08:00:00.000000Z``) as an aware datetime; ``None`` for none."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"{text!r} is not a timestamp") from None
    if moment.tzinfo is None:
        raise InvalidValue(f"timestamp {text!r} has no timezone")
    return moment


def format_day(moment: datetime, *, timezone: str, language: str) -> str:
    """The day a moment falls on for a reader in ``timezone``: ``15 mei 2026``.

    A resident is told the date, not the minute: a decision term ends at the end of a day.
    """
    check_language(language)
    if moment.tzinfo is None:
        raise InvalidValue("format_day needs a timezone-aware datetime")
    try:
        local = moment.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {timezone!r}") from exc
    return long_date(local.date(), language)


#: An outcome word of a final state, as a resident reads it.
OUTCOMES: Final[Mapping[str, Mapping[str, str]]] = {
    "nl": {"granted": "toegekend", "rejected": "afgewezen", "withdrawn": "ingetrokken", "done": "afgerond"},
    "en": {"granted": "granted", "rejected": "rejected", "withdrawn": "withdrawn", "done": "completed"},
}


def outcome_words(outcome: str | None, state_label: str, language: str) -> str:
    """What a closed request came to, in plain words: the outcome's word when it has a known
    one, else the final state's label (``Afgehandeld``)."""
    check_language(language)
    return OUTCOMES[language].get(outcome or "", state_label)


def format_moment(moment: datetime, *, timezone: str, language: str) -> str:
    """A moment as a reader in ``timezone`` says it: ``vrijdag 13 maart 2026 om 23:59``.

    Day and month names are spelled out here rather than taken from the system locale, which
    is rarely Dutch on a server.
    """
    check_language(language)
    if moment.tzinfo is None:
        raise InvalidValue("format_moment needs a timezone-aware datetime")
    try:
        local = moment.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {timezone!r}") from exc
    day = DAYS[language][local.weekday()]
    month = MONTHS[language][local.month - 1]
    at = "om" if language == "nl" else "at"
    return f"{day} {local.day} {month} {local.year} {at} {local:%H:%M}"


def check_language(language: str) -> None:
    """Refuse a language there are no templates and words for."""
    if language not in LANGUAGES:
        raise ConfigurationError(
            f"unknown email language {language!r}; choose one of {', '.join(LANGUAGES)}"
        )

