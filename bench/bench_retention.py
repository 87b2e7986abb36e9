"""`retention run` at scale: destroying 100,000 due cases, against a floor of the same deletes.

For SQLite and PostgreSQL:

- N closed cases (default 100,000) of a type with `retention: {after: {years: 1}, action:
  destroy}`, each with the events, outbox rows and escalations of a case made and closed
  through the engine, all past their term: `retention run` destroys them all (cases/s), and its
  peak memory (which must not grow with N: the run reads batch by batch);
- the floor: on another copy of the same database, the same statements the run's batches send
  to the database — per batch of the same size, in one transaction: read the batch's cases,
  insert their tombstones, delete their rows from every table of a case and the case rows —
  with nothing else (no term arithmetic, no lease, no configuration event, no checkpoint).
  run / floor is the share of the database's own speed the product keeps.

Loading through the API would take long, so the bench makes one template case through the
engine (`new_case`, a comment, `advance` to a final state) and copies its rows N times with
INSERT ... SELECT in the database. The copies' chains are the template's (same hashes), which
`retention run` does not check (verify would refuse the copies; the tests cover verify).

Each measurement runs in a fresh child process on its own copy of the loaded database, timed
around the call alone; its peak memory is the peak resident set after the call (VmHWM) less the
resident set just before it (VmRSS).

    python bench/bench_retention.py [--cases 100000] [--skip-pg] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from common import scratch_postgres  # noqa: E402

from engine.app.bundled import sample_paths  # noqa: E402
from engine.app.clock import FixedClock  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.store import retention as store  # noqa: E402
from engine.store.db import migrate, open_engine  # noqa: E402
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t, tombstones_t  # noqa: E402

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
LATER = START + dt.timedelta(days=400)
TYPE = "bewonersinitiatief"


def _types(folder: Path) -> list[str]:
    _org, paths = sample_paths()
    written = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        if Path(path).stem == TYPE:
            text += "\nretention: {after: {years: 1}, action: destroy}\n"
        target = folder / Path(path).name
        target.write_text(text, encoding="utf-8")
        written.append(str(target))
    return written


def load(url: str, cases: int, folder: Path) -> None:
    """The sample municipality with `cases` closed copies of one template case."""
    engine = open_engine(url, create=True)
    migrate(engine)
    loket = Loket(engine, FixedClock(START))
    org, _paths = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(_types(folder))
    data = ["title=Straatfeest", "name=Geertruida Zwanenburg", "email=g.zwanenburg@example.org", "amount=500"]
    ref = loket.new_case(TYPE, data, actor="c.devries").ref
    loket.comment(ref, "gebeld met de aanvrager", actor="c.devries")
    loket.advance(ref, "intrekken", comment="ingetrokken door de bewoner", actor="c.devries")
    template = loket.get_case(ref).id
    with engine.begin() as conn:
        nums = sa.Table(f"bench_nums_{uuid.uuid4().hex[:6]}", sa.MetaData(), sa.Column("i", sa.Integer))
        nums.create(conn)
        conn.execute(sa.insert(nums), [{"i": i} for i in range(1, cases + 1)])
        case_cols = [c.name for c in cases_t.c if c.name != "id"]
        conn.execute(sa.insert(cases_t).from_select(case_cols, sa.select(*[
            (sa.literal("BX-") + sa.cast(nums.c.i, sa.String)).label("ref") if name == "ref" else cases_t.c[name]
            for name in case_cols]).select_from(cases_t.join(nums, sa.true())).where(cases_t.c.id == template)))
        copies = sa.select(cases_t.c.id).where(cases_t.c.ref.like("BX-%")).subquery()
        for table in (events_t, outbox_t, escalations_t):
            cols = [c.name for c in table.c if c.name != "id"]
            exprs = []
            for name in cols:
                if name == "case_id":
                    exprs.append(copies.c.id.label("case_id"))
                elif name == "key":
                    exprs.append((table.c.key + sa.literal("/") + sa.cast(copies.c.id, sa.String)).label("key"))
                else:
                    exprs.append(table.c[name])
            conn.execute(sa.insert(table).from_select(cols, sa.select(*exprs).select_from(
                table.join(copies, sa.true())).where(table.c.case_id == template)))
        nums.drop(conn)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_run(url: str) -> None:
    from engine.app import retention

    before = _memory_kb("VmRSS")
    started = time.perf_counter()
    loket = Loket(open_engine(url), FixedClock(LATER))
    result = retention.run(loket, "selectielijst", by=loket.identity("a.jansen"))
    seconds = time.perf_counter() - started
    after = _memory_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "destroyed": result.destroyed, "peak_mb": (after - before) / 1024}))


def child_floor(url: str) -> None:
    """The same batches of reads, tombstone inserts and deletes, and nothing else."""
    before = _memory_kb("VmRSS")
    started = time.perf_counter()
    engine = open_engine(url)
    tables = store.case_tables()
    c = cases_t.c
    destroyed, last = 0, 0
    now = LATER
    while True:
        with engine.begin() as conn:
            rows = conn.execute(sa.select(c.id, c.ref, c.type_key, c.type_version, c.closed_at, c.last_seq,
                                          c.last_hash).where(c.closed_at.is_not(None), c.id > last)
                                .order_by(c.id).limit(store.BATCH).with_for_update()).all()
            if not rows:
                break
            last = rows[-1].id
            ids = [r.id for r in rows]
            conn.execute(sa.insert(tombstones_t), [
                {"case_id": r.id, "ref": r.ref, "type_key": r.type_key, "type_version": r.type_version,
                 "closed_at": r.closed_at, "term": "1 year", "due_on": r.closed_at.date(), "destroyed_at": now,
                 "destroyed_by": "a.jansen", "reason": "selectielijst", "run": 1, "last_seq": r.last_seq,
                 "last_hash": r.last_hash} for r in rows])
            for table in tables:
                conn.execute(sa.delete(table).where(table.c.case_id.in_(ids)))
            conn.execute(sa.delete(cases_t).where(c.id.in_(ids)))
            destroyed += len(ids)
    seconds = time.perf_counter() - started
    after = _memory_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "destroyed": destroyed, "peak_mb": (after - before) / 1024}))


def _child(kind: str, url: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, url], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _report(backend: str, cases: int, run: dict[str, float], floor: dict[str, float]) -> None:
    cases += 1  # the template
    assert run["destroyed"] == floor["destroyed"] == cases, (run, floor)
    print(f"{backend}: retention run destroyed {cases:,} cases in {run['seconds']:.1f} s"
          f" ({cases / run['seconds']:,.0f}/s), peak memory {run['peak_mb']:.0f} MB;"
          f" floor {floor['seconds']:.1f} s ({cases / floor['seconds']:,.0f}/s, peak {floor['peak_mb']:.0f} MB);"
          f" run/floor {run['seconds'] / floor['seconds']:.2f}")


def bench_sqlite(cases: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "wf").mkdir()
        loaded = base / "loaded.db"
        load(f"sqlite:///{loaded}", cases, base / "wf")
        results = {}
        for kind in ("run", "floor"):
            copy = base / f"{kind}.db"
            shutil.copy(loaded, copy)
            results[kind] = _child(kind, f"sqlite:///{copy}")
        _report("SQLite", cases, results["run"], results["floor"])


def bench_pg(cases: int) -> None:
    with tempfile.TemporaryDirectory() as folder, scratch_postgres() as url:
        (Path(folder) / "wf").mkdir()
        load(url, cases, Path(folder) / "wf")
        results = {}
        for kind in ("run", "floor"):
            with scratch_postgres(sa.engine.make_url(url).database) as copy:
                results[kind] = _child(kind, copy)
        _report("PostgreSQL", cases, results["run"], results["floor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url = args.child
        (child_run if kind == "run" else child_floor)(url)
        return
    if not args.skip_sqlite:
        bench_sqlite(args.cases)
    if not args.skip_pg:
        bench_pg(args.cases)


if __name__ == "__main__":
    main()
