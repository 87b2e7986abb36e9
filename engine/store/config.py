"""The configuration as stored: the meta table, the loaded organisations and request types.

Both kinds of definition are append-only: loading adds a row (a request type gets the next
version), and the newest row is the one in force. Cases keep the version they were made with,
so old versions are never rewritten.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.store.schema import meta_t, organisation_t, request_type_t


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


def insert_organisation(conn: sa.Connection, data: Any, source: str, loaded_at: dt.datetime) -> None:
    conn.execute(sa.insert(organisation_t).values(data=jsonable(data), source=source, loaded_at=loaded_at))


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
) -> None:
    conn.execute(sa.insert(request_type_t).values(
        key=key, version=version, title=title, prefix=prefix, digest=digest,
        definition=jsonable(definition), source=source, loaded_at=loaded_at,
    ))
