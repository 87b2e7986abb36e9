"""`when` conditions on transitions: every condition must hold.

A condition is (field, operator, operand). Operands are parsed with the field's own type when
the request type is loaded, so `{amount: {lte: 5000}}` compares decimals, not strings.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.fields import FieldSpec

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "in": lambda value, options: value in options,
    "present": lambda value, wanted: (value is not None and value != "") == wanted,
}
ORDERED = {"lt", "lte", "gt", "gte"}
SYMBOLS = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "in": "in"}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    operand: Any
    """The operand in the field's stored form (a list of them for `in`, a bool for `present`)."""

    def holds(self, spec: FieldSpec, data: Mapping[str, Any]) -> bool:
        value = data.get(self.field)
        if self.op == "present":
            return OPERATORS["present"](value, self.operand)
        if value is None:
            return False
        current = spec.comparable(value)
        if self.op == "in":
            return current in [spec.comparable(option) for option in self.operand]
        return bool(OPERATORS[self.op](current, spec.comparable(self.operand)))

    def __str__(self) -> str:
        if self.op == "present":
            return f"{self.field} is {'filled' if self.operand else 'empty'}"
        if self.op == "in":
            return f"{self.field} in [{', '.join(str(o) for o in self.operand)}]"
        return f"{self.field} {SYMBOLS[self.op]} {self.operand}"


def failing(
    conditions: tuple[Condition, ...], fields: Mapping[str, FieldSpec], data: Mapping[str, Any]
) -> list[Condition]:
    """The conditions that do not hold for this data (empty when the transition may go)."""
    return [c for c in conditions if not c.holds(fields[c.field], data)]
