"""Typed case fields: what a request type declares and how `FIELD=VALUE` becomes data.

Values are stored as JSON: text, email, choice and date as strings (dates ISO), integers as
numbers, booleans as booleans, and decimals as strings so that 0.1 + 0.2 never drifts.

What a value may be is narrow on purpose, because it is shown on terminals, in emails and in
exports, and compared in conditions:

- text, email and choice values are one line: no control character (C0, DEL, C1; so no
  newline or tab either, which would break the one-line layouts that show them) and no lone
  surrogate (undecodable bytes from the command line), so nothing written reaches a
  terminal as an escape sequence. :func:`check_free_text` is the same check for the free
  text of comments and reasons, which may be several lines.
- integers and decimals are plain decimal notation in ASCII digits: an optional minus, digits,
  and for a decimal an optional fraction after a point or a Dutch comma (``-12``, ``1,5``,
  ``1250.50``). No exponent, no ``_`` grouping, no digits of other scripts, no ``+``. At most
  :data:`MAX_DIGITS` digits before the point (below 10**15, exact in a JSON number anywhere,
  also where JavaScript reads it as a double) and :data:`MAX_DECIMALS` after it. Minus zero is
  stored as zero.
- dates are ``YYYY-MM-DD`` in the years :data:`FIRST_YEAR` to :data:`LAST_YEAR`: room for a
  resident's date of birth and for any planned date, and nothing a typo like 0226 or 20266
  could make.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.errors import InvalidValue, NotFound
from engine.errors import shown as _shown

FIELD_TYPES = ("text", "integer", "decimal", "date", "boolean", "email", "choice")
FIELD_KEYS = ("type", "required", "min", "max", "options", "personal", "label")

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+\Z")
"""An address a mail header accepts as it is: ASCII dot-atoms only (no `a..b@`, no quoting)."""
MAX_EMAIL = 254
"""The longest address mail can carry (RFC 5321): a longer one could never be delivered."""
_TRUE = {"true", "yes", "ja", "1", "y", "j"}
_FALSE = {"false", "no", "nee", "0", "n"}
MAX_TEXT = 10_000

MAX_DIGITS = 15
"""Digits before the decimal point of an integer or decimal (leading zeros not counted)."""
MAX_DECIMALS = 6
"""Digits after the decimal point of a decimal."""
FIRST_YEAR = 1900
LAST_YEAR = 2200
"""The years of a date field (the working-day calendar's last year too)."""

# re's \d and str.isdigit would also take digits of other scripts: ASCII spelled out.
_INTEGER = re.compile(r"-?([0-9]+)")
_DECIMAL = re.compile(r"-?([0-9]+)(?:[.,]([0-9]+))?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# C0 controls, DEL and C1 controls; and lone surrogates, which is how Python hands over bytes
# of the command line that are not UTF-8 (surrogateescape), and which no encoder accepts.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool = False
    min: Any = None
    max: Any = None
    options: tuple[str, ...] = ()
    personal: bool = False
    label: str | None = None

    def parse(self, raw: Any) -> Any:
        """Turn user input (a string from the CLI, or a YAML/JSON value) into stored data.

        Raises :class:`InvalidValue` saying what the field expects.
        """
        try:
            value = _PARSERS[self.type](self, raw)
        except _Refused as exc:
            raise InvalidValue(f"field '{self.name}' {exc}, got {_shown(raw)}") from None
        except (ValueError, InvalidOperation, TypeError):
            raise InvalidValue(f"field '{self.name}' expects {self.describe()}, got {_shown(raw)}") from None
        self._check_range(value, raw)
        return value

    def comparable(self, stored: Any) -> Any:
        """The stored value as something `when` conditions can compare."""
        if stored is None:
            return None
        if self.type == "decimal":
            return Decimal(str(stored))
        if self.type == "date":
            return dt.date.fromisoformat(stored)
        return stored

    def describe(self) -> str:
        if self.type == "choice":
            return "one of " + ", ".join(self.options)
        return {
            "text": "a text",
            "integer": "a whole number",
            "decimal": "a number (e.g. 1250.50)",
            "date": "a date (YYYY-MM-DD)",
            "boolean": "yes or no (true/false, ja/nee)",
            "email": "an email address",
        }[self.type]

    def _check_range(self, value: Any, raw: Any) -> None:
        if self.type not in ("integer", "decimal", "date"):
            return
        low, high = self.comparable_bound(self.min), self.comparable_bound(self.max)
        current = self.comparable(value)
        if low is not None and current < low:
            raise InvalidValue(f"field '{self.name}' must be at least {self.min}, got {_shown(raw)}")
        if high is not None and current > high:
            raise InvalidValue(f"field '{self.name}' must be at most {self.max}, got {_shown(raw)}")

    def comparable_bound(self, bound: Any) -> Any:
        if bound is None:
            return None
        if self.type == "date":
            return bound if isinstance(bound, dt.date) else dt.date.fromisoformat(str(bound))
        return Decimal(str(bound))


class _Refused(ValueError):
    """A value refused for a reason more precise than its field's description."""


def check_free_text(value: str, what: str, *, multiline: bool) -> str:
    """``value`` unchanged when it holds no control character; else :class:`InvalidValue`.

    For free text typed by a person (a comment, a reason): C0 and C1 control characters and DEL
    are refused, so that nothing written can reach a terminal as an escape sequence, and so are
    lone surrogates (bytes of the command line that are not UTF-8), which could not be stored
    or shown. ``multiline`` lets newline and tab through, for text shown as a block; a carriage
    return never passes, as it can overwrite a line on a terminal. ``what`` names the text in
    the message (e.g. "comment", "--reason").
    """
    bad = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    if bad is not None:
        raise InvalidValue(f"{what} {_why_not(bad.group(), multiline)}")
    return value


def _why_not(char: str, multiline: bool) -> str:
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return f"is not valid UTF-8 text (undecodable byte, shown as {code})"
    if multiline:
        return f"may not hold control characters other than newline and tab (found {code})"
    return f"must be one line without control characters (found {code})"


def _one_line(raw: str) -> str:
    bad = _CONTROL.search(raw)
    if bad is not None:
        raise _Refused(_why_not(bad.group(), multiline=False))
    return raw


def _text(spec: FieldSpec, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError
    if len(raw) > MAX_TEXT:
        raise _Refused(f"takes at most {MAX_TEXT} characters")
    return _one_line(raw)


_PLAIN_INTEGER = "expects a whole number in plain digits (e.g. 12 or -3)"
_PLAIN_DECIMAL = "expects a number in plain digits, with a decimal point or comma (e.g. 1250.50 or 1,5)"
_LONG_INTEGER = f"takes at most {MAX_DIGITS} digits"
_LONG_DECIMAL = f"takes at most {MAX_DIGITS} digits before the decimal point"


def _number(text: str, pattern: re.Pattern[str], plain: str, too_long: str) -> re.Match[str]:
    """The match of an integer or decimal written in plain notation; refuses anything else.

    Text with a digit in it (1e400, 1_000, +5, ٣) was meant as a number: say which notation
    is taken. Text without one gets the field's own description.
    """
    match = pattern.fullmatch(text)
    if match is None:
        if any(char.isdigit() for char in text):
            raise _Refused(plain)
        raise ValueError
    if len(match.group(1).lstrip("0")) > MAX_DIGITS:
        raise _Refused(too_long)
    return match


def _integer(spec: FieldSpec, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, str):
        number = int(_number(raw.strip(), _INTEGER, _PLAIN_INTEGER, _LONG_INTEGER).group())
    else:
        raise ValueError
    if abs(number) >= 10**MAX_DIGITS:
        raise _Refused(_LONG_INTEGER)
    return number


def _decimal(spec: FieldSpec, raw: Any) -> str:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int | float):
        # A number in a YAML file (a bound, an operand); a float shown as 1e+20 is refused.
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise ValueError
    fraction = _number(text, _DECIMAL, _PLAIN_DECIMAL, _LONG_DECIMAL).group(2) or ""
    if len(fraction) > MAX_DECIMALS:
        raise _Refused(f"takes at most {MAX_DECIMALS} digits after the decimal point")
    # The Dutch decimal comma; as the only separator allowed it cannot be ambiguous.
    number = Decimal(text.replace(",", "."))
    return str(number.copy_abs() if number.is_zero() else number)  # -0 is stored as 0


def _date(spec: FieldSpec, raw: Any) -> str:
    if isinstance(raw, dt.datetime):
        raise ValueError
    if isinstance(raw, dt.date):
        day = raw
    elif isinstance(raw, str):
        try:
            day = parse_date(raw.strip())
        except _NoSuchDay:
            raise _Refused("expects a date (YYYY-MM-DD) that exists") from None
    else:
        raise ValueError
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise _Refused(f"takes dates in the years {FIRST_YEAR}-{LAST_YEAR}")
    return day.isoformat()


class _NoSuchDay(ValueError):
    pass


def parse_date(text: str) -> dt.date:
    """A date written ``YYYY-MM-DD`` in ASCII digits, and nothing looser.

    ``date.fromisoformat`` alone also takes ``20260302`` and week dates such as ``2026-W10-1``.
    Raises :class:`ValueError` saying what is wrong: "expected a date (YYYY-MM-DD)", or
    "expected a date that exists (YYYY-MM-DD)" for one written right that the calendar lacks
    (2026-02-30).
    """
    if not _DATE.fullmatch(text):
        raise ValueError("expected a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _NoSuchDay("expected a date that exists (YYYY-MM-DD)") from None


def _boolean(spec: FieldSpec, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _email(spec: FieldSpec, raw: Any) -> str:
    text = _one_line(raw).strip() if isinstance(raw, str) else ""
    if not EMAIL.fullmatch(text):
        raise ValueError
    if len(text) > MAX_EMAIL:
        raise _Refused(f"takes an address of at most {MAX_EMAIL} characters")
    return text


def _choice(spec: FieldSpec, raw: Any) -> str:
    if isinstance(raw, str):
        text: str | None = _one_line(raw).strip()
    else:
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else None
    if text not in spec.options:
        raise ValueError
    return text




_PARSERS = {
    "text": _text,
    "integer": _integer,
    "decimal": _decimal,
    "date": _date,
    "boolean": _boolean,
    "email": _email,
    "choice": _choice,
}


def parse_assignments(
    fields: Mapping[str, FieldSpec], items: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """`FIELD=VALUE` pairs from the command line, each checked against its field."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidValue(f"expected FIELD=VALUE, got {item!r}")
        spec = fields.get(name)
        if spec is None:
            known = ", ".join(fields) or "none"
            raise NotFound(f"unknown field {_shown(name)} (fields: {known})")
        if name in out:
            raise InvalidValue(f"field '{name}' is given twice: give each field once")
        if raw == "":
            out[name] = None
            continue
        out[name] = spec.parse(raw)
    return out
