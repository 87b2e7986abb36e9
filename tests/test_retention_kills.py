"""A retention run killed with SIGKILL half-way: what it committed is whole cases with their
tombstones, the next run takes the dead run's lease over and carries on, and in the end every
due case is destroyed exactly once, with verify and the seals holding throughout."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_retention import OPERATOR, YEAR, closed_case, later, make_loket

from engine.app import retention
from engine.app.seal import seal
from engine.app.verify import verify
from engine.store.tables import cases_t, tombstones_t

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).resolve().parent / "helpers" / "retention_runner.py"
CASES = 60


def test_a_run_killed_half_way_resumes_where_it_stopped(db_url: str, tmp_path: Path) -> None:
    loket = make_loket(db_url, tmp_path / "wf")
    refs = [closed_case(loket, f"Initiatief {i}") for i in range(CASES)]
    seal(loket)
    later(loket, YEAR)
    now = loket.clock.now().isoformat()

    proc = subprocess.Popen([sys.executable, str(RUNNER), db_url, now, "4", OPERATOR],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "4", proc.communicate()[1]  # one batch committed
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed"

    def state() -> tuple[set[str], list[str]]:
        with loket.read() as conn:
            left = set(conn.execute(sa.select(cases_t.c.ref)).scalars())
            stones = list(conn.execute(sa.select(tombstones_t.c.ref)).scalars())
        return left, stones

    left, stones = state()
    assert 4 <= len(stones) < CASES, "killed after its first batch, before its last"
    assert left.isdisjoint(stones) and left | set(stones) == set(refs) and len(set(stones)) == len(stones)
    result = verify(loket)
    assert result.ok, result.failure  # the seal holds: each destroyed case has its tombstone

    before = len(stones)
    resumed = retention.run(loket, "selectielijst", by=loket.identity(OPERATOR),  # takes the dead run's lease
                            list_path=str(tmp_path / "lijst.csv"), database=db_url)
    left, stones = state()
    assert resumed.destroyed == CASES - before and left == set()
    assert sorted(stones) == sorted(refs)
    result = verify(loket)
    assert result.ok, result.failure
    assert sum(d["cases"] for d in result.destroyed) == CASES and len(result.destroyed) == 2
    # The list of the resumed run names the killed run's cases too: the archivist gets them all.
    assert resumed.listed == CASES and len(resumed.list_runs) == 2
    assert {d["list"] for d in result.destroyed} == {"lijst.csv"}
    listed = (tmp_path / "lijst.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in listed) == sorted(refs)
    loket.engine.dispose()
