"""The tables, declared once, as SQLModel classes: Alembic's migrations and autogenerate read
them here.

Statements use the Core mirror of these tables, `engine/store/tables.py` (`cases_t`,
`events_t`, ...), generated from them by `python -m engine.store.mirror --write`: a command that
only runs queries then does not import SQLModel, pydantic and the ORM (a third of a read
command's start-up). After changing a class here, regenerate the mirror;
tests/test_tables.py fails until the two agree, in their source and in their DDL on SQLite and
PostgreSQL. Nothing but the migrations and the generator imports this module.

Time columns hold UTC instants on every backend (`UTCDateTime`); JSON is JSONB on PostgreSQL.
`cases.version` is the optimistic lock: every update of a case says which version it read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from engine.store.indexes import dekking_indexes, stay_indexes
from engine.store.types import JSONType, UTCDateTime


def _time(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, index=index, nullable=nullable)


def _ordered_json() -> Any:
    """Plain JSON on every backend: definitions keep the order their author wrote (JSONB sorts keys)."""
    return Field(default=None, sa_type=sa.JSON)


def _json() -> Any:
    return Field(default=None, sa_type=JSONType)


class Meta(SQLModel, table=True):
    __tablename__ = "loket_meta"
    key: str = Field(primary_key=True, max_length=64)
    value: str


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisation"
    id: int | None = Field(default=None, primary_key=True)
    data: dict[str, Any] = _ordered_json()
    source: str
    loaded_at: dt.datetime = _time(nullable=False)


class RequestTypeRow(SQLModel, table=True):
    __tablename__ = "request_type"
    __table_args__ = (sa.UniqueConstraint("key", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, index=True)
    version: int
    title: str
    prefix: str = Field(max_length=8)
    digest: str = Field(max_length=64)
    definition: dict[str, Any] = _ordered_json()
    source: str
    loaded_at: dt.datetime = _time(nullable=False)


class RefCounter(SQLModel, table=True):
    __tablename__ = "ref_counter"
    prefix: str = Field(primary_key=True, max_length=8)
    year: int = Field(primary_key=True)
    last: int = 0


class CaseRow(SQLModel, table=True):
    __tablename__ = "cases"
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=32, unique=True)
    type_key: str = Field(max_length=64, index=True)
    type_version: int
    state: str = Field(max_length=64, index=True)
    owner: str | None = Field(default=None, max_length=64, index=True)
    assignee: str | None = Field(default=None, max_length=64, index=True)
    data: dict[str, Any] = _json()
    created_at: dt.datetime = _time(nullable=False)
    created_by: str = Field(max_length=64)
    state_entered_at: dt.datetime = _time(nullable=False)
    stay: int = 1
    """Counts the entries into a state: escalations fire once per stay."""
    state_due: dt.datetime | None = _time(index=True)
    service_due: dt.datetime | None = _time()
    case_due: dt.datetime | None = _time()
    case_due_limit: dt.datetime | None = _time()
    """How far `case extend` may push case_due (max_extension), shifted with suspensions."""
    next_fire_at: dt.datetime | None = _time(index=True)
    """The earliest moment a sweep has work on this case: the sweep reads only due cases."""
    suspended_at: dt.datetime | None = _time()
    suspended_manually: bool = False
    closed_at: dt.datetime | None = _time(index=True)
    escalation_level: int = 0
    """The highest ladder place fired in the current stay."""
    service_fired: bool = False
    lead_fired: bool = False
    version: int = 1
    last_seq: int = 0
    last_hash: str = Field(max_length=64)
    salt: str | None = Field(default=None, max_length=64)
    redacted_at: dt.datetime | None = _time()
    last_at: dt.datetime | None = _time()
    """When its newest event happened: a simulation's clock may not go back before it."""
    directive_seq: int | None = None
    """The administrator's latest instruction (SPEC §12.1): the number of its `directed` event."""
    directive_given_at: dt.datetime | None = _time()
    directive_state: str | None = Field(default=None, max_length=64)
    """The state it was given in: leaving that state meets it."""
    directive_due: dt.datetime | None = _time()
    directive_met_at: dt.datetime | None = _time()
    directive_missed_at: dt.datetime | None = _time()


class EventRow(SQLModel, table=True):
    __tablename__ = "case_event"
    # No index of its own on case_id: the unique key's serves it (schema 0012).
    __table_args__ = (sa.UniqueConstraint("case_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    seq: int
    at: dt.datetime = _time(nullable=False, index=True)
    recorded_at: dt.datetime = _time(nullable=False)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=64)
    to_state: str | None = Field(default=None, max_length=64)
    trigger: str | None = Field(default=None, max_length=64)
    comment: str | None = None
    data: dict[str, Any] | None = _json()
    digests: dict[str, Any] | None = _json()
    salts: dict[str, Any] | None = _json()
    """The salt of each free text the chain holds by its own digest (`engine.core.history`),
    outside the hash: erasing a text erases its salt with it."""
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class EscalationRow(SQLModel, table=True):
    """One rung fired for one stay; the unique key makes a second firing impossible."""

    __tablename__ = "escalation"
    # No index of its own on case_id: the unique key's serves it (schema 0012).
    __table_args__ = (sa.UniqueConstraint("case_id", "stay", "rung"),
                      # The report's counts per type, unit and rung, and per local day and rung:
                      # on SQLite each reads its index instead of the table (schema 0012).
                      sa.Index("ix_escalation_group", "type_key", "unit", "rung", "fired_at"),
                      sa.Index("ix_escalation_fired_at_rung", "fired_at", "rung"))
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    stay: int
    """The stay in a state; 0 for the case-wide clocks (service norm, lead time)."""
    rung: str = Field(max_length=16)
    state: str = Field(max_length=64)
    unit: str | None = Field(default=None, max_length=64)
    recipient: str = Field(max_length=64)
    due_at: dt.datetime = _time(nullable=False)
    fired_at: dt.datetime = _time(nullable=False)
    type_key: str = Field(max_length=64)
    """The case's request type (which never changes): the report counts escalations per type
    without joining the cases (schema 0011)."""


class StayRow(SQLModel, table=True):
    """One stay of a case in a state that has ended (`engine.core.stays`), written in the
    transaction of the transition that ended it and never changed: the report groups these
    rows instead of pairing every state change with the next. An open stay is the case's
    own row. Derived from the history, which `audit verify` recomputes it from; no personal
    data (state keys, units, instants)."""

    __tablename__ = "case_stay"
    # No index of its own on case_id (the unique key's serves it) nor on left_at (a period is
    # read through the groups' index): every transition writes a row into each index.
    __table_args__ = (sa.UniqueConstraint("case_id", "stay"),
                      # The report's groups, and its ranks per state and per unit.
                      sa.Index("ix_case_stay_group", "type_key", "state", "unit", "met", "days", "stay_us"),
                      sa.Index("ix_case_stay_state_days", "type_key", "state", "days"),
                      sa.Index("ix_case_stay_unit_days", "unit", "days"))
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    stay: int
    """Its number among the case's stays, from 1."""
    end_seq: int
    """The seq of the `transition` event that ended it."""
    type_key: str = Field(max_length=64)
    type_version: int
    """The definition it was judged by: the case's when the stay ended."""
    state: str = Field(max_length=64)
    unit: str | None = Field(default=None, max_length=64)
    entered_at: dt.datetime = _time(nullable=False)
    left_at: dt.datetime = _time(nullable=False)
    days: float
    """left_at - entered_at in days, as the report figures it (its medians)."""
    stay_us: int = Field(sa_type=sa.BigInteger)
    """left_at - entered_at in µs, never below 0 (the report's sums, exact)."""
    due_at: dt.datetime | None = _time()
    """The state deadline as it stood, moved by the times the clock stood still."""
    due_on: dt.date | None = None
    """due_at's local date (the report's week of a missed deadline)."""
    met: bool | None = None
    """left_at <= due_at; None without a deadline."""


class StayTallyRow(SQLModel, table=True):
    """The ended stays of `case_stay` counted per type, state, unit and deadline met: what the
    report's time per state and unit, and its state deadlines, read instead of grouping every
    ended stay. Kept by triggers on `case_stay` (migration 0014): a row added, removed or
    changed there is counted here in the same statement, so every snapshot sees the two agree;
    people's logins may only read it (the trigger on PostgreSQL runs as the owner role). On
    PostgreSQL each session counts into a row of its own (`shard`, its backend's process id
    modulo 64), so concurrent transitions do not wait on one row; a group's figure is the sum
    over shards. `audit verify` checks it against `case_stay` and `db repair-stays` rebuilds
    it. No personal data (type and state keys, units, counts)."""

    __tablename__ = "stay_tally"
    shard: int = Field(primary_key=True, sa_type=sa.SmallInteger)
    type_key: str = Field(primary_key=True, max_length=64)
    state: str = Field(primary_key=True, max_length=64)
    unit: str = Field(primary_key=True, max_length=64)
    """The state's unit; '' for none (a key column cannot be NULL)."""
    met: int = Field(primary_key=True, sa_type=sa.SmallInteger)
    """1 deadline met, 0 missed, -1 no deadline (`case_stay.met`)."""
    stays: int = Field(sa_type=sa.BigInteger)
    """How many ended stays (in this shard: may be below 0 where another shard added them)."""
    stay_us: int = Field(sa_type=sa.Numeric)
    """Their `stay_us` together: a `NUMERIC`, whole and exact where a `BIGINT` would overflow
    (at about 292,000 years of stays)."""


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    kind: str = Field(max_length=32)
    language: str = Field(max_length=8)
    recipient: str = Field(max_length=64)
    to_email: str = Field(max_length=320)
    to_name: str | None = None
    subject: str
    context: dict[str, Any] = _json()
    created_at: dt.datetime = _time(nullable=False)
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: dt.datetime | None = _time(index=True)
    lease_until: dt.datetime | None = _time()
    lease_owner: str | None = Field(default=None, max_length=32)
    """The delivery run holding the lease: it renews and records only while this is its own."""
    last_error: str | None = None
    sent_at: dt.datetime | None = _time()


class SealRow(SQLModel, table=True):
    """A checkpoint over all chains: after it, a deleted case or a cut history is detected.

    The digest covers every sealed head and the previous seal's digest, so the heads table
    and the seals themselves cannot be edited unnoticed either.
    """

    __tablename__ = "audit_seal"
    id: int | None = Field(default=None, primary_key=True)
    sealed_at: dt.datetime = _time(nullable=False)
    recorded_at: dt.datetime = _time(nullable=False)
    cases: int
    events: int
    prev_digest: str = Field(max_length=64)
    digest: str = Field(max_length=64)


class SealHeadRow(SQLModel, table=True):
    """The head of one case's chain at a seal."""

    __tablename__ = "audit_seal_head"
    seal_id: int = Field(foreign_key="audit_seal.id", primary_key=True)
    case_id: int = Field(primary_key=True)
    ref: str = Field(max_length=32)
    seq: int
    hash: str = Field(max_length=64)


class ConfigEventRow(SQLModel, table=True):
    """One change to the configuration (SPEC §13.1), chained like a case's events."""

    __tablename__ = "config_event"
    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True)
    at: dt.datetime = _time(nullable=False)
    recorded_at: dt.datetime = _time(nullable=False)
    actor: str = Field(max_length=64)
    login: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=32)
    detail: dict[str, Any] = _ordered_json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class TombstoneRow(SQLModel, table=True):
    """What is left of a case destroyed when its retention term ended (SPEC §15): enough to
    account for it in the seals and on the destruction list, and none of its content."""

    __tablename__ = "retention_tombstone"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(unique=True)
    """The destroyed case's row id, as the seals recorded it."""
    ref: str = Field(max_length=32, unique=True)
    type_key: str = Field(max_length=64)
    type_version: int
    closed_at: dt.datetime = _time(nullable=False)
    term: str = Field(max_length=64)
    """The retention term as applied, e.g. `7 years`."""
    due_on: dt.date
    destroyed_at: dt.datetime = _time(nullable=False)
    destroyed_by: str = Field(max_length=64)
    reason: str
    run: int = Field(index=True)
    """The configuration event (its seq) that recorded the retention run."""
    last_seq: int
    last_hash: str = Field(max_length=64)

class AccessRow(SQLModel, table=True):
    """One read of a case's personal values (SPEC §13.2): who, when, which case, which command.

    Not chained (one cheap insert per read) and holding no values itself. `case_id` carries no
    foreign key: the log outlives nothing it refers to, and retention deletes a destroyed
    case's rows with it (`engine.store.access.forget_cases`). A read of many cases at once
    (`audit export`) is one row without a case, its filters in `detail`.
    """

    __tablename__ = "access_log"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = _time(nullable=False, index=True)
    recorded_at: dt.datetime = _time(nullable=False)
    reader: str = Field(max_length=64)
    login: str | None = Field(default=None, max_length=64)
    case_id: int | None = Field(default=None, index=True)
    ref: str | None = Field(default=None, max_length=32)
    command: str = Field(max_length=32)
    detail: str | None = Field(default=None, max_length=400)


metadata = SQLModel.metadata
# The names the mirror (engine/store/tables.py) gives each table; a table without one here is
# named `<table name>_t` there.
meta_t: sa.Table = Meta.__table__  # type: ignore[attr-defined]
organisation_t: sa.Table = OrganisationRow.__table__  # type: ignore[attr-defined]
request_type_t: sa.Table = RequestTypeRow.__table__  # type: ignore[attr-defined]
ref_counter_t: sa.Table = RefCounter.__table__  # type: ignore[attr-defined]
cases_t: sa.Table = CaseRow.__table__  # type: ignore[attr-defined]
events_t: sa.Table = EventRow.__table__  # type: ignore[attr-defined]
escalations_t: sa.Table = EscalationRow.__table__  # type: ignore[attr-defined]
outbox_t: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
seals_t: sa.Table = SealRow.__table__  # type: ignore[attr-defined]
seal_heads_t: sa.Table = SealHeadRow.__table__  # type: ignore[attr-defined]
config_events_t: sa.Table = ConfigEventRow.__table__  # type: ignore[attr-defined]
tombstones_t: sa.Table = TombstoneRow.__table__  # type: ignore[attr-defined]
access_t: sa.Table = AccessRow.__table__  # type: ignore[attr-defined]
stays_t: sa.Table = StayRow.__table__  # type: ignore[attr-defined]
stay_tally_t: sa.Table = StayTallyRow.__table__  # type: ignore[attr-defined]

# Partial indexes on JSON expressions (migration 0010): declared by one function for both
# declarations, which the mirror calls rather than writes out.
dekking_indexes(events_t)
stay_indexes(stays_t)
