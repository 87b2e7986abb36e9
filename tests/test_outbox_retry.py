"""Queueing failed messages again (`retry`), once the mail configuration is fixed.

Messages fail for real, against a closed SMTP port or an aiosmtpd server scripted to refuse
them (``tests/smtp_server.py``); time moves only through the FixedClock. Every test runs on
SQLite and on PostgreSQL (the ``loket`` fixture).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from test_outbox import SENDER, THURSDAY, MakeServer, by_key, escalate, mid, received_ids, smtp

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.errors import InvalidValue, NotFound, Refused
from engine.store import outbox as outbox_store
from engine.store.db import open_engine
from notifications.delivery import LEASE, DeliveryReport, MailSettings, backoff, deliver
from notifications.requeue import RetryReport, list_outbox, retry
from notifications.transports import DeliveryResult, Transport

if TYPE_CHECKING:
    from smtp_server import SmtpServer

pytest_plugins = ["smtp_server"]

REJECT = "554 5.7.1 message rejected by policy"  # a 5xx for the content: failed at once
BUSY = "451 4.3.0 mailbox busy, try again later"  # temporary: retried later


class Spy:
    """Passes messages on to ``inner``, noting every Message-ID it is handed; ``during`` (if
    given) runs while a message is being sent, i.e. while its row is leased."""

    def __init__(self, inner: Transport,
                 during: Callable[[list[str]], None] | None = None) -> None:
        self.inner, self.during = inner, during
        self.handed: list[str] = []

    def open(self, stop: threading.Event | None = None) -> Spy:
        self.session = self.inner.open(stop)
        return self

    def send(self, message: EmailMessage) -> DeliveryResult:
        ids = [str(message["Message-ID"])]
        self.handed += ids
        if self.during is not None:
            self.during(ids)
        return self.session.send(message)

    def close(self) -> None:
        self.session.close()


def through(transport: Transport, lifetime: dt.timedelta | None = None) -> MailSettings:
    """Each firing as its own email, followed one by one (digests: test_digest.py)."""
    settings = MailSettings(sender=SENDER, transport=transport, template_dir=None, digest_limit=1)
    return settings if lifetime is None else dataclasses.replace(settings, lifetime=lifetime)


def keys_of(loket: Loket) -> list[str]:
    return [row["key"] for row in list_outbox(loket)]  # in id order


# -- failed for good, then queued again -------------------------------------------------------


def test_failed_messages_are_sent_once_with_their_message_id_after_retry(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    escalate(loket, clock, 3)
    keys = keys_of(loket)
    server = make_smtp_server()
    server.stop()  # the misconfiguration: nothing listens on the port
    spy = Spy(smtp(server).transport)
    lifetime = dt.timedelta(minutes=30)

    for attempt in range(1, 6):  # at 0, 1, 6, 21 and 30 minutes
        report = deliver(loket, through(spy, lifetime))
        clock.advance(min(backoff(attempt), lifetime - (clock.now() - THURSDAY)))
    assert report.failed == 3
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 5, None)
        assert f"cannot deliver through 127.0.0.1:{server.port}" in row["last_error"]
    # The server could not be reached: each run tried the first message only, and charged the
    # rest of the batch without handing them over.
    assert len(spy.handed) == 5 and set(spy.handed) < {mid(key) for key in keys}
    clock.advance(dt.timedelta(days=1))
    assert deliver(loket, through(spy, lifetime)) == DeliveryReport()  # failed stays failed by itself

    server.start()  # the configuration is fixed
    queued_at = clock.now()
    queued = retry(loket, failed=True, now=queued_at)

    assert queued == RetryReport(requeued=tuple(keys))
    assert queued.summary() == "3 messages queued again"
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["next_attempt_at"], row["lease_until"]) == (
            "pending", 0, queued_at, None)
        assert f"cannot deliver through 127.0.0.1:{server.port}" in row["last_error"]  # kept

    assert deliver(loket, through(spy)) == DeliveryReport(sent=3)

    assert received_ids(server) == Counter({mid(key): 1 for key in keys})
    assert set(received_ids(server)) == set(spy.handed)  # the Message-IDs tried before
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
        assert row["sent_at"] == queued_at
    clock.advance(dt.timedelta(days=1))
    assert deliver(loket, through(spy)) == DeliveryReport()
    assert len(server.messages) == 3
    nothing = retry(loket, failed=True, now=clock.now())
    assert nothing == RetryReport() and nothing.summary() == "no failed messages to queue again"


def test_retry_by_key_queues_the_named_failed_message_and_leaves_a_waiting_one(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    escalate(loket, clock, 3)
    first, second, third = keys_of(loket)
    server = make_smtp_server(data_replies={1: REJECT, 2: REJECT, 3: BUSY})
    assert deliver(loket, smtp(server)) == DeliveryReport(
        failed=2, retrying=1, errors=[f"{first}: message refused: {REJECT}",
                                      f"{second}: message refused: {REJECT}"])
    before = by_key(loket)
    assert [before[key]["status"] for key in (first, second, third)] == ["failed", "failed", "pending"]

    report = retry(loket, keys=[third, first, first], now=clock.now())

    assert report == RetryReport(requeued=(first,), waiting=(third,))
    assert report.summary() == "1 message queued again (1 already waiting)"
    after = by_key(loket)
    assert (after[first]["status"], after[first]["attempts"], after[first]["next_attempt_at"]) == (
        "pending", 0, clock.now())
    assert REJECT in after[first]["last_error"]
    assert after[second] == before[second]  # not named: still failed
    assert after[third] == before[third]  # already waiting: its back-off is kept

    assert deliver(loket, smtp(server)) == DeliveryReport(sent=1)
    assert received_ids(server) == Counter({mid(first): 1})
    clock.advance(backoff(1))
    assert deliver(loket, smtp(server)) == DeliveryReport(sent=1)
    assert received_ids(server) == Counter({mid(first): 1, mid(third): 1})
    assert by_key(loket)[second]["status"] == "failed"


def test_an_unknown_key_is_named_and_nothing_is_queued_again(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    escalate(loket, clock, 2)
    first, second = keys_of(loket)
    server = make_smtp_server(data_replies={1: REJECT, 2: REJECT})
    assert deliver(loket, smtp(server)).failed == 2
    before = list_outbox(loket)

    with pytest.raises(NotFound) as raised:
        retry(loket, keys=[first, "BI-2026-99999/1/1", second], failed=True, now=clock.now())

    assert "'BI-2026-99999/1/1'" in raised.value.message
    assert first not in raised.value.message and second not in raised.value.message
    assert list_outbox(loket) == before


def test_a_sent_key_is_refused_and_nothing_is_queued_again(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    escalate(loket, clock, 2)
    failed, sent = keys_of(loket)
    server = make_smtp_server(data_replies={1: REJECT})
    assert deliver(loket, smtp(server)) == DeliveryReport(
        sent=1, failed=1, errors=[f"{failed}: message refused: {REJECT}"])
    before = list_outbox(loket)

    for asked in ({"keys": [failed, sent]}, {"keys": [sent], "failed": True}):
        with pytest.raises(Refused) as raised:
            retry(loket, **asked, now=clock.now())
        assert "already sent" in raised.value.message and repr(sent) in raised.value.message
        assert failed not in raised.value.message
        assert list_outbox(loket) == before

    clock.advance(dt.timedelta(days=1))
    assert deliver(loket, smtp(server)) == DeliveryReport()
    assert received_ids(server) == Counter({mid(sent): 1})


def test_retry_needs_keys_or_failed(loket: Loket, clock: FixedClock) -> None:
    escalate(loket, clock, 1)
    before = list_outbox(loket)
    with pytest.raises(InvalidValue, match="by key"):
        retry(loket, now=clock.now())
    assert list_outbox(loket) == before


# -- while workers deliver --------------------------------------------------------------------


def test_a_message_being_sent_under_a_live_lease_is_left_to_its_worker(
    loket: Loket, clock: FixedClock, db_url: str, make_smtp_server: MakeServer
) -> None:
    """While a worker sends one message, the operator queues it and every failed one again, and
    a second worker delivers: only the failed message is given to the second worker."""
    escalate(loket, clock, 2)
    failed, busy = keys_of(loket)
    server = make_smtp_server(data_replies={1: REJECT})
    seen: dict[str, Any] = {}

    def meanwhile(ids: list[str]) -> None:
        if ids != [mid(busy)]:
            return
        seen["leased"] = by_key(loket)[busy]
        seen["retry"] = retry(loket, keys=[busy], failed=True, now=clock.now())
        seen["row"] = by_key(loket)[busy]
        engine = open_engine(db_url)
        try:
            seen["other worker"] = deliver(Loket(engine, FixedClock(clock.now())), smtp(server))
        finally:
            engine.dispose()

    report = deliver(loket, through(Spy(smtp(server).transport, meanwhile)), batch=1)

    assert seen["retry"] == RetryReport(requeued=(failed,), sending=(busy,))
    assert seen["retry"].summary() == "1 message queued again (1 being sent)"
    assert seen["row"] == seen["leased"]  # untouched: still its worker's
    assert (seen["row"]["status"], seen["row"]["lease_until"]) == ("sending", clock.now() + LEASE)
    assert seen["other worker"] == DeliveryReport(sent=1)  # the requeued one only
    assert (report.sent, report.failed) == (1, 1)
    assert received_ids(server) == Counter({mid(failed): 1, mid(busy): 1})
    assert {(row["status"], row["attempts"]) for row in list_outbox(loket)} == {("sent", 1)}
    clock.advance(LEASE + dt.timedelta(seconds=1))
    assert deliver(loket, smtp(server)) == DeliveryReport()


def test_a_message_whose_worker_died_is_reported_waiting_and_left_alone(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    escalate(loket, clock, 1)
    (key,) = keys_of(loket)
    with loket.engine.begin() as conn:  # a worker claims it, then dies
        assert len(outbox_store.claim(conn, clock.now(), 10, lease=LEASE, owner="dead")) == 1
    clock.advance(LEASE + dt.timedelta(seconds=1))
    before = list_outbox(loket)

    report = retry(loket, keys=[key], now=clock.now())

    assert report == RetryReport(waiting=(key,))
    assert report.summary() == "nothing queued again (1 already waiting)"
    assert list_outbox(loket) == before
    assert deliver(loket, smtp(smtp_server)) == DeliveryReport(sent=1)  # the lease ran out
    assert received_ids(smtp_server) == Counter({mid(key): 1})
