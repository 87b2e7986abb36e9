"""The transactional outbox: rows written with their events, delivered later, never lost.

Delivery claims due rows with a lease (committed before anything is sent, with `SKIP LOCKED`
on PostgreSQL), so two workers never hand the same message to SMTP at once and a worker that
dies mid-batch only delays its rows until the lease runs out. A failed message is retried
with exponentially growing, capped delays; after the last attempt it is `failed`, and it
stays in the table for `loket outbox list --failed` and the report.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.app.views import event_detail
from engine.errors import ConfigurationError, InvalidValue, NotFound, Refused, shown
from engine.store.schema import cases_t, events_t, outbox_t
from notifications.message import build_message, message_id_for
from notifications.render import (
    CONTEXT_KEYS,
    LANGUAGES,
    RenderedEmail,
    Renderer,
    format_moment,
    reader_of,
    rung_label,
)
from notifications.transports import DeliveryResult, Transport, transport_from_env

if TYPE_CHECKING:
    from engine.app.service import Loket
    from engine.core.organisation import Organisation

MAX_ATTEMPTS = 8
FIRST_DELAY = dt.timedelta(minutes=1)
MAX_DELAY = dt.timedelta(hours=6)
LEASE = dt.timedelta(minutes=5)
BATCH = 100
EVENTS_SHOWN = 5
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


def _claim(loket: Loket, now: dt.datetime, batch: int) -> list[dict[str, Any]]:
    c = outbox_t.c
    with loket.engine.begin() as conn:
        rows = conn.execute(
            sa.select(outbox_t)
            .where(c.status.in_(("pending", "sending")), c.next_attempt_at <= now,
                   sa.or_(c.lease_until.is_(None), c.lease_until < now))
            .order_by(c.next_attempt_at, c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).mappings().all()
        claimed = [dict(r) for r in rows]
        # A row still `sending` with its lease run out was being delivered by a worker that
        # died: that counts as an attempt, so a message that kills workers ends `failed`
        # instead of being taken up forever.
        for row in claimed:
            if row["status"] == "sending":
                row["attempts"] += 1
                row["last_error"] = "a delivery attempt was interrupted (the worker stopped)"
        given_up = [r for r in claimed if r["status"] == "sending" and r["attempts"] >= MAX_ATTEMPTS]
        for row in given_up:
            conn.execute(sa.update(outbox_t).where(c.id == row["id"]).values(
                status="failed", attempts=row["attempts"], last_error=row["last_error"], lease_until=None,
                next_attempt_at=None))
        claimed = [r for r in claimed if r not in given_up]
        for row in claimed:
            conn.execute(sa.update(outbox_t).where(c.id == row["id"]).values(
                status="sending", lease_until=now + LEASE, attempts=row["attempts"], last_error=row["last_error"]))
    return claimed


def recent_events(loket: Loket, rows: Sequence[Mapping[str, Any]],
                  count: int = EVENTS_SHOWN) -> list[list[dict[str, Any]]]:
    """For each row, the last ``count`` events of its case up to the event that made the row
    (``event_seq`` in its context; without one, up to now), oldest first.

    One query for all the rows: reading them row by row cost more than rendering the emails.
    Events are numbered 1, 2, 3 ... per case without gaps (the hash chain depends on it), so
    the last ``count`` up to number N are those numbered N - count + 1 to N.
    """
    e = events_t.c
    windows: dict[tuple[int, int | None], sa.ColumnElement[bool]] = {}
    for row in rows:
        upto = row["context"].get("event_seq")
        if row["case_id"] is None or (row["case_id"], upto) in windows:
            continue
        top: Any = upto if upto is not None else (
            sa.select(cases_t.c.last_seq).where(cases_t.c.id == row["case_id"]).scalar_subquery())
        windows[row["case_id"], upto] = sa.and_(e.case_id == row["case_id"], e.seq <= top,
                                                e.seq > top - count)
    by_case: dict[int, list[dict[str, Any]]] = {}
    if windows:
        query = sa.select(events_t).where(sa.or_(*windows.values())).order_by(e.case_id, e.seq)
        with loket.read() as conn:
            for event in conn.execute(query).mappings():
                by_case.setdefault(event["case_id"], []).append(dict(event))
    result = []
    for row in rows:
        events = by_case.get(row["case_id"], [])
        upto = row["context"].get("event_seq")
        if upto is not None:
            events = [event for event in events if event["seq"] <= upto]
        result.append(events[-count:])
    return result


TypeFacts = tuple[dict[str, str], frozenset[str]]
"""The state labels and the personal fields of a request type version, for event summaries."""


def type_facts(loket: Loket, rows: Sequence[Mapping[str, Any]]) -> list[TypeFacts]:
    """For each row, the facts of its case's request type: one query for all the rows, one
    lookup per type version (asking row by row cost a query per email)."""
    ids = {row["case_id"] for row in rows if row["case_id"] is not None}
    versions: dict[int, tuple[str, int]] = {}
    if ids:
        with loket.read() as conn:
            for found in conn.execute(sa.select(cases_t.c.id, cases_t.c.type_key, cases_t.c.type_version)
                                      .where(cases_t.c.id.in_(ids))):
                versions[found.id] = (found.type_key, found.type_version)
    known: dict[tuple[str, int], TypeFacts] = {}
    out: list[TypeFacts] = []
    for row in rows:
        version = versions.get(row["case_id"])
        if version is None:
            out.append(({}, frozenset()))
            continue
        if version not in known:
            rt = loket.request_type(*version)
            known[version] = ({name: state.label for name, state in rt.states.items()}, rt.personal_fields())
        out.append(known[version])
    return out


def email_context(loket: Loket, row: Mapping[str, Any],
                  events: Sequence[dict[str, Any]] | None = None,
                  facts: TypeFacts | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The template context of an outbox row: its stored facts plus what is read at delivery.

    ``events`` and ``facts`` are the row's :func:`recent_events` and :func:`type_facts` when
    the caller read them for a whole batch. With ``now``, the moment of delivery, the days
    left or overdue are counted again then: a message delivered late (a mail server that was
    down for days, `outbox retry`) must not say a deadline is still ahead when it has passed.
    """
    stored = dict(row["context"])
    language = row["language"]
    org = loket.organisation()
    tz = org.timezone
    due_at = stored.get("due_at")
    due = dt.datetime.fromisoformat(due_at.replace("Z", "+00:00")) if due_at else None
    context = {key: stored[key] for key in CONTEXT_KEYS if key in stored}
    context["due"] = format_moment(due, timezone=tz, language=language) if due else "-"
    resolved = stored.get("resolved") or stored.get("asked", "")
    context["reader"] = reader_of(resolved)
    if row["kind"] == "reminder" and "deadline_passed" not in stored:
        # A row the sweep wrote before reminders recorded this: its deadline had passed if
        # the row was made (the moment the rung fired) after it.
        fired = row.get("created_at")
        context["deadline_passed"], context["days_overdue"] = False, 0
        if due is not None and fired is not None and due <= fired:
            context["deadline_passed"] = True
            context["days_overdue"] = loket.calendar().working_days_between(due, fired)
    if now is not None and due is not None and now > (row.get("created_at") or now):
        cal = loket.calendar()
        if "days_overdue" in context:
            context["days_overdue"] = cal.working_days_between(due, now)
        if row["kind"] == "reminder":
            context["days_left"] = cal.working_days_between(now, due)
            context["deadline_passed"] = due <= now
            context["days_overdue"] = cal.working_days_between(due, now)
    if row["kind"] == "escalation":
        context["extendable"] = stored.get("extendable", True)  # rows from before it was recorded
        context["rung"] = stored["rung"]
        context["rung_label"] = rung_label(stored["rung"], of=stored.get("ladder_size"),
                                           to=resolved, language=language)
    labels, personal = type_facts(loket, [row])[0] if facts is None else facts
    context["events"] = [
        {"at": format_moment(e["at"], timezone=tz, language=language),
         "actor": _name_of(org, e["actor"]), "action": e["action"],
         "summary": event_detail(e, labels=labels, hide=personal, language=language)}
        for e in (recent_events(loket, [row])[0] if events is None else events)
    ]
    return context


def _name_of(org: Organisation, actor: str) -> str:
    """The reader knows colleagues by name, not by login id; ``system`` and people no longer
    in the organisation keep their id."""
    who = org.recipient(actor)
    return who.name if who is not None else actor


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
            _release(loket, rows)
            raise
        results = _send(settings.transport, [message for _, message in ready])
        for (row, _), result in zip(ready, results, strict=True):
            outcomes[row["id"]] = result
        _record(loket, rows, [outcomes[row["id"]] for row in rows], moment, report)
        if len(rows) < batch:
            return report


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


def _release(loket: Loket, rows: list[dict[str, Any]]) -> None:
    """Give claimed rows back untouched (nothing was sent): e.g. a broken override template."""
    with loket.engine.begin() as conn:
        conn.execute(sa.update(outbox_t).where(outbox_t.c.id.in_([r["id"] for r in rows]))
                     .values(status="pending", lease_until=None))


def _record(loket: Loket, rows: list[dict[str, Any]], results: list[DeliveryResult],
            now: dt.datetime, report: DeliveryReport) -> None:
    c = outbox_t.c
    with loket.engine.begin() as conn:
        for row, result in zip(rows, results, strict=True):
            attempts = row["attempts"] + 1
            if result.ok:
                values: dict[str, Any] = {"status": "sent", "sent_at": now, "attempts": attempts,
                                          "lease_until": None, "last_error": result.error,
                                          "subject": row["subject"]}
                report.sent += 1
            elif result.permanent or attempts >= MAX_ATTEMPTS:
                values = {"status": "failed", "attempts": attempts, "lease_until": None,
                          "last_error": result.error, "next_attempt_at": None}
                report.failed += 1
                report.errors.append(f"{row['key']}: {result.error}")
            else:
                values = {"status": "pending", "attempts": attempts, "lease_until": None,
                          "last_error": result.error, "next_attempt_at": now + backoff(attempts)}
                report.retrying += 1
                report.retry_errors.append(f"{row['key']}: {result.error}")
            conn.execute(sa.update(outbox_t).where(c.id == row["id"]).values(values))


def list_outbox(loket: Loket, *, failed: bool = False,
                limit: int | None = None) -> list[dict[str, Any]]:
    c = outbox_t.c
    query = sa.select(outbox_t).order_by(c.id)
    if failed:
        query = query.where(c.status == "failed")
    if limit:
        query = query.limit(limit)
    with loket.read() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# -- queueing failed messages again ---------------------------------------------------------


@dataclass(frozen=True)
class RetryReport:
    """What :func:`retry` did, by outbox key (each in the order asked, failed ones by id)."""

    requeued: tuple[str, ...] = ()
    """Were `failed`; now `pending`, due at once, with a fresh allowance of attempts."""
    waiting: tuple[str, ...] = ()
    """Named, but already in the queue (`pending`, or `sending` under a lease that ran out, which
    the next delivery takes up again): left as they were."""
    sending: tuple[str, ...] = ()
    """Named, but being delivered right now (`sending` under a live lease): left alone, so that
    the worker holding the lease stays the only one to send them."""

    @property
    def queued(self) -> int:
        """Every message this run answered for: all of them are now in the queue."""
        return len(self.requeued) + len(self.waiting) + len(self.sending)

    def summary(self) -> str:
        """One line for the command line, e.g. ``2 messages queued again (1 already waiting)``."""
        if not self.queued:
            return "no failed messages to queue again"
        n = len(self.requeued)
        head = f"{n} {'message' if n == 1 else 'messages'} queued again" if n else "nothing queued again"
        rest = [f"{len(self.waiting)} already waiting"] if self.waiting else []
        rest += [f"{len(self.sending)} being sent"] if self.sending else []
        return head + (f" ({', '.join(rest)})" if rest else "")


_CHUNK = 500
"""Keys or ids per ``IN (...)``: well below the bind-parameter limits of SQLite and psycopg."""


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def retry(loket: Loket, *, keys: Sequence[str] = (), failed: bool = False,
          now: dt.datetime) -> RetryReport:
    """Put `failed` messages back in the queue (after the mail configuration was fixed).

    ``failed``: every failed message; ``keys``: the messages with these outbox keys (both may
    be given). A named key that does not exist is :class:`NotFound`, one already sent is
    :class:`Refused`; either way nothing is changed for any key. A named message that is still
    in the queue is left as it is and reported (``waiting`` or ``sending``).

    A requeued row is ``pending`` with 0 attempts, due at ``now`` and without lease, so the next
    delivery sends it under the Message-ID derived from its key, as before. Its ``last_error``
    is kept: the schema has no other place for why it failed, and the next attempt replaces it
    (with nothing, once sent).

    One transaction. Only rows still `failed` are changed (the rows are locked on PostgreSQL,
    SQLite's write lock is taken up front, and the update asks for ``status = 'failed'`` once
    more), so a row a worker is sending under a live lease is never handed to a second one.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted and not failed:
        raise InvalidValue("name the messages to queue again by key, or ask for every failed one")
    c = outbox_t.c
    columns = (c.id, c.key, c.status, c.lease_until)
    with loket.engine.begin() as conn:
        found: dict[str, Any] = {}  # key -> row
        for chunk in _chunks(wanted):
            query = sa.select(*columns).where(c.key.in_(chunk)).order_by(c.id).with_for_update()
            found.update((row.key, row) for row in conn.execute(query))
        missing = [key for key in wanted if key not in found]
        if missing:
            raise NotFound(f"no message in the outbox with key {', '.join(shown(k) for k in missing)};"
                           " nothing was queued again")
        sent = [key for key in wanted if found[key].status == "sent"]
        if sent:
            raise Refused(f"already sent, so not queued again: {', '.join(shown(k) for k in sent)};"
                          " nothing was queued again")
        rows = [found[key] for key in wanted]
        if failed:
            query = sa.select(*columns).where(c.status == "failed").order_by(c.id).with_for_update()
            rows += [row for row in conn.execute(query) if row.key not in found]
        requeue = [row for row in rows if row.status == "failed"]
        for chunk in _chunks([row.id for row in requeue]):
            conn.execute(sa.update(outbox_t).where(c.id.in_(chunk), c.status == "failed").values(
                status="pending", attempts=0, next_attempt_at=now, lease_until=None))
    live = {row.id for row in rows if row.status == "sending" and row.lease_until is not None
            and row.lease_until > now}
    return RetryReport(
        requeued=tuple(row.key for row in requeue),
        waiting=tuple(row.key for row in rows if row.status != "failed" and row.id not in live),
        sending=tuple(row.key for row in rows if row.id in live),
    )
