"""Senders killed and stopped for real: `loket outbox send` killed with SIGKILL at random
moments against a real SMTP server (aiosmtpd), and `loket worker` told to stop while its
delivery hangs on a server that never answers.

Killing a sender may repeat the one message the server had when it died, never more, and
loses nothing. Stopping a worker takes seconds whatever its delivery is doing, and its sweeps
go on meanwhile. Time in the product moves by `--now`, never by a sleep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import START
from helpers.population import make_loket
from test_outbox import DOMAIN, FRIDAY, SENDER, escalate, mid, open_meldingen

from engine.app.clock import FixedClock
from engine.store.outbox import INTERRUPTED
from engine.store.tables import outbox_t
from notifications.delivery import LEASE
from notifications.digest import message_key
from notifications.message import message_id_for
from notifications.requeue import list_outbox

if TYPE_CHECKING:
    from faulty_smtp import FaultySmtpServer
    from smtp_server import SmtpServer

pytest_plugins = ["smtp_server", "faulty_smtp"]
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KILLS = 10
STEP = LEASE + dt.timedelta(minutes=1)
"""How far `--now` moves between runs: past the leases a killed run left, and past the
one-minute back-off of the message it had in flight."""


def send(url: str, now: dt.datetime, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "--db", url, "--now", now.isoformat(), "outbox", "send"],
        env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("readers", [200, 40], ids=["single", "digests"])
def test_outbox_send_killed_at_random_repeats_at_most_the_message_in_flight(
    sqlite_url: str, make_smtp_server: Callable[..., SmtpServer], readers: int
) -> None:
    """The 200 firings go to ``readers`` addresses: one each (200 single emails), or five each
    (40 digests of five, each the one message in flight when a kill comes during it)."""
    from smtp_server import RecordingHandler

    class Unhurried(RecordingHandler):
        """A few milliseconds a message, so that a run lasts long enough to be killed in."""

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.004)
            return await super().handle_DATA(server, session, envelope)

    loket = make_loket(sqlite_url, START)
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    rows = escalate(loket, clock, 100, at=FRIDAY)
    assert len(rows) == 200
    with loket.engine.begin() as conn:
        for row in rows:
            conn.execute(sa.update(outbox_t).where(outbox_t.c.id == row["id"])
                         .values(to_email=f"lezer{row['id'] % readers}@voorbeeld.example"))
    rows = list_outbox(loket)
    messages = {mid(row["key"]): [row["key"]] for row in rows}
    if readers < len(rows):
        mine: dict[str, list[str]] = {}
        for row in rows:
            mine.setdefault(row["to_email"], []).append(row["key"])
        messages = {message_id_for(message_key([{"key": key} for key in keys]), DOMAIN): keys
                    for keys in mine.values()}
    with loket.engine.begin() as conn:
        loket.mark_simulation(conn)
    server = make_smtp_server(Unhurried())
    env = {"LOKET_SMTP_URL": f"smtp://{server.host}:{server.port}", "LOKET_MAIL_FROM": SENDER}
    rng = random.Random(10)

    def arrived() -> Counter[str]:
        return Counter(str(message["Message-ID"]) for message in server.messages)

    def unrecorded() -> set[str]:
        """Messages the server has that the outbox does not know were sent: each will be sent
        again, so each is a repeat a kill caused. (A digest's rows are recorded together.)"""
        sent = {row["key"] for row in list_outbox(loket) if row["status"] == "sent"}
        return {message for message in arrived() if not set(messages[message]) <= sent}

    in_flight_per_kill: list[int] = []
    now = FRIDAY
    kills = 0
    while True:
        counts = arrived()
        before = sum(counts.values())
        proc = send(sqlite_url, now, env)
        if kills < KILLS:
            wanted = before + rng.randint(1, 25 * readers // len(rows))
            while proc.poll() is None and sum(arrived().values()) < wanted:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        now += STEP
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            time.sleep(0.05)  # the server may still be taking in what the sender sent before it died
            # What this run handed the server and did not record: a message the next run sends again.
            new = {message for message in unrecorded() if arrived()[message] > counts[message]}
            in_flight_per_kill.append(len(new))
            continue
        assert proc.returncode == 0, err
        if kills >= KILLS:
            break
    repeats = sum(count - 1 for count in arrived().values())
    print(f"\n{kills} kills over {len(messages)} messages: {repeats} repeated in all;"
          f" unrecorded per kill: {in_flight_per_kill}")

    assert max(in_flight_per_kill) <= 1  # at most the message in flight, per kill
    assert repeats == sum(in_flight_per_kill) <= kills
    assert set(arrived()) == set(messages)  # nothing lost, each digest as expected
    statuses = Counter(row["status"] for row in list_outbox(loket))
    assert statuses == Counter(sent=200)
    with loket.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(outbox_t.c.lease_owner.is_not(None))).scalar() == 0
    loket.engine.dispose()


def test_the_worker_stops_within_seconds_while_its_delivery_hangs_and_sweeps_meanwhile(
    sqlite_url: str, faulty_smtp: Callable[..., FaultySmtpServer]
) -> None:
    loket = make_loket(sqlite_url, START)
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    escalate(loket, clock, 3, at=FRIDAY)
    with loket.engine.begin() as conn:
        loket.mark_simulation(conn)
    server = faulty_smtp("hang_after_data")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "--db", sqlite_url, "worker",
         "--sweep-every", "1s", "--deliver-every", "1s"],
        env={**os.environ, "LOKET_NOW": FRIDAY.isoformat(), "LOKET_SMTP_URL": server.url(),
             "LOKET_SMTP_TIMEOUT": "10m", "LOKET_MAIL_FROM": SENDER},
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        limit = time.monotonic() + 60
        while server.data_count == 0 and time.monotonic() < limit and proc.poll() is None:
            time.sleep(0.05)
        assert server.data_count == 1, "the delivery never reached the server"
        # While the delivery hangs, a case becomes due: the next sweep must fire it anyway.
        clock.set(START)
        (late,) = open_meldingen(loket, 1)
        while time.monotonic() < limit and not any(row["key"].startswith(late) for row in list_outbox(loket)):
            time.sleep(0.05)
        assert any(row["key"].startswith(late) for row in list_outbox(loket)), "no sweep while delivery hung"
        time.sleep(1.5)  # a delivery run or two comes due meanwhile, and is skipped
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
        took = time.monotonic() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\nthe worker stopped {took:.2f} s after SIGTERM, its delivery hanging")
    assert proc.returncode == 0, err
    assert took < 3, took
    assert "worker: SIGTERM received, stopping" in err
    assert "worker: deliver still running after" in err and "; this run skipped" in err
    assert "outbox: run ended early: the sender is stopping" in err
    assert err.rstrip().endswith("worker: stopped") and "Traceback" not in err, err
    assert server.data_count == 1
    rows = list_outbox(loket)
    # The message in flight was a digest: the three firings of one reader, charged together.
    in_flight = [row for row in rows if row["attempts"]]
    assert [(row["status"], row["last_error"]) for row in in_flight] == [
        ("pending", "connection failed: the sender is stopping")] * 3
    assert len({row["to_email"] for row in in_flight}) == 1
    assert all(row["status"] == "pending" and row["lease_owner"] is None for row in rows)
    assert all(row["last_error"] != INTERRUPTED for row in rows)
    loket.engine.dispose()
