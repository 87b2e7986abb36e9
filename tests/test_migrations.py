"""The schema's migrations: the newest is the one the code expects, and upgrading an
existing database keeps its data and fills in what the new revision adds."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from engine.app.bundled import sample_paths
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core import casework
from engine.errors import InvalidValue
from engine.store.db import SCHEMA_REVISION, current_revision, migrate, open_engine
from engine.store.tables import cases_t
from tests.conftest import PG_SERVER

MIGRATIONS = Path(__file__).resolve().parent.parent / "engine" / "store" / "migrations"
START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)


def alembic(engine: sa.Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_the_code_expects_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_REVISION]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own: a migration test must not leave the shared one half-upgraded."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"loket_migrate_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def written_before_0006(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events written as the code before revision 0006 wrote them: free text hashed in clear,
    no salts of their own (a downgrade past 0006 drops those, and an old database never had
    them)."""
    monkeypatch.setattr(casework, "free_text_digests", lambda *args: ({}, {}))


def test_upgrading_from_0001_keeps_every_case_and_learns_when_each_last_changed(
    fresh_url: str, written_before_0006: None,
) -> None:
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(START)
    loket = Loket(engine, clock)
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor="c.devries").ref
    clock.set(START + dt.timedelta(days=1))
    loket.comment(ref, "Gebeld met de bewoner", actor="c.devries")
    # The database as revision 0001 left it: no last_at.
    alembic(engine, "downgrade", "0001")
    assert current_revision(engine) == "0001"
    assert "last_at" not in {c["name"] for c in sa.inspect(engine).get_columns("cases")}

    migrate(engine)

    assert current_revision(engine) == SCHEMA_REVISION
    with engine.connect() as conn:
        last_at = conn.execute(sa.select(cases_t.c.last_at).where(cases_t.c.ref == ref)).scalar_one()
    assert last_at == START + dt.timedelta(days=1)  # the comment, its newest event
    upgraded = Loket(engine, FixedClock(START))
    with pytest.raises(InvalidValue, match="a simulation cannot go back in time"):
        upgraded.comment(ref, "Te vroeg", actor="c.devries")
    assert verify(upgraded).ok
    engine.dispose()


def test_upgrading_from_0004_starts_the_configuration_history_with_what_was_there(
    fresh_url: str, written_before_0006: None,
) -> None:
    """Revision 0005 adds the configuration history: a database that had organisations,
    request types and seals before it gets one first event naming them, so verify accounts
    for every one of them; one made afterwards starts empty."""
    from engine.app.seal import seal
    from engine.store import config

    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(START))
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor="c.devries")
    seal(loket)
    alembic(engine, "downgrade", "0004")
    assert not sa.inspect(engine).has_table("config_event")

    migrate(engine)

    with engine.connect() as conn:
        events = config.history(conn)
    assert [(e["seq"], e["action"], e["actor"]) for e in events] == [(1, "history_started", "system")]
    detail = events[0]["detail"]
    assert [o["organisation"] for o in detail["organisations"]] == [1]
    assert [(t["key"], t["version"]) for t in detail["request_types"]] == [
        ("bewonersinitiatief", 1), ("bijdrage", 1), ("melding", 1)]
    assert [s["seal"] for s in detail["seals"]] == [1]
    assert detail["simulation"] is False
    result = verify(Loket(engine, FixedClock(START)))
    assert result.ok, result.failure
    assert result.config_events == 1
    engine.dispose()


def test_upgrading_from_0005_keeps_every_chain_and_lists_the_old_texts_it_cannot_erase(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Revision 0006 adds the events' own salts: events written before keep their format (their
    texts hashed in clear) and verify; texts written after enter by digest and erase. (The
    SQLite file that version itself made is upgraded in tests/test_free_text.py.)"""
    from engine.app.redact import OLD_FORMAT, redact

    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    clock = FixedClock(START)
    loket = Loket(engine, clock)
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    with monkeypatch.context() as old:
        old.setattr(casework, "free_text_digests", lambda *args: ({}, {}))
        ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest", "description=Buurman Kees"],
                             actor="c.devries").ref
        clock.set(START + dt.timedelta(hours=1))
        loket.comment(ref, "Oude opmerking van Els de Wit", actor="c.devries")
    alembic(engine, "downgrade", "0005")
    assert "salts" not in {c["name"] for c in sa.inspect(engine).get_columns("case_event")}

    migrate(engine)

    assert current_revision(engine) == SCHEMA_REVISION
    upgraded = Loket(engine, clock)
    assert verify(upgraded).ok
    clock.set(START + dt.timedelta(hours=2))
    upgraded.comment(ref, "Nieuwe opmerking van Els de Wit", actor="c.devries")
    done = redact(upgraded, ref, "bewaartermijn", actor="a.jansen", comments=True)
    assert done.texts == 1
    assert [(n.seq, n.what, n.why) for n in done.not_erased] == [(2, "comment", OLD_FORMAT)]
    with engine.connect() as conn:
        comments = conn.execute(sa.text("SELECT seq, comment FROM case_event ORDER BY seq")).all()
    assert [tuple(c) for c in comments][:3] == [(1, None), (2, "Oude opmerking van Els de Wit"), (3, None)]
    result = verify(upgraded)
    assert result.ok, result.failure
    engine.dispose()


def test_downgrading_past_0006_refuses_to_lose_the_salts_of_texts_written_since(fresh_url: str) -> None:
    engine = open_engine(fresh_url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(START))
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor="c.devries")
    with pytest.raises(RuntimeError, match="downgrading would lose those salts"):
        alembic(engine, "downgrade", "0005")
    assert current_revision(engine) == SCHEMA_REVISION
    assert verify(Loket(engine, FixedClock(START))).ok
    engine.dispose()
