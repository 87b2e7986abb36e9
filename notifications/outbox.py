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

from engine.errors import ConfigurationError, InvalidValue
from engine.schema import cases_t, events_t, outbox_t
from engine.views import event_detail
from notifications.message import build_message, message_id_for
from notifications.render import LANGUAGES, RenderedEmail, Renderer, format_moment, rung_label
from notifications.transports import DeliveryResult, Transport, transport_from_env

if TYPE_CHECKING:
    from engine.organisation import Organisation
    from engine.service import Loket

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
                  facts: TypeFacts | None = None) -> dict[str, Any]:
    """The template context of an outbox row: its stored facts plus what is read at delivery.

    ``events`` and ``facts`` are the row's :func:`recent_events` and :func:`type_facts` when
    the caller read them for a whole batch.
    """
    stored = dict(row["context"])
    language = row["language"]
    org = loket.organisation()
    tz = org.timezone
    due_at = stored.get("due_at")
    due = dt.datetime.fromisoformat(due_at.replace("Z", "+00:00")) if due_at else None
    context = {key: stored[key] for key in (
        "municipality", "recipient_name", "ref", "type_title", "state_label", "unit_name",
        "assignee_name", "command", "days_overdue", "days_left", "to_state_label", "to_unit_name",
    ) if key in stored}
    context["due"] = format_moment(due, timezone=tz, language=language) if due else "-"
    if row["kind"] == "escalation":
        context["rung"] = stored["rung"]
        context["rung_label"] = rung_label(stored["rung"], of=stored.get("ladder_size"),
                                           to=stored.get("resolved") or stored.get("asked", ""),
                                           language=language)
    labels, personal = type_facts(loket, [row])[0] if facts is None else facts
    context["events"] = [
        {"at": format_moment(e["at"], timezone=tz, language=language),
         "actor": _name_of(org, e["actor"]), "action": e["action"],
         "summary": event_detail(e, labels=labels, hide=personal)}
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
    rendered = renderer.render(row["kind"], email_context(loket, row, events, facts))
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
