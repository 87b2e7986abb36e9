"""Seals: a recorded checkpoint over every chain's head, so that what no chain can show by
itself is detected — a whole case deleted, or a history cut back consistently.

Each seal digests the previous seal's digest and every head it records, so the seals form
a chain of their own: removing or editing one breaks the next. `loket audit verify` checks
that chain, that the last seal's heads still hash to its digest, and that the history still
holds every head it recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core.history import GENESIS, timestamp
from engine.errors import HistoryDamaged
from engine.store import audit as store

if TYPE_CHECKING:
    from engine.app.service import Loket


def _heads_digest(conn: sa.Connection, seal_id: int, prev_digest: str, *, careful: bool = False
                   ) -> tuple[str, int, int]:
    """SHA-256 over the previous seal's digest and every sealed head, in case order."""
    h = hashlib.sha256(prev_digest.encode())
    cases = events = 0
    rows: Iterable[Sequence[Any]] = _careful_heads(conn, seal_id) if careful else store.sealed_heads(conn, seal_id)
    for case_id, ref, seq, head in rows:
        h.update(f"{case_id}:{ref}:{seq}:{head}\n".encode())
        cases += 1
        events += seq
    return h.hexdigest(), cases, events


class _DamagedHead(Exception):
    """A recorded head that cannot be read back: where, and what is wrong with it."""

    def __init__(self, case_id: Any, damage: str) -> None:
        super().__init__(damage)
        self.case_id, self.damage = case_id, damage


def _careful_heads(conn: sa.Connection, seal_id: int) -> Iterator[tuple[Any, ...]]:
    for values, damage in store.careful_sealed_heads(conn, seal_id):
        if damage is not None:
            raise _DamagedHead(values["case_id"], damage)
        yield values["case_id"], values["ref"], values["seq"], values["hash"]


@dataclass
class SealResult:
    id: int
    sealed_at: dt.datetime
    cases: int
    events: int
    digest: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "sealed_at": timestamp(self.sealed_at), "cases": self.cases,
                "events": self.events, "digest": self.digest}


def seal(loket: Loket) -> SealResult:
    """Record the head of every chain, so that later deletions and cuts are detected.

    The heads are copied from the case rows: one that cannot be read back (SQLite keeps any
    value in any column) stops the seal with HistoryDamaged, and nothing is recorded.
    """
    now = loket.clock.now()
    with loket.engine.begin() as conn:
        prev_digest = store.last_seal_digest(conn) or GENESIS
        seal_id = store.start_seal(conn, now, prev_digest)
        try:
            digest, cases, events = _heads_digest(conn, seal_id, prev_digest)
        except Exception:
            try:
                _heads_digest(conn, seal_id, prev_digest, careful=True)
            except _DamagedHead as head:
                # The head's columns are copies of the case row's.
                column, _, reason = head.damage.partition(" ")
                column = {"case_id": "id", "seq": "last_seq", "hash": "last_hash"}.get(column, column)
                raise HistoryDamaged(f"cannot seal: the case row of case id {head.case_id} is damaged ({column} "
                                     f"{reason}); nothing was recorded (run 'loket audit verify')") from None
            raise
        store.finish_seal(conn, seal_id, digest, cases, events)
    return SealResult(seal_id, now, cases, events, digest)


def check_seals(conn: sa.Connection, *, careful: bool = False) -> tuple[str, str | None, int | None] | None:
    """What is wrong with the seals, as (message, ref, seq), or None if nothing is: their own
    chain, the last seal's recorded heads, and whether the history still holds each of them."""
    seals = store.seals(conn, careful=careful)
    prev = GENESIS
    for row in seals:
        if careful and row.damage is not None:
            return (f"seal {row.id}: its stored row is damaged: {row.damage}", None, None)
        if row.prev_digest != prev:
            return (f"seal {row.id}: it does not follow seal before it (seals were removed or edited)", None, None)
        prev = row.digest
    if not seals:
        return None
    last = seals[-1]
    try:
        digest, cases, _events = _heads_digest(conn, last.id, last.prev_digest, careful=careful)
    except _DamagedHead as head:
        return (f"seal {last.id}: the head it records for case id {head.case_id} is damaged: {head.damage}",
                None, None)
    if digest != last.digest or cases != last.cases:
        return (f"seal {last.id}: its recorded chain heads were altered", None, None)
    missing = store.first_unkept_head(conn, last.id)
    if missing is None:
        return None
    if missing.case_row is None:
        return (f"{missing.ref}: the case was deleted after seal {last.id}", missing.ref, None)
    if missing.event_hash is None:
        return (f"{missing.ref}: its history was cut after seal {last.id} (event {missing.seq} is gone)",
                missing.ref, missing.seq)
    return (f"{missing.ref} event {missing.seq}: differs from what seal {last.id} recorded",
            missing.ref, missing.seq)
