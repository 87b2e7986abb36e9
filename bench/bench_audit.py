"""`audit verify` and `audit export` over 1,000,000 events: events per second and peak memory.

The history is generated with the engine's own hashing (`event_content`, `chain_hash`) so
that verify really checks 1,000,000 valid links: 100,000 cases of 10 events each (created,
then comments), bulk-inserted with SQLAlchemy Core. Each case row is made by the functions
that make a new case's row (`casework.new_case`, `enter_state`, `next_fire_at`), since verify
also replays every row from its history. Each measurement runs in a fresh child
process that reports its own peak resident memory (VmHWM); the baseline in the same run is
a plain stream of the same rows in the same order, computing nothing. Targets (issue 5):
constant memory, under 200 MB.

    python bench/bench_audit.py [--cases 100000] [--events-per-case 10] [--skip-pg]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from common import sample_loket, scratch_postgres  # noqa: E402

from engine.core import casework  # noqa: E402
from engine.core.history import GENESIS, chain_hash, event_content  # noqa: E402
from engine.store.tables import cases_t, events_t  # noqa: E402

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from engine.store.db import open_engine
from engine.app.service import Loket
import sqlalchemy as sa

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

loket = Loket(open_engine({url!r}))
what = {what!r}
before = peak_mb()
started = time.perf_counter()
if what == "verify":
    from engine.app.verify import verify
    result = verify(loket)
    assert result.ok, result.failure
    count = result.events
elif what == "export":
    from engine.app.export import export
    with open({out!r}, "w") as handle:
        count = export(loket, handle.write, fmt="jsonl")
else:
    from engine.store.tables import events_t
    count = 0
    with loket.read() as conn:
        query = sa.select(events_t).order_by(events_t.c.case_id, events_t.c.seq)
        for _ in conn.execute(query, execution_options={{"yield_per": 5000}}):
            count += 1
elapsed = time.perf_counter() - started
print(json.dumps({{"count": count, "seconds": elapsed, "peak_mb": peak_mb(), "start_mb": before}}))
"""


def build(url: str, cases: int, per_case: int) -> None:
    loket = sample_loket(url, START)
    engine = loket.engine
    version = loket.latest_version("melding")
    rt, cal = loket.request_type("melding", version), loket.calendar()
    started = time.perf_counter()
    batch_cases: list[dict[str, object]] = []
    batch_events: list[dict[str, object]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(sa.insert(cases_t), batch_cases)
            conn.execute(sa.insert(events_t), batch_events)
        batch_cases.clear()
        batch_events.clear()

    for number in range(1, cases + 1):
        ref = f"ME-2026-{number:06d}"
        at = START + dt.timedelta(minutes=number)
        data = {"omschrijving": f"Lantaarnpaal {number}", "locatie": "Kerkstraat"}
        prev = GENESIS
        for seq in range(1, per_case + 1):
            created = seq == 1
            fields = {
                "seq": seq, "at": at, "recorded_at": at, "actor": "c.devries",
                "action": "created" if created else "comment", "from_state": None,
                "to_state": "ontvangen" if created else None, "trigger": None,
                "comment": None if created else f"Opmerking {seq}", "data": data if created else None,
            }
            content = event_content(ref=ref, digests=None, **fields)  # type: ignore[arg-type]
            digest = chain_hash(content, prev)
            batch_events.append({"case_id": number, **fields, "digests": None, "prev_hash": prev, "hash": digest})
            prev = digest
        case = casework.new_case(rt, version, cal, at, ref=ref, actor="c.devries", data=data)
        case = case.apply({**casework.enter_state(rt, cal, case, rt.initial, at),
                           "id": number, "last_seq": per_case, "last_hash": prev, "last_at": at})
        case.next_fire_at = casework.next_fire_at(rt, cal, case)
        batch_cases.append({name: getattr(case, name) for name in casework.CASE_FIELDS})
        if len(batch_cases) >= 2000:
            flush()
    if batch_cases:
        flush()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    print(f"  built {cases * per_case:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    engine.dispose()


def child(url: str, what: str, out: str) -> dict[str, float]:
    code = CHILD.format(root=str(ROOT), url=url, what=what, out=out)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(label: str, url: str, cases: int, per_case: int) -> None:
    build(url, cases, per_case)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "export.jsonl")
        base = child(url, "stream", out)
        for what in ("verify", "export"):
            r = child(url, what, out)
            rate, base_rate = r["count"] / r["seconds"], base["count"] / base["seconds"]
            print(f"{label:<10} {what:<6} {r['count']:>9,} events  {rate:9,.0f} events/s"
                  f"  (plain stream {base_rate:9,.0f}/s, ratio {rate / base_rate:.2f})"
                  f"  peak {r['peak_mb']:5.0f} MB (target 200, ratio {r['peak_mb'] / 200:.2f};"
                  f" plain stream {base['peak_mb']:.0f} MB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--events-per-case", type=int, default=10)
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", f"sqlite:///{Path(tmp) / 'audit.db'}", args.cases, args.events_per_case)
    if not args.skip_pg:
        with scratch_postgres() as url:
            measure("postgresql", url, args.cases, args.events_per_case)


if __name__ == "__main__":
    main()
