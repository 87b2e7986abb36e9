"""Delivering the transactional outbox: rows written with their events, sent later, never lost,
and not sent twice.

A delivery run claims due rows under a lease it owns (committed before anything is sent, with
`SKIP LOCKED` on PostgreSQL) and then, for each message: checks in the database that the
lease is still its own and renews it, counting the attempt ahead (:func:`store.begin_attempt`);
sends it; and commits its outcome the moment the server has answered. A run killed at any
point repeats at most the one message the server had when it died; a run that finds its
lease taken (it stalled past it, and another sender claimed the rows) stops before sending
more and gives back what it still holds.

A failed message is retried on a schedule like a mail server's — 1, 5, 15 and 30 minutes,
1, 2 and 4 hours, then every 4 hours — until its lifetime (counted from when it was queued,
:data:`LIFETIME` unless ``LOKET_MAIL_LIFETIME`` says otherwise) is over; then, or at once for
a refusal of the message itself, it is `failed`, and the operators get a summary (see
:mod:`notifications.failures`). A server that cannot be reached defers the whole batch and
ends the run; one that drops the line charges only the message in flight.

A recipient's reminders, escalations and timeouts that one run finds due go out as one
message, a digest (:mod:`notifications.digest`): its rows are claimed, counted, sent and
recorded together, so everything above holds for a digest as for one message — it is
repeated, retried or failed as a whole, and none of its cases is ever sent twice.

The sender is ``LOKET_MAIL_FROM``; without it, ``Wijkloket <wijkloket@DOMAIN>`` when the
organisation file names its ``mail_domain``, else :data:`DEFAULT_SENDER`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from engine.errors import ConfigurationError, InvalidValue
from engine.store import outbox as store
from notifications import digest
from notifications.failures import FailedMessage, operators, summarised, summary_rows
from notifications.message import build_message, is_domain, message_id_for
from notifications.outgoing import Composer, Outgoing
from notifications.render import RenderedEmail, Renderer
from notifications.transports import DeliveryResult, Session, SmtpTransport, Transport, transport_from_env
from notifications.wording import LANGUAGES

if TYPE_CHECKING:
    import sqlalchemy as sa

    from engine.app.service import Loket
    from engine.core.organisation import Organisation

SCHEDULE: Final = tuple(dt.timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 240))
"""The wait after the 1st, 2nd ... failed attempt; after the last, its wait over and over."""
LIFETIME: Final = dt.timedelta(days=5)
MAX_LIFETIME: Final = dt.timedelta(days=90)
LEASE: Final = dt.timedelta(minutes=5)
BATCH: Final = 100
STOPPING: Final = "the sender is stopping"
DEFAULT_SENDER: Final = "Wijkloket <wijkloket@localhost>"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt (:data:`SCHEDULE`)."""
    return SCHEDULE[min(max(attempts, 1), len(SCHEDULE)) - 1]


@dataclass
class DeliveryReport:
    sent: int = 0
    """Outbox rows sent (a digest sends several in one email)."""
    emails: int = field(default=0, compare=False)
    """Emails the transport accepted: one per row, but one per digest."""
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    """One line per message that failed for good: ``key: error``."""
    retry_errors: list[str] = field(default_factory=list, compare=False)
    """One line per message that will be tried again: ``key: error``."""
    failures: list[FailedMessage] = field(default_factory=list, compare=False)
    """The messages that failed for good, as the operators' summary names them."""
    told: list[str] = field(default_factory=list, compare=False)
    """The operators a summary of this run's failures was queued for."""
    stopped: str | None = field(default=None, compare=False)
    """Why the run ended before everything due was tried: the sender is stopping, its lease
    was taken, the server could not be reached."""


@dataclass(frozen=True)
class MailSettings:
    sender: str | None
    """``LOKET_MAIL_FROM``; ``None``: decided by the organisation (:meth:`for_organisation`)."""
    transport: Transport
    template_dir: Path | None
    lifetime: dt.timedelta = LIFETIME
    """How long a message is tried, from when it was queued."""
    lease: dt.timedelta = LEASE
    """How long a claim holds a row without being renewed; longer than any one exchange."""
    digest_limit: int = digest.LIMIT
    """The most firings one message lists (:mod:`notifications.digest`); 1 sends each alone."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MailSettings:
        env = os.environ if environ is None else environ
        folder = env.get("LOKET_TEMPLATE_DIR")
        transport = transport_from_env(env)
        lease = LEASE
        if isinstance(transport, SmtpTransport):
            # Between a renewal and the outcome come at most a check of the connection, a new
            # one and the message, each within the timeout.
            lease = max(LEASE, dt.timedelta(seconds=4 * transport.timeout))
        return cls(
            sender=env.get("LOKET_MAIL_FROM") or None,
            transport=transport,
            template_dir=Path(folder) if folder else None,
            lifetime=mail_lifetime(env),
            lease=lease,
        )

    def for_organisation(self, org: Organisation) -> MailSettings:
        """These settings with their sender decided: ``LOKET_MAIL_FROM`` when set, else the
        municipality's own domain when its organisation file names one (``mail_domain``), else
        :data:`DEFAULT_SENDER`. Decided per run, since the environment is read before the
        organisation is, and a new organisation file counts from the next run."""
        if self.sender:
            return self
        domain = getattr(org, "mail_domain", None)
        if domain and not is_domain(domain):
            raise ConfigurationError(f"the organisation's mail_domain {domain!r} is not a domain name")
        return replace(self, sender=f"Wijkloket <wijkloket@{domain}>" if domain else DEFAULT_SENDER)

    @property
    def domain(self) -> str:
        address = (self.sender or DEFAULT_SENDER).rsplit("<", 1)[-1].rstrip(">").strip()
        return address.rsplit("@", 1)[-1] or "localhost"

    def check(self) -> None:
        """Refuse a sender no message can carry, before any row is claimed.

        ``build_message`` reports a bad From (or a Message-ID domain derived from it) as
        :class:`InvalidValue`, which delivery treats as a fault of one row; left to that, a typo
        in ``LOKET_MAIL_FROM`` would mark every message in the outbox failed for good.
        """
        probe = RenderedEmail(subject="probe", text="probe", html="probe")
        sender = self.sender or DEFAULT_SENDER
        try:
            build_message(probe, sender=sender, to="probe@example.org", to_name=None,
                          message_id=message_id_for("probe", self.domain),
                          date=dt.datetime.now(dt.UTC))
        except InvalidValue as exc:
            raise ConfigurationError(
                f"LOKET_MAIL_FROM {sender!r} cannot be the sender of an email: {exc.message}"
            ) from None


_LIFETIME = re.compile(r"(?:(\d{1,3})d)?(?:(\d{1,4})h)?(?:(\d{1,6})m)?")


def mail_lifetime(environ: Mapping[str, str]) -> dt.timedelta:
    """``LOKET_MAIL_LIFETIME``: ``5d``, ``36h``, ``2d12h``, ``90m``; :data:`LIFETIME` when unset."""
    text = environ.get("LOKET_MAIL_LIFETIME", "").strip()
    if not text:
        return LIFETIME
    match = _LIFETIME.fullmatch(text.lower())
    days, hours, minutes = (int(part or 0) for part in match.groups()) if match else (0, 0, 0)
    lifetime = dt.timedelta(days=days, hours=hours, minutes=minutes)
    if not dt.timedelta(minutes=1) <= lifetime <= MAX_LIFETIME:
        raise ConfigurationError(
            f"LOKET_MAIL_LIFETIME must be from a minute to 90 days (5d, 36h, 2d12h), got {text!r}")
    return lifetime


def deliver(loket: Loket, settings: MailSettings, now: dt.datetime | None = None, *,
            batch: int = BATCH, stop: threading.Event | None = None) -> DeliveryReport:
    """Deliver every due message through the transport, recording each as the server answers.

    Without ``now`` the clock is read again for every claim and every message, so leases count
    from their latest renewal. ``stop``, once set, ends the run between messages (and an
    exchange under way, for SMTP), giving back the rows not yet tried.

    A broken override template or sender aborts the whole delivery with nothing sent (the
    claimed rows are given back), since every message would fail the same way until someone
    fixes the configuration. A row whose own data cannot make an email fails for good on its
    own: retrying cannot change it, and it must not hold up the others.

    When messages failed for good, a summary for the operators is queued and, unless the run
    ended early, delivered in the same run.
    """
    settings = settings.for_organisation(loket.organisation())
    settings.check()
    run = _Run(loket, settings, _renderers(settings.template_dir), now, batch, stop)
    session = settings.transport.open(stop)
    try:
        told = 0
        while True:
            run.deliver_due(session)
            new = [failure for failure in run.report.failures[told:] if summarised(failure)]
            told = len(run.report.failures)
            if not new or not run.queue_summary(new) or run.report.stopped is not None:
                break
    except BaseException:
        with suppress(Exception):  # the database may be what failed: then the leases run out
            run.give_back()
        raise
    finally:
        session.close()
    return run.report


def deliver_job(loket: Loket, settings: MailSettings, echo: Callable[[str], None],
                stop: threading.Event | None = None) -> None:
    """The worker's delivery run: one line when anything was sent, retried or given up, one per
    message given up on, and why a run ended early. The configuration is read afresh, so a new
    organisation file (another operator, a corrected address) counts from the next run."""
    loket.refresh()
    report = deliver(loket, settings, stop=stop)
    if report.sent or report.failed or report.retrying:
        told = f"; operators told: {', '.join(report.told)}" if report.told else ""
        echo(f"outbox: {report.sent} sent, {report.retrying} to retry, {report.failed} failed{told}")
    for error in report.errors:
        echo(f"outbox: failed for good: {error}")
    if report.stopped:
        echo(f"outbox: run ended early: {report.stopped}")


def _send(session: Session, message: EmailMessage) -> DeliveryResult:
    """The session's result; an I/O error it lets through is a temporary failure.

    Sessions answer for each message rather than raise, but a disk can fail in ways nobody
    listed; left to escape, that would end the run with the message's attempt counted and the
    rest given back, and end every later run the same way.
    """
    try:
        return session.send(message)
    except OSError as exc:
        return DeliveryResult.failed(str(message.get("Message-ID", "")), f"transport failed: {exc}")


def _renderers(template_dir: Path | None) -> dict[str, Renderer]:
    """A renderer per language, its overrides checked before any row is claimed, so that a
    broken override stops delivery with every row untouched."""
    renderers = {language: Renderer(language, template_dir) for language in LANGUAGES}
    for renderer in renderers.values():
        renderer.check()
    return renderers


class _Run:
    """One delivery run: its lease owner token, its settings and what it did so far."""

    def __init__(self, loket: Loket, settings: MailSettings, renderers: Mapping[str, Renderer],
                 now: dt.datetime | None, batch: int, stop: threading.Event | None) -> None:
        self.loket, self.settings = loket, settings
        self.composer = Composer(loket, renderers, settings.sender or DEFAULT_SENDER, settings.domain,
                                 settings.digest_limit)
        self.fixed_now, self.batch, self.stop = now, batch, stop
        self.owner = secrets.token_hex(8)
        self.report = DeliveryReport()

    def now(self) -> dt.datetime:
        return self.fixed_now if self.fixed_now is not None else self.loket.clock.now()

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def deliver_due(self, session: Session) -> None:
        """Claim and send batch after batch until nothing is due or the run must end.

        With a batch come the other due firings of its digests' recipients (as many as their
        digests still have room for), so that a batch boundary does not split a digest.
        """
        while self.report.stopped is None:
            if self._stopping():
                self.report.stopped = STOPPING
                return
            moment = self.now()
            with self.loket.engine.begin() as conn:
                for row in store.give_up_interrupted(conn, moment, queued_before=moment - self.settings.lifetime):
                    self._failed(row, row["last_error"])
                rows = store.claim(conn, moment, self.batch, lease=self.settings.lease, owner=self.owner)
                room = digest.room(rows, self.settings.digest_limit)
                more = store.claim_more(conn, moment, room, kinds=digest.DIGEST_KINDS, lease=self.settings.lease,
                                        owner=self.owner) if room else []
            if not rows:
                return
            ready = self._compose(rows + more)
            for index, out in enumerate(ready):
                if self._stopping():
                    self._end(STOPPING)
                    return
                if not self._begin(out.rows):
                    self._end("another sender took over its messages (their lease had run out)")
                    return
                result = _send(session, out.message)
                self._record(out, result)
                if not result.reached and not self._stopping():
                    self._defer(ready[index + 1:], result.error or "")
                    self._end(f"nothing more can be delivered now: {result.error}")
                    return
            if len(rows) < self.batch:
                return

    def _compose(self, rows: list[dict[str, Any]]) -> list[Outgoing]:
        """The messages of the rows; a row whose data makes no email fails for good at once."""
        ready, broken = self.composer.compose(rows, self.now())
        if broken:
            with self.loket.engine.begin() as conn:
                for row, error in broken:
                    row["attempts"] += 1
                    if store.mark_failed(conn, row["id"], owner=self.owner, attempts=row["attempts"], error=error):
                        self._failed(row, error)
        return ready

    def _begin(self, rows: list[dict[str, Any]]) -> bool:
        """Whether the lease on every row of a message is still this run's; if so the attempt
        is counted for each (and every lease of the run renewed) before the message goes out.
        The rows of a digest share their next try, so that they stay together."""
        moment = self.now()
        retry_at = moment + backoff(max(row["attempts"] for row in rows) + 1)
        with self.loket.engine.begin() as conn:
            held = store.begin_attempts(conn, [row["id"] for row in rows], owner=self.owner,
                                        until=moment + self.settings.lease, retry_at=retry_at)
        if held:
            for row in rows:
                row["attempts"] += 1
        return held

    def _record(self, out: Outgoing, result: DeliveryResult) -> None:
        """Commit how the attempt ended, for every row of the message at once: sent, to be
        retried after its back-off, or failed for good (refused for itself, or still failing
        at the end of its lifetime)."""
        moment = self.now()
        with self.loket.engine.begin() as conn:
            if result.ok:
                for row in out.rows:
                    store.mark_sent(conn, row["id"], at=moment, attempts=row["attempts"], note=result.error,
                                    subject=row["subject"])
                self.report.sent += len(out.rows)
                self.report.emails += 1
                return
            self._fail_or_retry(conn, out.rows, result.error or "", moment, permanent=result.permanent)

    def _defer(self, rest: list[Outgoing], error: str) -> None:
        """The rest of a batch the server could not be reached for: each message charged an
        attempt."""
        moment = self.now()
        with self.loket.engine.begin() as conn:
            for out in rest:
                for row in out.rows:
                    row["attempts"] += 1
                self._fail_or_retry(conn, out.rows, error, moment, permanent=False)

    def _fail_or_retry(self, conn: sa.Connection, rows: list[dict[str, Any]], error: str, moment: dt.datetime, *,
                       permanent: bool) -> None:
        """A message that failed: each of its rows tried again at one moment (the digest stays
        whole), or failed for good — all of them when the message was refused, a row alone
        when its own lifetime is over."""
        retry_at = None if permanent else self._next_try(rows, moment)
        for row in rows:
            if retry_at is not None and moment < self._end_of(row):
                if store.mark_retry(conn, row["id"], owner=self.owner, attempts=row["attempts"], error=error,
                                    at=retry_at):
                    self.report.retrying += 1
                    self.report.retry_errors.append(f"{row['key']}: {error}")
                continue
            final = error
            if not permanent:
                final = f"{error} (given up: still failing {_span(moment - row['created_at'])} after it was queued)"
            if store.mark_failed(conn, row["id"], owner=self.owner, attempts=row["attempts"], error=final):
                self._failed(row, final)

    def _end_of(self, row: dict[str, Any]) -> dt.datetime:
        """The end of a row's lifetime: after it, a row is not tried again."""
        return row["created_at"] + self.settings.lifetime

    def _next_try(self, rows: list[dict[str, Any]], moment: dt.datetime) -> dt.datetime | None:
        """When to try a message's rows again after a temporary failure at ``moment``; ``None``
        once every row's lifetime is over. The last try comes at the end of the lifetime
        itself (of the row whose lifetime ends first)."""
        ends = [end for end in map(self._end_of, rows) if moment < end]
        if not ends:
            return None
        return min(moment + backoff(max(row["attempts"] for row in rows)), *ends)

    def _failed(self, row: dict[str, Any], error: str) -> None:
        self.report.failed += 1
        self.report.errors.append(f"{row['key']}: {error}")
        self.report.failures.append(FailedMessage(
            key=row["key"], kind=row["kind"], to=row["to_email"], subject=row["subject"], error=error,
            attempts=row["attempts"], created_at=row["created_at"].astimezone(dt.UTC).isoformat()))

    def _end(self, why: str) -> None:
        """Stop this run, giving back (uncharged) every row it still holds."""
        self.report.stopped = why
        self.give_back()

    def give_back(self) -> None:
        with self.loket.engine.begin() as conn:
            store.release_owned(conn, self.owner)

    def queue_summary(self, failures: list[FailedMessage]) -> bool:
        """Queue the operators' summary of ``failures``; whether there was anyone to tell."""
        org = self.loket.organisation()
        rows = summary_rows(org, failures, self.now())
        with self.loket.engine.begin() as conn:
            for row in rows:
                store.queue_once(conn, row)
        if rows:
            self.report.told += [person for person in operators(org) if person not in self.report.told]
        return bool(rows)


def _span(delta: dt.timedelta) -> str:
    """``5 days``, ``3 hours``, ``20 minutes``: how long, roughly."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count = int(delta.total_seconds() // size)
        if count:
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{int(delta.total_seconds())} seconds"
