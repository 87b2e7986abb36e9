"""A case is declared twice: as the `cases` table (engine/store/schema.py) and as the `Case`
snapshot the rules work on (engine/core/casework.py). A row unpacks into a Case by position and
a new case is written from a Case's fields, so the two must hold the same columns, each
optional in one exactly where it is nullable in the other."""

from __future__ import annotations

import dataclasses
import types
import typing

from engine.core.casework import CASE_FIELDS, Case
from engine.store.tables import cases_t


def test_a_case_has_exactly_the_columns_of_the_cases_table() -> None:
    assert set(CASE_FIELDS) == set(cases_t.c.keys())


def test_a_case_field_is_optional_where_its_column_is_nullable() -> None:
    hints = typing.get_type_hints(Case)
    optional = {f.name for f in dataclasses.fields(Case) if types.NoneType in typing.get_args(hints[f.name])}
    assert optional == {column.name for column in cases_t.c if column.nullable}
