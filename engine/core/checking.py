"""Collecting every problem in a definition before refusing it.

A functional administrator fixing a request type wants the whole list at once, each problem
with its place, not one error per attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.yamlfile import Locator, Path_, no_lines
from engine.errors import InvalidDefinition, InvalidValue, Problem


def describe(path: Path_) -> str:
    """`states.bijdrage.deadline` / `transitions[3].when` — how a place is named to people."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Checker:
    def __init__(self, file: str, locate: Locator = no_lines) -> None:
        self.file = file
        self.locate = locate
        self.problems: list[Problem] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.file, describe(path), message, self.locate(path)))

    def mapping(self, value: Any, path: Path_) -> dict[Any, Any] | None:
        if isinstance(value, Mapping):
            return dict(value)
        self.problem(path, f"expected a mapping, got {type_name(value)}")
        return None

    def keys(
        self,
        value: Mapping[Any, Any],
        path: Path_,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> None:
        allowed = set(allowed)
        for key in value:
            if key not in allowed:
                self.problem((*path, key), f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value or value[key] is None:
                self.problem(path, f"missing required key '{key}'")

    def text(self, value: Any, path: Path_) -> str | None:
        if value is None:
            # A missing required key is reported once, by `keys`.
            return None
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.problem(path, f"expected a non-empty text, got {type_name(value)}")
        return None

    def one_line(self, value: Any, path: Path_, what: str) -> str | None:
        """A non-empty text shown to people (a title, a label, a name written into email
        headers): one line, free of control characters, which would reach terminals as escape
        sequences. `what` names it in the problem."""
        from engine.core.fields import check_free_text

        text = self.text(value, path)
        if text is None:
            return None
        try:
            return check_free_text(text, what, multiline=False)
        except InvalidValue as exc:
            self.problem(path, exc.message)
            return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidDefinition(self.problems)


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
