"""The outbox end to end: escalations swept into rows, delivered to a real SMTP server.

Cases are opened through the Loket API and escalated by sweeping at a later FixedClock time;
mail goes to aiosmtpd on 127.0.0.1 (``tests/smtp_server.py``) or into a folder of ``.eml``
files. Every test that touches the database runs on SQLite and on PostgreSQL (the ``loket``
fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, START, run_cli

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.errors import ConfigurationError
from engine.store import outbox as outbox_store
from engine.store.db import open_engine
from engine.store.outbox import INTERRUPTED
from engine.store.tables import events_t, outbox_t
from notifications import compose
from notifications import delivery as outbox
from notifications.delivery import LEASE, LIFETIME, SCHEDULE, DeliveryReport, MailSettings, backoff, deliver
from notifications.message import message_id_for
from notifications.render import Renderer
from notifications.requeue import list_outbox
from notifications.transports import (
    DeliveryResult,
    DirectoryTransport,
    SmtpTransport,
    Transport,
    mail_file_name,
    stable_id,
)

if TYPE_CHECKING:

    from smtp_server import SmtpServer

# The fixtures smtp_server and make_smtp_server; the module is imported by pytest as a plugin
# (so that its asserts are rewritten), hence no import of it at run time here.
pytest_plugins = ["smtp_server"]
MakeServer = Callable[..., "SmtpServer"]

SENDER = "Wijkloket Gemeente Voorbeeld <wijkloket@gemeente.example>"
DOMAIN = "gemeente.example"
# A melding opened on Monday 2 March is due at the end of Tuesday (one working day):
THURSDAY = dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC)  # rung 1 (lead: Bram Bakker) is due
FRIDAY = dt.datetime(2026, 3, 6, 9, 0, tzinfo=dt.UTC)  # rung 2 (head: Anna Jansen) as well
LEAD = "b.bakker@voorbeeld.example"
HEAD = "a.jansen@voorbeeld.example"
LISTING_KEYS = {"id", "key", "to", "subject", "status", "attempts", "next_attempt_at", "last_error"}


# -- helpers ------------------------------------------------------------------------------


def open_meldingen(loket: Loket, count: int) -> list[str]:
    return [
        loket.new_case(
            "melding", [f"omschrijving=Lantaarnpaal {n} kapot", "locatie=Lindelaan"],
            actor="c.devries",
        ).ref
        for n in range(count)
    ]


def escalate(
    loket: Loket, clock: FixedClock, count: int, at: dt.datetime = THURSDAY
) -> list[dict[str, Any]]:
    """Open `count` meldingen now, move the clock to `at` and sweep: the outbox rows."""
    open_meldingen(loket, count)
    clock.set(at)
    sweep(loket)
    rows = list_outbox(loket)
    assert rows and all(row["status"] == "pending" for row in rows)
    return rows


def smtp(server: SmtpServer, template_dir: Path | None = None) -> MailSettings:
    """Each firing as its own email: these tests follow messages one by one (the digests that
    gather a reader's firings have their own tests, in test_digest.py)."""
    return MailSettings(sender=SENDER, transport=SmtpTransport(server.host, server.port, timeout=5),
                        template_dir=template_dir, digest_limit=1)


def by_key(loket: Loket) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in list_outbox(loket)}


def mid(key: str) -> str:
    return message_id_for(key, DOMAIN)


def received_ids(server: SmtpServer) -> Counter[str]:
    return Counter(str(message["Message-ID"]) for message in server.messages)


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None
    return str(body.get_content())


def mail_to_folder(monkeypatch: pytest.MonkeyPatch, folder: Path, templates: Path | None = None) -> None:
    """The command line's mail settings for a test: .eml files in `folder`, no SMTP, and the
    packaged templates unless an override folder is given."""
    monkeypatch.setenv("LOKET_MAIL_DIR", str(folder))
    monkeypatch.delenv("LOKET_SMTP_URL", raising=False)
    if templates is None:
        monkeypatch.delenv("LOKET_TEMPLATE_DIR", raising=False)
    else:
        monkeypatch.setenv("LOKET_TEMPLATE_DIR", str(templates))


def simulation(loket: Loket) -> str:
    """Make the database a simulation one (so `--now` works) and return its URL for the CLI."""
    with loket.engine.begin() as conn:
        loket.mark_simulation(conn)
    return loket.engine.url.render_as_string(hide_password=False)


def org_file(tmp_path: Path, old: str, new: str) -> Path:
    """The sample organisation with one line changed."""
    text = ORG_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / "organisation.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


# -- delivery -----------------------------------------------------------------------------


def test_every_row_arrives_once_over_one_connection(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = escalate(loket, clock, 3, at=FRIDAY)
    assert Counter(row["to_email"] for row in rows) == {LEAD: 3, HEAD: 3}

    report = deliver(loket, smtp(smtp_server))

    assert report == DeliveryReport(sent=6)
    assert received_ids(smtp_server) == Counter({mid(row["key"]): 1 for row in rows})
    assert len(smtp_server.handler.connections) == 1
    after = by_key(loket)
    for item in smtp_server.handler.received:
        row = next(r for r in after.values() if mid(r["key"]) == item.message["Message-ID"])
        assert item.rcpt_tos == [row["to_email"]]
        assert item.mail_from == "wijkloket@gemeente.example"
        assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
        assert row["sent_at"] == FRIDAY
        assert row["subject"] == item.message["Subject"]  # the rendered subject is kept
    lead = next(i.message for i in smtp_server.handler.received if i.rcpt_tos == [LEAD])
    assert lead["Subject"].startswith("Escalatie ME-2026-")
    text = part(lead, "plain")
    assert "trede 1 van 3: teamleider" in text
    assert "dinsdag 3 maart 2026 om 23:59" in text
    assert "Chris de Vries" in text and "c.devries" not in text  # actors by name

    # Delivering again sends nothing more.
    assert deliver(loket, smtp(smtp_server)) == DeliveryReport()
    assert len(smtp_server.messages) == 6

    url = loket.engine.url.render_as_string(hide_password=False)
    code, out, _ = run_cli(capsys, "--db", url, "outbox", "list", "--json")
    assert code == 0
    listing = json.loads(out)
    assert len(listing) == 6
    for item in listing:
        assert item.keys() >= LISTING_KEYS
        assert (item["status"], item["attempts"], item["last_error"]) == ("sent", 1, None)
        assert item["to"] in (LEAD, HEAD)
        assert item["subject"] == after[item["key"]]["subject"]


def test_a_run_is_one_connection_whatever_its_batches(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    rows = escalate(loket, clock, 5)

    report = deliver(loket, smtp(smtp_server), batch=2)

    assert report.sent == 5
    assert received_ids(smtp_server) == Counter({mid(row["key"]): 1 for row in rows})
    assert len(smtp_server.handler.connections) == 1  # batches of 2 + 2 + 1


def test_event_times_come_back_aware(loket: Loket, clock: FixedClock) -> None:
    """format_moment refuses naive datetimes; SQLite keeps no zone, the column type adds UTC."""
    (row,) = escalate(loket, clock, 1)
    with loket.read() as conn:
        moments = conn.execute(sa.select(events_t.c.at).order_by(events_t.c.seq)).scalars().all()
    assert moments == [START, THURSDAY] and all(m.tzinfo is not None for m in moments)
    context = compose.email_context(loket, row)
    assert context["events"][0]["at"] == "maandag 2 maart 2026 om 10:00"
    assert row["next_attempt_at"] == THURSDAY and row["next_attempt_at"].tzinfo is not None


def test_each_email_shows_the_five_events_up_to_its_own_escalation(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    (ref,) = open_meldingen(loket, 1)
    for number in range(1, 7):
        loket.comment(ref, f"notitie-{number}", actor="c.devries")
    clock.set(FRIDAY)
    sweep(loket)  # events 8 and 9: rung 1, then rung 2
    loket.comment(ref, "notitie-later", actor="c.devries")

    assert deliver(loket, smtp(smtp_server)).sent == 2

    shown = {}
    for item in smtp_server.handler.received:
        text = part(item.message, "plain")
        notes = (*range(1, 7), "later")
        shown[item.rcpt_tos[0]] = [n for n in notes if re.search(rf"notitie-{n}\b", text)]
        assert text.count("geëscaleerd") == (1 if item.rcpt_tos == [LEAD] else 2)
        # What the sweep did is named as the product's, not by an internal id.
        assert "Wijkloket (automatisch) – geëscaleerd" in text and " system " not in text
    assert shown == {LEAD: [3, 4, 5, 6], HEAD: [4, 5, 6]}

    # A row that does not say which event made it shows the case's latest five.
    row = list_outbox(loket)[0]
    bare = {**row, "context": {k: v for k, v in row["context"].items() if k != "event_seq"}}
    both = compose.recent_events(loket, [bare, row])
    assert [[event["seq"] for event in events] for events in both] == [[6, 7, 8, 9, 10],
                                                                       [4, 5, 6, 7, 8]]


def test_batches_of_any_size_read_their_own_windows_and_only_what_an_email_shows(
    loket: Loket, clock: FixedClock,
) -> None:
    """The statement for a number of windows is made once and reused (batches of 3, 1, 3
    here): each batch still gets its own cases' events, and no hash, digest or salt."""
    rows = escalate(loket, clock, 3)
    firsts = {row["case_id"]: row["context"]["event_seq"] for row in rows}
    for batch in (rows, rows[1:2], rows[::-1]):
        found = compose.recent_events(loket, batch)
        assert [[e["case_id"] for e in events] for events in found] == [[row["case_id"]] * 2 for row in batch]
        assert [events[-1]["seq"] for events in found] == [firsts[row["case_id"]] for row in batch]
        assert all(set(e) == set(compose.EVENT_COLUMNS) for events in found for e in events)


# -- failures and retries -------------------------------------------------------------------


def test_the_back_off_grows_to_hours_like_a_mail_server() -> None:
    minutes = [backoff(n) / dt.timedelta(minutes=1) for n in range(1, 12)]
    assert minutes == [1, 5, 15, 30, 60, 120, 240, 240, 240, 240, 240]
    assert backoff(0) == SCHEDULE[0] and backoff(10_000) == SCHEDULE[-1]
    assert dt.timedelta(days=5) == LIFETIME


def test_an_outage_backs_off_and_then_delivers_everything_once(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    rows = escalate(loket, clock, 3)
    server = make_smtp_server()
    server.stop()  # the port now refuses connections
    settings = smtp(server)
    for attempt in (1, 2, 3):
        report = deliver(loket, settings)
        assert report == DeliveryReport(retrying=3)
        assert (report.stopped or "").startswith("nothing more can be delivered now: cannot deliver through")
        for row in list_outbox(loket):
            assert (row["status"], row["attempts"]) == ("pending", attempt)
            assert f"cannot deliver through 127.0.0.1:{server.port}" in row["last_error"]
            assert row["next_attempt_at"] == clock.now() + backoff(attempt)
            assert (row["lease_until"], row["lease_owner"]) == (None, None)
        # Not due yet: nothing is tried before the back-off has passed.
        assert deliver(loket, settings) == DeliveryReport()
        clock.advance(backoff(attempt))

    server.start()
    assert deliver(loket, settings) == DeliveryReport(sent=3)
    assert deliver(loket, settings) == DeliveryReport()
    clock.advance(dt.timedelta(days=1))
    assert deliver(loket, settings) == DeliveryReport()
    assert received_ids(server) == Counter({mid(row["key"]): 1 for row in rows})
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 4, None)


def test_a_refused_recipient_fails_for_good_and_the_others_are_sent(
    loket: Loket,
    clock: FixedClock,
    make_smtp_server: MakeServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    escalate(loket, clock, 2, at=FRIDAY)
    server = make_smtp_server(reject=[HEAD])

    report = deliver(loket, smtp(server))

    assert (report.sent, report.retrying, report.failed) == (2, 0, 2)
    assert all("550" in error for error in report.errors)
    rows = list_outbox(loket)
    failed = {row["key"] for row in rows if row["to_email"] == HEAD}
    for row in rows:
        if row["key"] in failed:
            assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)
            assert "550" in row["last_error"] and HEAD in row["last_error"]
        else:
            assert row["status"] == "sent"
    assert [item.rcpt_tos for item in server.handler.received] == [[LEAD], [LEAD]]

    clock.advance(dt.timedelta(days=2))
    assert deliver(loket, smtp(server)) == DeliveryReport()  # permanent: never retried

    url = loket.engine.url.render_as_string(hide_password=False)
    code, out, _ = run_cli(capsys, "--db", url, "outbox", "list", "--failed", "--json")
    assert code == 0
    assert {item["key"] for item in json.loads(out)} == failed
    code, out, _ = run_cli(capsys, "--db", url, "outbox", "list", "--failed")
    assert code == 0 and out.count(HEAD) == 2 and LEAD not in out


def test_a_message_is_tried_on_its_schedule_until_its_lifetime_is_over(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer
) -> None:
    (row,) = escalate(loket, clock, 1)
    queued = row["created_at"]
    busy = "451 4.3.0 mailbox busy, try again later"
    server = make_smtp_server(data_replies={n: busy for n in range(1, 50)})
    settings = dataclasses.replace(smtp(server), lifetime=dt.timedelta(hours=3))

    tried_at = []
    while True:
        tried_at.append(clock.now())
        report = deliver(loket, settings)
        (now,) = list_outbox(loket)
        assert now["attempts"] == len(tried_at)
        if now["status"] == "failed":
            break
        assert report == DeliveryReport(retrying=1) and now["status"] == "pending" and busy in now["last_error"]
        assert deliver(loket, settings) == DeliveryReport()  # not due before its back-off has passed
        clock.set(now["next_attempt_at"])
    # 0, 1, 6, 21, 51 minutes, 1h51, and the last try at the end of the lifetime (not 3h51).
    assert [(moment - queued) / dt.timedelta(minutes=1) for moment in tried_at] == [0, 1, 6, 21, 51, 111, 180]
    assert report.failed == 1
    assert report.errors == [f"{row['key']}: message refused: {busy} (given up: still failing 3 hours after it"
                             " was queued)"]
    assert (now["status"], now["next_attempt_at"]) == ("failed", None)

    clock.advance(dt.timedelta(days=7))
    assert deliver(loket, settings) == DeliveryReport()
    assert server.handler.data_count == 7 and server.messages == []


def test_an_address_no_header_accepts_fails_only_its_own_rows(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """An address the email header refuses (the organisation file refuses `a..jansen@…` too,
    but a row may predate that check): retrying cannot fix it, so those rows fail for good and
    the rest of the batch still goes."""
    rows = escalate(loket, clock, 2, at=FRIDAY)
    broken = [row["id"] for row in rows if row["to_email"] != LEAD]
    with loket.engine.begin() as conn:
        conn.execute(sa.update(outbox_t).where(outbox_t.c.id.in_(broken))
                     .values(to_email="a..jansen@voorbeeld.example"))

    report = deliver(loket, smtp(smtp_server))

    assert (report.sent, report.retrying, report.failed) == (2, 0, 2)
    assert received_ids(smtp_server) == Counter(
        {mid(row["key"]): 1 for row in rows if row["to_email"] == LEAD}
    )
    for row in list_outbox(loket):
        if row["to_email"] == LEAD:
            assert row["status"] == "sent"
        else:
            assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)
            assert "cannot build email to 'a..jansen@voorbeeld.example'" in row["last_error"]
            assert row["lease_until"] is None


class BrokenDisk:
    """A transport whose every message dies of an I/O error nobody foresaw."""

    def open(self, stop: threading.Event | None = None) -> BrokenDisk:
        return self

    def send(self, message: EmailMessage) -> DeliveryResult:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_transport_that_raises_counts_as_a_failed_attempt(
    loket: Loket, clock: FixedClock
) -> None:
    escalate(loket, clock, 2)
    settings = MailSettings(sender=SENDER, transport=BrokenDisk(), template_dir=None,
                            lifetime=dt.timedelta(minutes=30))

    for attempt in range(1, 5):  # at 0, 1, 6 and 21 minutes
        report = deliver(loket, settings)
        rows = list_outbox(loket)
        for row in rows:
            assert row["attempts"] == attempt and row["lease_until"] is None
            assert row["last_error"] == "transport failed: [Errno 28] No space left on device"
        clock.set(rows[0]["next_attempt_at"])
    assert report == DeliveryReport(retrying=2)
    assert clock.now() == THURSDAY + dt.timedelta(minutes=30)  # not 51: the end of the lifetime
    assert deliver(loket, settings).failed == 2
    assert {row["status"] for row in list_outbox(loket)} == {"failed"}


def test_a_sender_no_email_can_carry_stops_delivery_before_anything_is_claimed(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    escalate(loket, clock, 2)
    settings = MailSettings(sender="Wijkloket <wijkloket at gemeente>",
                            transport=smtp(smtp_server).transport, template_dir=None)

    with pytest.raises(ConfigurationError, match="LOKET_MAIL_FROM"):
        deliver(loket, settings)

    assert smtp_server.handler.connections == set()
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["lease_until"]) == ("pending", 0, None)


# -- the command line: directory transport, broken overrides --------------------------------


def test_outbox_send_writes_eml_files_with_stable_message_ids(
    loket: Loket,
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = escalate(loket, clock, 1, at=FRIDAY)  # rung 1 to the lead, rung 2 to the head
    url = simulation(loket)
    folder = tmp_path / "mail"
    mail_to_folder(monkeypatch, folder)
    monkeypatch.setenv("LOKET_MAIL_FROM", SENDER)
    expected = {mid(row["key"]) for row in rows}

    def messages() -> dict[str, EmailMessage]:
        found = {}
        for path in sorted(folder.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            assert path.name == mail_file_name(message)
            assert path.name.startswith("2026-03-06_ME-2026-00001_escalation_")
            found[str(message["Message-ID"])] = message
        return found

    # A sender whose database goes away after the first message went out: the rest of the
    # batch is given back untried, and the message in flight keeps its counted attempt...
    def power_cut(*args: Any) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(outbox._Run, "_record", power_cut)
        code, _, err = run_cli(capsys, "--db", url, "--now", FRIDAY.isoformat(), "outbox", "send")
    assert code == 70 and "power cut" in err
    first = messages()
    assert len(first) == 1 and set(first) < expected
    rows = list_outbox(loket)
    in_flight = next(row for row in rows if mid(row["key"]) in first)
    untried = next(row for row in rows if row is not in_flight)
    assert (in_flight["status"], in_flight["attempts"], in_flight["last_error"]) == ("pending", 1, INTERRUPTED)
    assert in_flight["next_attempt_at"] == FRIDAY + backoff(1)
    assert (untried["status"], untried["attempts"], untried["next_attempt_at"]) == ("pending", 0, FRIDAY)

    # ...so the next run sends the untried one, and the one in flight after its back-off.
    code, out, _ = run_cli(capsys, "--db", url, "--now", FRIDAY.isoformat(), "outbox", "send")
    assert code == 0 and out.startswith("1 sent, 0 to retry, 0 failed")
    later = (FRIDAY + backoff(1)).isoformat()
    code, out, _ = run_cli(capsys, "--db", url, "--now", later, "outbox", "send")
    assert code == 0 and out.startswith("1 sent, 0 to retry, 0 failed")
    assert str(folder) in out

    second = messages()
    assert set(second) == expected  # the same Message-IDs, so the same files, replaced
    assert len(list(folder.iterdir())) == 2  # no temporary files left
    for message in second.values():
        assert message["From"] == SENDER
        assert message["To"].addresses[0].addr_spec in (LEAD, HEAD)
        assert "ME-2026-" in part(message, "plain") and "<html" in part(message, "html")
    assert second[next(iter(first))]["Subject"] == first[next(iter(first))]["Subject"]
    attempts = {row["key"]: row["attempts"] for row in list_outbox(loket)}
    assert attempts == {in_flight["key"]: 2, untried["key"]: 1}
    assert {(row["status"], row["lease_until"]) for row in list_outbox(loket)} == {("sent", None)}


def test_outbox_send_that_delivers_nothing_warns_on_stderr(
    loket: Loket,
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    escalate(loket, clock, 2)
    url = simulation(loket)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the mail folder should be")
    mail_to_folder(monkeypatch, blocked)
    code, out, err = run_cli(capsys, "--db", url, "--now", THURSDAY.isoformat(), "outbox", "send")
    # Retrying is the design (exit 0), but a run that delivered nothing says so on stderr.
    assert code == 0 and out.startswith("0 sent, 2 to retry, 0 failed")
    [warning] = err.splitlines()
    assert warning.startswith("Warning: nothing could be delivered; 2 message(s) will be tried again."
                              " First error: ME-2026-")
    assert {row["status"] for row in list_outbox(loket)} == {"pending"}


def test_a_message_whose_delivery_keeps_being_interrupted_ends_failed(loket: Loket, clock: FixedClock) -> None:
    with loket.engine.begin() as conn:
        conn.execute(sa.insert(outbox_t).values(
            key="proef/1/1", case_id=None, kind="escalation", language="nl", recipient="b.bakker",
            to_email="b.bakker@voorbeeld.example", to_name="Bram Bakker", subject="Escalatie", context={},
            created_at=clock.now(), status="pending", attempts=0, next_attempt_at=clock.now()))
    lifetime = dt.timedelta(hours=1)
    # Each attempt is begun and abandoned, as by a sender killed while the server had the
    # message: it is taken up again after its back-off, once the lease has run out, until its
    # lifetime is over; then it is given up instead of claimed again.
    claims = 0
    while True:
        now = clock.now()
        with loket.engine.begin() as conn:
            given_up = outbox_store.give_up_interrupted(conn, now, queued_before=now - lifetime)
            claimed = outbox_store.claim(conn, now, 10, lease=LEASE, owner=f"run{claims}")
        if given_up:
            break
        if claimed:
            claims += 1
            (row,) = claimed
            with loket.engine.begin() as conn:
                assert outbox_store.begin_attempt(conn, row["id"], owner=f"run{claims - 1}", until=now + LEASE,
                                                  retry_at=now + backoff(row["attempts"] + 1))
        clock.advance(dt.timedelta(minutes=1))
    [row] = list_outbox(loket)
    assert claims == 5  # at 0, 6 (once the lease ran out, after the 1-minute back-off), 12, 27, 57 minutes
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 5, None)
    assert row["last_error"] == outbox_store.GIVEN_UP
    assert given_up[0]["key"] == "proef/1/1"


def test_a_broken_override_template_stops_outbox_send(
    loket: Loket,
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    escalate(loket, clock, 2)
    url = simulation(loket)
    templates = tmp_path / "templates"
    templates.mkdir()
    broken = templates / "escalation.nl.html.j2"
    broken.write_text("<p>{{ ref }}</p>\n{% if %}\n", encoding="utf-8")
    folder = tmp_path / "mail"
    mail_to_folder(monkeypatch, folder, templates)

    code, out, err = run_cli(capsys, "--db", url, "--now", THURSDAY.isoformat(), "outbox", "send")

    assert code == 2 and out == ""
    assert err.startswith("Error: template ") and str(broken) in err and "line 2" in err
    assert len(err.splitlines()) == 1
    assert not folder.exists() or not any(folder.iterdir())
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["lease_until"]) == ("pending", 0, None)


def test_a_template_failing_on_real_data_releases_the_claimed_rows(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """The start-up check renders sample cases (BI-…); this override only fails for a melding,
    so the failure comes after the rows were claimed: they must be given back unsent."""
    escalate(loket, clock, 3)
    templates = tmp_path / "templates"
    templates.mkdir()
    override = templates / "escalation.nl.txt.j2"
    override.write_text('{% if ref.startswith("ME-") %}{{ 1 // 0 }}{% endif %}{{ ref }}\n',
                        encoding="utf-8")

    with pytest.raises(ConfigurationError, match=str(override)):
        deliver(loket, smtp(smtp_server, templates))

    assert smtp_server.handler.connections == set()
    for row in list_outbox(loket):
        assert (row["status"], row["attempts"], row["lease_until"]) == ("pending", 0, None)
    override.unlink()
    assert deliver(loket, smtp(smtp_server, templates)).sent == 3


# -- content --------------------------------------------------------------------------------


HOSTILE_FIELD = "<script>x</script>\r\nBcc: e@evil.example"  # fits the 40-character summary
HOSTILE_COMMENT = (
    "<script>alert('x')</script><img src=x onerror=alert(1)>\r\n"
    "Bcc: victim@evil.example\r\n.\r\n"
    "MAIL FROM:<spoof@evil.example>\r\nRCPT TO:<victim@evil.example>"
)


def test_what_a_resident_typed_is_escaped_and_adds_no_header(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    (ref,) = open_meldingen(loket, 1)
    # A field value is one line without control characters when it comes in; this one is put
    # into the stored history behind the engine's back, as by a bad import or an older
    # version, to show that the email does not depend on that check. A comment may span lines
    # (its CR LF are stored as LF).
    loket.set_fields(ref, ["locatie=Lindelaan 1"], actor="c.devries")
    with loket.engine.begin() as conn:
        conn.execute(sa.update(events_t).where(events_t.c.action == "data_changed")
                     .values(data={"locatie": HOSTILE_FIELD}))
    loket.comment(ref, HOSTILE_COMMENT, actor="c.devries")
    clock.set(THURSDAY)
    sweep(loket)

    assert deliver(loket, smtp(smtp_server)) == DeliveryReport(sent=1)

    (item,) = smtp_server.handler.received  # the smuggled "." did not end the message early
    assert item.rcpt_tos == [LEAD] and item.mail_from == "wijkloket@gemeente.example"
    message = item.message
    assert set(message.keys()) == {"Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted",
                                   "X-Loket-Queued", "X-Loket-Ref", "X-Loket-Kind", "X-Loket-Recipient",
                                   "MIME-Version", "Content-Type"}
    assert not any("evil" in str(value) for value in message.values())
    html = part(message, "html")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    text = part(message, "plain")
    assert "<script>x</script>" in text  # plain text shows it as typed: nothing runs there
    assert "MAIL FROM:<spoof@evil.example>" in text


def test_a_message_delivered_late_counts_its_days_at_delivery(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    # A melding opened Mon 03-02 is due at the end of Tue 03-03; rung 1 fires on Thursday,
    # 1 working day over (Wed). The mail server is down for a week: delivered on Thu 03-12,
    # the email counts Wed 4, Thu 5, Fri 6, Mon 9, Tue 10, Wed 11 = 6 working days.
    escalate(loket, clock, 1)
    late = THURSDAY + dt.timedelta(days=7)

    assert deliver(loket, smtp(smtp_server), now=late).sent == 1

    (message,) = smtp_server.messages
    assert message["Subject"].endswith(": 6 werkdagen over de termijn"), message["Subject"]
    assert "1 werkdag" not in part(message, "plain")


def test_an_english_organisation_gets_english_email(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    loket.load_organisation(org_file(tmp_path, "language: nl", "language: en"))
    (row,) = escalate(loket, clock, 1)
    assert row["language"] == "en"

    assert deliver(loket, smtp(smtp_server)).sent == 1

    (message,) = smtp_server.messages
    ref = row["key"].split("/")[0]
    assert message["Subject"] == (
        f"Escalation {ref} – Melding openbare ruimte: 1 working day overdue"
    )
    text = part(message, "plain")
    assert text.startswith("Dear Bram Bakker,")
    assert "rung 1 of 3: team lead" in text
    assert "Tuesday 3 March 2026 at 23:59" in text
    assert "Monday 2 March 2026 at 10:00 – Chris de Vries – created" in text
    assert '<html lang="en">' in part(message, "html")


# -- a sweep that ran late ------------------------------------------------------------------

# A bewonersinitiatief opened on Monday 2 March is due in `ingediend` at the end of Monday
# 9 March (5 working days); its reminder (2 working days before) at the end of Thursday
# 5 March. Nothing swept until Tuesday 24 March: then the whole ladder fires at once, the
# reminder included, with the lead (after 0), the head (after 5: Monday 16 March) and the
# administrator (after 10: Monday 23 March). Ten working days have ended since the deadline:
# 10-13, 16-20 and 23 March.
LATE = dt.datetime(2026, 3, 24, 9, 0, tzinfo=dt.UTC)
ASSIGNEE = "l.mulder@voorbeeld.example"
ADMIN = "wethouder.wijken@voorbeeld.example"
PASSED = "termijn verstreken op maandag 9 maart 2026 om 23:59 (10 werkdagen geleden)"


def flat(text: str) -> str:
    """The words of a body, its line breaks and indentation made single spaces."""
    return " ".join(text.split())


def test_a_reminder_fired_by_a_late_sweep_says_the_deadline_has_passed(
    loket: Loket, clock: FixedClock, tmp_path: Path
) -> None:
    # Lotte Mulder takes the case herself: nobody tells her it is hers, and the outbox holds
    # the sweep's rows alone.
    held = loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor="l.mulder", assign="l.mulder").ref
    vacant = loket.new_case("bewonersinitiatief", ["title=Buurtmoestuin"], actor="c.devries").ref
    clock.set(LATE)
    sweep(loket)
    rows = {tuple(row["key"].split("/")[::2]): row for row in list_outbox(loket)}
    assert {key: row["to_email"] for key, row in rows.items()} == {
        (held, "1"): ASSIGNEE, (held, "2"): LEAD, (held, "3"): HEAD, (held, "4"): ADMIN,
        (vacant, "1"): LEAD,  # nobody holds it: the reminder moves up to the lead
        (vacant, "2"): LEAD, (vacant, "3"): HEAD, (vacant, "4"): ADMIN,
    }
    for ref, reader in ((held, "assignee"), (vacant, "lead")):
        stored = rows[ref, "1"]["context"]
        assert (stored["deadline_passed"], stored["days_overdue"], stored["days_left"]) == (True, 10, 0)
        assert stored["resolved"] == reader

    folder = tmp_path / "mail"
    settings = MailSettings(sender=SENDER, transport=DirectoryTransport(folder), template_dir=None,
                            digest_limit=1)
    assert deliver(loket, settings) == DeliveryReport(sent=8)

    def delivered(ref: str, rung: str) -> tuple[EmailMessage, str, str]:
        (path,) = folder.glob(f"*_{ref}_*_{stable_id(mid(rows[ref, rung]['key']))}.eml")
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert message["To"].addresses[0].addr_spec == rows[ref, rung]["to_email"]
        return message, flat(part(message, "plain")), flat(part(message, "html"))

    # The assignee's reminder: late, and honest about it.
    message, text, html = delivered(held, "1")
    assert message["Subject"] == f"Herinnering {held} – Bewonersinitiatief (wijkbudget): {PASSED}"
    assert text.startswith("Geachte Lotte Mulder,")
    assert ("De termijn voor onderstaande zaak bij Gemeente Voorbeeld is verstreken op maandag 9 maart"
            " 2026 om 23:59 (10 werkdagen geleden). Deze herinnering komt later dan bedoeld") in text
    assert "<strong>verstreken op maandag 9 maart 2026 om 23:59</strong> (10 werkdagen geleden)." in html
    for body in (text, html):
        assert "Wilt u de zaak zo snel mogelijk afronden of doorzetten naar de volgende stap?" in body
        assert "Lukt dat niet, overleg dan met uw teamleider." in body
        for said_in_time in ("verloopt", "vandaag", "op tijd verder kan", "vóór het verstrijken"):
            assert said_in_time not in body
    # The same reminder, moved up to the lead: not told to consult a team lead, asked to assign it.
    message, text, html = delivered(vacant, "1")
    assert message["Subject"] == f"Herinnering {vacant} – Bewonersinitiatief (wijkbudget): {PASSED}"
    assert text.startswith("Geachte Bram Bakker,")
    for body in (text, html):
        assert ("Wilt u ervoor zorgen dat de zaak zo snel mogelijk wordt afgerond of doorgezet naar de"
                " volgende stap, bijvoorbeeld door haar aan een behandelaar toe te wijzen?") in body
        assert "overleg dan met uw teamleider" not in body and "verloopt" not in body
    # The escalations: the lead may extend the decision period; the administrator may not.
    _, text, html = delivered(held, "2")
    for body in (text, html):
        assert "of de beslistermijn verlengen waar de regels dat toestaan." in body
    message, text, html = delivered(held, "4")
    assert message["Subject"] == f"Escalatie {held} – Bewonersinitiatief (wijkbudget): 10 werkdagen over de termijn"
    for body in (text, html):
        assert ("U kunt bijvoorbeeld Wijkteam Noord op de voortgang aanspreken, en de teamleider of het"
                " afdelingshoofd vragen de zaak (opnieuw) toe te wijzen") in body
        assert "beslistermijn verlengen" not in body and "termijn verlengen" not in body


def test_a_reminder_row_from_before_reminders_said_whether_they_were_late(
    loket: Loket, clock: FixedClock
) -> None:
    """A reminder row still in the outbox from an earlier version, without `deadline_passed`
    or `days_overdue`, is judged by the moment it was made: the moment its rung fired."""
    late = loket.new_case("bewonersinitiatief", ["title=Straatfeest"], actor="c.devries", assign="l.mulder").ref
    clock.set(LATE)
    sweep(loket)
    # Opened on Tuesday 24 March: due at the end of Tuesday 31 March, reminded (2 working days
    # before) at the end of Friday 27 March. Swept on Saturday: two working days left.
    in_time = loket.new_case("bewonersinitiatief", ["title=Speeltuin"], actor="c.devries", assign="l.mulder").ref
    clock.set(dt.datetime(2026, 3, 28, 9, 0, tzinfo=dt.UTC))
    sweep(loket)
    reminders = {row["key"].split("/")[0]: row for row in list_outbox(loket) if row["kind"] == "reminder"}
    expected = ((late, True, 10, PASSED), (in_time, False, 0, "termijn verloopt over 2 werkdagen"))
    for ref, passed, overdue, subject in expected:
        row = reminders[ref]
        old = {**row, "context": {key: value for key, value in row["context"].items()
                                  if key not in ("deadline_passed", "days_overdue")}}
        context = compose.email_context(loket, old)
        assert (context["deadline_passed"], context["days_overdue"]) == (passed, overdue)
        assert compose.email_context(loket, row)["deadline_passed"] is passed
        assert Renderer("nl").render("reminder", context).subject.endswith(subject)


# -- leases and concurrency -------------------------------------------------------------------


class TickingClock:
    """A clock that moves three minutes every time it is read: a slow delivery run."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        self.at += dt.timedelta(minutes=3)
        return self.at


class LeaseSpy:
    """Passes messages on, noting at each the leases of the rows being sent, and the clock."""

    def __init__(self, loket: Loket, inner: Transport) -> None:
        self.loket, self.inner = loket, inner
        self.seen: list[tuple[dt.datetime, set[dt.datetime]]] = []

    def open(self, stop: threading.Event | None = None) -> LeaseSpy:
        self.session = self.inner.open(stop)
        return self

    def send(self, message: EmailMessage) -> DeliveryResult:
        with self.loket.read() as conn:
            query = sa.select(outbox_t.c.lease_until).where(outbox_t.c.status == "sending")
            leases = set(conn.execute(query).scalars())
        clock = self.loket.clock
        assert isinstance(clock, TickingClock)
        self.seen.append((clock.at, leases))
        return self.session.send(message)

    def close(self) -> None:
        self.session.close()


def test_every_lease_of_a_run_is_renewed_before_each_message(
    loket: Loket, clock: FixedClock, smtp_server: SmtpServer
) -> None:
    escalate(loket, clock, 6)
    loket.clock = TickingClock(THURSDAY)
    spy = LeaseSpy(loket, smtp(smtp_server).transport)
    settings = MailSettings(sender=SENDER, transport=spy, template_dir=None, digest_limit=1)

    assert deliver(loket, settings, batch=4).sent == 6

    # Three minutes pass with every clock reading: without renewal, the 5-minute leases of a
    # batch would have run out before its second message.
    assert len(spy.seen) == 6
    for last_read, leases in spy.seen:
        assert leases == {last_read + LEASE}  # the rows still leased, all renewed just now
    assert len({row["sent_at"] for row in list_outbox(loket)}) == 6


def test_two_workers_deliver_every_message_exactly_once(
    loket: Loket, clock: FixedClock, db_url: str, make_smtp_server: MakeServer
) -> None:
    from smtp_server import RecordingHandler

    class SlowHandler(RecordingHandler):
        """Takes a moment over every message, so that the two workers overlap."""

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.01)
            return await super().handle_DATA(server, session, envelope)

    rows = escalate(loket, clock, 20, at=FRIDAY)
    assert len(rows) == 40
    server = make_smtp_server(SlowHandler())
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker() -> None:
        engine = open_engine(db_url)
        try:
            own = Loket(engine, FixedClock(FRIDAY))
            start.wait()
            reports.append(deliver(own, smtp(server), batch=4))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(reports) == 2
    assert sum(report.sent for report in reports) == 40
    assert all(report.sent > 0 for report in reports)  # both took part
    assert received_ids(server) == Counter({mid(row["key"]): 1 for row in rows})
    assert {(row["status"], row["attempts"]) for row in list_outbox(loket)} == {("sent", 1)}
