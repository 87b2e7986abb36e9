"""Start-up of the read commands (issue 16): what `loket case show` and its kin import.

Run as a user runs them, in a subprocess, with `-X importtime` listing every module loaded,
on a SQLite database with the identity rules on (the clerk's `login` is the account running
the tests, so need-to-know applies and showing a personal value writes an access-log row).
`bench/bench_cli.py` measures the time; this keeps the modules that made most of it (Jinja2,
Alembic, transitions, the PostgreSQL dialect, the notifications, the report page, and SQLModel
with pydantic and the ORM: the statements use the tables' Core mirror, engine/store/tables.py)
off the read commands' path, so the gain cannot slip back unnoticed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.app.identity import os_login
from engine.app.service import Loket
from engine.core.yamlfile import load_file
from engine.store.db import open_engine
from tests.conftest import ORG_FILE, WORKFLOWS

ROOT = Path(__file__).resolve().parent.parent
CLERK = "c.devries"
NAME = "Bewoner Opstart"
HEAVY = ("jinja2", "alembic", "mako", "transitions", "ruamel", "apscheduler",
         "notifications", "smtplib", "email.mime", "sqlalchemy.dialects.postgresql",
         "engine.reporting.html", "engine.reporting.svg",
         "sqlmodel", "pydantic", "sqlalchemy.orm", "engine.store.schema")


@pytest.fixture
def established(sqlite_url: str, tmp_path: Path) -> tuple[str, str]:
    """(database URL, ref of a case with a personal value), the clerk's login this account."""
    data = json.loads(json.dumps(load_file(ORG_FILE)[0], default=str))
    login = os_login()
    for person in data["people"]:
        if person["id"] == CLERK:
            person["login"] = login
        elif person.get("login") == login:
            del person["login"]
    org_file = tmp_path / "org.json.yaml"
    org_file.write_text(json.dumps(data), encoding="utf-8")
    engine = open_engine(sqlite_url)
    app = Loket(engine)
    app.load_organisation(org_file)
    app.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    ref = app.new_case("bijdrage", [f"resident_name={NAME}", "title=Bank"], actor=CLERK).ref
    engine.dispose()
    return sqlite_url, ref


def loket_modules(url: str, *args: str) -> tuple[str, set[str]]:
    """Run `loket ARGS` in a fresh interpreter: (its output, every module it imported)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOKET_USER", "LOKET_DB")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import sys; from cli import main; sys.exit(main())",
         "--db", url, *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    modules = set(re.findall(r"^import time:.*\|\s*(\S+)$", done.stderr, re.M))
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 0, errors
    return done.stdout, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def access_rows(url: str) -> int:
    with sa.create_engine(url).connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM access_log").scalar_one())


def test_case_show_imports_none_of_the_heavy_modules(established: tuple[str, str]) -> None:
    url, ref = established
    out, modules = loket_modules(url, "case", "show", ref)
    assert NAME in out and access_rows(url) == 1  # need-to-know on, the personal value shown and logged
    assert "sqlalchemy" in modules and "engine.app.access" in modules  # the listing is read right
    assert heavy(modules) == []


@pytest.mark.parametrize("command", [("case", "list"), ("audit", "history", "REF"), ("report",)])
def test_other_read_commands_import_none_of_them_either(established: tuple[str, str], command: tuple[str, ...]) -> None:
    url, ref = established
    _, modules = loket_modules(url, *(ref if a == "REF" else a for a in command))
    assert heavy(modules) == []


def test_a_change_loads_the_state_machine_library(established: tuple[str, str]) -> None:
    """The check above can fail: a command that fires a trigger does import `transitions`."""
    url, ref = established
    _, modules = loket_modules(url, "case", "advance", ref, "in_behandeling")
    assert "transitions" in heavy(modules)


def test_a_change_runs_without_sqlmodel_too(established: tuple[str, str]) -> None:
    """Writes use the same Core tables: only migrating (`loket init`, `db upgrade`) loads the
    SQLModel classes, through Alembic."""
    url, ref = established
    _, modules = loket_modules(url, "case", "advance", ref, "in_behandeling")
    assert not {"sqlmodel", "pydantic", "engine.store.schema"} & modules
    _, modules = loket_modules(url, "init")
    assert {"sqlmodel", "engine.store.schema", "alembic"} <= modules
