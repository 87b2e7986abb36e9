"""The column types of our own: UTC instants on every backend, JSON that is JSONB on PostgreSQL.

Apart from the table declarations (engine/store/schema.py) so that the Core tables
(engine/store/tables.py) use them without importing SQLModel.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa


class _SQLiteInstant(sa.types.UserDefinedType[Any]):
    """A DATETIME column whose text UTCDateTime writes and reads itself.

    Same layout as SQLAlchemy's own SQLite DATETIME (`2026-03-02 08:00:00.000000`, which sorts
    as it compares), but formatted and parsed by the datetime module's C functions: every
    case write stores several instants, and the generic processors were a tenth of its cost.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out — SQLite included, which keeps no zone."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteInstant()
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is not dt.UTC:
            if value.tzinfo is None:
                raise ValueError("naive datetime refused: every instant must carry its zone")
            value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00"
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            # Stored as UTC without its zone: read it back with the zone in one parse.
            return dt.datetime.fromisoformat(value + "+00:00")
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class _JSONDocument(sa.types.TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL; SQL NULL for None. (A TypeDecorator rather than
    `with_variant(JSONB)`, which would import the PostgreSQL dialect with this module.)"""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(self.impl)


JSONType = _JSONDocument()
