"""Start-up of a read command: `loket case show REF` beside `python -c "import sqlalchemy"`.

The figure is the wall time of one `loket case show REF` process, start to exit, on a SQLite
database with the sample organisation, the bundled request types and a few cases, with the
identity issue's rules on: the clerk running it has a `login` (the account running the
bench), so who acts is established by the login, the case is read on a need-to-know basis,
and showing its personal values (a `bijdrage` with a resident's name) writes an access-log
row. The floor is `python -c "import sqlalchemy"`: an interpreter that loads the database
library and does nothing. Floor and figure are run alternately, `--runs` times each (default
21), in the same window, and the medians count (the machine is shared: the minimum is printed
too). The bench checks that every run showed the personal value and logged it.

Where the start-up went (`python -X importtime`, cumulative, one run; importtime's own overhead
inflates every figure alike). Before issue 16's step, `engine.app.service` took ~630 ms of
~740 ms of imports: `sqlalchemy` itself ~200 (the floor pays that too), `engine.store.schema`
~280 — of which `sqlmodel` ~170 (its `main` building on `sqlalchemy.orm` ~70, pydantic ~40) and
the PostgreSQL dialect ~40 for JSONB (imported again by `engine.store.outbox` for its
`insert`) — and the engine's own modules ~100 (organisation, identity, definitions,
`transitions` through `engine.core.machine`); `cli` with click ~65. Jinja2, Alembic, Mako,
ruamel.yaml, APScheduler and the notifications were already off the path (each command imports
inside its function; the schema check is one query, not Alembic). The query, the need-to-know
check and the access-log insert take a few milliseconds.

After it (the PostgreSQL dialect and `transitions` imported where used): ~470 ms of imports,
of which `sqlalchemy` ~190 (the floor), `sqlmodel` ~180 (with `sqlalchemy.orm` ~75 and pydantic
~20), click and `cli` ~55, the engine's own modules ~30. Measured, same window, runs alternated
(`--baseline` with a `git archive` of main before the step): 2.44x (baseline 2.59x).

Issue 16's second step keeps SQLModel as the one declaration of the schema and takes it off
the path: every statement uses a Core mirror of the tables, `engine/store/tables.py`, generated
from the SQLModel classes (`python -m engine.store.mirror --write`, checked by
tests/test_tables.py); only migrating (`loket init`) imports the classes. A read command then
imports no SQLModel, pydantic or ORM: `engine.app.service` and all it loads ~280 ms, of which
`sqlalchemy` ~195 (the floor), its SQLite dialect ~20 (with the aiosqlite module it loads
too) and the engine's own modules ~60; click and `cli` ~40.
Measured on the 2-core machine shared with other work (load average 3-5), runs alternated,
15 runs: 1.37x and 1.52x with `--baseline` (a `git archive` of the branch point: 2.46x and
2.92x in the same windows), 1.27x, 1.45x and 1.59x alone (before the step, alone: 2.67x).
Lazy click subcommands were not needed.

    python bench/bench_cli.py [--runs 21] [--cases 5] [--importtime] [--baseline TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.app.bundled import sample_paths  # noqa: E402
from engine.app.identity import os_login  # noqa: E402
from engine.app.service import Loket  # noqa: E402
from engine.core.yamlfile import load_file  # noqa: E402
from engine.store.db import migrate, open_engine  # noqa: E402

CLERK = "c.devries"
NAME = "Bewoner Benchmark"


def make_database(folder: Path, cases: int) -> tuple[str, str]:
    """A SQLite database in `folder`, the clerk's login the account running this; (url, a ref)."""
    org, types = sample_paths()
    data = json.loads(json.dumps(load_file(org)[0], default=str))
    login = os_login()
    for person in data["people"]:
        if person["id"] == CLERK:
            person["login"] = login
        elif person.get("login") == login:
            del person["login"]
    org_file = folder / "organisation.yaml"
    org_file.write_text(json.dumps(data), encoding="utf-8")
    url = f"sqlite:///{folder / 'loket.db'}"
    engine = open_engine(url, create=True)
    migrate(engine)
    loket = Loket(engine)
    loket.load_organisation(org_file)
    loket.load_request_types(types)
    refs = [loket.new_case("bijdrage", [f"resident_name={NAME} {n}", f"title=Bank {n}"], actor=CLERK).ref
            for n in range(cases)]
    engine.dispose()
    return url, refs[-1]


def loket_command() -> list[str]:
    """How a user starts `loket`: the console script beside this interpreter, if installed."""
    script = Path(sys.executable).parent / "loket"
    if script.exists():
        return [str(script)]
    found = shutil.which("loket")
    return [found] if found else [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def tree_command(root: Path) -> list[str]:
    """`loket` from the source tree at `root` (what the console script runs, `cli.main`)."""
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


def timed(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return took, done.stdout


def access_rows(url: str) -> int:
    engine = open_engine(url)
    with engine.connect() as conn:
        n = conn.exec_driver_sql("SELECT count(*) FROM access_log").scalar_one()
    engine.dispose()
    return int(n)


def heaviest_imports(command: list[str], env: dict[str, str], top: int = 25) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the heaviest imports of one run, by `-X importtime`."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), len(m.group(2)), m.group(3)))
    top_level = [(us, name) for us, depth, name in rows if depth <= 3]
    return sorted(top_level, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--importtime", action="store_true", help="print the heaviest imports of one run")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also time the loket of another source tree (e.g. `git archive main`), alternately;"
                             " both then run as `python -c 'from cli import main'` from their tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        url, ref = make_database(Path(tmp), args.cases)
        env = {k: v for k, v in os.environ.items() if k not in ("LOKET_USER", "LOKET_DB")}
        env["LOKET_DB"] = url
        # As installed: pip writes the bytecode at install time, so a user's start-up does not
        # compile the project's modules. With PYTHONDONTWRITEBYTECODE (set on some development
        # machines) and no __pycache__, every run would compile all ~40 of them, ~80 ms more.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        show = ["case", "show", ref]
        figure_cmd = [*(tree_command(ROOT) if args.baseline else loket_command()), *show]
        floor_cmd = [sys.executable, "-c", "import sqlalchemy"]
        trees = [("figure", figure_cmd, ROOT)]
        if args.baseline:
            trees.append(("baseline", [*tree_command(args.baseline), *show], args.baseline.resolve()))
        before = access_rows(url)
        for _, command, cwd in trees:
            timed(command, env, cwd)  # warm the page cache and write the .pyc files
        timed(floor_cmd, env)
        floors: list[float] = []
        times: dict[str, list[float]] = {name: [] for name, _, _ in trees}
        for _ in range(args.runs):
            floors.append(timed(floor_cmd, env)[0])
            for name, command, cwd in trees:
                took, out = timed(command, env, cwd)
                if NAME not in out:
                    raise SystemExit(f"case show did not show the personal value:\n{out}")
                times[name].append(took)
        logged = access_rows(url) - before
        if logged != len(trees) * (args.runs + 1):
            raise SystemExit(f"expected {len(trees) * (args.runs + 1)} access-log rows, found {logged}")
        figures = times["figure"]
        floor, figure = statistics.median(floors), statistics.median(figures)
        print(f"loket case show (SQLite, {args.cases} cases, need-to-know and access log on),"
              f" median of {args.runs} runs")
        print(f"  figure  loket case show            {figure * 1000:7.1f} ms  (min {min(figures) * 1000:.1f})")
        print(f"  floor   python -c 'import sqlalchemy' {floor * 1000:7.1f} ms  (min {min(floors) * 1000:.1f})")
        print(f"  ratio   {figure / floor:.2f}x  (target <= 2.0x)")
        if args.baseline:
            base = times["baseline"]
            print(f"  baseline {args.baseline}: {statistics.median(base) * 1000:.1f} ms (min {min(base) * 1000:.1f}),"
                  f" ratio {statistics.median(base) / floor:.2f}x")
        if args.importtime:
            print("heaviest imports of one run (cumulative, ms):")
            for us, name in heaviest_imports(figure_cmd, env):
                print(f"  {us / 1000:7.1f}  {name}")


if __name__ == "__main__":
    main()
