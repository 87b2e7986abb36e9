"""Writes engine/store/tables.py, the Core mirror of the SQLModel tables in engine/store/schema.py.

The SQLModel classes stay the one declaration of the schema (Alembic reads them); the mirror
declares the same tables with SQLAlchemy Core alone, so that the statements, which use only
Core tables, run without SQLModel, pydantic and the ORM being imported. Regenerate after
changing schema.py:

    python -m engine.store.mirror --write     # write engine/store/tables.py
    python -m engine.store.mirror             # exit 1 if the committed file differs

Every table of `schema.metadata` is mirrored, in declaration order, under the name schema.py
gives its Core alias (`cases_t = CaseRow.__table__`), else `<table name>_t`; the classes' and
fields' docstrings become comments. What this cannot render faithfully (a server default, a
callable default, a CHECK, an index on an expression, a foreign key with options) is refused
with a message rather than dropped: extend the renderer then. An index on an expression made
by a function of engine/store/indexes.py (marked `info={"mirror": <its name>}`) is written as
a call of that function on the mirrored table. tests/test_tables.py compares
the two declarations' DDL on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.store import schema, types

TARGET = Path(__file__).with_name("tables.py")

HEADER = '''\
# Generated from engine/store/schema.py by `python -m engine.store.mirror --write`: do not edit.
"""The tables as SQLAlchemy Core: what every statement uses.

A mirror of the SQLModel classes in engine/store/schema.py, which stay the one declaration of
the schema (Alembic's migrations read them there). Importing this module does not import
SQLModel, pydantic or the ORM. tests/test_tables.py regenerates it and compares the DDL of both
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from engine.store.types import {types}

metadata = sa.MetaData()
'''


def _q(value: Any) -> str:
    """A literal as the project writes it: strings in double quotes."""
    text = repr(value)
    if isinstance(value, str) and text.startswith("'") and '"' not in value:
        return '"' + text[1:-1] + '"'
    return text


class Unmirrorable(Exception):
    """schema.py declares something the renderer does not know how to write."""


def _docs() -> dict[str, tuple[str | None, dict[str, str]]]:
    """Per class name in schema.py: its docstring and its fields' docstrings (a string right
    after an annotated field, the convention schema.py follows)."""
    tree = ast.parse(inspect.getsource(schema))
    found: dict[str, tuple[str | None, dict[str, str]]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        for before, after in zip(node.body, node.body[1:], strict=False):
            if (isinstance(before, ast.AnnAssign) and isinstance(before.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                fields[before.target.id] = after.value.value
        found[node.name] = (ast.get_docstring(node), fields)
    return found


def _comment(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line}".rstrip() for line in inspect.cleandoc(text).splitlines()]


def _type(column: sa.Column[Any], used: set[str]) -> str:
    kind = column.type
    for name, value in vars(types).items():  # a shared instance of ours, e.g. JSONType
        if value is kind and not name.startswith("_"):
            used.add(name)
            return name
    cls = type(kind)
    if getattr(types, cls.__name__, None) is cls:
        used.add(cls.__name__)
        return f"{cls.__name__}()"
    if cls.__name__ == "AutoString":  # SQLModel's str: a VARCHAR, of its length if it has one
        length = getattr(kind, "length", None)
        return "sa.String()" if length is None else f"sa.String({length})"
    if getattr(sa, cls.__name__, None) is cls:
        return f"sa.{kind!r}"
    raise Unmirrorable(f"{column.table.name}.{column.name}: type {cls.__module__}.{cls.__name__}")


def _column(column: sa.Column[Any], used: set[str]) -> str:
    where = f"{column.table.name}.{column.name}"
    args = [_q(column.name), _type(column, used)]
    for fk in column.foreign_keys:
        if fk.ondelete or fk.onupdate or fk.deferrable or fk.initially or fk.name or fk.use_alter:
            raise Unmirrorable(f"{where}: a foreign key with options")
        args.append(f"sa.ForeignKey({_q(fk.target_fullname)})")
    if column.primary_key:
        args.append("primary_key=True")
    if column.nullable != (not column.primary_key):
        args.append(f"nullable={column.nullable}")
    if column.default is not None:
        if not (isinstance(column.default, sa.ColumnDefault) and column.default.is_scalar):
            raise Unmirrorable(f"{where}: a default that is not a plain value")
        args.append(f"default={_q(column.default.arg)}")
    if column.server_default is not None or column.server_onupdate is not None or column.onupdate is not None:
        raise Unmirrorable(f"{where}: a server default or an on-update value")
    if column.autoincrement != "auto":
        args.append(f"autoincrement={column.autoincrement!r}")
    if column.index:
        args.append("index=True")
    if column.unique:
        args.append("unique=True")
    if column.comment:
        args.append(f"comment={_q(column.comment)}")
    return f"sa.Column({', '.join(args)}),"


def _constraints(table: sa.Table) -> list[str]:
    """What the columns do not already say: table-level unique keys and indexes."""
    lines = []
    for constraint in sorted(table.constraints, key=lambda c: [col.name for col in getattr(c, "columns", ())]):
        if isinstance(constraint, sa.PrimaryKeyConstraint) or getattr(constraint, "_column_flag", False):
            continue
        if isinstance(constraint, sa.ForeignKeyConstraint) and len(constraint.columns) == 1:
            continue  # written on its column
        if not isinstance(constraint, sa.UniqueConstraint) or constraint.name:
            raise Unmirrorable(f"{table.name}: constraint {constraint!r}")
        lines.append(f"sa.UniqueConstraint({', '.join(_q(c.name) for c in constraint.columns)}),")
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        if getattr(index, "_column_flag", False) or index.info.get("mirror"):
            continue  # written on its column; or by a function of engine.store.indexes (`_called`)
        if index.expressions != list(index.columns) or not index.name:
            raise Unmirrorable(f"{table.name}: index {index.name} on expressions")
        columns = ", ".join(_q(c.name) for c in index.columns)
        lines.append(f"sa.Index({_q(index.name)}, {columns}{', unique=True' if index.unique else ''}),")
    return lines


def render() -> str:
    """The source of engine/store/tables.py for the tables schema.py declares now."""
    aliases = {value.name: name for name, value in vars(schema).items() if isinstance(value, sa.Table)}
    classes = {value.__table__.name: name for name, value in vars(schema).items()
               if isinstance(value, type) and issubclass(value, schema.SQLModel) and hasattr(value, "__table__")}
    docs = _docs()
    used: set[str] = set()
    body: list[str] = []
    for table in schema.metadata.tables.values():
        if table.schema or table.comment or table.dialect_kwargs:
            raise Unmirrorable(f"{table.name}: a schema, comment or dialect option on the table")
        class_doc, field_docs = docs.get(classes.get(table.name, ""), (None, {}))
        body += ["", "", *_comment(class_doc, ""), f"{aliases.get(table.name, table.name + '_t')} = sa.Table(",
                 f"    {_q(table.name)},", "    metadata,"]
        for column in table.columns:
            body += [*_comment(field_docs.get(column.key), "    "), f"    {_column(column, used)}"]
        body += [f"    {line}" for line in _constraints(table)]
        body.append(")")
    called = _called(aliases)
    header = HEADER.format(types=", ".join(sorted(used)))
    if called:
        names = sorted({name for name, _ in called})
        header = header.replace("from engine.store.types", f"from engine.store.indexes import {', '.join(names)}\n"
                                "from engine.store.types", 1)
        body += ["", *(f"{name}({table})" for name, table in called)]
    return header + "\n".join(body) + "\n"


def _called(aliases: dict[str, str]) -> list[tuple[str, str]]:
    """The functions of engine.store.indexes that made indexes of schema.py's tables (an index
    on an expression, which `_constraints` cannot write), each once per table: (function,
    the table's name in the mirror). The function must make them all (tests/test_tables.py
    compares the DDL)."""
    from engine.store import indexes

    out: list[tuple[str, str]] = []
    for table in schema.metadata.tables.values():
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            name = index.info.get("mirror")
            if not name:
                continue
            if not callable(getattr(indexes, name, None)):
                raise Unmirrorable(f"{table.name}: index {index.name} made by unknown function {name}")
            call = (name, aliases.get(table.name, table.name + "_t"))
            if call not in out:
                out.append(call)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.store.mirror", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {TARGET.name} (else only compare)")
    args = parser.parse_args(argv)
    try:
        source = render()
    except Unmirrorable as exc:
        print(f"Error: cannot mirror {exc}", file=sys.stderr)
        return 2
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else None
    if args.write:
        if current != source:
            TARGET.write_text(source, encoding="utf-8")
            print(f"wrote {TARGET}")
        else:
            print(f"{TARGET} is up to date")
        return 0
    if current != source:
        print(f"Error: {TARGET} differs from engine/store/schema.py: run python -m engine.store.mirror --write",
              file=sys.stderr)
        return 1
    print(f"{TARGET} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
