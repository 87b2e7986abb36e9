"""What a request type says about its results (SPEC §12.2): the `outcome` of its final states,
the `measures` whose totals are reported and the `area` by which results are grouped.

Checked with the rest of the file, each problem with its place: an outcome is one of four
words and only on a final state; a measure is a numeric field; the area is a choice or text
field. Measures and the area are shown on the public results page, so neither may be a field
holding personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.core.checking import Checker, type_name

if TYPE_CHECKING:
    from engine.core.fields import FieldSpec

OUTCOMES = ("granted", "rejected", "withdrawn", "done")
"""The words a final state's `outcome` may take, in the order reports list them."""
REALISED = ("granted", "done")
"""The outcomes that count as a result realised (the public page's recent results)."""
MEASURE_TYPES = ("integer", "decimal")
AREA_TYPES = ("choice", "text")


@dataclass(frozen=True)
class Results:
    outcomes: Mapping[str, str]
    """Final state → outcome word, for the final states that name one."""
    measures: tuple[str, ...] = ()
    area: str | None = None


def parse_results(
    check: Checker, root: Mapping[str, Any], fields: Mapping[str, FieldSpec], final: Mapping[str, bool]
) -> Results:
    """The outcomes, measures and area of a request type's file (its top-level mapping `root`);
    `final` tells, for each state that parsed, whether it is final."""
    return Results(_outcomes(check, root.get("states"), final),
                   _measures(check, root["measures"], fields) if "measures" in root else (),
                   _area(check, root["area"], fields) if "area" in root else None)


def _outcomes(check: Checker, states: Any, final: Mapping[str, bool]) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(states, Mapping):
        return out  # reported where the states are parsed
    for name, body in states.items():
        if not isinstance(body, Mapping) or "outcome" not in body:
            continue
        path = ("states", name, "outcome")
        value = body["outcome"]
        if not isinstance(value, str) or value not in OUTCOMES:
            check.problem(path, f"outcome must be one of {', '.join(OUTCOMES)}, got {value!r}")
        elif name in final and not final[name]:
            check.problem(path, "only a final state takes an outcome: a case that is still open has none")
        elif name in final:
            out[str(name)] = value
    return out


def _measures(check: Checker, value: Any, fields: Mapping[str, FieldSpec]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        check.problem(("measures",), f"measures must be a list of numeric fields, got {type_name(value)}")
        return ()
    out: list[str] = []
    numeric = ", ".join(n for n, f in fields.items() if f.type in MEASURE_TYPES) or "none"
    for i, name in enumerate(value):
        path = ("measures", i)
        spec = fields.get(name) if isinstance(name, str) else None
        if spec is None:
            check.problem(path, f"measure {name!r} is not a field (numeric fields: {numeric})")
        elif spec.type not in MEASURE_TYPES:
            check.problem(path, f"measure '{name}' is a {spec.type} field: a measure must be an integer or"
                                f" decimal field (numeric fields: {numeric})")
        elif spec.personal:
            check.problem(path, f"measure '{name}' holds personal data: its totals are published")
        elif name in out:
            check.problem(path, f"measure '{name}' is named twice")
        else:
            out.append(name)
    return tuple(out)


def _area(check: Checker, value: Any, fields: Mapping[str, FieldSpec]) -> str | None:
    path = ("area",)
    spec = fields.get(value) if isinstance(value, str) else None
    known = ", ".join(n for n, f in fields.items() if f.type in AREA_TYPES and not f.personal) or "none"
    if spec is None:
        check.problem(path, f"area must name a choice or text field (fields: {known}), got {value!r}")
        return None
    if spec.type not in AREA_TYPES:
        check.problem(path, f"area field '{value}' is of type {spec.type}: it must be a choice or text field")
        return None
    if spec.personal:
        check.problem(path, f"area field '{value}' holds personal data: results grouped by it are published")
        return None
    return str(value)
