"""The escalation sweep at scale: cost follows the cases that fire, not the cases that are open.

For SQLite and PostgreSQL, same run:

- 1,000,000 open cases of which 10,000 are overdue: the sweep that fires them (firings/s
  against the target of 5,000/s, and its peak memory against the target of 200 MB);
- the same 1,000,000 when none is due (seconds against the target of 0.1 s);
- 100,000 open cases with the same 10,000 overdue: sweep(1M) / sweep(100k) should be ~1;
- the baseline: a floor that sends the firing sweep's statements (claim, guarded UPDATE,
  event, escalation and outbox inserts, same batches, same driver calls) with rows made up
  front, on another fresh copy. sweep / floor is the share of the database's own speed the
  engine keeps, which moves far less between machines than firings/s does.

Loading a million cases through the API would take an hour, so the bench makes a few
template cases through the engine (`Loket.new_case`, `advance`, and a sweep that fires their
reminders) and bulk-copies those rows — SQLAlchemy Core executemany on SQLite, COPY on
PostgreSQL. Shortcut: the copies get no events of their own; each starts an empty chain
(`last_seq` 0, the genesis hash), so the `escalated` events the sweep writes hash-link
correctly, but a copy's history lacks its `created` and `transition` events and `loket
audit verify`, which replays the history, would refuse it. Every overdue copy
has exactly one rung due (its reminder fired before; the lead is due now), so firings equal
overdue cases. PostgreSQL gets an ANALYZE after loading, as autovacuum would do.

Where the sweep's time goes (issue 16). The database's part is the floor: about 80 µs a
firing on SQLite and about 200 on PostgreSQL on a quiet machine (binding and sending the rows;
the same on both sides of the ratio). The engine adds its own work on top, the same on both
databases. Before issue 16 that was about 125 µs a firing, 105 after its first step (sweep /
floor then ≈0.53 on SQLite, 0.44–0.55 on PostgreSQL); firing case by case, staging the case
(`Loket.stage_case`: the hash chain, `next_fire_at`, the row's parameters) was some 40% of it,
the notice's facts a fifth, the ladder under a tenth.

The sweep now works per group (`engine.app.sweep._Firer`): due cases that agree on everything
a firing reads (type version, state, owner, assignee, deadlines, what already fired, the
instruction) share one plan — ladder, recipients, `next_fire_at`, notice facts, subject and
the rows. A group's first case fires by the general path; when a second comes, the plan is
made from what that path wrote and checked to reproduce it. Per case remain its reference,
id, version, summary and hash chain: the canonical JSON is the group's text with the
reference, number and batch's `recorded_at` filled in (the encoder's bytes; see
`tests/test_sweep_groups.py`). That is about 8 µs a firing (CPU, cProfile and timeit over the
5,000 due cases of a 20,000-case copy, SQLite): finding the group ~1.2, the hash chain ~1.3,
the rows from the group's ~2.5 (event, escalation, outbox row and its facts, UPDATE
parameters, the report), summary, subject and command ~1.2, the loop the rest; plus about
0.1 ms per group and sweep to make its plan, and ~12 ms at the start (reading the
definitions). A group's rows carry plain text where the general path has enumeration
members, which the driver would otherwise adapt row by row (~1.5 µs a firing). The bench's
copies fall in a few groups of thousands; real cases, with their own assignees and days of
entry, make smaller groups, and a case alone in its group costs what it did before. The ratio
moves only with the engine's own work: cheaper statements (binding, one UPDATE per batch)
would lower the floor as much as the sweep.

The floor must send the sweep's statements. After it was written the sweep came to write more
(`last_at` in its UPDATE, `salts` in its events, `extendable` and `summary` in an email's
facts); the floor now writes those too (some 5–10% of its time), and `tests/test_sweep_groups.py`
holds its rows to the sweep's shapes.

Figures, two runs of the defaults (1,000,000 and 100,000 open, 10,000 overdue, best of 3) on
2 CPUs shared with other work (load average 3–4: ±15% from run to run):

    SQLite      sweep 1.14, 1.73 s (8,700, 5,800 firings/s); floor 1.04, 1.65 s: 0.91, 0.96
    PostgreSQL  sweep 1.69, 2.26 s (5,900, 4,400 firings/s); floor 1.80, 2.06 s: 1.07, 0.91

CPU time, which the shared machine disturbs less (SQLite, 5,000 firings on a 20,000-case copy,
best of 5 each): sweep / floor 0.91–1.02, and 0.93 against the floor as it was before it
gained the sweep's newer columns (one wall-clock run with that old floor and an earlier state
of the groups gave 0.77 on SQLite and 0.82 on PostgreSQL).

Each sweep runs in a fresh child process (`--child`) on a fresh copy of the loaded database
(a file copy, or CREATE DATABASE ... TEMPLATE), timed around the `sweep()` call alone
(opening the connection and reading the definitions included, imports excluded); the best of
`--repeat` runs counts, as the machine may be shared. Its peak memory is the peak resident
set after the call (VmHWM) less the resident set just before it (VmRSS).

    python bench/bench_sweep.py [--open 1000000] [--small 100000] [--overdue 10000]
                                [--repeat 3] [--skip-pg] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from engine.app.bundled import sample_paths  # noqa: E402
from engine.app.clock import FixedClock  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.app.sweep import BATCH, sweep  # noqa: E402
from engine.core.history import GENESIS  # noqa: E402
from engine.store.cases import CASE_COLUMNS, update_case  # noqa: E402
from engine.store.db import migrate, open_engine  # noqa: E402
from engine.store.sweeps import insert_rows  # noqa: E402
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t  # noqa: E402

PG_SERVER = os.environ.get("LOKET_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
STAFF = "c.devries"
# Overdue templates enter `beoordeling` (10 working days) on Monday 2 or Tuesday 3 March 2026:
# reminders due on 12-13 March, leads on 16-17 March, heads (5 working days on) from 23 March.
OVERDUE_DAYS = [dt.datetime(2026, 3, d, h, tzinfo=dt.UTC) for d in (2, 3) for h in (8, 10, 13, 15)]
REMINDERS_AT = dt.datetime(2026, 3, 14, 12, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=1)
TARGET_RATE, TARGET_EMPTY, TARGET_MB = 5000, 0.1, 200
CHUNK = 50_000


# -- templates and bulk loading ---------------------------------------------------------------


def make_templates(loket: Loket) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Real cases made by the engine: overdue ones (lead due at NOW) and ones not yet due."""
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    due_refs = []
    for i, at in enumerate(OVERDUE_DAYS):
        clock.set(at)
        case = loket.new_case("bewonersinitiatief", [f"title=Initiatief {i}", "amount=750"],
                              actor=STAFF, assign=STAFF if i % 2 else None)
        loket.advance(case.ref, "in_behandeling", actor=STAFF)
        due_refs.append(case.ref)
    sweep(loket, REMINDERS_AT)  # their reminders (rung 1) fire; the lead (rung 2) is next
    later_refs = []
    for i in range(12):
        clock.set(NOW - dt.timedelta(hours=i))
        kind = i % 3
        if kind == 0:
            case = loket.new_case("melding", ["omschrijving=Lantaarnpaal kapot",
                                              "locatie=Lindelaan 4", "categorie=verlichting"],
                                  actor=STAFF)
        else:
            case = loket.new_case("bewonersinitiatief", [f"title=Later {i}"], actor=STAFF)
            if kind == 2:
                loket.advance(case.ref, "in_behandeling", actor=STAFF)
        later_refs.append(case.ref)
    with loket.read() as conn:
        rows = {r["ref"]: dict(r) for r in conn.execute(sa.select(cases_t)).mappings()}
    due = [rows[ref] for ref in due_refs]
    later = [rows[ref] for ref in later_refs]
    assert all(r["next_fire_at"] <= NOW for r in due)
    assert all(r["next_fire_at"] > LATER for r in later)
    return due, later


def copies(
    templates: list[dict[str, Any]], count: int, first_id: int, prefix: str
) -> Iterator[dict[str, Any]]:
    """`count` copies of the templates, round robin, each its own case with an empty chain."""
    for n in range(count):
        row = dict(templates[n % len(templates)])
        case_id = first_id + n
        row.update(id=case_id, ref=f"{prefix}-{case_id:07d}", last_seq=0, last_hash=GENESIS,
                   version=1, data={**row["data"], "title": f"Kopie {case_id}"})
        yield row


def load(loket: Loket, open_cases: int, overdue: int) -> None:
    due, later = make_templates(loket)
    with loket.read() as conn:
        first = conn.execute(sa.select(sa.func.max(cases_t.c.id))).scalar_one() + 1
    rows = [copies(due, overdue - len(due), first, "BK"),
            copies(later, open_cases - overdue - len(later), first + overdue - len(due), "BL")]
    if loket.engine.dialect.name == "postgresql":
        _copy_pg(loket.engine, rows)
    else:
        _executemany(loket.engine, rows)
    count = sa.select(sa.func.count()).select_from(cases_t)
    with loket.read() as conn:
        total = conn.execute(count).scalar_one()
        due_now = conn.execute(count.where(cases_t.c.next_fire_at <= NOW)).scalar_one()
    assert (total, due_now) == (open_cases, overdue), (total, due_now)


def _executemany(engine: sa.Engine, sources: list[Iterator[dict[str, Any]]]) -> None:
    insert = sa.insert(cases_t)
    for source in sources:
        while True:
            chunk = [row for _, row in zip(range(CHUNK), source, strict=False)]
            if not chunk:
                break
            with engine.begin() as conn:
                conn.execute(insert, chunk)


def _copy_pg(engine: sa.Engine, sources: list[Iterator[dict[str, Any]]]) -> None:
    columns = [c.name for c in cases_t.columns]
    statement = f"COPY cases ({', '.join(columns)}) FROM STDIN"
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            with cur.copy(statement) as copy:
                for source in sources:
                    for row in source:
                        copy.write_row([json.dumps(row[c]) if c == "data" else row[c]
                                        for c in columns])
            cur.execute("ANALYZE cases")
        raw.commit()
    finally:
        raw.close()


# -- measuring in a child process -------------------------------------------------------------


def child(url: str, now: str, mode: str) -> None:
    """Run one sweep (or its floor) and print its time, outcome and how far it raised the
    peak resident set."""
    loket = Loket(open_engine(url), FixedClock(dt.datetime.fromisoformat(now)))
    before = _memory_kb("VmRSS")
    started = time.perf_counter()
    fired = len(sweep(loket).fired) if mode == "sweep" else floor(loket, loket.clock.now())
    seconds = time.perf_counter() - started
    after = _memory_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "fired": fired, "peak_mb": (after - before) / 1024}))


# An outbox context of the shape and size the sweep writes for a lead's escalation of a copy.
FLOOR_CONTEXT = {
    "municipality": "Gemeente Voorbeeld", "recipient_name": "Bram Bakker", "ref": "BK-0000000",
    "type_title": "Bewonersinitiatief (wijkbudget)", "state_label": "In beoordeling",
    "unit_name": "Wijkteam Noord", "assignee_name": "Chris de Vries", "due_at": "2026-03-16T22:59:59.000000Z",
    "command": "loket case show BK-0000000", "case_id": 0, "event_seq": 1, "rung": 2,
    "ladder_size": 4, "asked": "lead", "resolved": "lead", "extendable": True, "days_overdue": 4,
    "summary": [["Naam van het initiatief", "Kopie 000000"], ["Gevraagd bedrag (EUR)", "750"]],
}
FLOOR_COLUMNS = frozenset(("escalation_level", "last_seq", "last_hash", "next_fire_at", "version", "last_at"))
"""The columns the sweep's guarded UPDATE writes for a ladder rung."""


def floor_rows(
    case: Any, now: dt.datetime, later: dt.datetime, digest: str,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The floor's UPDATE parameters, event, escalation and outbox row for one claimed case:
    the shapes and sizes of the sweep's own (a test holds them to the sweep's)."""
    seq = case["last_seq"] + 1
    params = {"_id": case["id"], "_version": case["version"], "escalation_level": 2, "last_seq": seq,
              "last_hash": digest, "next_fire_at": later, "version": case["version"] + 1, "last_at": now}
    event = {
        "case_id": case["id"], "seq": seq, "at": now, "recorded_at": now, "actor": "system",
        "action": "escalated", "from_state": case["state"], "to_state": None, "trigger": None,
        "comment": None, "data": {"rung": "2", "kind": "escalation", "to": "b.bakker",
                                  "asked": "lead", "due_at": "2026-03-16T22:59:59.000000Z"},
        "digests": None, "salts": None, "prev_hash": case["last_hash"], "hash": digest,
    }
    escalation = {"case_id": case["id"], "stay": case["stay"], "rung": "2", "state": case["state"],
                  "unit": case["owner"], "recipient": "b.bakker", "due_at": now, "fired_at": now,
                  "type_key": case["type_key"]}
    mail = {
        "key": f"{case['ref']}/{case['stay']}/2", "case_id": case["id"], "kind": "escalation",
        "language": "nl", "recipient": "b.bakker", "to_email": "b.bakker@voorbeeld.example",
        "to_name": "Bram Bakker",
        "subject": f"Escalatie {case['ref']}: Bewonersinitiatief (wijkbudget) — In beoordeling",
        "context": {**FLOOR_CONTEXT, "ref": case["ref"], "case_id": case["id"], "event_seq": seq},
        "created_at": now, "status": "pending", "attempts": 0, "next_attempt_at": now,
    }
    return params, event, escalation, mail


def floor(loket: Loket, now: dt.datetime) -> int:
    """The sweep's statements with none of its work: the baseline of the same run.

    The same claim (same columns, order, batch and lock), the same guarded UPDATE of the same
    columns, and the same inserts into the event, escalation and outbox tables through the
    same driver calls, with rows of the same shape and size, but made up front: no ladder, no
    calendar, no hash chain, no email context. What the engine adds on top of this is the
    engine's cost; this part is the database's (and the machine's).
    """
    later = now + dt.timedelta(days=30)
    digest = "0" * 64
    statement = update_case(FLOOR_COLUMNS)
    fired = 0
    while True:
        with loket.engine.begin() as conn:
            claimed = conn.execute(
                sa.select(*CASE_COLUMNS).where(cases_t.c.next_fire_at <= now)
                .order_by(cases_t.c.next_fire_at).limit(BATCH).with_for_update(skip_locked=True)
            ).mappings().all()
            if not claimed:
                break
            params, events, escalations, mails = [], [], [], []
            for case in claimed:
                update, event, escalation, mail = floor_rows(case, now, later, digest)
                params.append(update)
                events.append(event)
                escalations.append(escalation)
                mails.append(mail)
            if conn.execute(statement, params).rowcount != len(params):
                raise RuntimeError("the floor's guarded update missed")
            for table, rows in ((events_t, events), (escalations_t, escalations), (outbox_t, mails)):
                insert_rows(conn, table, rows)
            fired += len(claimed)
        if len(claimed) < BATCH:
            break
    return fired


def _memory_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (the peak) of this process, from Linux's /proc.

    Not ru_maxrss: a child process inherits that from its parent, and the parent holds
    the bulk load's rows, so every child would report the parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(url: str, now: dt.datetime, mode: str = "sweep") -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", url, now.isoformat(), mode],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


# -- one backend ------------------------------------------------------------------------------


def fresh(url: str) -> Loket:
    engine = open_engine(url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(OVERDUE_DAYS[0]))
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    return loket


class Server:
    """Where the databases live: fresh ones, and copies of a loaded one for each measurement."""

    def __init__(self, label: str, folder: Path) -> None:
        self.label = label
        self.folder = folder
        self.names: list[str] = []
        self.admin = None
        if label != "sqlite":
            self.admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        if self.admin is None:
            return f"sqlite:///{self.folder / name}.db"
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        name = f"{name}_{uuid.uuid4().hex[:8]}"
        if self.admin is None:
            if template is not None:
                shutil.copyfile(self.folder / f"{template}.db", self.folder / f"{name}.db")
        else:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"'
                                     + (f' TEMPLATE "{template}"' if template else ""))
        self.names.append(name)
        return name

    def drop(self, name: str) -> None:
        if self.admin is None:
            (self.folder / f"{name}.db").unlink()
        else:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names.remove(name)

    def close(self) -> None:
        for name in list(self.names):
            self.drop(name)
        if self.admin is not None:
            self.admin.dispose()


def loaded(server: Server, open_cases: int, overdue: int) -> tuple[str, float]:
    """A database holding `open_cases` cases, `overdue` of them due at NOW; its load time."""
    name = server.create(f"loaded_{open_cases}")
    loket = fresh(server.url(name))
    started = time.perf_counter()
    load(loket, open_cases, overdue)
    loket.engine.dispose()
    if server.admin is None:  # one self-contained file, ready to be copied
        with contextlib.closing(sqlite3.connect(server.folder / f"{name}.db")) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return name, time.perf_counter() - started


def sweeps(
    server: Server, loaded_name: str, repeat: int, then_empty: bool
) -> tuple[list[Any], list[Any], list[Any]]:
    """On `repeat` fresh copies each: the firing sweep, then (if asked) a sweep with none due;
    and the floor of the firing sweep."""
    firing, empty, floors = [], [], []
    for _ in range(repeat):
        name = server.create("copy", template=loaded_name)
        firing.append(measure(server.url(name), NOW))
        if then_empty:
            empty.append(measure(server.url(name), LATER))
        server.drop(name)
        name = server.create("floor", template=loaded_name)
        floors.append(measure(server.url(name), NOW, "floor"))
        server.drop(name)
    return firing, empty, floors


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda run: run["seconds"])


def backend(server: Server, open_cases: int, small: int, overdue: int, repeat: int) -> None:
    big_name, big_load = loaded(server, open_cases, overdue)
    small_name, small_load = loaded(server, small, overdue)
    print(f"{server.label}: loaded {open_cases:,} cases in {big_load:.1f} s, {small:,} in"
          f" {small_load:.1f} s; best of {repeat} runs, each on a fresh copy")
    big_runs, empty_runs, floor_runs = sweeps(server, big_name, repeat, then_empty=True)
    small_runs, _, _ = sweeps(server, small_name, repeat, then_empty=False)
    big, empty, little, base = best(big_runs), best(empty_runs), best(small_runs), best(floor_runs)
    assert all(r["fired"] == overdue for r in big_runs + small_runs + floor_runs), (big_runs, small_runs)
    assert all(r["fired"] == 0 for r in empty_runs), empty_runs
    rate = overdue / big["seconds"]
    peak = max(r["peak_mb"] for r in big_runs)
    runs = ", ".join(f"{r['seconds']:.2f}" for r in big_runs)
    print(f"  sweep firing {overdue:,} of {open_cases:,} open: {big['seconds']:.2f} s ({runs})"
          f" = {rate:,.0f} firings/s; ratio to the target {TARGET_RATE:,}/s:"
          f" {rate / TARGET_RATE:.2f}")
    floor_rate = overdue / base["seconds"]
    print(f"  floor, the same statements with rows made up front: {base['seconds']:.2f} s"
          f" = {floor_rate:,.0f} firings/s; sweep / floor: {rate / floor_rate:.2f}")
    print(f"  peak memory of that sweep: {peak:.1f} MB; ratio to the target {TARGET_MB} MB:"
          f" {peak / TARGET_MB:.2f}")
    print(f"  sweep with none due ({open_cases:,} open): {empty['seconds']:.4f} s; ratio to the"
          f" target {TARGET_EMPTY} s: {empty['seconds'] / TARGET_EMPTY:.2f}")
    print(f"  sweep firing {overdue:,} of {small:,} open: {little['seconds']:.2f} s;"
          f" sweep({open_cases:,}) / sweep({small:,}): {big['seconds'] / little['seconds']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open", type=int, default=1_000_000, help="cases in the big database")
    parser.add_argument("--small", type=int, default=100_000, help="cases in the small one")
    parser.add_argument("--overdue", type=int, default=10_000, help="overdue cases in both")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each sweep (best counts)")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("URL", "NOW", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    started = time.perf_counter()
    labels = [label for label, skip in (("sqlite", args.skip_sqlite), ("postgresql", args.skip_pg))
              if not skip]
    for label in labels:
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(label, Path(tmp))
            try:
                backend(server, args.open, args.small, args.overdue, args.repeat)
            finally:
                server.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench took {time.perf_counter() - started:.0f} s; load average now {load}"
          f" on {os.cpu_count()} CPUs (the database server shares them)")


if __name__ == "__main__":
    main()
