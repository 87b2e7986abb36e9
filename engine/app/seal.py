"""Seals: a recorded checkpoint over every chain's head, so that what no chain can show by
itself is detected — a whole case deleted, or a history cut back consistently.

Each seal digests the previous seal's digest and every head it records, so the seals form
a chain of their own: removing or editing one breaks the next. `loket audit verify` checks
that chain, that the last seal's heads still hash to its digest, and that the history still
holds every head it recorded (`engine.app.verify.check_seals`).

A seal verifies first and refuses a damaged database: sealing it would record the damage as
the state to keep — a case deleted before the seal is not missed after it, and verify would
be clean again. The check and the seal are one transaction that sees one moment, so what is
sealed is exactly what was verified, while others keep working:

- on PostgreSQL at REPEATABLE READ, after a lock that makes seals wait for each other (each
  must follow the one before it);
- on SQLite it begins as a reader, and its writes at the end take the write lock. SQLite
  refuses that when someone wrote meanwhile; the seal then runs once more holding the write
  lock from the start (writers wait for it meanwhile).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.app.verify import DamagedHead, careful_heads, check, heads_digest, verify
from engine.core.confighistory import AUDIT_SEAL
from engine.core.history import GENESIS, timestamp
from engine.core.identity import Identity
from engine.core.organisation import Organisation
from engine.core.vocabulary import MailKind, OutboxStatus
from engine.errors import ConfigurationError, HistoryDamaged
from engine.store import audit as store
from engine.store import config, outbox

if TYPE_CHECKING:
    from engine.app.service import Loket


@dataclass
class SealResult:
    id: int
    sealed_at: dt.datetime
    cases: int
    events: int
    digest: str
    mailed: list[str] = field(default_factory=list)
    """The auditors the digest is mailed to (their ids), through the outbox."""

    def as_json(self) -> dict[str, Any]:
        at = timestamp(self.sealed_at)
        return {"seal": self.id, "digest": self.digest, "at": at, "cases": self.cases, "events": self.events,
                "mailed_to": self.mailed, "id": self.id, "sealed_at": at}


class _Overtaken(Exception):
    """Someone wrote to the SQLite database while the seal verified it."""


def seal(loket: Loket, by: Identity | None = None) -> SealResult:
    """Verify everything, then record the head of every chain, so that later deletions and
    cuts are detected. A damaged database is refused with HistoryDamaged naming the first
    damage, and nothing is recorded. The seal is an event in the configuration history too,
    by `by` (who runs the command; an organisation that names operators lets only them and
    the auditors)."""
    if by is not None:
        loket.require_operator(by, "audit seal", auditors=True)
    else:
        by = loket.identity()
    try:
        return _seal(loket, by, hold_lock=False)
    except _Overtaken:
        return _seal(loket, by, hold_lock=True)


def _seal(loket: Loket, by: Identity, *, hold_lock: bool) -> SealResult:
    now = loket.clock.now()
    try:
        org: Organisation | None = loket.organisation()
    except ConfigurationError:
        org = None  # a database without an organisation can be sealed; nobody is mailed
    conn = loket.engine.connect()
    sqlite = conn.dialect.name == "sqlite"
    if sqlite and not hold_lock:
        conn = conn.execution_options(loket_readonly=True)  # a plain BEGIN (engine.store.db)
    elif not sqlite:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn, store.seal_turn(conn), conn.begin():
        store.lock_seals(conn)
        config.lock_history(conn)  # the seal's own event follows the history it verified
        prev_digest = store.last_seal_digest(conn) or GENESIS
        digest, cases, events = _digest_heads(conn, prev_digest)
        _verified(loket, conn)
        try:
            # The heads are copied from the very rows just digested (one snapshot).
            seal_id = store.add_seal(conn, now, prev_digest, digest, cases, events)
        except sa.exc.OperationalError:
            if not sqlite or hold_lock:
                raise
            raise _Overtaken from None
        loket.record_config(conn, by, AUDIT_SEAL, {"seal": seal_id, "digest": digest, "cases": cases,
                                                    "events": events})
        result = SealResult(seal_id, now, cases, events, digest)
        result.mailed = _mail_auditors(org, conn, result)
    return result


def _mail_auditors(org: Organisation | None, conn: sa.Connection, result: SealResult) -> list[str]:
    """Queue the digest for every auditor with an email address, in the seal's transaction:
    a copy kept outside the database is what `audit verify --against` checks against."""
    if org is None:
        return []
    mailed = []
    for person in org.holders("*", "auditor"):
        if not person.email:
            continue
        outbox.queue_once(conn, {
            "key": f"seal/{result.digest[:24]}/{person.id}", "case_id": None, "kind": MailKind.SEAL,
            "language": org.language, "recipient": person.id, "to_email": person.email, "to_name": person.name,
            "subject": f"Wijkloket {org.municipality}: seal {result.id}",
            "context": {"seal": result.id, "digest": result.digest, "at": timestamp(result.sealed_at),
                        "cases": result.cases, "events": result.events},
            "created_at": result.sealed_at, "status": OutboxStatus.PENDING, "attempts": 0,
            "next_attempt_at": result.sealed_at,
        })
        mailed.append(person.id)
    return mailed


def _digest_heads(conn: sa.Connection, prev_digest: str) -> tuple[str, int, int]:
    """The digest over every case row's chain head. One that cannot be read back (SQLite
    keeps any value in any column) stops the seal with HistoryDamaged naming the case."""
    try:
        return heads_digest(store.case_heads(conn), prev_digest)
    except Exception:
        try:
            heads_digest(careful_heads(store.careful_case_heads(conn), "id"), prev_digest)
        except DamagedHead as head:
            raise HistoryDamaged(f"cannot seal: the case row of case id {head.case_id} is damaged ({head.damage});"
                                 " nothing was recorded (run 'loket audit verify')") from None
        raise


def _verified(loket: Loket, conn: sa.Connection) -> None:
    """Refuse to seal what verify finds damaged (HistoryDamaged, naming the damage)."""
    try:
        result = check(loket, conn)
    except Exception:
        # A value the quick pass could not read: verify's careful pass names it.
        result = verify(loket)
        if result.ok:
            raise
    if not result.ok:
        raise HistoryDamaged(f"cannot seal: {result.failure}; nothing was recorded (run 'loket audit verify')")
