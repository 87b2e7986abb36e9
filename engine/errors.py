"""One error tree for the whole product.

Every error a user can cause is a :class:`LoketError`. Each kind carries a machine-readable
``code`` and the exit code the CLI uses for it, so the mapping from domain to process exit
lives here and nowhere else (SPEC §10: 1 refused, 2 bad input, 3 conflict).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class LoketError(Exception):
    """Base of every error the product reports to a user."""

    code = "error"
    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- exit 2: bad usage or input ------------------------------------------------------------


class BadInput(LoketError):
    """The user asked for something that cannot be understood or does not exist."""

    code = "bad_input"
    exit_code = 2


class NotFound(BadInput):
    """Unknown case, request type, trigger, field or person."""

    code = "not_found"


class InvalidValue(BadInput):
    """A value that does not fit its field's type, range or options."""

    code = "invalid_value"


class ConfigurationError(BadInput):
    """The installation is not set up for what was asked (no database, no organisation, ...)."""

    code = "configuration"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a definition file, with where it is."""

    file: str
    where: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        where = f" {self.where}:" if self.where else ""
        return f"{place}:{where} {self.message}"


class InvalidDefinition(BadInput):
    """A definition file (organisation or request type) breaks one or more rules.

    All problems are collected before raising, so the author sees every one at once.
    """

    code = "invalid_definition"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} found; nothing was loaded"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


# -- exit 1: refused by the rules ----------------------------------------------------------


class Refused(LoketError):
    """The rules do not allow this action now."""

    code = "refused"
    exit_code = 1


class HistoryDamaged(Refused):
    """The stored history cannot be read back as it was written (exit 1, like a failed verify)."""

    code = "history_damaged"


class CountsDrifted(Refused):
    """Figures kept beside the history (`stay_tally`) disagree with what they count, so a report
    from them would be wrong (exit 1, like a failed verify; `db repair-stays` mends them)."""

    code = "counts_drifted"


class TransitionNotAllowed(Refused):
    code = "transition_not_allowed"


class RoleRequired(Refused):
    code = "role_required"


class ConditionFailed(Refused):
    code = "condition_failed"


class MissingField(Refused):
    code = "missing_field"


class CommentRequired(Refused):
    code = "comment_required"


# -- exit 3: conflict -----------------------------------------------------------------------


class Conflict(LoketError):
    """The case changed meanwhile; nothing was written."""

    code = "conflict"
    exit_code = 3


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message: control characters escaped, and cut short, so that a
    message never repeats a pasted screenful or lets an escape sequence reach a terminal."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        return "a number too long to show"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(value))} characters)"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its kind when it has none: a driver's
    error can run to a screenful of SQL and context that a one-line report does not need."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
