"""How `FIELD=VALUE` becomes case data, and how `when` conditions judge it.

Both tables are the rules of SPEC §4.2 written out: the stored form of every type (decimals
as text so sums never drift, dates as ISO text), what is refused, and that conditions compare
numbers as numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.conditions import Condition, failing
from engine.errors import InvalidValue, NotFound
from engine.fields import FieldSpec, parse_assignments

TEXT = FieldSpec("title", "text")
INTEGER = FieldSpec("participants", "integer", min=1, max=500)
DECIMAL = FieldSpec("amount", "decimal", min=0, max=10000)
DATE = FieldSpec("start_date", "date", min=dt.date(2026, 1, 1))
BOOLEAN = FieldSpec("spoed", "boolean")
EMAIL = FieldSpec("email", "email", personal=True)
CHOICE = FieldSpec("category", "choice", options=("straatfeest", "groen", "spelen"))
FIELDS = {f.name: f for f in (TEXT, INTEGER, DECIMAL, DATE, BOOLEAN, EMAIL, CHOICE)}

PARSED = [
    # (field, as typed, as stored)
    (TEXT, "Straatfeest Lindelaan", "Straatfeest Lindelaan"),
    (TEXT, "", ""),
    (INTEGER, "12", 12),
    (INTEGER, " 40 ", 40),
    (INTEGER, 7, 7),
    (INTEGER, "500", 500),  # max is inclusive
    (DECIMAL, "12.50", "12.50"),
    (DECIMAL, "12,50", "12.50"),  # the Dutch decimal comma
    (DECIMAL, "1_250", "1250"),
    (DECIMAL, "0", "0"),  # min is inclusive
    (DECIMAL, 100, "100"),
    (DECIMAL, "10000.00", "10000.00"),
    (DATE, "2026-03-02", "2026-03-02"),
    (DATE, dt.date(2026, 5, 5), "2026-05-05"),
    (BOOLEAN, "ja", True),
    (BOOLEAN, "Nee", False),
    (BOOLEAN, "true", True),
    (BOOLEAN, "no", False),
    (BOOLEAN, "j", True),
    (BOOLEAN, False, False),
    (EMAIL, "a.bewoner@voorbeeld.example", "a.bewoner@voorbeeld.example"),
    (EMAIL, " a@b.nl ", "a@b.nl"),
    (CHOICE, "groen", "groen"),
]


@pytest.mark.parametrize(
    ("spec", "raw", "stored"), PARSED, ids=[f"{s.type}:{r!r}" for s, r, _ in PARSED]
)
def test_a_value_is_stored_in_its_fields_form(spec: FieldSpec, raw: Any, stored: Any) -> None:
    value = spec.parse(raw)
    assert value == stored
    assert type(value) is type(stored)


REFUSED = [
    (INTEGER, "12.5"),
    (INTEGER, "twaalf"),
    (INTEGER, True),
    (INTEGER, "0"),  # below min 1
    (INTEGER, "501"),  # above max 500
    (DECIMAL, "veel"),
    (DECIMAL, "1.250,50"),  # both separators: ambiguous, so refused
    (DECIMAL, "-0.01"),  # below min 0
    (DECIMAL, "10000.01"),  # above max
    (DECIMAL, "NaN"),
    (DECIMAL, "Infinity"),
    (DECIMAL, True),
    (DATE, "2026-02-30"),
    (DATE, "morgen"),
    (DATE, "2025-12-31"),  # before min
    (DATE, dt.datetime(2026, 3, 2, 9, 0)),
    (BOOLEAN, "misschien"),
    (BOOLEAN, ""),
    (EMAIL, "a.bewoner"),
    (EMAIL, "a@b"),
    (EMAIL, "Anna <a@b.nl>"),
    (EMAIL, "a@b.nl, c@d.nl"),
    (CHOICE, "Groen"),
    (CHOICE, "paars"),
    (TEXT, 12),
    (TEXT, "x" * 10_001),
]


@pytest.mark.parametrize(("spec", "raw"), REFUSED, ids=[f"{s.type}:{r!r}"[:40] for s, r in REFUSED])
def test_a_value_that_does_not_fit_is_refused(spec: FieldSpec, raw: Any) -> None:
    with pytest.raises(InvalidValue) as info:
        spec.parse(raw)
    assert f"'{spec.name}'" in info.value.message
    assert info.value.exit_code == 2


def test_assignments_from_the_command_line() -> None:
    data = parse_assignments(
        FIELDS, ["title=Feest = gezellig", "amount=12,50", "spoed=ja", "category="]
    )
    # the first '=' separates; an empty value clears the field
    assert data == {"title": "Feest = gezellig", "amount": "12.50", "spoed": True, "category": None}


def test_an_assignment_to_an_unknown_field_is_not_found() -> None:
    with pytest.raises(NotFound, match="unknown field 'kleur'"):
        parse_assignments(FIELDS, ["kleur=rood"])


@pytest.mark.parametrize("item", ["amount", "=12", "   =12"])
def test_an_assignment_without_field_and_value_is_invalid(item: str) -> None:
    with pytest.raises(InvalidValue, match="expected FIELD=VALUE"):
        parse_assignments(FIELDS, [item])


# -- conditions --------------------------------------------------------------------------------


def when(field: str, op: str, operand: Any) -> Condition:
    """A condition as the loader builds it: the operand parsed with the field's own type."""
    spec = FIELDS[field]
    if op == "in":
        return Condition(field, op, [spec.parse(o) for o in operand])
    if op == "present":
        return Condition(field, op, operand)
    return Condition(field, op, spec.parse(operand))


HOLDS = [
    # (condition, stored data, holds?)
    (("amount", "lte", "5000"), {"amount": "5000"}, True),
    (("amount", "lte", "5000"), {"amount": "5000.01"}, False),
    (("amount", "lt", "5000"), {"amount": "4999.99"}, True),
    (("amount", "lt", "5000"), {"amount": "5000"}, False),
    (("amount", "gt", "5000"), {"amount": "8500"}, True),
    (("amount", "gt", "5000"), {"amount": "5000"}, False),
    (("amount", "gte", "5000"), {"amount": "5000.00"}, True),
    # as text "10.5" < "9"; as numbers 10.5 > 9
    (("amount", "gt", "9"), {"amount": "10.5"}, True),
    (("amount", "lt", "9"), {"amount": "10.5"}, False),
    (("amount", "eq", "5000"), {"amount": "5000.00"}, True),
    (("amount", "ne", "5000"), {"amount": "5000.00"}, False),
    (("amount", "ne", "5000"), {"amount": "4000"}, True),
    (("amount", "lte", "5000"), {}, False),  # a missing value satisfies no comparison
    (("participants", "gte", "10"), {"participants": 9}, False),
    (("participants", "gte", "10"), {"participants": 10}, True),
    (("start_date", "lt", "2026-04-01"), {"start_date": "2026-03-31"}, True),
    (("start_date", "lt", "2026-04-01"), {"start_date": "2026-04-01"}, False),
    (("category", "eq", "groen"), {"category": "groen"}, True),
    (("category", "ne", "groen"), {"category": "spelen"}, True),
    (("category", "in", ["groen", "spelen"]), {"category": "spelen"}, True),
    (("category", "in", ["groen", "spelen"]), {"category": "straatfeest"}, False),
    (("category", "in", ["groen"]), {}, False),
    (("amount", "in", ["100", "200"]), {"amount": "100.0"}, True),
    (("spoed", "eq", "ja"), {"spoed": True}, True),
    (("spoed", "eq", "ja"), {"spoed": False}, False),
    (("title", "present", True), {"title": "Feest"}, True),
    (("title", "present", True), {"title": ""}, False),
    (("title", "present", True), {}, False),
    (("title", "present", False), {}, True),
    (("title", "present", False), {"title": "Feest"}, False),
]


@pytest.mark.parametrize(
    ("cond", "data", "holds"), HOLDS, ids=[f"{c[0]} {c[1]} {c[2]} on {d}" for c, d, _ in HOLDS]
)
def test_a_condition_holds_by_the_fields_own_comparison(
    cond: tuple[str, str, Any], data: dict[str, Any], holds: bool
) -> None:
    condition = when(*cond)
    assert condition.holds(FIELDS[condition.field], data) is holds


def test_failing_lists_exactly_the_conditions_that_do_not_hold() -> None:
    big = when("amount", "gt", "5000")
    groen = when("category", "eq", "groen")
    many = when("participants", "gte", "10")
    data = {"amount": "8500", "category": "spelen", "participants": 3}
    assert failing((big, groen, many), FIELDS, data) == [groen, many]
    assert failing((big,), FIELDS, data) == []
    assert failing((), FIELDS, {}) == []


def test_a_condition_says_what_it_requires() -> None:
    assert str(when("amount", "lte", "5000")) == "amount ≤ 5000"
    assert str(when("category", "in", ["groen", "spelen"])) == "category in [groen, spelen]"
    assert str(when("title", "present", True)) == "title is filled"
