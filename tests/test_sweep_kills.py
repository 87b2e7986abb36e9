"""A sweep killed with SIGKILL at random moments, again and again: what it committed is whole
batches, nothing fires twice, and the sweep that finally runs to its end leaves every rung
fired exactly once (test_sweep_concurrency kills one sweep once, after its first batch)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from conftest import START
from helpers.population import escalations, expected_mails, make_loket, populate
from test_sweep_concurrency import NOW, SWEEPER, assert_fired_once

from engine.app.clock import FixedClock
from engine.app.sweep import sweep
from engine.app.verify import verify
from engine.store.tables import escalations_t

pytestmark = pytest.mark.slow

KILLS = 6


def test_a_sweep_killed_at_random_moments_loses_nothing_and_fires_nothing_twice(sqlite_url: str) -> None:
    loket = make_loket(sqlite_url, START)
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    populate(loket, clock, 240)
    predicted = sweep(loket, NOW, dry_run=True).as_json()
    mailed = expected_mails(loket, predicted)
    rng = random.Random(9)
    count = sa.select(sa.func.count()).select_from(escalations_t)

    def fired() -> int:
        with loket.read() as conn:
            return int(conn.execute(count).scalar_one())

    kills = 0
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, str(SWEEPER), sqlite_url, NOW.isoformat(), "10"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
        before = fired()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        while proc.poll() is None and fired() == before:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if proc.returncode != -signal.SIGKILL:
            break  # it finished first: there is nothing left to kill
        kills += 1
        assert max(escalations(loket).values()) == 1
        result = verify(loket)
        assert result.ok, result.failure
    print(f"\n{kills} sweeps killed; {fired()} of {len(predicted['fired'])} firings committed before the last")
    assert kills >= 3

    sweep(loket, NOW)
    assert_fired_once(loket, predicted, mailed)
    loket.engine.dispose()
