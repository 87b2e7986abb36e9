"""How `FIELD=VALUE` becomes case data, and how `when` conditions judge it.

Both tables are the rules of SPEC §4.2 written out: the stored form of every type (decimals
as text so sums never drift, dates as ISO text), what is refused, and that conditions compare
numbers as numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.core.conditions import Condition, failing
from engine.core.fields import FieldSpec, check_free_text, parse_assignments
from engine.errors import InvalidValue, NotFound

TEXT = FieldSpec("title", "text")
INTEGER = FieldSpec("participants", "integer", min=1, max=500)
DECIMAL = FieldSpec("amount", "decimal", min=0, max=10000)
DATE = FieldSpec("start_date", "date", min=dt.date(2026, 1, 1))
BOOLEAN = FieldSpec("spoed", "boolean")
EMAIL = FieldSpec("email", "email", personal=True)
CHOICE = FieldSpec("category", "choice", options=("straatfeest", "groen", "spelen"))
FIELDS = {f.name: f for f in (TEXT, INTEGER, DECIMAL, DATE, BOOLEAN, EMAIL, CHOICE)}
# Without min or max: what the type alone takes.
COUNT = FieldSpec("count", "integer")
NUMBER = FieldSpec("number", "decimal")
DAY = FieldSpec("day", "date")

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
    # text beyond ASCII is text: accents, a dash, a euro sign
    (TEXT, "Café De Gouden Leeuw – € 5", "Café De Gouden Leeuw – € 5"),
    # a negative whole number
    (COUNT, "-3", -3),
    # the largest whole number: 15 digits
    (COUNT, "999999999999999", 999_999_999_999_999),
    # leading zeros do not count as digits
    (COUNT, "0000000000000000012", 12),
    # minus zero is zero
    (COUNT, "-0", 0),
    # a negative number
    (NUMBER, "-12", "-12"),
    # a Dutch comma, one decimal
    (NUMBER, "1,5", "1.5"),
    # trailing zeros are kept: 1.50 is how an amount is written
    (NUMBER, "1.50", "1.50"),
    # a fraction below one
    (NUMBER, "0.5", "0.5"),
    # minus zero is stored as zero, not "-0"
    (NUMBER, "-0", "0"),
    # ... also with decimals
    (NUMBER, "-0,00", "0.00"),
    # 15 digits before the point and 6 after
    (NUMBER, "999999999999999.999999", "999999999999999.999999"),
    # a number from a YAML file (a bound or an operand)
    (NUMBER, 0.25, "0.25"),
    # the first and the last year a date may have
    (DAY, "1900-01-01", "1900-01-01"),
    (DAY, "2200-12-31", "2200-12-31"),
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


PLAIN_NUMBER = "expects a number in plain digits, with a decimal point or comma (e.g. 1250.50 or 1,5)"
PLAIN_WHOLE = "expects a whole number in plain digits (e.g. 12 or -3)"
ONE_LINE = "must be one line without control characters"

# Values the parsers used to take, or crashed on later: each is refused with a message that
# says what is expected, and shows the value escaped (no control character reaches a terminal).
REFUSED_SAYING_WHY = [
    # (field, as typed, words of the message)
    # an exponent beyond any float: was stored as "1E+400"
    (NUMBER, "1e400", PLAIN_NUMBER),
    # an exponent Decimal takes and arithmetic then chokes on
    (NUMBER, "1E+999999999", PLAIN_NUMBER),
    # a vanishingly small one
    (NUMBER, "1e-999999999", PLAIN_NUMBER),
    # Python's digit grouping: was stored as "1000"
    (NUMBER, "1_000", PLAIN_NUMBER),
    # an Arabic-Indic digit three: Decimal reads it, a person reading the case would not
    (NUMBER, "٣", PLAIN_NUMBER),
    # a plus sign
    (NUMBER, "+5", PLAIN_NUMBER),
    # no digit before the point
    (NUMBER, ".5", PLAIN_NUMBER),
    # no digit after it
    (NUMBER, "5.", PLAIN_NUMBER),
    # a float from YAML that Python writes with an exponent
    (NUMBER, 1e20, PLAIN_NUMBER),
    # 16 digits before the point
    (NUMBER, "1234567890123456", "takes at most 15 digits before the decimal point"),
    # 7 after it
    (NUMBER, "1.1234567", "takes at most 6 digits after the decimal point"),
    # more digits than fit any counter of people
    (COUNT, "99999999999999999999999999", "takes at most 15 digits"),
    # also when it comes from YAML as a number
    (COUNT, 10**20, "takes at most 15 digits"),
    # more digits than int() takes at all: still this message, not Python's
    (COUNT, "9" * 5000, "takes at most 15 digits"),
    # digit grouping
    (COUNT, "1_000", PLAIN_WHOLE),
    # an Arabic-Indic digit
    (COUNT, "٣", PLAIN_WHOLE),
    # fullwidth digits
    (COUNT, "１２", PLAIN_WHOLE),
    # a plus sign
    (COUNT, "+5", PLAIN_WHOLE),
    # a date without its dashes: fromisoformat took it
    (DAY, "20260302", "expects a date (YYYY-MM-DD)"),
    # an ISO week date: fromisoformat took it too
    (DAY, "2026-W10-1", "expects a date (YYYY-MM-DD)"),
    # a day the calendar lacks
    (DAY, "2026-02-30", "expects a date (YYYY-MM-DD) that exists"),
    # the first day Python knows: a typo, not a date anyone means
    (DAY, "0001-01-01", "takes dates in the years 1900-2200"),
    # the last
    (DAY, "9999-12-31", "takes dates in the years 1900-2200"),
    # a date from YAML before the first year
    (DAY, dt.date(1899, 12, 31), "takes dates in the years 1900-2200"),
    # a terminal escape that sets the window title and clears the screen
    (TEXT, "\x1b]0;pwned\x07\x1b[2J", f"{ONE_LINE} (found U+001B)"),
    # a newline: field values are one line
    (TEXT, "eerste regel\ntweede regel", f"{ONE_LINE} (found U+000A)"),
    # a tab
    (TEXT, "a\tb", f"{ONE_LINE} (found U+0009)"),
    # a carriage return, which overwrites the line on a terminal
    (TEXT, "onschuldig\rgevaarlijk", f"{ONE_LINE} (found U+000D)"),
    # DEL
    (TEXT, "a\x7f", f"{ONE_LINE} (found U+007F)"),
    # a C1 control: CSI, an escape sequence in one character
    (TEXT, "\x9b2J", f"{ONE_LINE} (found U+009B)"),
    # a byte from the command line that is not UTF-8 (crashed later with UnicodeEncodeError)
    (TEXT, "caf\udce9", "is not valid UTF-8 text (undecodable byte, shown as U+DCE9)"),
    # too long: the message shows the start and how long it was, not all of it
    (TEXT, "x" * 10_001, f"takes at most 10000 characters, got '{'x' * 59}… (10001 characters)"),
    # an email address with an escape after it
    (EMAIL, "a@b.nl\x1b[2J", f"{ONE_LINE} (found U+001B)"),
    # an email address with a newline after it: a second header line in waiting
    (EMAIL, "a@b.nl\nBcc: c@d.nl", f"{ONE_LINE} (found U+000A)"),
    # a choice with an escape after it
    (CHOICE, "groen\x1b[2J", f"{ONE_LINE} (found U+001B)"),
]


@pytest.mark.parametrize(
    ("spec", "raw", "words"),
    REFUSED_SAYING_WHY,
    ids=[f"{s.type}:{r!r}"[:40] for s, r, _ in REFUSED_SAYING_WHY],
)
def test_a_value_is_refused_saying_what_the_field_takes(spec: FieldSpec, raw: Any, words: str) -> None:
    with pytest.raises(InvalidValue) as info:
        spec.parse(raw)
    message = info.value.message
    assert message.startswith(f"field '{spec.name}' "), message
    assert words in message
    assert message.isprintable(), "the value is shown escaped"
    assert info.value.exit_code == 2


FREE_TEXT = [
    # (text, multiline, None if taken, else words of the message)
    # one line of ordinary text
    ("Bewoner gebeld, komt langs.", False, None),
    # text beyond ASCII
    ("Café – € 5 – 👍", False, None),
    # lines and tabs, where several lines are allowed
    ("eerste regel\n\tingesprongen\ntweede", True, None),
    # a newline where one line is asked
    ("a\nb", False, "must be one line without control characters (found U+000A)"),
    # a tab where one line is asked
    ("a\tb", False, "must be one line without control characters (found U+0009)"),
    # an escape sequence, even where several lines are allowed
    ("\x1b[2J", True, "may not hold control characters other than newline and tab (found U+001B)"),
    # a carriage return (Windows line ends too): it rewrites a line on a terminal
    ("a\r\nb", True, "may not hold control characters other than newline and tab (found U+000D)"),
    # a bell
    ("\x07", True, "(found U+0007)"),
    # NUL
    ("a\x00b", False, "(found U+0000)"),
    # a C1 control
    ("\x85", True, "(found U+0085)"),
    # a byte of the command line that is not UTF-8
    ("reden \udcff", True, "is not valid UTF-8 text (undecodable byte, shown as U+DCFF)"),
    # ... also where one line is asked
    ("\udc80", False, "is not valid UTF-8 text"),
]


@pytest.mark.parametrize(("text", "multiline", "words"), FREE_TEXT, ids=[repr(t)[:30] for t, _, _ in FREE_TEXT])
def test_free_text_refuses_control_characters(text: str, multiline: bool, words: str | None) -> None:
    if words is None:
        assert check_free_text(text, "comment", multiline=multiline) is text
        return
    with pytest.raises(InvalidValue) as info:
        check_free_text(text, "comment", multiline=multiline)
    assert info.value.message.startswith("comment ")
    assert words in info.value.message
    assert info.value.exit_code == 2


def test_an_unknown_field_name_is_shown_escaped() -> None:
    with pytest.raises(NotFound) as info:
        parse_assignments(FIELDS, ["\x1b]0;pwned\x07=1"])
    assert info.value.message.startswith("unknown field '\\x1b]0;pwned\\x07' (fields: ")


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
