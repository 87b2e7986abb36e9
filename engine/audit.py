"""Checking the history: recompute every chain and name the first event that does not match.

Cases and their events are read as two streams in case order and merged, so memory stays
flat however long the history is. Each case's chain must start at the genesis hash, run
without gaps, hash to what each row says, and end where the case row says its head is; and
the case row must hold what its history says — state, assignee and field values replayed from
the events. That catches an edited, inserted or deleted event, a deleted tail, and a case row
changed without its event. Seals (`audit seal`) add what no chain can show by itself: a whole
case deleted, or a history cut back consistently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.errors import InvalidValue, NotFound
from engine.history import GENESIS, chain_hash, event_content, personal_digest, timestamp
from engine.schema import cases_t, events_t, seal_heads_t, seals_t

if TYPE_CHECKING:
    from engine.service import Loket


@dataclass
class VerifyResult:
    cases: int = 0
    events: int = 0
    failure: str | None = None
    ref: str | None = None
    seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "cases": self.cases, "events": self.events, "failure": self.failure,
                "ref": self.ref, "seq": self.seq}


class Broken(Exception):
    def __init__(self, message: str, ref: str | None, seq: int | None) -> None:
        super().__init__(message)
        self.message, self.ref, self.seq = message, ref, seq


@dataclass
class _Replay:
    """One case's chain, event by event, and what its row must hold at the end."""

    case: Any
    prev: str = GENESIS
    seq: int = 0
    state: str | None = None
    assignee: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    """Personal fields whose value the history no longer holds (only their digest)."""

    def feed(self, ev: Any) -> None:
        ref, seq = self.case.ref, ev["seq"]
        if seq != self.seq + 1:
            raise Broken(f"{ref} event {self.seq + 1}: missing (next stored is {seq})", ref, self.seq + 1)
        if ev["prev_hash"] != self.prev:
            raise Broken(f"{ref} event {seq}: its link to event {seq - 1} is broken", ref, seq)
        digests = ev["digests"] or {}
        data = ev["data"] or {}
        salt = self.case.salt
        if salt:
            for name, digest in digests.items():
                if name in data and personal_digest(salt, name, data[name]) != digest:
                    raise Broken(f"{ref} event {seq}: personal field '{name}' was altered", ref, seq)
        content = event_content(
            ref=ref, seq=seq, at=ev["at"], recorded_at=ev["recorded_at"], actor=ev["actor"],
            action=ev["action"], from_state=ev["from_state"], to_state=ev["to_state"],
            trigger=ev["trigger"], comment=ev["comment"], data=data, digests=digests,
        )
        if chain_hash(content, self.prev) != ev["hash"]:
            raise Broken(f"{ref} event {seq}: its content does not match its hash (edited)", ref, seq)
        self.erased.update(name for name in digests if name not in data)
        self.prev, self.seq = ev["hash"], seq
        if ev["to_state"] is not None:
            self.state = ev["to_state"]
        self._apply(ev["action"], data)

    def _apply(self, action: str, data: dict[str, Any]) -> None:
        if action == "created":
            self.data = dict(data)
        elif action in ("transition", "data_changed"):
            for name, value in data.items():
                if value is None:
                    self.data.pop(name, None)
                else:
                    self.data[name] = value
        elif action == "assigned":
            self.assignee = data.get("assignee")
        elif action == "redacted":
            for name in data.get("fields", []):
                self.data.pop(name, None)

    def close(self) -> None:
        case, ref = self.case, self.case.ref
        if self.seq == 0:
            raise Broken(f"{ref}: its whole history is missing", ref, None)
        if case.last_seq != self.seq or case.last_hash != self.prev:
            raise Broken(f"{ref}: the case row says its history ends at event {case.last_seq}, "
                         f"but the chain ends at event {self.seq}: events were deleted or added", ref, self.seq)
        if case.state != self.state:
            raise Broken(f"{ref}: the case is in state '{case.state}' but its history ends in "
                         f"'{self.state}'", ref, self.seq)
        if case.assignee != self.assignee:
            raise Broken(f"{ref}: the case is assigned to {case.assignee!r} but its history says "
                         f"{self.assignee!r}", ref, self.seq)
        row = case.data or {}
        changed = sorted(k for k in {*row, *self.data} if row.get(k) != self.data.get(k)
                         and not (k in self.erased and k not in self.data))
        if changed:
            raise Broken(f"{ref}: field(s) {', '.join(changed)} differ from what its history says",
                         ref, self.seq)


def _snapshot(loket: Loket) -> sa.Connection:
    """One consistent view for both streams, however busy the database is meanwhile."""
    conn = loket.read()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def verify(loket: Loket) -> VerifyResult:
    result = VerifyResult()
    c = cases_t.c
    with _snapshot(loket) as conn:
        result.cases = conn.execute(sa.select(sa.func.count()).select_from(cases_t)).scalar_one()
        cases = conn.execute(
            sa.select(c.id, c.ref, c.state, c.assignee, c.data, c.salt, c.last_seq, c.last_hash).order_by(c.id),
            execution_options={"yield_per": 2000},
        )
        events: Iterator[Any] = iter(conn.execute(
            sa.select(events_t).order_by(events_t.c.case_id, events_t.c.seq),
            execution_options={"yield_per": 5000},
        ).mappings())
        pending = next(events, None)
        try:
            for case in cases:
                if pending is not None and pending["case_id"] < case.id:
                    raise Broken(f"event {pending['seq']} belongs to case id {pending['case_id']}, "
                                 "which does not exist", None, pending["seq"])
                replay = _Replay(case)
                while pending is not None and pending["case_id"] == case.id:
                    result.events += 1
                    replay.feed(pending)
                    pending = next(events, None)
                replay.close()
            if pending is not None:
                raise Broken(f"event {pending['seq']} belongs to case id {pending['case_id']}, "
                             "which does not exist", None, pending["seq"])
            problem = _check_seals(conn)
            if problem is not None:
                raise Broken(*problem)
        except Broken as broken:
            result.failure, result.ref, result.seq = broken.message, broken.ref, broken.seq
    return result


# -- seals -----------------------------------------------------------------------------------


def _heads_digest(conn: sa.Connection, seal_id: int, prev_digest: str) -> tuple[str, int, int]:
    """SHA-256 over the previous seal's digest and every sealed head, in case order."""
    h = hashlib.sha256(prev_digest.encode())
    cases = events = 0
    query = (sa.select(seal_heads_t.c.case_id, seal_heads_t.c.ref, seal_heads_t.c.seq, seal_heads_t.c.hash)
             .where(seal_heads_t.c.seal_id == seal_id).order_by(seal_heads_t.c.case_id))
    for row in conn.execute(query, execution_options={"yield_per": 5000}):
        h.update(f"{row.case_id}:{row.ref}:{row.seq}:{row.hash}\n".encode())
        cases += 1
        events += row.seq
    return h.hexdigest(), cases, events


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
    """Record the head of every chain, so that later deletions and cuts are detected."""
    now = loket.clock.now()
    with loket.engine.begin() as conn:
        prev = conn.execute(sa.select(seals_t.c.digest).order_by(seals_t.c.id.desc()).limit(1)).scalar()
        prev_digest = prev or GENESIS
        seal_id = conn.execute(
            sa.insert(seals_t).values(sealed_at=now, recorded_at=dt.datetime.now(dt.UTC), cases=0,
                                      events=0, prev_digest=prev_digest, digest="")
            .returning(seals_t.c.id)
        ).scalar_one()
        conn.execute(sa.insert(seal_heads_t).from_select(
            ["seal_id", "case_id", "ref", "seq", "hash"],
            sa.select(sa.literal(seal_id), cases_t.c.id, cases_t.c.ref, cases_t.c.last_seq, cases_t.c.last_hash),
        ))
        digest, cases, events = _heads_digest(conn, seal_id, prev_digest)
        conn.execute(sa.update(seals_t).where(seals_t.c.id == seal_id)
                     .values(digest=digest, cases=cases, events=events))
    return SealResult(seal_id, now, cases, events, digest)


def _check_seals(conn: sa.Connection) -> tuple[str, str | None, int | None] | None:
    seals = conn.execute(sa.select(seals_t).order_by(seals_t.c.id)).all()
    prev = GENESIS
    for row in seals:
        if row.prev_digest != prev:
            return (f"seal {row.id}: it does not follow seal before it (seals were removed or edited)", None, None)
        prev = row.digest
    if not seals:
        return None
    last = seals[-1]
    digest, cases, _events = _heads_digest(conn, last.id, last.prev_digest)
    if digest != last.digest or cases != last.cases:
        return (f"seal {last.id}: its recorded chain heads were altered", None, None)
    h, e, c = seal_heads_t.c, events_t.c, cases_t.c
    missing = conn.execute(
        sa.select(h.ref, h.seq, c.id.label("case_row"), e.hash.label("event_hash"), h.hash)
        .select_from(seal_heads_t.outerjoin(cases_t, c.id == h.case_id)
                     .outerjoin(events_t, sa.and_(e.case_id == h.case_id, e.seq == h.seq)))
        .where(h.seal_id == last.id, h.seq > 0,
               sa.or_(c.id.is_(None), e.hash.is_(None), e.hash != h.hash))
        .order_by(h.case_id).limit(1)
    ).first()
    if missing is None:
        return None
    if missing.case_row is None:
        return (f"{missing.ref}: the case was deleted after seal {last.id}", missing.ref, None)
    if missing.event_hash is None:
        return (f"{missing.ref}: its history was cut after seal {last.id} (event {missing.seq} is gone)",
                missing.ref, missing.seq)
    return (f"{missing.ref} event {missing.seq}: differs from what seal {last.id} recorded",
            missing.ref, missing.seq)


# -- export ----------------------------------------------------------------------------------

EXPORT_COLUMNS = ("ref", "type", "unit", "seq", "at", "recorded_at", "actor", "action", "from_state",
                  "to_state", "trigger", "comment", "data", "prev_hash", "hash")


def export(
    loket: Loket,
    write: Callable[[str], Any],
    *,
    fmt: str = "jsonl",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    type_key: str | None = None,
    unit: str | None = None,
) -> int:
    """Stream events as CSV or JSON Lines; returns how many were written.

    The unit of an event is the owner of the state the case was in when it happened, so the
    events are read per case in order (streamed: memory stays flat at millions of events).
    """
    import csv
    import io

    if fmt not in ("csv", "jsonl"):
        raise InvalidValue(f"unknown export format {fmt!r} (csv or jsonl)")
    if type_key is not None:
        loket.latest_version(type_key)
    if unit is not None and unit not in loket.organisation().units:
        raise NotFound(f"unknown unit '{unit}'")
    query = (sa.select(events_t, cases_t.c.ref, cases_t.c.type_key, cases_t.c.type_version)
             .join(cases_t, cases_t.c.id == events_t.c.case_id)
             .order_by(events_t.c.case_id, events_t.c.seq))
    if type_key is not None:
        query = query.where(cases_t.c.type_key == type_key)
    if until is not None:
        query = query.where(events_t.c.at < until)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(EXPORT_COLUMNS)
        write(buffer.getvalue())
    count = 0
    current, state = None, None
    with loket.read() as conn:
        for ev in conn.execute(query, execution_options={"yield_per": 5000}).mappings():
            if ev["case_id"] != current:
                current, state = ev["case_id"], None
            rt = loket.request_type(ev["type_key"], ev["type_version"])
            at_state = ev["from_state"] or ev["to_state"] or state
            if ev["to_state"] is not None:
                state = ev["to_state"]
            owner = rt.states[at_state].owner if at_state is not None and at_state in rt.states else None
            if unit is not None and owner != unit:
                continue
            if since is not None and ev["at"] < since:
                continue
            row = {"ref": ev["ref"], "type": ev["type_key"], "unit": owner, "seq": ev["seq"],
                   "at": timestamp(ev["at"]), "recorded_at": timestamp(ev["recorded_at"]),
                   "actor": ev["actor"], "action": ev["action"], "from_state": ev["from_state"],
                   "to_state": ev["to_state"], "trigger": ev["trigger"], "comment": ev["comment"],
                   "data": ev["data"], "prev_hash": ev["prev_hash"], "hash": ev["hash"]}
            if fmt == "jsonl":
                write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            else:
                buffer.seek(0)
                buffer.truncate()
                writer.writerow([json.dumps(row["data"], ensure_ascii=False) if k == "data" and row[k] is not None
                                 else row[k] for k in EXPORT_COLUMNS])
                write(buffer.getvalue())
            count += 1
    return count
