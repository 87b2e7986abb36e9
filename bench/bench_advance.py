"""Advances per second through the engine, beside a plain SQLAlchemy Core floor, same run.

The engine's advance reads the case, checks roles and rules, fires the transition through
the cached state machine, recomputes deadlines, chains the event and writes row and event
with a version guard. The floor does the least any implementation must: read the case,
update its state, insert one event and the row of the stay the transition ended (`case_stay`,
schema 0009), commit — with statements built once. Target (issue 2): the engine reaches at
least half of the floor on SQLite (issue 16: and 0.7 on PostgreSQL).

Since schema 0009 an advance also writes the row of the stay it ended, so the floor writes
one too: the ratio stays the share of the database's own speed the engine keeps. Written
from the case as it was read (`Loket.ended_stay_row`), that row costs the engine about 5% of
an advance (cProfile, SQLite); a stay whose deadline a suspension moved reads the case's
history once more (`Loket.record_stays`). Against the floor without that row, on a quiet
machine, the same runs gave SQLite 0.44–0.49 and PostgreSQL 0.44–0.52 (before schema 0009:
0.50–0.56 and 0.48–0.85, the PostgreSQL floor swinging between runs); against this floor,
SQLite 0.65–0.66 and PostgreSQL 0.64–0.75.

Also times `loket --help` and `loket case show REF` beside `python -c pass` and
`python -c "import sqlalchemy"`; `case show` twice: of a case without personal values, and of
one with a resident's name, whose showing writes a row to the access log (SPEC §13.2). These
are a glance: `bench/bench_cli.py` is the start-up's figure (floor and figure alternated, 21
runs). Both run `cli.main` as the console script does, with the project's modules
byte-compiled as `pip install` leaves them.

Engine and floor run in turns, `--rounds` rounds (default 5) of `--n` advances each, and the
best round of each counts, as in the other benches; the spread of the rounds' own ratios is
printed beside. A single run of each, one after the other, swung the ratio by a fifth on this
shared machine (SQLite 0.46-0.78 over five runs of the same code).

    python bench/bench_advance.py [--n 1200] [--rounds 5] [--cases 300] [--skip-pg]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from common import sample_loket, scratch_postgres  # noqa: E402

from engine.app.clock import FixedClock  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.store.db import open_engine  # noqa: E402
from engine.store.tables import cases_t, events_t, stays_t  # noqa: E402

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ACTOR = "c.devries"


def setup(url: str, cases: int) -> tuple[Loket, list[str]]:
    loket = sample_loket(url, START)
    refs = []
    for i in range(cases):
        c = loket.new_case("bewonersinitiatief", [f"title=Initiatief {i}", "amount=500"], actor=ACTOR)
        loket.advance(c.ref, "in_behandeling", actor=ACTOR)
        refs.append(c.ref)
    return loket, refs


def engine_run(loket: Loket, refs: list[str], n: int, start: int = 0) -> float:
    """Each case loops beoordeling → wacht_op_bewoner → beoordeling; `start`: how many
    advances earlier rounds made."""
    plan = []
    for i in range(start, start + n):
        ref = refs[i % len(refs)]
        lap = (i // len(refs)) % 2
        plan.append((ref, "vraag_informatie" if lap == 0 else "informatie_ontvangen"))
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    started = time.perf_counter()
    for ref, trigger in plan:
        clock.advance(dt.timedelta(seconds=1))
        comment = "Graag de begroting" if trigger == "vraag_informatie" else None
        loket.advance(ref, trigger, actor=ACTOR, comment=comment)
    return n / (time.perf_counter() - started)


def floor_run(engine: sa.Engine, refs: list[str], n: int, stays: dict[str, int] | None = None) -> float:
    """`stays`: each case's last stay number, kept across rounds."""
    select = sa.select(cases_t.c.id, cases_t.c.state, cases_t.c.version, cases_t.c.last_seq,
                       cases_t.c.last_hash).where(cases_t.c.ref == sa.bindparam("ref"))
    update = (sa.update(cases_t)
              .where(cases_t.c.id == sa.bindparam("_id"), cases_t.c.version == sa.bindparam("_v"))
              .values(state=sa.bindparam("state"), version=sa.bindparam("nv"), last_seq=sa.bindparam("seq")))
    insert = sa.insert(events_t)
    stay = sa.insert(stays_t)
    now = START
    stays = {} if stays is None else stays
    started = time.perf_counter()
    for i in range(n):
        ref = refs[i % len(refs)]
        number = stays[ref] = stays.get(ref, 100) + 1
        with engine.begin() as conn:
            row = conn.execute(select, {"ref": ref}).one()
            new_state = "wacht_op_bewoner" if row.state == "beoordeling" else "beoordeling"
            conn.execute(update, {"_id": row.id, "_v": row.version, "state": new_state,
                                  "nv": row.version + 1, "seq": row.last_seq + 1})
            conn.execute(insert, {"case_id": row.id, "seq": row.last_seq + 1, "at": now, "recorded_at": now,
                                  "actor": ACTOR, "action": "transition", "from_state": row.state,
                                  "to_state": new_state, "trigger": "x", "comment": None, "data": None,
                                  "digests": None, "prev_hash": row.last_hash, "hash": row.last_hash})
            conn.execute(stay, {"case_id": row.id, "stay": number, "end_seq": row.last_seq + 1,
                                "type_key": "bewonersinitiatief", "type_version": 1, "state": row.state,
                                "unit": "wijkteam", "entered_at": now, "left_at": now, "days": 0.0,
                                "stay_us": 0, "due_at": None, "due_on": None, "met": None})
    return n / (time.perf_counter() - started)


def compare(label: str, url: str, n: int, cases: int, rounds: int) -> None:
    """`rounds` rounds of `n` advances each, the engine's and the floor's in turn; the best
    round of each counts (on a shared machine the slower ones measure its load), and the
    median round's ratio is shown beside."""
    loket, refs = setup(url, cases)
    # The floor runs on a second set of cases so that it never breaks the engine's chains.
    _, floor_refs = setup_more(loket, cases)
    engine_rates: list[float] = []
    floor_rates: list[float] = []
    stays: dict[str, int] = {}
    for number in range(rounds):
        engine_rates.append(engine_run(loket, refs, n, start=number * n))
        floor_rates.append(floor_run(loket.engine, floor_refs, n, stays))
    best_engine, best_floor = max(engine_rates), max(floor_rates)
    ratios = [e / f for e, f in zip(engine_rates, floor_rates, strict=True)]
    print(f"{label:<10} engine {best_engine:8.0f} advances/s   floor (Core) {best_floor:8.0f}/s"
          f"   ratio {best_engine / best_floor:.2f}   (best of {rounds} rounds; rounds' ratios"
          f" {min(ratios):.2f}-{max(ratios):.2f}, median {statistics.median(ratios):.2f})")
    loket.engine.dispose()


def setup_more(loket: Loket, cases: int) -> tuple[Loket, list[str]]:
    refs = []
    for i in range(cases):
        c = loket.new_case("bewonersinitiatief", [f"title=Floor {i}"], actor=ACTOR)
        loket.advance(c.ref, "in_behandeling", actor=ACTOR)
        refs.append(c.ref)
    return loket, refs


def wall(cmd: list[str], env: dict[str, str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def cli_times(db_url: str, ref: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # As installed: pip writes the bytecode at install time. With PYTHONDONTWRITEBYTECODE (set
    # on some development machines) every run would compile the project's modules again
    # (~70 ms); without it the first run writes them (`wall` takes the median of its runs).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = sys.executable
    base = wall([py, "-c", "pass"], env)
    sa_import = wall([py, "-c", "import sqlalchemy"], env)
    # What the `loket` console script runs: `cli.main`, imported (so cli.py is byte-compiled too).
    loket = [py, "-c", "import sys; from cli import main; sys.exit(main())"]
    helptime = wall([*loket, "--help"], env)
    show = wall([*loket, "--db", db_url, "case", "show", ref], env)
    print(f"python -c pass {base:6.0f} ms   import sqlalchemy {sa_import:6.0f} ms   "
          f"loket --help {helptime:6.0f} ms (ratio to pass {helptime / base:.2f})   "
          f"loket case show {show:6.0f} ms (ratio to import sqlalchemy {show / sa_import:.2f})")
    engine = open_engine(db_url)
    personal = Loket(engine, FixedClock(START)).new_case(
        "bewonersinitiatief", ["title=Met naam", "name=Bewoner Bench"], actor=ACTOR).ref
    engine.dispose()
    logged = wall([*loket, "--db", db_url, "case", "show", personal], env)
    print(f"loket case show with personal values (access log written) {logged:6.0f} ms"
          f" (ratio to import sqlalchemy {logged / sa_import:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1200, help="advances per round (an even multiple of --cases)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of engine and floor in turn")
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    if args.n % (2 * args.cases):
        parser.error("--n must be an even multiple of --cases (each case loops through two states)")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        compare("sqlite", url, args.n, args.cases, args.rounds)
        cli_times(url, "BI-2026-00001")
    if not args.skip_pg:
        with scratch_postgres() as url:
            compare("postgresql", url, args.n, args.cases, args.rounds)


if __name__ == "__main__":
    main()
