# Generated from engine/store/schema.py by `python -m engine.store.mirror --write`: do not edit.
"""The tables as SQLAlchemy Core: what every statement uses.

A mirror of the SQLModel classes in engine/store/schema.py, which stay the one declaration of
the schema (Alembic's migrations read them there). Importing this module does not import
SQLModel, pydantic or the ORM. tests/test_tables.py regenerates it and compares the DDL of both
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from engine.store.indexes import dekking_indexes, stay_indexes
from engine.store.types import JSONType, UTCDateTime

metadata = sa.MetaData()


meta_t = sa.Table(
    "loket_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(), nullable=False),
)


organisation_t = sa.Table(
    "organisation",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("loaded_at", UTCDateTime(), nullable=False),
)


request_type_t = sa.Table(
    "request_type",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("title", sa.String(), nullable=False),
    sa.Column("prefix", sa.String(8), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("loaded_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("key", "version"),
)


ref_counter_t = sa.Table(
    "ref_counter",
    metadata,
    sa.Column("prefix", sa.String(8), primary_key=True),
    sa.Column("year", sa.Integer(), primary_key=True),
    sa.Column("last", sa.Integer(), nullable=False, default=0),
)


cases_t = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("ref", sa.String(32), nullable=False, unique=True),
    sa.Column("type_key", sa.String(64), nullable=False, index=True),
    sa.Column("type_version", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(64), nullable=False, index=True),
    sa.Column("owner", sa.String(64), index=True),
    sa.Column("assignee", sa.String(64), index=True),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("state_entered_at", UTCDateTime(), nullable=False),
    # Counts the entries into a state: escalations fire once per stay.
    sa.Column("stay", sa.Integer(), nullable=False, default=1),
    sa.Column("state_due", UTCDateTime(), index=True),
    sa.Column("service_due", UTCDateTime()),
    sa.Column("case_due", UTCDateTime()),
    # How far `case extend` may push case_due (max_extension), shifted with suspensions.
    sa.Column("case_due_limit", UTCDateTime()),
    # The earliest moment a sweep has work on this case: the sweep reads only due cases.
    sa.Column("next_fire_at", UTCDateTime(), index=True),
    sa.Column("suspended_at", UTCDateTime()),
    sa.Column("suspended_manually", sa.Boolean(), nullable=False, default=False),
    sa.Column("closed_at", UTCDateTime(), index=True),
    # The highest ladder place fired in the current stay.
    sa.Column("escalation_level", sa.Integer(), nullable=False, default=0),
    sa.Column("service_fired", sa.Boolean(), nullable=False, default=False),
    sa.Column("lead_fired", sa.Boolean(), nullable=False, default=False),
    sa.Column("version", sa.Integer(), nullable=False, default=1),
    sa.Column("last_seq", sa.Integer(), nullable=False, default=0),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("salt", sa.String(64)),
    sa.Column("redacted_at", UTCDateTime()),
    # When its newest event happened: a simulation's clock may not go back before it.
    sa.Column("last_at", UTCDateTime()),
    # The administrator's latest instruction (SPEC §12.1): the number of its `directed` event.
    sa.Column("directive_seq", sa.Integer()),
    sa.Column("directive_given_at", UTCDateTime()),
    # The state it was given in: leaving that state meets it.
    sa.Column("directive_state", sa.String(64)),
    sa.Column("directive_due", UTCDateTime()),
    sa.Column("directive_met_at", UTCDateTime()),
    sa.Column("directive_missed_at", UTCDateTime()),
)


events_t = sa.Table(
    "case_event",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(64)),
    sa.Column("to_state", sa.String(64)),
    sa.Column("trigger", sa.String(64)),
    sa.Column("comment", sa.String()),
    sa.Column("data", JSONType),
    sa.Column("digests", JSONType),
    # The salt of each free text the chain holds by its own digest (`engine.core.history`),
    # outside the hash: erasing a text erases its salt with it.
    sa.Column("salts", JSONType),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("case_id", "seq"),
)


# One rung fired for one stay; the unique key makes a second firing impossible.
escalations_t = sa.Table(
    "escalation",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
    # The stay in a state; 0 for the case-wide clocks (service norm, lead time).
    sa.Column("stay", sa.Integer(), nullable=False),
    sa.Column("rung", sa.String(16), nullable=False),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("unit", sa.String(64)),
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("fired_at", UTCDateTime(), nullable=False),
    # The case's request type (which never changes): the report counts escalations per type
    # without joining the cases (schema 0011).
    sa.Column("type_key", sa.String(64), nullable=False),
    sa.UniqueConstraint("case_id", "stay", "rung"),
    sa.Index("ix_escalation_fired_at_rung", "fired_at", "rung"),
    sa.Index("ix_escalation_group", "type_key", "unit", "rung", "fired_at"),
)


# One stay of a case in a state that has ended (`engine.core.stays`), written in the
# transaction of the transition that ended it and never changed: the report groups these
# rows instead of pairing every state change with the next. An open stay is the case's
# own row. Derived from the history, which `audit verify` recomputes it from; no personal
# data (state keys, units, instants).
stays_t = sa.Table(
    "case_stay",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
    # Its number among the case's stays, from 1.
    sa.Column("stay", sa.Integer(), nullable=False),
    # The seq of the `transition` event that ended it.
    sa.Column("end_seq", sa.Integer(), nullable=False),
    sa.Column("type_key", sa.String(64), nullable=False),
    # The definition it was judged by: the case's when the stay ended.
    sa.Column("type_version", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("unit", sa.String(64)),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("left_at", UTCDateTime(), nullable=False),
    # left_at - entered_at in days, as the report figures it (its medians).
    sa.Column("days", sa.Float(), nullable=False),
    # left_at - entered_at in µs, never below 0 (the report's sums, exact).
    sa.Column("stay_us", sa.BigInteger(), nullable=False),
    # The state deadline as it stood, moved by the times the clock stood still.
    sa.Column("due_at", UTCDateTime()),
    # due_at's local date (the report's week of a missed deadline).
    sa.Column("due_on", sa.Date()),
    # left_at <= due_at; None without a deadline.
    sa.Column("met", sa.Boolean()),
    sa.UniqueConstraint("case_id", "stay"),
    sa.Index("ix_case_stay_group", "type_key", "state", "unit", "met", "days", "stay_us"),
    sa.Index("ix_case_stay_state_days", "type_key", "state", "days"),
    sa.Index("ix_case_stay_unit_days", "unit", "days"),
)


# The ended stays of `case_stay` counted per type, state, unit and deadline met: what the
# report's time per state and unit, and its state deadlines, read instead of grouping every
# ended stay. Kept by triggers on `case_stay` (migration 0014): a row added, removed or
# changed there is counted here in the same statement, so every snapshot sees the two agree;
# people's logins may only read it (the trigger on PostgreSQL runs as the owner role). On
# PostgreSQL each session counts into a row of its own (`shard`, its backend's process id
# modulo 64), so concurrent transitions do not wait on one row; a group's figure is the sum
# over shards. `audit verify` checks it against `case_stay` and `db repair-stays` rebuilds
# it. No personal data (type and state keys, units, counts).
stay_tally_t = sa.Table(
    "stay_tally",
    metadata,
    sa.Column("shard", sa.SmallInteger(), primary_key=True),
    sa.Column("type_key", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(64), primary_key=True),
    # The state's unit; '' for none (a key column cannot be NULL).
    sa.Column("unit", sa.String(64), primary_key=True),
    # 1 deadline met, 0 missed, -1 no deadline (`case_stay.met`).
    sa.Column("met", sa.SmallInteger(), primary_key=True),
    # How many ended stays (in this shard: may be below 0 where another shard added them).
    sa.Column("stays", sa.BigInteger(), nullable=False),
    # Their `stay_us` together: a `NUMERIC`, whole and exact where a `BIGINT` would overflow
    # (at about 292,000 years of stays).
    sa.Column("stay_us", sa.Numeric(), nullable=False),
)


outbox_t = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("to_email", sa.String(320), nullable=False),
    sa.Column("to_name", sa.String()),
    sa.Column("subject", sa.String(), nullable=False),
    sa.Column("context", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending", index=True),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime(), index=True),
    sa.Column("lease_until", UTCDateTime()),
    # The delivery run holding the lease: it renews and records only while this is its own.
    sa.Column("lease_owner", sa.String(32)),
    sa.Column("last_error", sa.String()),
    sa.Column("sent_at", UTCDateTime()),
)


# A checkpoint over all chains: after it, a deleted case or a cut history is detected.
#
# The digest covers every sealed head and the previous seal's digest, so the heads table
# and the seals themselves cannot be edited unnoticed either.
seals_t = sa.Table(
    "audit_seal",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("sealed_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("cases", sa.Integer(), nullable=False),
    sa.Column("events", sa.Integer(), nullable=False),
    sa.Column("prev_digest", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
)


# The head of one case's chain at a seal.
seal_heads_t = sa.Table(
    "audit_seal_head",
    metadata,
    sa.Column("seal_id", sa.Integer(), sa.ForeignKey("audit_seal.id"), primary_key=True),
    sa.Column("case_id", sa.Integer(), primary_key=True),
    sa.Column("ref", sa.String(32), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


# One change to the configuration (SPEC §13.1), chained like a case's events.
config_events_t = sa.Table(
    "config_event",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("seq", sa.Integer(), nullable=False, unique=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("login", sa.String(64)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


# What is left of a case destroyed when its retention term ended (SPEC §15): enough to
# account for it in the seals and on the destruction list, and none of its content.
tombstones_t = sa.Table(
    "retention_tombstone",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    # The destroyed case's row id, as the seals recorded it.
    sa.Column("case_id", sa.Integer(), nullable=False, unique=True),
    sa.Column("ref", sa.String(32), nullable=False, unique=True),
    sa.Column("type_key", sa.String(64), nullable=False),
    sa.Column("type_version", sa.Integer(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=False),
    # The retention term as applied, e.g. `7 years`.
    sa.Column("term", sa.String(64), nullable=False),
    sa.Column("due_on", sa.Date(), nullable=False),
    sa.Column("destroyed_at", UTCDateTime(), nullable=False),
    sa.Column("destroyed_by", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(), nullable=False),
    # The configuration event (its seq) that recorded the retention run.
    sa.Column("run", sa.Integer(), nullable=False, index=True),
    sa.Column("last_seq", sa.Integer(), nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
)


# One read of a case's personal values (SPEC §13.2): who, when, which case, which command.
#
# Not chained (one cheap insert per read) and holding no values itself. `case_id` carries no
# foreign key: the log outlives nothing it refers to, and retention deletes a destroyed
# case's rows with it (`engine.store.access.forget_cases`). A read of many cases at once
# (`audit export`) is one row without a case, its filters in `detail`.
access_t = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("reader", sa.String(64), nullable=False),
    sa.Column("login", sa.String(64)),
    sa.Column("case_id", sa.Integer(), index=True),
    sa.Column("ref", sa.String(32)),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("detail", sa.String(400)),
)

dekking_indexes(events_t)
stay_indexes(stays_t)
