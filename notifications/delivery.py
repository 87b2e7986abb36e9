"""Delivering the transactional outbox: rows written with their events, sent later, never lost.

Delivery claims due rows with a lease (committed before anything is sent, with `SKIP LOCKED`
on PostgreSQL), so two workers never hand the same message to SMTP at once and a worker that
dies mid-batch only delays its rows until the lease runs out. A failed message is retried
with exponentially growing, capped delays; after the last attempt it is `failed`, and it
stays in the table for `loket outbox list --failed` and the report.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigurationError, InvalidValue
from engine.store import outbox as store
from notifications.compose import TypeFacts, email_context, recent_events, type_facts
from notifications.message import build_message, message_id_for
from notifications.render import RenderedEmail, Renderer
from notifications.transports import DeliveryResult, Transport, transport_from_env
from notifications.wording import LANGUAGES

if TYPE_CHECKING:
    from engine.app.service import Loket

MAX_ATTEMPTS = 8
FIRST_DELAY = dt.timedelta(minutes=1)
MAX_DELAY = dt.timedelta(hours=6)
LEASE = dt.timedelta(minutes=5)
BATCH = 100
DEFAULT_SENDER = "Wijkloket <wijkloket@localhost>"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the n-th failed attempt: 1, 2, 4 ... minutes, at most six hours.

    The exponent is bounded (2**16 minutes is far past the cap) because a timedelta overflows
    long before the integer does, should MAX_ATTEMPTS ever grow.
    """
    return min(FIRST_DELAY * 2 ** min(max(attempts - 1, 0), 16), MAX_DELAY)


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    """One line per message that failed for good: ``key: error``."""
    retry_errors: list[str] = field(default_factory=list, compare=False)
    """One line per message that will be tried again: ``key: error``."""


@dataclass(frozen=True)
class MailSettings:
    sender: str
    transport: Transport
    template_dir: Path | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MailSettings:
        env = os.environ if environ is None else environ
        folder = env.get("LOKET_TEMPLATE_DIR")
        return cls(
            sender=env.get("LOKET_MAIL_FROM") or DEFAULT_SENDER,
            transport=transport_from_env(env),
            template_dir=Path(folder) if folder else None,
        )

    @property
    def domain(self) -> str:
        address = self.sender.rsplit("<", 1)[-1].rstrip(">").strip()
        return address.rsplit("@", 1)[-1] or "localhost"

    def check(self) -> None:
        """Refuse a sender no message can carry, before any row is claimed.

        ``build_message`` reports a bad From (or a Message-ID domain derived from it) as
        :class:`InvalidValue`, which delivery treats as a fault of one row; left to that, a typo
        in ``LOKET_MAIL_FROM`` would mark every message in the outbox failed for good.
        """
        probe = RenderedEmail(subject="probe", text="probe", html="probe")
        try:
            build_message(probe, sender=self.sender, to="probe@example.org", to_name=None,
                          message_id=message_id_for("probe", self.domain),
                          date=dt.datetime.now(dt.UTC))
        except InvalidValue as exc:
            raise ConfigurationError(
                f"LOKET_MAIL_FROM {self.sender!r} cannot be the sender of an email: {exc.message}"
            ) from None


def deliver(loket: Loket, settings: MailSettings, now: dt.datetime | None = None, *,
            batch: int = BATCH) -> DeliveryReport:
    """Deliver every due message through the transport, one connection per batch.

    Without ``now`` the clock is read again for every batch: a lease counts from its own claim,
    so the later batches of a long run are not handed out already expired, which would let a
    second worker claim and send them too.

    A broken override template or sender aborts the whole delivery with nothing sent (the
    claimed rows are given back), since every message would fail the same way until someone
    fixes the configuration. A row whose own data cannot make an email (an address the
    organisation file let through but no mail header accepts) fails for good on its own:
    retrying cannot change it, and it must not hold up the others.
    """
    settings.check()
    renderers = _renderers(settings.template_dir)
    report = DeliveryReport()
    while True:
        moment = now if now is not None else loket.clock.now()
        rows = _claim(loket, moment, batch)
        if not rows:
            return report
        ready: list[tuple[dict[str, Any], EmailMessage]] = []
        outcomes: dict[int, DeliveryResult] = {}
        try:
            for row, events, facts in zip(rows, recent_events(loket, rows), type_facts(loket, rows), strict=True):
                try:
                    ready.append((row, _compose(loket, settings, renderers, row, events, facts, moment)))
                except InvalidValue as exc:
                    outcomes[row["id"]] = DeliveryResult.failed("", exc.message, permanent=True)
        except Exception:
            with loket.engine.begin() as conn:
                store.release(conn, [row["id"] for row in rows])
            raise
        results = _send(settings.transport, [message for _, message in ready])
        for (row, _), result in zip(ready, results, strict=True):
            outcomes[row["id"]] = result
        _record(loket, rows, [outcomes[row["id"]] for row in rows], moment, report)
        if len(rows) < batch:
            return report


def deliver_job(loket: Loket, settings: MailSettings, echo: Callable[[str], None]) -> None:
    """The worker's delivery run: one line when anything was sent, retried or given up."""
    report = deliver(loket, settings)
    if report.sent or report.failed or report.retrying:
        echo(f"outbox: {report.sent} sent, {report.retrying} to retry, {report.failed} failed")


def _claim(loket: Loket, now: dt.datetime, batch: int) -> list[dict[str, Any]]:
    """The next due rows, leased to this delivery; committed before anything is sent."""
    with loket.engine.begin() as conn:
        return store.claim(conn, now, batch, lease=LEASE, max_attempts=MAX_ATTEMPTS)


def _renderers(template_dir: Path | None) -> dict[str, Renderer]:
    """A renderer per language, its overrides checked before any row is claimed, so that a
    broken override stops delivery with every row untouched."""
    renderers = {language: Renderer(language, template_dir) for language in LANGUAGES}
    for renderer in renderers.values():
        renderer.check()
    return renderers


def _compose(loket: Loket, settings: MailSettings, renderers: Mapping[str, Renderer],
             row: dict[str, Any], events: list[dict[str, Any]], facts: TypeFacts,
             now: dt.datetime) -> EmailMessage:
    """The message of one row; records the rendered subject in ``row`` for the listing."""
    renderer = renderers.get(row["language"])
    if renderer is None:
        raise InvalidValue(f"no email templates in language {row['language']!r}")
    rendered = renderer.render(row["kind"], email_context(loket, row, events, facts, now))
    row["subject"] = rendered.subject
    return build_message(rendered, sender=settings.sender, to=row["to_email"],
                         to_name=row["to_name"], date=now,
                         message_id=message_id_for(row["key"], settings.domain))


def _send(transport: Transport, messages: list[EmailMessage]) -> list[DeliveryResult]:
    """The transport's results; an I/O error it lets through counts against every message.

    Transports answer for each message rather than raise, but the directory transport raises
    when it cannot even create its temporary file (a full or read-only disk). Left to escape,
    that would keep the rows leased and uncounted, retried every few minutes and never
    `failed`; as a temporary failure it backs off, shows in the listing and ends.
    """
    try:
        return transport.send(messages)
    except OSError as exc:
        error = f"transport failed: {exc}"
        return [DeliveryResult.failed(str(m.get("Message-ID", "")), error) for m in messages]


def _record(loket: Loket, rows: list[dict[str, Any]], results: list[DeliveryResult],
            now: dt.datetime, report: DeliveryReport) -> None:
    """Write how each attempt ended, in one transaction: sent, to be retried after its
    backoff, or failed for good (a permanent error, or the last attempt)."""
    with loket.engine.begin() as conn:
        for row, result in zip(rows, results, strict=True):
            attempts = row["attempts"] + 1
            if result.ok:
                store.mark_sent(conn, row["id"], at=now, attempts=attempts, note=result.error,
                                subject=row["subject"])
                report.sent += 1
            elif result.permanent or attempts >= MAX_ATTEMPTS:
                store.mark_failed(conn, row["id"], attempts=attempts, error=result.error)
                report.failed += 1
                report.errors.append(f"{row['key']}: {result.error}")
            else:
                store.mark_retry(conn, row["id"], attempts=attempts, error=result.error,
                                 at=now + backoff(attempts))
                report.retrying += 1
                report.retry_errors.append(f"{row['key']}: {result.error}")
