"""Many sweeps at once, and a sweep killed mid-way: every rung still fires exactly once (SPEC §6).

Cases are made through the API (tests/helpers/population.py): all three request types, in
the states where ladder rungs, vacancies, breaches and timeouts fire. A dry run in this
process predicts every firing; then several processes sweep the same database at one `now`
(tests/helpers/sweeper.py: each starts the moment all are ready, with small batches, so that
on PostgreSQL they split the work), or one `loket escalate` is killed with SIGKILL as soon as its first batch
has committed and a second one finishes the work. Afterwards the escalation table holds each
predicted rung once, the sweeps' own reports add up to the prediction without overlap, every
firing has its outbox row, and every chain verifies. Time is the sweep's `now`, never a sleep.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import START
from helpers.population import (
    escalations,
    expected_mails,
    fired_keys,
    mails,
    make_loket,
    populate,
)

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import BATCH, sweep
from engine.app.verify import verify
from engine.store.tables import cases_t, escalations_t, events_t

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SWEEPER = Path(__file__).resolve().parent / "helpers" / "sweeper.py"
NOW = START + dt.timedelta(days=60)
"""Twenty days after the last case was opened: most of every ladder is due."""


def prepared(url: str, count: int) -> tuple[Loket, dict[str, Any], dict[str, str | None]]:
    """The populated database, the dry run's prediction at NOW and the mails it implies."""
    loket = make_loket(url, START)
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    started = time.perf_counter()
    populate(loket, clock, count)
    took = time.perf_counter() - started
    print(f"\n{count} cases made through the API on {loket.engine.dialect.name} in {took:.1f} s")
    predicted = sweep(loket, NOW, dry_run=True).as_json()
    assert len(predicted["fired"]) > 2 * count  # most cases have several rungs due
    kinds = {f["rung"] for f in predicted["fired"]}
    assert kinds >= {1, 2, 3, 4, "service_norm", "lead_time", "timeout", "directive"}
    return loket, predicted, expected_mails(loket, predicted)


def sweep_at_once(url: str, processes: int, batch: int) -> list[dict[str, Any]]:
    """Start `processes` sweepers, let them all go at the same moment, return their reports."""
    procs = [
        subprocess.Popen([sys.executable, str(SWEEPER), url, NOW.isoformat(), str(batch)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.communicate()[1]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            reports.append(json.loads(out))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def escalate(url: str) -> subprocess.Popen[str]:
    """`loket escalate --json` at NOW on the simulation database, as its own process."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "--db", url, "escalate", "--json"],
        env={**os.environ, "LOKET_NOW": NOW.isoformat()}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def assert_fired_once(
    loket: Loket, predicted: dict[str, Any], mailed: dict[str, str | None]
) -> None:
    """The tables hold each predicted firing exactly once, with its event and its email."""
    want = Counter(fired_keys(predicted))
    assert max(want.values()) == 1
    fired = escalations(loket)
    assert fired == want, (fired - want, want - fired)
    outbox = mails(loket)
    assert outbox.keys() == mailed.keys()
    for key, address in mailed.items():
        kind, to = outbox[key]
        assert (kind == "timeout") if address is None else (to == address), (key, kind, to, address)
    timeouts = sum(1 for f in predicted["fired"] if f["rung"] == "timeout")
    with loket.read() as conn:
        actions: Counter[str] = Counter(dict(conn.execute(
            sa.select(events_t.c.action, sa.func.count()).where(events_t.c.actor == "system")
            .group_by(events_t.c.action)).all()))
    assert actions == Counter(escalated=len(want) - timeouts, transition=timeouts)
    result = verify(loket)
    assert result.ok, result.failure


def assert_reports_add_up(reports: list[dict[str, Any]], predicted: dict[str, Any]) -> None:
    """The sweeps' own reports split the prediction between them: nothing twice, nothing lost."""
    told = Counter(key for report in reports for key in fired_keys(report))
    assert told == Counter(fired_keys(predicted))
    emails = {(f["ref"], str(f["rung"]), f["to"]): f["email"] for f in predicted["fired"]}
    for report in reports:
        for f in report["fired"]:
            assert f["email"] == emails[(f["ref"], str(f["rung"]), f["to"])]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_four_processes_sweeping_postgresql_fire_every_rung_once(db_url: str) -> None:
    loket, predicted, mailed = prepared(db_url, 2000)
    started = time.perf_counter()
    reports = sweep_at_once(db_url, processes=4, batch=50)
    print(f"4 sweeps fired {len(predicted['fired'])} in {time.perf_counter() - started:.1f} s"
          f" (each: {[len(r['fired']) for r in reports]})")
    assert_reports_add_up(reports, predicted)
    assert sum(1 for r in reports if r["fired"]) >= 2, "the sweeps did not share the work"
    assert_fired_once(loket, predicted, mailed)
    assert sweep(loket, NOW).as_json() == {"checked": 0, "fired": []}
    loket.engine.dispose()


def test_three_processes_sweeping_sqlite_fire_every_rung_once(sqlite_url: str) -> None:
    loket, predicted, mailed = prepared(sqlite_url, 300)
    # SQLite's write lock goes to whoever asks first after a commit, mostly the sweep that
    # just committed: the sweeps may not share the work, but must still fire each rung once.
    reports = sweep_at_once(sqlite_url, processes=3, batch=20)
    assert_reports_add_up(reports, predicted)
    assert_fired_once(loket, predicted, mailed)
    assert sweep(loket, NOW).as_json() == {"checked": 0, "fired": []}
    loket.engine.dispose()


def test_a_sweep_killed_after_its_first_batch_loses_nothing_and_repeats_nothing(
    db_url: str,
) -> None:
    loket, predicted, mailed = prepared(db_url, 2000)
    due_cases = {f["ref"] for f in predicted["fired"]}
    assert len(due_cases) == predicted["checked"] > 2 * BATCH  # several batches: a middle
    proc = escalate(db_url)
    count = sa.select(sa.func.count()).select_from(escalations_t)
    with loket.read() as conn:
        while proc.poll() is None and conn.execute(count).scalar_one() == 0:
            conn.rollback()  # end the read, so that the next one sees what has committed since
            time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed mid-way"

    # What the killed sweep committed: whole batches of whole cases, with their events and mails.
    first = escalations(loket)
    assert first and max(first.values()) == 1
    done = {key[0] for key in first}
    assert len(done) % BATCH == 0 and done < due_cases, (len(done), len(due_cases))
    done_part = {key: 1 for key in fired_keys(predicted) if key[0] in done}
    assert first == Counter(done_part)
    assert set(mails(loket)) == {key for key in mailed if key.split("/")[0] in done}
    result = verify(loket)
    assert result.ok, result.failure

    second = escalate(db_url)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    rest = json.loads(out)
    left = Counter(key for key in fired_keys(predicted) if key[0] not in done)
    assert Counter(fired_keys(rest)) == left
    assert_fired_once(loket, predicted, mailed)
    due = sa.select(sa.func.count()).where(cases_t.c.next_fire_at <= NOW)
    with loket.read() as conn:
        assert conn.execute(due).scalar_one() == 0
    loket.engine.dispose()
