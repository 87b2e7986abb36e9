"""Digests (SPEC §11.2): the firings one delivery run finds due for one reader go out as one
email listing every case; each firing keeps its own outbox row and key, and a digest is
claimed, counted, sent, retried and recorded as a whole.

Every test that touches the database runs on SQLite and on PostgreSQL (the ``loket``
fixture); mail goes to aiosmtpd on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from test_outbox import FRIDAY, HEAD, LEAD, SENDER, THURSDAY, escalate, mid, open_meldingen, part

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.store import outbox as store
from engine.store.db import open_engine
from engine.store.outbox import INTERRUPTED
from engine.store.tables import outbox_t
from notifications import delivery
from notifications.delivery import LEASE, DeliveryReport, MailSettings, backoff, deliver
from notifications.digest import groups, message_key, room
from notifications.message import message_id_for
from notifications.requeue import list_outbox
from notifications.transports import SmtpTransport

if TYPE_CHECKING:
    from smtp_server import SmtpServer

pytest_plugins = ["smtp_server"]
MakeServer = Callable[..., "SmtpServer"]
DOMAIN = "gemeente.example"


def smtp(server: SmtpServer, **options: Any) -> MailSettings:
    return MailSettings(sender=SENDER, transport=SmtpTransport(server.host, server.port, timeout=5),
                        template_dir=None, **options)


def digest_id(rows: list[dict[str, Any]]) -> str:
    return message_id_for(message_key(rows), DOMAIN)


def refs_in(text: str) -> Counter[str]:
    """How often each melding's reference opens a case in a digest's text (``1. ME-…``)."""
    return Counter(line.split()[1] for line in text.splitlines() if line[:1].isdigit() and ". ME-" in line)


def cases_in(message: EmailMessage) -> Counter[str]:
    """The cases an email is about: a digest's list, or a single email's own case."""
    if message["X-Loket-Kind"] == "digest":
        return refs_in(part(message, "plain"))
    return Counter([str(message["X-Loket-Ref"])])


def outcome(loket: Loket) -> set[tuple[str, int]]:
    return {(row["status"], row["attempts"]) for row in list_outbox(loket)}


# -- one email per reader --------------------------------------------------------------------


def test_a_readers_firings_go_out_as_one_digest_listing_every_case(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    rows = escalate(loket, clock, 3, at=FRIDAY)
    by_reader = {to: [row for row in rows if row["to_email"] == to] for to in (LEAD, HEAD)}
    assert [len(mine) for mine in by_reader.values()] == [3, 3]

    report = deliver(loket, smtp(smtp_server))

    assert report == DeliveryReport(sent=6) and report.emails == 2
    assert len(smtp_server.handler.connections) == 1
    expected = {digest_id(mine): to for to, mine in by_reader.items()}
    assert Counter(str(m["Message-ID"]) for m in smtp_server.messages) == Counter(expected.keys())
    refs = {row["key"].split("/")[0] for row in rows}
    for item in smtp_server.handler.received:
        message = item.message
        assert item.rcpt_tos == [expected[str(message["Message-ID"])]]
        assert message["Subject"] == "Wijkloket: 3 zaken vragen uw aandacht (3 escalaties)"
        assert message["X-Loket-Kind"] == "digest" and message["X-Loket-Ref"] == "ME-2026-00001+2"
        text, html = part(message, "plain"), part(message, "html")
        assert refs_in(text) == Counter(refs)  # every case, once
        for ref in refs:
            assert f"loket case show {ref}" in text and ref in html
        assert "Lantaarnpaal 0 kapot" not in text  # the melding's description is no summary field
    after = list_outbox(loket)
    assert {(row["status"], row["attempts"], row["sent_at"]) for row in after} == {("sent", 1, FRIDAY)}
    # Each row keeps its key; the listing shows the subject of the email that carried it.
    assert sorted(row["key"] for row in after) == sorted(row["key"] for row in rows)
    assert {row["subject"] for row in after} == {"Wijkloket: 3 zaken vragen uw aandacht (3 escalaties)"}

    assert deliver(loket, smtp(smtp_server)) == DeliveryReport()
    assert len(smtp_server.messages) == 2


def test_a_group_of_one_is_the_single_email_of_its_kind(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    (row,) = escalate(loket, clock, 1)

    assert deliver(loket, smtp(smtp_server)).emails == 1

    (message,) = smtp_server.messages
    assert message["Message-ID"] == mid(row["key"])
    assert message["Subject"].startswith("Escalatie ME-2026-00001 – Melding openbare ruimte")
    assert message["X-Loket-Kind"] == "escalation"


def test_a_batch_boundary_does_not_split_a_digest_and_the_limit_does(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    rows = escalate(loket, clock, 5)  # five rung-1 firings, all to the lead

    assert deliver(loket, smtp(smtp_server), batch=2).emails == 1
    (message,) = smtp_server.messages
    assert message["Message-ID"] == digest_id(rows)
    assert sum(refs_in(part(message, "plain")).values()) == 5

    # The same five again, at most two to a message: two digests and a single email.
    smtp_server.handler.received.clear()
    with loket.engine.begin() as conn:
        conn.execute(outbox_t.update().values(status="failed"))
        store.requeue(conn, [row["id"] for row in rows], THURSDAY)
    assert deliver(loket, smtp(smtp_server, digest_limit=2)).emails == 3
    ordered = sorted(rows, key=lambda row: row["key"])
    assert Counter(str(m["Message-ID"]) for m in smtp_server.messages) == Counter(
        [digest_id(ordered[:2]), digest_id(ordered[2:4]), mid(ordered[4]["key"])])


def test_the_message_id_of_a_digest_is_stable_for_the_same_rows() -> None:
    rows = [{"key": key, "kind": "escalation", "to_email": LEAD, "language": "nl"} for key in ("b/1/1", "a/1/1")]
    assert message_key(rows) == message_key(list(reversed(rows)))
    assert message_key(rows) != message_key(rows[:1]) == "b/1/1"
    assert message_key(rows) != message_key([*rows, {**rows[0], "key": "c/1/1"}])


def test_only_firings_to_the_same_address_and_language_are_gathered() -> None:
    def row(key: str, kind: str = "escalation", to: str = LEAD, language: str = "nl") -> dict[str, Any]:
        return {"key": key, "kind": kind, "to_email": to, "language": language}

    rows = [row("a/1/1"), row("b/1/1", kind="reminder"), row("c/1/1", to=HEAD), row("d/1/1", language="en"),
            row("e/1/1", kind="resident_created"), row("f/1/1", kind="delivery_failed"), row("g/1/1", kind="timeout")]
    assert [[r["key"] for r in group] for group in groups(rows)] == [
        ["a/1/1", "b/1/1", "g/1/1"], ["c/1/1"], ["d/1/1"], ["e/1/1"], ["f/1/1"]]
    assert [[r["key"] for r in group] for group in groups(rows, 1)] == [[r["key"]] for r in rows]
    assert room(rows, 2) == {(LEAD, "nl"): 1, (HEAD, "nl"): 1, (LEAD, "en"): 1}
    assert room(rows, 3) == {(HEAD, "nl"): 2, (LEAD, "en"): 2}


# -- a digest fails, and is retried, as a whole -------------------------------------------------


def test_a_digest_the_server_defers_is_retried_as_a_whole(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    rows = escalate(loket, clock, 3)
    server = make_smtp_server(data_replies={1: "451 4.3.0 try again later"})
    settings = smtp(server)

    report = deliver(loket, settings)

    assert report == DeliveryReport(retrying=3) and report.emails == 0
    waiting = list_outbox(loket)
    assert {(row["status"], row["attempts"], row["next_attempt_at"]) for row in waiting} == {
        ("pending", 1, THURSDAY + backoff(1))}
    assert {row["last_error"] for row in waiting} == {"message refused: 451 4.3.0 try again later"}

    clock.set(THURSDAY + backoff(1))
    assert deliver(loket, settings).sent == 3
    (message,) = server.messages  # the first copy was refused before it was kept
    assert message["Message-ID"] == digest_id(rows)
    assert refs_in(part(message, "plain")) == Counter(row["key"].split("/")[0] for row in rows)
    assert outcome(loket) == {("sent", 2)}


def test_a_digest_the_server_refuses_fails_all_its_rows(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    escalate(loket, clock, 2)
    server = make_smtp_server(data_replies={1: "554 5.6.0 message refused"})

    report = deliver(loket, smtp(server))

    assert report.failed == 2 and report.sent == 0
    assert {(row["status"], row["attempts"]) for row in list_outbox(loket) if row["kind"] == "escalation"} == {
        ("failed", 1)}
    assert [failure.error for failure in report.failures] == ["message refused: 554 5.6.0 message refused"] * 2


def test_a_digest_whose_sender_died_in_flight_is_sent_again_whole_with_the_same_message_id(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = escalate(loket, clock, 3)

    def power_cut(*args: Any) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="power cut"):
        patch.setattr(delivery._Run, "_record", power_cut)
        deliver(loket, smtp(smtp_server))
    # The server has the digest; its rows were counted ahead, all of them, with one next try.
    assert {(row["status"], row["attempts"], row["last_error"], row["next_attempt_at"])
            for row in list_outbox(loket)} == {("pending", 1, INTERRUPTED, THURSDAY + backoff(1))}
    assert deliver(loket, smtp(smtp_server)) == DeliveryReport()  # not before its back-off

    clock.set(THURSDAY + backoff(1))
    assert deliver(loket, smtp(smtp_server)).sent == 3
    # The one message whose answer never came went twice, whole and under one Message-ID:
    # a mail client shows it once, and no case is in it twice.
    assert Counter(str(m["Message-ID"]) for m in smtp_server.messages) == Counter({digest_id(rows): 2})
    for message in smtp_server.messages:
        assert set(refs_in(part(message, "plain")).values()) == {1}
    assert outcome(loket) == {("sent", 2)}


def test_a_digest_goes_out_only_while_its_sender_holds_every_row(loket: Loket, clock: FixedClock) -> None:
    """Counting the attempt of a digest is all or nothing: a sender that lost one row of it
    (its lease ran out, another sender took it) must not send the others with it."""
    rows = escalate(loket, clock, 2)
    with loket.engine.begin() as conn:
        mine = store.claim(conn, THURSDAY, 10, lease=LEASE, owner="first")
    later = THURSDAY + LEASE + dt.timedelta(seconds=1)
    with loket.engine.begin() as conn:
        conn.execute(outbox_t.update().where(outbox_t.c.id == rows[1]["id"])
                     .values(lease_owner="second", lease_until=later + LEASE))
        assert not store.begin_attempts(conn, [row["id"] for row in mine], owner="first", until=later + LEASE,
                                        retry_at=later + backoff(1))
    assert [row["attempts"] for row in list_outbox(loket)] == [0, 0]


# -- concurrent senders ------------------------------------------------------------------------


def test_two_concurrent_runs_never_send_a_case_twice(
    loket: Loket, clock: FixedClock, db_url: str, make_smtp_server: MakeServer
) -> None:
    from smtp_server import RecordingHandler

    class SlowHandler(RecordingHandler):
        """Takes a moment over every message, so that the two runs overlap."""

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.02)
            return await super().handle_DATA(server, session, envelope)

    open_meldingen(loket, 12)
    clock.set(FRIDAY)
    sweep(loket)
    rows = list_outbox(loket)
    assert len(rows) == 24
    server = make_smtp_server(SlowHandler())
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        engine = open_engine(db_url)
        try:
            own = Loket(engine, FixedClock(FRIDAY))
            start.wait()
            reports.append(deliver(own, smtp(server, digest_limit=3), batch=4))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(reports) == 2
    assert sum(report.sent for report in reports) == 24
    # Each case reached each of its readers exactly once, across every digest of both runs.
    told: Counter[tuple[str, str]] = Counter()
    for item in server.handler.received:
        for ref, times in cases_in(item.message).items():
            told[ref, item.rcpt_tos[0]] += times
    assert told == Counter({(row["key"].split("/")[0], row["to_email"]): 1 for row in rows})
    assert len(server.messages) == len({str(m["Message-ID"]) for m in server.messages}) < 24
    assert outcome(loket) == {("sent", 1)}
