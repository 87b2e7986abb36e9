"""Typed case fields: what a request type declares and how `FIELD=VALUE` becomes data.

Values are stored as JSON: text, email, choice and date as strings (dates ISO), integers as
numbers, booleans as booleans, and decimals as strings so that 0.1 + 0.2 never drifts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.errors import InvalidValue, NotFound

FIELD_TYPES = ("text", "integer", "decimal", "date", "boolean", "email", "choice")
FIELD_KEYS = ("type", "required", "min", "max", "options", "personal", "label")

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")
"""An address a mail header accepts as it is: ASCII dot-atoms only (no `a..b@`, no quoting)."""
_TRUE = {"true", "yes", "ja", "1", "y", "j"}
_FALSE = {"false", "no", "nee", "0", "n"}
MAX_TEXT = 10_000


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
        """Turn user input (a string from the CLI, or a YAML/JSON value) into stored data."""
        try:
            value = _PARSERS[self.type](self, raw)
        except (ValueError, InvalidOperation, TypeError):
            raise InvalidValue(f"field '{self.name}' expects {self.describe()}, got {raw!r}") from None
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
            raise InvalidValue(f"field '{self.name}' must be at least {self.min}, got {raw!r}")
        if high is not None and current > high:
            raise InvalidValue(f"field '{self.name}' must be at most {self.max}, got {raw!r}")

    def comparable_bound(self, bound: Any) -> Any:
        if bound is None:
            return None
        if self.type == "date":
            return bound if isinstance(bound, dt.date) else dt.date.fromisoformat(str(bound))
        return Decimal(str(bound))


def _text(spec: FieldSpec, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError
    if len(raw) > MAX_TEXT:
        raise ValueError
    return raw


def _integer(spec: FieldSpec, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int):
        return raw
    return int(str(raw).strip())


def _decimal(spec: FieldSpec, raw: Any) -> str:
    if isinstance(raw, bool):
        raise ValueError
    text = str(raw).strip().replace("_", "")
    # Dutch input uses a decimal comma; accept it when it is the only separator.
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    number = Decimal(text)
    if not number.is_finite():
        raise ValueError
    return str(number)


def _date(spec: FieldSpec, raw: Any) -> str:
    if isinstance(raw, dt.datetime):
        raise ValueError
    if isinstance(raw, dt.date):
        return raw.isoformat()
    return dt.date.fromisoformat(str(raw).strip()).isoformat()


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
    text = str(raw).strip() if isinstance(raw, str) else ""
    if not EMAIL.match(text):
        raise ValueError
    return text


def _choice(spec: FieldSpec, raw: Any) -> str:
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
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
            raise NotFound(f"unknown field '{name}' (fields: {known})")
        if raw == "":
            out[name] = None
            continue
        out[name] = spec.parse(raw)
    return out
