"""`loket worker`: it sweeps and delivers on its schedule, and stops cleanly on a signal (SPEC §6).

The end-to-end tests run the real command on a simulation SQLite database whose cases are
overdue at LOKET_NOW, with the mail going to a folder: the worker must fire every predicted
rung, write every email as an .eml file, and exit 0 promptly on SIGTERM or SIGINT — also
when a second signal follows the first. Waiting for the worker is polling for its effect
(the files), with a time limit; no test waits for a deadline.

The wiring is tested without starting anything: a memory job store, coalesce, one instance
of each job at a time.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from conftest import START
from helpers.population import (
    escalations,
    expected_mails,
    fired_keys,
    mails,
    make_loket,
    populate,
)

from cli import worker_jobs
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.worker import DaemonThreadExecutor, build_scheduler, stopper
from engine.core.vocabulary import OutboxStatus
from engine.store.db import open_engine
from engine.store.tables import outbox_t
from notifications.delivery import MailSettings

ROOT = Path(__file__).resolve().parent.parent
NOW = START + dt.timedelta(days=60)
PATIENCE = 60.0
"""Seconds the worker gets to do what one sweep and one delivery do (well under one each)."""


def delivered(folder: Path) -> int:
    return len(list(folder.glob("*.eml")))


def received_text(folder: Path, to: str) -> str:
    """The plain text of every message to ``to`` in the folder."""
    texts = []
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        if str(message["To"].addresses[0].addr_spec) == to and body is not None:
            texts.append(str(body.get_content()))
    return "\n".join(texts)


def addressees(folder: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        found[str(message["To"].addresses[0].addr_spec)] += 1
    return found


def settled(loket: Loket, predicted: dict[str, Any]) -> bool:
    """Every predicted rung fired, and no message waits or is on its way."""
    with loket.read() as conn:
        waiting = conn.execute(sa.select(sa.func.count()).where(
            outbox_t.c.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)))).scalar_one()
    return waiting == 0 and escalations(loket) == Counter(fired_keys(predicted))


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals", [[signal.SIGTERM], [signal.SIGINT], [signal.SIGTERM, signal.SIGINT]],
    ids=["SIGTERM", "SIGINT", "SIGTERM+SIGINT"],
)
def test_the_worker_fires_delivers_and_stops_on_a_signal(
    sqlite_url: str, tmp_path: Path, signals: list[signal.Signals]
) -> None:
    loket = make_loket(sqlite_url, START)
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    populate(loket, clock, 24)
    predicted = sweep(loket, NOW, dry_run=True).as_json()
    mailed = expected_mails(loket, predicted)
    assert len(mailed) > 50
    folder = tmp_path / "mail"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "--db", sqlite_url, "worker",
         "--sweep-every", "1s", "--deliver-every", "1s"],
        env={**os.environ, "LOKET_NOW": NOW.isoformat(), "LOKET_MAIL_DIR": str(folder)},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        limit = time.monotonic() + PATIENCE
        while proc.poll() is None and time.monotonic() < limit and not settled(loket, predicted):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        assert settled(loket, predicted), "the worker did not deliver in time"
        stopping = time.monotonic()
        for sig in signals:
            proc.send_signal(sig)
        err = proc.communicate(timeout=20)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - stopping < 10
    # Python runs the handlers of signals that arrive together in signal-number order.
    assert [line for line in err.splitlines() if "received, stopping" in line] in (
        [f"worker: {sig.name} received, stopping"] for sig in signals)
    assert err.rstrip().endswith("worker: stopped"), err
    assert "Traceback" not in err and "failed:" not in err, err

    assert escalations(loket) == Counter(fired_keys(predicted))
    outbox = mails(loket)
    assert outbox.keys() == mailed.keys()
    for key, address in mailed.items():
        assert outbox[key][1] == address if address is not None else outbox[key][0] == "timeout"
    # Every row went out: the firings' and those of the steps that made the cases (hand-overs,
    # assignments, messages to residents), the timeouts' hand-overs included.
    with loket.read() as conn:
        everyone = Counter(conn.execute(sa.select(outbox_t.c.to_email)).scalars())
        statuses: Counter[str] = Counter(dict(conn.execute(
            sa.select(outbox_t.c.status, sa.func.count()).group_by(outbox_t.c.status)).all()))
    assert statuses == Counter(sent=everyone.total())
    # A reader's firings that one delivery found due came in one digest: every reader got
    # mail, fewer messages than rows, and each firing's case is named in its reader's mail.
    assert addressees(folder).keys() == everyone.keys()
    assert delivered(folder) < everyone.total()
    for key, (_, to) in outbox.items():
        assert key.split("/")[0] in received_text(folder, to), key
    loket.engine.dispose()


def test_the_scheduler_keeps_its_jobs_in_memory_and_runs_each_once_at_a_time(
    sqlite_url: str, tmp_path: Path
) -> None:
    loket = Loket(open_engine(sqlite_url))
    settings = MailSettings.from_env({"LOKET_MAIL_DIR": str(tmp_path)})
    stop = threading.Event()
    scheduler = build_scheduler(worker_jobs(loket, settings, dt.timedelta(minutes=1), dt.timedelta(seconds=30),
                                            echo=lambda line: None, stop=stop), echo=lambda line: None)
    assert scheduler.state == STATE_STOPPED  # built, not started: nothing ran
    # APScheduler 3.x shows its job stores and executors only through these attributes.
    assert isinstance(scheduler._jobstores["default"], MemoryJobStore)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"sweep", "deliver", "maintain"}
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 60)
        assert job.executor == job.id  # each its own: a hanging delivery never holds up a sweep
        assert isinstance(scheduler._executors[job.id], DaemonThreadExecutor)
        assert job.next_run_time is not None  # the first run comes straight away
    assert jobs["sweep"].trigger.interval == dt.timedelta(minutes=1)
    assert jobs["deliver"].trigger.interval == dt.timedelta(seconds=30)
    assert jobs["maintain"].trigger.interval == dt.timedelta(hours=1)
    assert jobs["sweep"].args[0] is loket
    own, given, _, event = jobs["deliver"].args
    # Its own Loket (the jobs run in threads of their own), on the same database and clock.
    assert own is not loket and (own.engine, own.clock) == (loket.engine, loket.clock)
    assert (given, event) == (settings, stop)
    loket.engine.dispose()


def test_a_second_signal_while_stopping_is_ignored() -> None:
    scheduler = BlockingScheduler()
    started = threading.Event()
    scheduler.add_listener(lambda event: started.set(), EVENT_SCHEDULER_STARTED)
    thread = threading.Thread(target=scheduler.start)
    thread.start()
    assert started.wait(10)
    lines: list[str] = []
    stop = stopper(scheduler, lines.append)
    stop(signal.SIGTERM, None)
    stop(signal.SIGINT, None)  # the scheduler is already stopping: nothing to do, nothing raised
    thread.join(10)
    assert not thread.is_alive()
    assert lines == ["worker: SIGTERM received, stopping"]
