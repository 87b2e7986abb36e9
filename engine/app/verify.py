"""Checking the history: recompute every chain and name the first event that does not match.

Cases and their events are read as two streams in case order and merged, so memory stays
flat however long the history is. Each case's chain must start at the genesis hash, run
without gaps, hash to what each row says, and end where the case row says its head is; and
the case row must hold what its history says — state, assignee and field values replayed from
the events. That catches an edited, inserted or deleted event, a deleted tail, and a case row
changed without its event. Seals (`engine.app.seal`) add what no chain can show by itself: a
whole case deleted, or a history cut back consistently.

A stored value that cannot be read back (see `engine.store.raw`) is a finding like any other,
never a crash. The quick pass lets the driver and SQLAlchemy decode as usual; if anything in
it fails, a careful pass reads every checked column raw, decodes it value by value, and
reports the first damaged row in its place in the order — so the quick pass stays as fast as
it was, and only a damaged database pays for the careful one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.app.seal import check_seals
from engine.core.history import GENESIS, chain_hash, event_content, personal_digest
from engine.core.vocabulary import Action
from engine.store import audit as store
from engine.store.db import snapshot
from engine.store.raw import Unreadable, shape

if TYPE_CHECKING:
    from engine.app.service import Loket

_CREATED, _TRANSITION, _DATA_CHANGED, _ASSIGNED, _REDACTED = (
    Action.CREATED, Action.TRANSITION, Action.DATA_CHANGED, Action.ASSIGNED, Action.REDACTED)
"""Looked up once: reading a member off its enum class costs more than comparing with it,
and the replay compares every event's action."""


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
    """The first thing found wrong, with the case and event it names (either may be None)."""

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

    def start(self) -> None:
        """Before the first event: the quick pass has nothing to check here."""

    def feed(self, ev: Any) -> None:
        ref, seq = self.case.ref, ev["seq"]
        if seq != self.seq + 1:
            raise Broken(f"{ref} event {self.seq + 1}: missing (next stored is {seq})", ref, self.seq + 1)
        if ev["prev_hash"] != self.prev:
            raise Broken(f"{ref} event {seq}: its link to event {seq - 1} is broken", ref, seq)
        digests, data = ev["digests"], ev["data"]
        # Only an object or nothing: `[]` or `0` would otherwise hash like an empty object.
        if type(digests) is not dict:
            if digests is not None:
                raise Broken(f"{ref} event {seq}: its stored row is damaged: digests {shape(digests)}", ref, seq)
            digests = {}
        if type(data) is not dict:
            if data is not None:
                raise Broken(f"{ref} event {seq}: its stored row is damaged: data {shape(data)}", ref, seq)
            data = {}
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
        if action == _CREATED:
            self.data = dict(data)
        elif action in (_TRANSITION, _DATA_CHANGED):
            for name, value in data.items():
                if value is None:
                    self.data.pop(name, None)
                else:
                    self.data[name] = value
        elif action == _ASSIGNED:
            self.assignee = data.get("assignee")
        elif action == _REDACTED:
            fields = data.get("fields", [])
            if type(fields) is not list or not all(type(name) is str for name in fields):
                raise Broken(f"{self.case.ref} event {self.seq}: its stored row is damaged: "
                             "data.fields is not a list of field names", self.case.ref, self.seq)
            for name in fields:
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
        row = case.data
        if type(row) is not dict:
            if row is not None:
                raise Broken(f"{ref}: its case row is damaged: data {shape(row)}", ref, self.seq)
            row = {}
        changed = sorted(k for k in {*row, *self.data} if row.get(k) != self.data.get(k)
                         and not (k in self.erased and k not in self.data))
        if changed:
            raise Broken(f"{ref}: field(s) {', '.join(changed)} differ from what its history says",
                         ref, self.seq)


class _CarefulReplay(_Replay):
    """The same replay over rows from the careful pass, which may carry damage."""

    def start(self) -> None:
        case = self.case
        if case.damage is not None:
            ref = case.ref if type(case.ref) is str else None
            raise Broken(f"{ref or f'case id {case.id}'}: its case row is damaged: {case.damage}", ref, None)

    def feed(self, ev: Any) -> None:
        if ev["damage"] is not None:
            ref = self.case.ref
            # An unreadable seq sorts after the readable ones: it stands where the next event should.
            seq = ev["seq"] if type(ev["seq"]) is int else self.seq + 1
            raise Broken(f"{ref} event {seq}: its stored row is damaged: {ev['damage']}", ref, seq)
        super().feed(ev)


def _orphan(ev: Any) -> Broken:
    seq = ev["seq"] if type(ev["seq"]) is int else None
    if ev.get("lost"):
        return Broken(f"event row {ev['id']} is damaged: {ev['damage']}", None, seq)
    return Broken(f"event {ev['seq']} belongs to case id {ev['case_id']}, which does not exist", None, seq)


def verify(loket: Loket) -> VerifyResult:
    try:
        return _verify(loket, careful=False)
    except Exception:
        # A value the quick pass could not decode or use (or a failure of another kind, which
        # the careful pass meets again and raises): read everything again, value by value.
        return _verify(loket, careful=True)


def _verify(loket: Loket, *, careful: bool) -> VerifyResult:
    result = VerifyResult()
    with snapshot(loket.engine) as conn:
        result.cases = store.count_cases(conn)
        cases: Iterable[Any]
        events: Iterator[Any]
        replay_type: type[_Replay]
        if careful:
            cases, events, replay_type = store.careful_cases(conn), store.careful_events(conn), _CarefulReplay
        else:
            cases, events, replay_type = store.chain_cases(conn), store.chain_events(conn), _Replay
        pending = next(events, None)
        try:
            for case in cases:
                if pending is not None and pending["case_id"] < case.id:
                    raise _orphan(pending)
                replay = replay_type(case)
                replay.start()
                while pending is not None and pending["case_id"] == case.id:
                    result.events += 1
                    replay.feed(pending)
                    pending = next(events, None)
                replay.close()
            if pending is not None:
                raise _orphan(pending)
            problem = check_seals(conn, careful=careful)
            if problem is not None:
                raise Broken(*problem)
        except Broken as broken:
            if not careful and not (type(broken.ref) in (str, type(None)) and type(broken.seq) in (int, type(None))):
                # Named by a value that is itself damaged (a ref stored as binary data, say).
                raise Unreadable(broken.message) from None
            result.failure, result.ref, result.seq = broken.message, broken.ref, broken.seq
    return result

