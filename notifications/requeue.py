"""Looking after the outbox by hand: listing it, and queueing failed messages again once the
mail configuration is fixed (`loket outbox list`, `loket outbox retry`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.core.vocabulary import OutboxStatus
from engine.errors import InvalidValue, NotFound, Refused, shown
from engine.store import outbox as store

if TYPE_CHECKING:
    from engine.app.service import Loket


def list_outbox(loket: Loket, *, failed: bool = False,
                limit: int | None = None) -> list[dict[str, Any]]:
    """The messages in the order they were queued; with ``failed`` only those given up on."""
    with loket.read() as conn:
        return store.listing(conn, failed=failed, limit=limit)


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
    with loket.engine.begin() as conn:
        found = store.lock_keys(conn, wanted)
        missing = [key for key in wanted if key not in found]
        if missing:
            raise NotFound(f"no message in the outbox with key {', '.join(shown(k) for k in missing)};"
                           " nothing was queued again")
        sent = [key for key in wanted if found[key].status == OutboxStatus.SENT]
        if sent:
            raise Refused(f"already sent, so not queued again: {', '.join(shown(k) for k in sent)};"
                          " nothing was queued again")
        rows = [found[key] for key in wanted]
        if failed:
            rows += [row for row in store.lock_failed(conn) if row.key not in found]
        requeue = [row for row in rows if row.status == OutboxStatus.FAILED]
        store.requeue(conn, [row.id for row in requeue], now)
    live = {row.id for row in rows if row.status == OutboxStatus.SENDING and row.lease_until is not None
            and row.lease_until > now}
    return RetryReport(
        requeued=tuple(row.key for row in requeue),
        waiting=tuple(row.key for row in rows if row.status != OutboxStatus.FAILED and row.id not in live),
        sending=tuple(row.key for row in rows if row.id in live),
    )
