"""Indexes on expressions, declared once for both declarations of the schema.

`engine/store/schema.py` (the SQLModel classes, which Alembic reads) and the generated Core
mirror `engine/store/tables.py` both call `dekking_indexes` and `stay_indexes` on their
`case_event` and `case_stay` tables, so the two make the same DDL (`engine.store.mirror`
writes the calls, as it cannot write an index on an expression itself). The report's
queries build their conditions with the same functions below: SQLite uses a partial index
only when the query's WHERE visibly holds the index's WHERE, and an index on an expression
only for the very same expression.

The bestuurlijke dekking's events (`engine.store.reports.admin_event_rows`) are a few among
millions; each kind is found by its own small partial index instead of by a scan of every
event with its JSON read:

- `ix_case_event_escalated_to`: escalations, by whom they went to (`data.to`);
- `ix_case_event_directives`: instructions (`directed`) and the escalations of rung
  `directive` (an instruction missed), by case;
- `ix_case_event_comment_actor`: comments, by who wrote them;
- `ix_case_event_comment_behalf`: comments written on someone's behalf, by whose
  (`data.on_behalf_of`).

Only these actions' events are entered (migration 0010), so writing any other event costs
nothing more. Likewise `stay_indexes`: the missed deadlines among the ended stays; and
`ix_case_event_suspended` (migration 0013, made with the dekking's though not one of them):
the `suspended` events by case, which tell the report the few open cases whose stay now it
must read from the events (`engine.store.reports.move_rows`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from engine.core.vocabulary import Action, Rung


def _is(column: Any, value: str) -> sa.ColumnElement[bool]:
    """`column = 'value'` with the value written into the statement, not bound: what an index's
    WHERE holds, so that the planner sees the query's WHERE holds it too (a bound value is
    unknown to PostgreSQL's generic plans)."""
    return column == sa.literal(str(value), literal_execute=True)


class JSONText(ColumnElement[str]):
    """A JSON document's top-level `key` as text, the key written into the statement: what
    `column[key].as_string()` renders, but with the path a constant, not a bound value. An
    index on an expression serves only a query holding the same expression, and SQLite cannot
    match a bound path against the index's."""

    inherit_cache = True
    type = sa.String()

    def __init__(self, column: ColumnElement[Any], key: str) -> None:
        if not key.isidentifier():
            raise ValueError(f"a JSON key written into a statement must be a plain name: {key!r}")
        self.column, self.key = column, key

    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own declaration, read by its visitors
        ("column", InternalTraversal.dp_clauseelement), ("key", InternalTraversal.dp_string)]


@compiles(JSONText, "sqlite")
def _json_text_sqlite(element: JSONText, compiler: Any, **kw: Any) -> str:
    return f"""CAST(JSON_EXTRACT({compiler.process(element.column, **kw)}, '$."{element.key}"') AS VARCHAR)"""


@compiles(JSONText)
def _json_text(element: JSONText, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.column, **kw)} ->> '{element.key}' AS VARCHAR)"


def escalated_to(e: Any) -> sa.ColumnElement[Any]:
    """Whom an `escalated` event went to (`data.to`), of the event table's columns `e`."""
    return JSONText(e.data, "to")


def on_behalf_of(e: Any) -> sa.ColumnElement[Any]:
    """For whom a comment was written (`data.on_behalf_of`)."""
    return JSONText(e.data, "on_behalf_of")


def escalated(e: Any) -> sa.ColumnElement[bool]:
    return _is(e.action, Action.ESCALATED)


def directives(e: Any) -> sa.ColumnElement[bool]:
    """Instructions given, and those missed (an escalation of rung `directive`)."""
    return sa.or_(_is(e.action, Action.DIRECTED),
                  sa.and_(_is(e.action, Action.ESCALATED), _is(JSONText(e.data, "rung"), Rung.DIRECTIVE)))


def comments(e: Any) -> sa.ColumnElement[bool]:
    return _is(e.action, Action.COMMENT)


def comments_on_behalf(e: Any) -> sa.ColumnElement[bool]:
    return sa.and_(_is(e.action, Action.COMMENT), on_behalf_of(e).is_not(None))


def suspensions(e: Any) -> sa.ColumnElement[bool]:
    return _is(e.action, Action.SUSPENDED)


def dekking_indexes(events: sa.Table) -> list[sa.Index]:
    """The bestuurlijke dekking's partial indexes on `case_event` (see the module's docstring),
    made part of `events`."""
    e = events.c

    def partial(name: str, key: Any, where: sa.ColumnElement[bool]) -> sa.Index:
        return _partial(name, key, where, "dekking_indexes")

    return [
        partial("ix_case_event_escalated_to", escalated_to(e), escalated(e)),
        partial("ix_case_event_directives", e.case_id, directives(e)),
        partial("ix_case_event_comment_actor", e.actor, comments(e)),
        partial("ix_case_event_comment_behalf", on_behalf_of(e), comments_on_behalf(e)),
        # Not the dekking's: an open case's suspensions, by case (schema 0013).
        partial("ix_case_event_suspended", e.case_id, suspensions(e)),
    ]


def stay_indexes(stays: sa.Table) -> list[sa.Index]:
    """`ix_case_stay_missed`: the ended stays whose deadline was missed, by the local day it
    passed (`engine.store.reports.missed_stay_days` reads them grouped in its order, instead
    of sorting a scan of every stay)."""
    return [_partial("ix_case_stay_missed", stays.c.due_on, stays.c.met.is_(False), "stay_indexes")]


def _partial(name: str, key: Any, where: sa.ColumnElement[bool], mirror: str) -> sa.Index:
    """A partial index on both databases. PostgreSQL's condition is kept in `info` and written
    by `_create_index` rather than given as `postgresql_where`: SQLAlchemy imports a dialect's
    module to check an option named for it, and the mirror's tables are imported by every
    command, on SQLite too (tests/test_startup.py keeps the PostgreSQL dialect out of them)."""
    return sa.Index(name, key, sqlite_where=where, info={"mirror": mirror, POSTGRESQL_WHERE: where})


POSTGRESQL_WHERE = "postgresql_where"
"""The key in an index's `info` of its condition on PostgreSQL (see `_partial`)."""


@compiles(CreateIndex, "postgresql")
def _create_index(create: CreateIndex, compiler: Any, **kw: Any) -> str:
    """PostgreSQL's CREATE INDEX, with the condition an index of `_partial` keeps in `info`
    written as SQLAlchemy writes `postgresql_where`."""
    text: str = compiler.visit_create_index(create, **kw)
    where = create.element.info.get(POSTGRESQL_WHERE)
    if where is not None:
        text += " WHERE " + compiler.sql_compiler.process(where, include_table=False, literal_binds=True)
    return text
