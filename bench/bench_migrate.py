"""`workflow migrate` at scale: 100,000 open cases moved to a new version, beside a floor.

Version 2 of bewonersinitiatief shortens the legal term and a state's term, renames a state
(`besluit`, moved with a map) and hands intake to another unit, so every case has its deadlines
counted again from its history and a share of them lose their assignee: the migration's whole
work, for every case.

For SQLite and PostgreSQL, same run:

- the migration: cases read in batches, their clock events read, every deadline counted again,
  the `migrated` (and `assigned`) events chained, guarded UPDATE and inserts per batch;
- the floor: the same batches read by the same queries, the same guarded UPDATE of the same
  columns (one executemany per batch, then the chain heads read back) and one event per case
  inserted through the same driver calls, with values made up
  front — no rules, no calendar, no hash chain. migration / floor is the share of the
  database's own speed the engine keeps;
- the migration's peak memory (it must not grow with the cases: they are walked in batches).

A few template cases are made through the engine (new, advance, suspend, resume, extend) and
bulk-copied with their events — SQLAlchemy's executemany on SQLite, COPY on PostgreSQL. A copy
keeps its template's chain (hashes made for the template's reference), so `audit verify` would
refuse the copies; the migration does not read hashes, only chains onto them. Each measurement
runs in a fresh child process on a fresh copy of the loaded database (a file copy, or CREATE
DATABASE ... TEMPLATE), timed around the call alone.

    python bench/bench_migrate.py [--cases 100000] [--skip-pg] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from common import sample_loket, scratch_postgres  # noqa: E402

from engine.app.clock import FixedClock  # noqa: E402
from engine.app.migrate import BATCH, migrate  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.core.durations import Duration  # noqa: E402
from engine.core.migration import CLOCK_ACTIONS  # noqa: E402
from engine.store import cases  # noqa: E402
from engine.store.db import open_engine  # noqa: E402
from engine.store.sweeps import insert_rows  # noqa: E402
from engine.store.tables import cases_t, events_t  # noqa: E402

KEY = "bewonersinitiatief"
STAFF, LEAD = "c.devries", "b.bakker"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 3, 23, 12, 0, tzinfo=dt.UTC)
MAPS = {"besluit": "besluit_team"}
CHUNK = 50_000


def version_two(folder: Path) -> Path:
    text = (ROOT / "workflows" / f"{KEY}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"\bbesluit\b", "besluit_team", text)
    text = text.replace("lead_time: {weeks: 8}", "lead_time: {weeks: 6}")
    text = text.replace("owner: wijkteam, deadline: {working_days: 10}}",
                        "owner: wijkteam, deadline: {working_days: 5}}")
    text = text.replace("ingediend:          {label: Ingediend, owner: wijkteam,",
                        "ingediend:          {label: Ingediend, owner: welzijn,")
    path = folder / f"{KEY}-v2.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def templates(loket: Loket) -> list[str]:
    """Real cases in every kind of position, made by the engine on version 1."""
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    refs = []
    for i in range(12):
        clock.set(START + dt.timedelta(hours=i))
        ref = loket.new_case(KEY, [f"title=Initiatief {i}", "amount=400"], actor=STAFF,
                             assign=STAFF if i % 3 == 0 else None).ref
        kind = i % 6
        if kind >= 1:
            loket.advance(ref, "in_behandeling", actor=STAFF)
        if kind == 2:
            loket.suspend(ref, "wacht op vergunning", actor=STAFF)
            clock.set(START + dt.timedelta(days=3, hours=i))
            loket.resume(ref, actor=STAFF)
        if kind == 3:
            loket.extend(ref, Duration("weeks", 2), "drukte", actor=LEAD)
        if kind == 4:
            loket.advance(ref, "naar_besluit", actor=STAFF)
        if kind == 5:
            loket.advance(ref, "vraag_bijdrage", actor=STAFF)
        refs.append(ref)
    return refs


def load(loket: Loket, count: int) -> None:
    refs = templates(loket)
    with loket.read() as conn:
        rows = {r["ref"]: dict(r) for r in conn.execute(sa.select(cases_t)).mappings()}
        history = {ref: [dict(e) for e in conn.execute(
            sa.select(events_t).where(events_t.c.case_id == rows[ref]["id"]).order_by(events_t.c.seq)).mappings()]
            for ref in refs}
        first = conn.execute(sa.select(sa.func.max(cases_t.c.id))).scalar_one() + 1
    todo = count - len(refs)

    def copies() -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        for n in range(todo):
            ref = refs[n % len(refs)]
            case_id = first + n
            row = {**rows[ref], "id": case_id, "ref": f"BI-2026-{case_id:07d}"}
            events = [{**{k: v for k, v in e.items() if k != "id"}, "case_id": case_id} for e in history[ref]]
            yield row, events

    source = copies()
    while True:
        chunk = [item for _, item in zip(range(CHUNK), source, strict=False)]
        if not chunk:
            break
        with loket.engine.begin() as conn:
            insert_rows(conn, cases_t, [row for row, _ in chunk])
            insert_rows(conn, events_t, [e for _, events in chunk for e in events])
    if loket.engine.dialect.name == "postgresql":
        with loket.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))


# -- measuring in a child process -------------------------------------------------------------


def child(url: str, mode: str) -> None:
    loket = Loket(open_engine(url), FixedClock(NOW))
    loket.organisation()
    before = _memory_kb("VmRSS")
    started = time.perf_counter()
    if mode == "migrate":
        result = migrate(loket, KEY, 2, maps=MAPS, actor="operator", keep_refs=False)
        moved, refused = result.count, len(result.refused)
    else:
        moved, refused = floor(loket), 0
    seconds = time.perf_counter() - started
    peak = (_memory_kb("VmHWM") - before) / 1024
    print(json.dumps({"seconds": seconds, "moved": moved, "refused": refused, "peak_mb": peak}))


def floor(loket: Loket) -> int:
    """The migration's statements with none of its work: the same batches by the same queries
    (cases, then their clock events), the same guarded UPDATE of the same columns, one event
    per case inserted the same way, values made up front."""
    digest = "0" * 64
    columns = frozenset(("type_version", "state", "owner", "state_due", "service_due", "case_due", "case_due_limit",
                         "last_seq", "last_hash", "next_fire_at", "last_at", "version"))
    moved, after = 0, 0
    while True:
        with loket.read() as conn:
            batch = cases.migratable(conn, KEY, [1], after=after, limit=BATCH)
            if not batch:
                break
            cases.clock_events(conn, [c.id for c in batch], CLOCK_ACTIONS)
        after = batch[-1].id
        with loket.engine.begin() as conn:
            events, updates = [], []
            for case in batch:
                params = {"_id": case.id, "_version": case.version, "type_version": 2, "state": case.state,
                          "owner": case.owner, "state_due": case.state_due, "service_due": case.service_due,
                          "case_due": case.case_due, "case_due_limit": case.case_due_limit,
                          "last_seq": case.last_seq + 1, "last_hash": digest, "next_fire_at": case.next_fire_at,
                          "last_at": NOW, "version": case.version + 1}
                updates.append(params)
                events.append({"case_id": case.id, "seq": case.last_seq + 1, "at": NOW, "recorded_at": NOW,
                               "actor": "operator", "action": "migrated", "from_state": case.state,
                               "to_state": case.state, "trigger": None, "comment": None,
                               "data": {"from_version": 1, "to_version": 2, "state_map": MAPS,
                                        "deadlines": {"case_due": {"from": "2026-04-28T21:59:59.000000Z",
                                                                   "to": "2026-04-14T21:59:59.000000Z"}}},
                               "digests": None, "prev_hash": case.last_hash, "hash": digest})
            cases.update_many(conn, columns, updates)
            if len(cases.heads(conn, [c.id for c in batch])) != len(batch):
                raise RuntimeError("the floor lost a case")
            insert_rows(conn, events_t, events)
        moved += len(batch)
        if len(batch) < BATCH:
            break
    return moved


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_child(url: str, mode: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", url, mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


# -- the databases ----------------------------------------------------------------------------


def prepare(url: str, count: int, folder: Path) -> None:
    loket = sample_loket(url, START)
    load(loket, count)
    loket.clock = FixedClock(NOW - dt.timedelta(hours=1))
    loket.load_request_types([version_two(folder)])
    loket.engine.dispose()


def report(label: str, engine_run: dict[str, Any], floor_run: dict[str, Any], count: int) -> None:
    rate = engine_run["moved"] / engine_run["seconds"]
    floor_rate = floor_run["moved"] / floor_run["seconds"]
    print(f"{label:<10} {count} open cases: migration {engine_run['seconds']:6.1f} s ({rate:6.0f} cases/s,"
          f" {engine_run['refused']} refused, peak +{engine_run['peak_mb']:.0f} MB)"
          f"   floor {floor_run['seconds']:6.1f} s ({floor_rate:6.0f}/s)   ratio {rate / floor_rate:.2f}")


def bench_sqlite(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "loaded.db"
        prepare(f"sqlite:///{base}", count, Path(tmp))
        runs = {}
        for mode in ("migrate", "floor"):
            copy = Path(tmp) / f"{mode}.db"
            shutil.copyfile(base, copy)
            runs[mode] = run_child(f"sqlite:///{copy}", mode)
        report("sqlite", runs["migrate"], runs["floor"], count)


def bench_pg(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as base:
        prepare(base, count, Path(tmp))
        template = sa.engine.make_url(base).database
        assert template is not None
        runs = {}
        for mode in ("migrate", "floor"):
            with scratch_postgres(template) as url:
                runs[mode] = run_child(url, mode)
        report("postgresql", runs["migrate"], runs["floor"], count)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        bench_sqlite(args.cases)
    if not args.skip_pg:
        bench_pg(args.cases)


if __name__ == "__main__":
    main()
