"""The delivery drills of issue 10, as tests: a faulty SMTP server in every way we know, a
sender stopped mid-exchange, and two senders sharing a slow server under a short lease.

For each fault, what the outbox ends as (sent; pending with its next attempt; failed) and
that nothing waits past the deadline. SMTP deadlines are real seconds, kept short; the
product's own time (leases, back-off) moves only through the test's clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from test_outbox import FRIDAY, SENDER, THURSDAY, escalate, mid

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.store.db import open_engine
from notifications.delivery import LEASE, DeliveryReport, MailSettings, backoff, deliver
from notifications.requeue import list_outbox
from notifications.smtp import SmtpTransport

if TYPE_CHECKING:
    from faulty_smtp import FaultySmtpServer

pytest_plugins = ["faulty_smtp"]
MakeFaulty = Callable[..., "FaultySmtpServer"]

DEADLINE = 1.0
"""Seconds an SMTP exchange may take in these tests."""
SLACK = 2.0
"""What a run may take beyond the deadlines it meets: start-up, the database, a busy machine."""


def through(server: FaultySmtpServer, deadline: float = DEADLINE) -> MailSettings:
    """Each firing as its own email, followed one by one (digests: test_digest.py)."""
    return MailSettings(sender=SENDER, transport=SmtpTransport(server.host, server.port, timeout=deadline),
                        template_dir=None, digest_limit=1)


def timed(loket: Loket, settings: MailSettings, **options: Any) -> tuple[DeliveryReport, float]:
    started = time.monotonic()
    report = deliver(loket, settings, **options)
    return report, time.monotonic() - started


def outcome(loket: Loket) -> list[tuple[str, int, dt.datetime | None]]:
    """Each row's status, attempts and next attempt, in the order they were queued."""
    return [(row["status"], row["attempts"], row["next_attempt_at"]) for row in list_outbox(loket)]


# -- each fault: what the outbox ends as ----------------------------------------------------------

RETRY = THURSDAY + backoff(1)


@pytest.mark.parametrize(("mode", "options", "deadlines", "expected", "connections"), [
    # The line drops while the first message is sent: only it is charged; the second goes
    # over a new connection.
    ("drop_mid_data", {"times": 1}, 0, [("pending", 1, RETRY), ("sent", 1, None)], 2),
    # The server takes the first message and hangs up before QUIT: it counts as sent, and the
    # check before the second (NOOP) finds the line dead and connects again.
    ("accept_then_drop", {"times": 1}, 0, [("sent", 1, None), ("sent", 1, None)], 2),
    ("temporary", {"times": 1}, 0, [("pending", 1, RETRY), ("sent", 1, None)], 1),
    ("permanent", {"times": 1}, 0, [("failed", 1, None), ("sent", 1, None)], 1),
    # Nothing can be sent while the server cannot even greet: the batch waits, charged once,
    # and the run ends after one deadline, not one per message.
    ("hang_greeting", {}, 1, [("pending", 1, RETRY), ("pending", 1, RETRY)], 1),
    ("trickle", {"interval": 0.3}, 1, [("pending", 1, RETRY), ("pending", 1, RETRY)], 1),
    ("hang_after_data", {"times": 1}, 1, [("pending", 1, RETRY), ("sent", 1, None)], 2),
    ("slow", {"delay": 0.3}, 0, [("sent", 1, None), ("sent", 1, None)], 1),
    # Slower than the deadline: given up on (the server may have kept it: then the retry is
    # the one repeated message).
    ("slow", {"delay": 1.6, "times": 1}, 1, [("pending", 1, RETRY), ("sent", 1, None)], 2),
], ids=["drop_mid_data", "accept_then_drop", "4xx", "5xx", "hang_greeting", "trickle", "hang_after_data",
        "slow", "slower_than_the_deadline"])
def test_each_fault_ends_as_it_should_within_the_deadline(
    loket: Loket, clock: FixedClock, faulty_smtp: MakeFaulty, mode: str, options: dict[str, Any],
    deadlines: int, expected: list[tuple[str, int, dt.datetime | None]], connections: int,
) -> None:
    rows = escalate(loket, clock, 2)
    server = faulty_smtp(mode, **options)

    report, took = timed(loket, through(server))

    assert outcome(loket) == expected
    assert took < deadlines * DEADLINE + SLACK, took
    assert server.connections == connections
    sent = [row["key"] for row, (status, _, _) in zip(rows, expected, strict=True) if status == "sent"]
    assert all(server.counts()[mid(key)] == 1 for key in sent)
    for row in list_outbox(loket):
        assert (row["lease_until"], row["lease_owner"]) == (None, None)
        if row["status"] != "sent":
            assert row["last_error"]
    if deadlines:
        assert any(f"no complete answer within {DEADLINE:g} s" in (row["last_error"] or "")
                   for row in list_outbox(loket))
    assert (report.sent, report.failed) == (len(sent), expected.count(("failed", 1, None)))


def test_a_server_back_after_an_outage_gets_every_message_once(
    loket: Loket, clock: FixedClock, faulty_smtp: MakeFaulty
) -> None:
    """Down for three and a half hours (here: greeting nobody), then back: nothing failed,
    everything delivered once, the first try after it came back."""
    escalate(loket, clock, 3)
    down = faulty_smtp("hang_greeting")
    settings = dataclasses.replace(through(down, deadline=0.3), lifetime=dt.timedelta(days=5))
    back_at = THURSDAY + dt.timedelta(hours=3, minutes=30)
    tries = 0
    while clock.now() < back_at:
        assert deliver(loket, settings).sent == 0
        tries += 1
        clock.set(min(row["next_attempt_at"] for row in list_outbox(loket)))
    # Tried at 0, 1, 6, 21 and 51 minutes and at 1h51; the next try, at 3h51, finds it back.
    assert tries == 6 and clock.now() == THURSDAY + dt.timedelta(hours=3, minutes=51)
    up = faulty_smtp("ok")
    assert deliver(loket, through(up)).sent == 3
    assert {row["status"] for row in list_outbox(loket)} == {"sent"}
    assert all(count == 1 for count in up.counts().values()) and len(up.counts()) == 3


# -- stopping ---------------------------------------------------------------------------------------


def test_a_stop_ends_an_exchange_under_way_and_gives_the_rest_back(
    loket: Loket, clock: FixedClock, faulty_smtp: MakeFaulty
) -> None:
    escalate(loket, clock, 3)
    server = faulty_smtp("hang_after_data")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()

    report, took = timed(loket, through(server, deadline=60), stop=stop)

    assert took < 0.5 + SLACK, took  # not the 60-second deadline
    assert report.stopped == "the sender is stopping"
    first, *rest = list_outbox(loket)
    assert (first["status"], first["attempts"], first["next_attempt_at"]) == ("pending", 1, RETRY)
    assert first["last_error"] == "connection failed: the sender is stopping"
    for row in rest:  # never tried: given back as they were
        assert (row["status"], row["attempts"], row["lease_until"], row["lease_owner"]) == ("pending", 0, None, None)
    assert server.data_count == 1


# -- two senders --------------------------------------------------------------------------------


class RealTime:
    """The product's clock running at the wall clock's pace from ``start``."""

    def __init__(self, start: dt.datetime) -> None:
        self.start, self.t0 = start, time.monotonic()

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=time.monotonic() - self.t0)


def test_two_senders_with_a_slow_server_and_a_short_lease_send_each_message_once(
    loket: Loket, clock: FixedClock, db_url: str, faulty_smtp: MakeFaulty
) -> None:
    """Each message takes 0.15 s and a lease lasts 1 s: a batch of 10 outlives its lease
    unless it is renewed, and the second sender would send the rest again."""
    rows = escalate(loket, clock, 10, at=FRIDAY)
    assert len(rows) == 20
    server = faulty_smtp("slow", delay=0.15)
    settings = dataclasses.replace(through(server, deadline=5), lease=dt.timedelta(seconds=1))
    real = RealTime(FRIDAY)
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def sender(wait: float) -> None:
        engine = open_engine(db_url)
        try:
            time.sleep(wait)
            reports.append(deliver(Loket(engine, real), settings, batch=10))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=sender, args=(wait,)) for wait in (0, 0.5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(reports) == 2
    assert server.counts() == Counter({mid(row["key"]): 1 for row in rows})
    assert sum(report.sent for report in reports) == 20 and all(report.sent for report in reports)
    assert {(row["status"], row["attempts"]) for row in list_outbox(loket)} == {("sent", 1)}


def test_a_sender_that_lost_its_lease_stops_before_sending_more(
    loket: Loket, clock: FixedClock, db_url: str, faulty_smtp: MakeFaulty
) -> None:
    """The first sender stalls on its third message past its lease (as a paused process
    would); a second one takes its rows meanwhile. The first records the message it had in
    flight, finds its lease gone and stops: only that message, whose outcome nobody knew,
    went out twice."""
    rows = escalate(loket, clock, 5, at=FRIDAY)
    server = faulty_smtp("ok", hold_at=3)
    settings = through(server, deadline=30)
    shared = FixedClock(FRIDAY)
    first: list[DeliveryReport] = []
    engine = open_engine(db_url)
    stalled = threading.Thread(target=lambda: first.append(deliver(Loket(engine, shared), settings)))
    stalled.start()
    try:
        assert server.holding.wait(10)
        shared.advance(LEASE + dt.timedelta(seconds=1))  # the first sender's lease runs out
        second = deliver(Loket(loket.engine, shared), settings)
    finally:
        server.hold.set()
        stalled.join(30)
        engine.dispose()
    (report,) = first
    assert (report.sent, second.sent) == (3, 8)
    assert report.stopped == "another sender took over its messages (their lease had run out)"
    in_flight = mid(rows[2]["key"])
    assert server.counts() == Counter({mid(row["key"]): 1 for row in rows}) + Counter([in_flight])
    assert {row["status"] for row in list_outbox(loket)} == {"sent"}


def test_the_lease_outlasts_every_exchange_the_timeout_allows() -> None:
    assert MailSettings.from_env({"LOKET_SMTP_URL": "smtp://mail.example"}).lease == LEASE
    slow = MailSettings.from_env({"LOKET_SMTP_URL": "smtp://mail.example", "LOKET_SMTP_TIMEOUT": "10m"})
    assert slow.lease == dt.timedelta(minutes=40)

