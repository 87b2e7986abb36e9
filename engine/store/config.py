"""The configuration as stored: the meta table, the loaded organisations and request types.

Both kinds of definition are append-only: loading adds a row (a request type gets the next
version), and the newest row is the one in force. Cases keep the version they were made with,
so old versions are never rewritten.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.core import confighistory
from engine.core.history import GENESIS
from engine.store.raw import INT, JSON, TEXT, TIME, RawReader
from engine.store.tables import config_events_t, meta_t, organisation_t, request_type_t


def jsonable(value: Any) -> Any:
    """Definition data as stored: dates become ISO text, everything else stays plain."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


# -- meta ------------------------------------------------------------------------------------


def meta(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).scalar()


def set_meta(conn: sa.Connection, key: str, value: str) -> None:
    if conn.execute(sa.select(meta_t.c.key).where(meta_t.c.key == key)).first():
        conn.execute(sa.update(meta_t).where(meta_t.c.key == key).values(value=value))
    else:
        conn.execute(sa.insert(meta_t).values(key=key, value=value))


# -- the organisation ------------------------------------------------------------------------


def organisation_data(conn: sa.Connection) -> Any | None:
    """The newest organisation's data, or None before any was loaded."""
    row = conn.execute(
        sa.select(organisation_t.c.data).order_by(organisation_t.c.id.desc()).limit(1)
    ).first()
    return None if row is None else row.data


def insert_organisation(conn: sa.Connection, data: Any, source: str, loaded_at: dt.datetime) -> int:
    """Store an organisation; the new row's id."""
    row_id: int = conn.execute(sa.insert(organisation_t).values(data=jsonable(data), source=source,
                                                                 loaded_at=loaded_at)
                               .returning(organisation_t.c.id)).scalar_one()
    return row_id


# -- request types ---------------------------------------------------------------------------


class TypeHead(NamedTuple):
    """A request type's newest stored version and the digest of its definition."""

    version: int
    digest: str


def latest_versions(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(request_type_t.c.key, sa.func.max(request_type_t.c.version)).group_by(request_type_t.c.key)
    ).all()
    return {key: version for key, version in rows}


def definition_data(conn: sa.Connection, key: str, version: int) -> Any | None:
    """The definition as loaded, or None when the type has no such version."""
    row = conn.execute(
        sa.select(request_type_t.c.definition).where(
            request_type_t.c.key == key, request_type_t.c.version == version)
    ).first()
    return None if row is None else row.definition


def definitions_data(conn: sa.Connection, versions: Sequence[tuple[str, int]]) -> list[tuple[str, int, Any]]:
    """(key, version, definition) of each of `versions` stored, in one query."""
    if not versions:
        return []
    rows = conn.execute(
        sa.select(request_type_t.c.key, request_type_t.c.version, request_type_t.c.definition).where(
            sa.or_(*(sa.and_(request_type_t.c.key == key, request_type_t.c.version == version)
                     for key, version in versions)))
    ).all()
    return [(key, version, definition) for key, version, definition in rows]


def prefixes(conn: sa.Connection) -> dict[str, str]:
    """Reference prefix → the request type that uses it."""
    rows = conn.execute(sa.select(request_type_t.c.prefix, request_type_t.c.key).distinct()).all()
    return {prefix: key for prefix, key in rows}


def type_head(conn: sa.Connection, key: str) -> TypeHead | None:
    row = conn.execute(
        sa.select(request_type_t.c.version, request_type_t.c.digest)
        .where(request_type_t.c.key == key)
        .order_by(request_type_t.c.version.desc()).limit(1)
    ).first()
    return None if row is None else TypeHead(row.version, row.digest)


def insert_request_type(
    conn: sa.Connection, *, key: str, version: int, title: str, prefix: str, digest: str, definition: Any,
    source: str, loaded_at: dt.datetime,
) -> int:
    """Store a request type version; the new row's id."""
    row_id: int = conn.execute(sa.insert(request_type_t).values(
        key=key, version=version, title=title, prefix=prefix, digest=digest,
        definition=jsonable(definition), source=source, loaded_at=loaded_at,
    ).returning(request_type_t.c.id)).scalar_one()
    return row_id


# -- the configuration history (SPEC §13.1) --------------------------------------------------

_EVENT_COLUMNS = {"seq": INT, "at": TIME, "recorded_at": TIME, "actor": TEXT, "login": TEXT, "action": TEXT,
                  "detail": JSON, "prev_hash": TEXT, "hash": TEXT}


HISTORY_LOCK = 0x6C6F6B6574_0001
"""The advisory lock key that configuration changes queue on (PostgreSQL)."""


def lock_history(conn: sa.Connection) -> None:
    """Make configuration changes wait for each other on PostgreSQL, so that each event
    follows the one before it (SQLite has one writer at a time anyway). Before the head is read.

    An advisory lock, held to the end of the transaction: a table lock strong enough would need
    UPDATE privilege on the history, which people's logins do not have (`engine.store.grants`)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({HISTORY_LOCK})")


def record(conn: sa.Connection, *, at: dt.datetime, actor: str, login: str | None, action: str,
           detail: dict[str, Any]) -> int:
    """Append one event to the configuration history, in the caller's transaction; its seq."""
    lock_history(conn)
    head = conn.execute(sa.select(config_events_t.c.seq, config_events_t.c.hash)
                        .order_by(config_events_t.c.seq.desc()).limit(1)).first()
    seq, prev = (head.seq + 1, head.hash) if head is not None else (1, GENESIS)
    recorded_at = dt.datetime.now(dt.UTC)
    detail = jsonable(detail)
    content = confighistory.event_content(seq=seq, at=at, recorded_at=recorded_at, actor=actor, login=login,
                                          action=action, detail=detail)
    conn.execute(sa.insert(config_events_t).values(
        seq=seq, at=at, recorded_at=recorded_at, actor=actor, login=login, action=action, detail=detail,
        prev_hash=prev, hash=confighistory.config_hash(content, prev)))
    return seq


def history(conn: sa.Connection, *, careful: bool = False) -> list[Any]:
    """The configuration history in order; careful, each row read raw with its `damage`."""
    c = config_events_t.c
    if not careful:
        return list(conn.execute(sa.select(config_events_t).order_by(c.seq)).mappings())
    reader = RawReader(conn, config_events_t, _EVENT_COLUMNS)
    found = []
    for row in conn.execute(sa.select(c.id, *reader.exprs).order_by(c.seq, c.id)):
        values, damage = reader.decode(row, 1)
        found.append({"id": row[0], "damage": damage, **values})
    return found


def definitions_loaded(conn: sa.Connection, *, careful: bool = False) -> tuple[list[Any], list[Any]]:
    """Every organisation row (id, data) and request type row (id, key, version, definition),
    as mappings; careful, read raw, each with its `damage`."""
    o, t = organisation_t.c, request_type_t.c
    if not careful:
        return ([{**row, "damage": None} for row in conn.execute(sa.select(o.id, o.data).order_by(o.id)).mappings()],
                [{**row, "damage": None} for row in conn.execute(
                    sa.select(t.id, t.key, t.version, t.definition).order_by(t.id)).mappings()])
    found: list[list[Any]] = []
    for table, kinds in ((organisation_t, {"data": JSON}),
                         (request_type_t, {"key": TEXT, "version": INT, "definition": JSON})):
        reader = RawReader(conn, table, kinds)
        rows = []
        for row in conn.execute(sa.select(table.c.id, *reader.exprs).order_by(table.c.id)):
            values, damage = reader.decode(row, 1)
            rows.append({"id": row[0], "damage": damage, **values})
        found.append(rows)
    return found[0], found[1]
