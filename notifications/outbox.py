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
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.schema import events_t, outbox_t
from engine.views import summarize_event
from notifications.message import build_message, message_id_for
from notifications.render import Renderer, format_moment, rung_label
from notifications.transports import Transport, transport_from_env

if TYPE_CHECKING:
    from engine.service import Loket

MAX_ATTEMPTS = 8
FIRST_DELAY = dt.timedelta(minutes=1)
MAX_DELAY = dt.timedelta(hours=6)
LEASE = dt.timedelta(minutes=5)
BATCH = 100
DEFAULT_SENDER = "Wijkloket <wijkloket@localhost>"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the n-th failed attempt: 1, 2, 4 ... minutes, at most six hours."""
    return min(FIRST_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


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
        if rows:
            conn.execute(
                sa.update(outbox_t).where(c.id.in_([r["id"] for r in rows]))
                .values(status="sending", lease_until=now + LEASE)
            )
    return [dict(r) for r in rows]


def _last_events(loket: Loket, case_id: int | None, upto: int | None, count: int = 5) -> list[dict[str, Any]]:
    if case_id is None:
        return []
    query = sa.select(events_t).where(events_t.c.case_id == case_id)
    if upto is not None:
        query = query.where(events_t.c.seq <= upto)
    with loket.read() as conn:
        rows = conn.execute(query.order_by(events_t.c.seq.desc()).limit(count)).mappings().all()
    return [dict(r) for r in reversed(rows)]


def email_context(loket: Loket, row: Mapping[str, Any]) -> dict[str, Any]:
    """The template context of an outbox row: its stored facts plus what is read at delivery."""
    stored = dict(row["context"])
    language = row["language"]
    tz = loket.organisation().timezone
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
    context["events"] = [
        {"at": format_moment(e["at"], timezone=tz, language=language), "actor": e["actor"],
         "action": e["action"], "summary": summarize_event(e)}
        for e in _last_events(loket, row["case_id"], stored.get("event_seq"))
    ]
    return context


def deliver(loket: Loket, settings: MailSettings, now: dt.datetime | None = None, *,
            batch: int = BATCH) -> DeliveryReport:
    """Deliver every due message through the transport, one connection per batch."""
    now = now or loket.clock.now()
    report = DeliveryReport()
    renderers: dict[str, Renderer] = {}
    while True:
        rows = _claim(loket, now, batch)
        if not rows:
            return report
        messages: list[EmailMessage] = []
        try:
            for row in rows:
                renderer = renderers.get(row["language"])
                if renderer is None:
                    renderer = renderers[row["language"]] = Renderer(row["language"], settings.template_dir)
                    renderer.check()
                rendered = renderer.render(row["kind"], email_context(loket, row))
                row["subject"] = rendered.subject
                messages.append(build_message(
                    rendered, sender=settings.sender, to=row["to_email"], to_name=row["to_name"],
                    message_id=message_id_for(row["key"], settings.domain), date=now,
                ))
        except Exception:
            _release(loket, rows)
            raise
        results = settings.transport.send(messages)
        _record(loket, rows, results, now, report)
        if len(rows) < batch:
            return report


def _release(loket: Loket, rows: list[dict[str, Any]]) -> None:
    """Give claimed rows back untouched (nothing was sent): e.g. a broken override template."""
    with loket.engine.begin() as conn:
        conn.execute(sa.update(outbox_t).where(outbox_t.c.id.in_([r["id"] for r in rows]))
                     .values(status="pending", lease_until=None))


def _record(loket: Loket, rows: list[dict[str, Any]], results: list[Any], now: dt.datetime,
            report: DeliveryReport) -> None:
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
            conn.execute(sa.update(outbox_t).where(c.id == row["id"]).values(values))


def list_outbox(loket: Loket, *, failed: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    c = outbox_t.c
    query = sa.select(outbox_t).order_by(c.id)
    if failed:
        query = query.where(c.status == "failed")
    if limit:
        query = query.limit(limit)
    with loket.read() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
