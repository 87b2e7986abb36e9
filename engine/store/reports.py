"""The queries behind `loket report`: what it reads, and in which order.

The report figures medians and stays exactly, so it reads rows, not aggregates: the cases
by id and their `created` and `transition` events by case id and seq, streamed in batches
side by side (see `engine.reporting.builder.with_moves`), then the escalations, then the
failed emails. The database works out each case's deciding term and its two flags, so
that a hundred thousand rows carry three fewer instants to decode.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.core.vocabulary import Action, OutboxStatus
from engine.store.schema import UTCDateTime, cases_t, escalations_t, events_t, outbox_t

STREAM_BATCH = 2000
"""Rows fetched at a time from a streamed query."""

_c, _e, _x, _o = cases_t.c, events_t.c, escalations_t.c, outbox_t.c
CASES_QUERY = sa.select(
    _c.id, _c.ref, _c.type_key, _c.type_version, _c.state, _c.owner, _c.created_at, _c.closed_at,
    _c.state_entered_at, sa.func.coalesce(_c.case_due, _c.service_due),
    _c.suspended_at.is_not(None),
    # With state_due IS NOT NULL first, the conjunction is false, never NULL, for cases
    # without a state deadline.
    sa.and_(_c.closed_at.is_(None), _c.suspended_at.is_(None), _c.state_due.is_not(None),
            _c.state_due < sa.bindparam("now", type_=UTCDateTime())),
).order_by(_c.id)
"""Each case with its deciding term (case_due, else service_due), whether it is suspended,
and whether it is overdue at `now` (open, not suspended, state_due before now)."""
MOVES_QUERY = (
    sa.select(_e.case_id, _e.at, _e.action, _e.from_state, _e.to_state)
    .where(_e.action.in_((Action.CREATED, Action.TRANSITION)))
    .order_by(_e.case_id, _e.seq)
)
ESCALATIONS_QUERY = (
    sa.select(_x.fired_at, _x.rung, _x.unit, _c.type_key).join(cases_t, _c.id == _x.case_id)
)
FAILED_COUNT_QUERY = (
    sa.select(sa.func.count()).select_from(outbox_t).where(_o.status == OutboxStatus.FAILED)
)
FAILED_QUERY = (
    sa.select(_o.id, _o.key, _o.to_email, _o.subject, _o.attempts, _o.last_error, _o.created_at)
    .where(_o.status == OutboxStatus.FAILED).order_by(_o.id.desc())
)
"""The emails that failed for good, newest first."""


def _streamed(conn: sa.Connection, query: sa.Select[Any], params: dict[str, Any] | None = None
              ) -> Iterable[sa.Row[Any]]:
    return conn.execute(query, params, execution_options={"yield_per": STREAM_BATCH})


def case_rows(conn: sa.Connection, now: datetime) -> Iterable[sa.Row[Any]]:
    """The rows of `CASES_QUERY` at `now`, streamed in id order."""
    return _streamed(conn, CASES_QUERY, {"now": now})


def move_rows(conn: sa.Connection) -> Iterable[sa.Row[Any]]:
    """Every case's `created` and `transition` events, streamed by case id and seq."""
    return _streamed(conn, MOVES_QUERY)


def escalation_rows(conn: sa.Connection) -> Iterable[sa.Row[Any]]:
    """Every escalation (when, rung, unit) with its case's request type, streamed."""
    return _streamed(conn, ESCALATIONS_QUERY)


def failed_count(conn: sa.Connection) -> int:
    return int(conn.execute(FAILED_COUNT_QUERY).scalar_one())


def failed_rows(conn: sa.Connection, shown: int) -> list[sa.Row[Any]]:
    """The newest `shown` emails that failed for good."""
    return list(conn.execute(FAILED_QUERY.limit(shown)))
