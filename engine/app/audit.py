"""Checking the history: recompute every chain and name the first event that does not match.

Cases and their events are read as two streams in case order and merged, so memory stays
flat however long the history is. Each case's chain must start at the genesis hash, run
without gaps, hash to what each row says, and end where the case row says its head is; and
the case row must hold what its history says — state, assignee and field values replayed from
the events. That catches an edited, inserted or deleted event, a deleted tail, and a case row
changed without its event. Seals (`audit seal`) add what no chain can show by itself: a whole
case deleted, or a history cut back consistently.

A row can also be damaged so badly that it cannot even be read back: JSON that does not parse
or is not an object, a time that is no time, binary data in a text column (SQLite keeps any
value in any column). Such a value is a finding like any other, never a crash. The quick pass
lets the driver and SQLAlchemy decode as usual; if anything in it fails, a careful pass reads
every checked column raw, decodes it value by value, and reports the first damaged row in its
place in the order — so the quick pass stays as fast as it was, and only a damaged database
pays for the careful one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core.history import GENESIS, chain_hash, event_content, personal_digest, timestamp
from engine.errors import HistoryDamaged, InvalidValue, LoketError, NotFound
from engine.store.schema import cases_t, events_t, seal_heads_t, seals_t

if TYPE_CHECKING:
    from engine.app.service import Loket


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


# -- reading damaged rows --------------------------------------------------------------------

_INT, _TEXT, _JSON, _TIME = "int", "text", "json", "time"
"""What a checked column must hold. JSON here is always an object or null; a time is never null."""

_EVENT_COLUMNS = {"case_id": _INT, "seq": _INT, "at": _TIME, "recorded_at": _TIME, "actor": _TEXT,
                  "action": _TEXT, "from_state": _TEXT, "to_state": _TEXT, "trigger": _TEXT,
                  "comment": _TEXT, "data": _JSON, "digests": _JSON, "prev_hash": _TEXT, "hash": _TEXT}
_CASE_COLUMNS = {"ref": _TEXT, "state": _TEXT, "assignee": _TEXT, "data": _JSON, "salt": _TEXT,
                 "last_seq": _INT, "last_hash": _TEXT}
_EXPORT_CASE_COLUMNS = {"ref": _TEXT, "type_key": _TEXT, "type_version": _INT}
_SEAL_COLUMNS = {"prev_digest": _TEXT, "digest": _TEXT, "cases": _INT}
_HEAD_COLUMNS = {"case_id": _INT, "ref": _TEXT, "seq": _INT, "hash": _TEXT}

_FIRST_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_LAST_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)


class _Unreadable(Exception):
    """A stored value that cannot be decoded, or is not what its column must hold."""


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "binary data"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def _shape(value: Any) -> str:
    """What a decoded JSON value that should have been an object (or null) is instead."""
    kind = ("array" if isinstance(value, list) else "string" if isinstance(value, str)
            else "boolean" if isinstance(value, bool) else "number")
    return f"holds a JSON {kind}, not an object"


def _decode(kind: str, value: Any) -> Any:
    """A raw stored value as the quick pass would have read it; raises _Unreadable if it cannot be."""
    if kind == _TEXT:
        if value is None or type(value) is str:
            return value
        raise _Unreadable(f"holds {_show(value)}, not text")
    if kind == _INT:
        if type(value) is int:
            return value
        raise _Unreadable(f"holds {_show(value)}, not a whole number")
    if kind == _JSON:
        if value is None:
            return None
        if type(value) in (int, float):
            # SQLite stores JSON text that is a number as that number (its JSON columns have
            # numeric affinity): what was written was a JSON number.
            raise _Unreadable(_shape(value))
        if type(value) is not str:
            raise _Unreadable(f"holds {_show(value)}, not JSON")
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            raise _Unreadable(f"holds {_show(value)}, which is not JSON") from None
        if decoded is not None and type(decoded) is not dict:
            raise _Unreadable(_shape(decoded))
        return decoded
    if value is None:
        raise _Unreadable("holds no time that can be read (infinite, or outside the years 1 to 9999)")
    if type(value) is str:
        try:
            # Exactly as UTCDateTime reads SQLite's text; PostgreSQL's is formatted the same way.
            return dt.datetime.fromisoformat(value + "+00:00")
        except ValueError:
            pass
    raise _Unreadable(f"holds {_show(value)}, not a time")


def _sqlite_value(storage: str, raw: bytes | None) -> Any:
    """A value from its SQLite storage class and its bytes, without trusting either to be text."""
    if storage == "null" or raw is None:
        return None
    if storage == "integer":
        return int(raw)
    if storage == "real":
        return float(raw)
    if storage == "text":
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise _Unreadable("holds text that is not valid UTF-8") from None
    return bytes(raw)


class _RawReader:
    """Columns read past every decoder of the driver and SQLAlchemy, and decoded here one value
    at a time, so that a damaged value becomes a finding instead of ending the whole read."""

    def __init__(self, conn: sa.Connection, table: sa.Table, kinds: dict[str, str]) -> None:
        self.sqlite = conn.dialect.name == "sqlite"
        self.kinds = list(kinds.items())
        self.exprs: list[sa.ColumnElement[Any]] = []
        for name, kind in self.kinds:
            col = table.c[name]
            if self.sqlite:
                # The storage class and the stored bytes: SQLite keeps any value in any column.
                self.exprs += [sa.func.typeof(col), sa.cast(col, sa.LargeBinary)]
            elif kind == _JSON:
                self.exprs.append(sa.cast(col, sa.Text))
            elif kind == _TIME:
                # Python holds the years 1 to 9999 only: infinity and the rest come back as NULL.
                text = sa.func.to_char(sa.func.timezone("UTC", col), "YYYY-MM-DD HH24:MI:SS.US")
                self.exprs.append(sa.case((col.between(_FIRST_TIME, _LAST_TIME), text)))
            else:
                self.exprs.append(col)

    def decode(self, row: Sequence[Any], start: int = 0) -> tuple[dict[str, Any], str | None]:
        """The values from `row[start:]`, and what is wrong with the first damaged one (or None).
        A damaged value is left as it was read, or None if not even that was possible."""
        values: dict[str, Any] = {}
        damage = None
        width = 2 if self.sqlite else 1
        for i, (name, kind) in enumerate(self.kinds):
            at = start + i * width
            raw = None
            try:
                raw = _sqlite_value(row[at], row[at + 1]) if self.sqlite else row[at]
                values[name] = _decode(kind, raw)
            except _Unreadable as exc:
                values[name] = raw
                if damage is None:
                    damage = f"{name} {exc}"
        return values, damage


def _careful_events(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    """The events as the quick pass reads them, each with `damage` (None if it read back well).

    An event whose case_id is unreadable is `lost`: it is placed where SQLite sorts it (numbers
    in order, text and binary data after them all) and reported as belonging to no case.
    """
    reader = _RawReader(conn, events_t, _EVENT_COLUMNS)
    e = events_t.c
    query = sa.select(e.id, *reader.exprs).order_by(e.case_id, e.seq)
    for row in conn.execute(query, execution_options={"yield_per": 5000}):
        ev, damage = reader.decode(row, 1)
        ev["id"], ev["damage"], ev["lost"] = row[0], damage, False
        if type(ev["case_id"]) is not int:
            ev["lost"] = True
            ev["case_id"] = ev["case_id"] if type(ev["case_id"]) is float else math.inf
        yield ev


def _careful_cases(conn: sa.Connection) -> Iterator[SimpleNamespace]:
    reader = _RawReader(conn, cases_t, _CASE_COLUMNS)
    query = sa.select(cases_t.c.id, *reader.exprs).order_by(cases_t.c.id)
    for row in conn.execute(query, execution_options={"yield_per": 2000}):
        values, damage = reader.decode(row, 1)
        yield SimpleNamespace(id=row[0], damage=damage, **values)


# -- verify ----------------------------------------------------------------------------------


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
                raise Broken(f"{ref} event {seq}: its stored row is damaged: digests {_shape(digests)}", ref, seq)
            digests = {}
        if type(data) is not dict:
            if data is not None:
                raise Broken(f"{ref} event {seq}: its stored row is damaged: data {_shape(data)}", ref, seq)
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
                raise Broken(f"{ref}: its case row is damaged: data {_shape(row)}", ref, self.seq)
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


def _snapshot(loket: Loket) -> sa.Connection:
    """One consistent view for both streams, however busy the database is meanwhile."""
    conn = loket.read()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def verify(loket: Loket) -> VerifyResult:
    try:
        return _verify(loket, careful=False)
    except Exception:
        # A value the quick pass could not decode or use (or a failure of another kind, which
        # the careful pass meets again and raises): read everything again, value by value.
        return _verify(loket, careful=True)


def _verify(loket: Loket, *, careful: bool) -> VerifyResult:
    result = VerifyResult()
    c = cases_t.c
    with _snapshot(loket) as conn:
        result.cases = conn.execute(sa.select(sa.func.count()).select_from(cases_t)).scalar_one()
        cases: Iterable[Any]
        events: Iterator[Any]
        replay_type: type[_Replay]
        if careful:
            cases, events, replay_type = _careful_cases(conn), _careful_events(conn), _CarefulReplay
        else:
            cases = conn.execute(
                sa.select(c.id, c.ref, c.state, c.assignee, c.data, c.salt, c.last_seq, c.last_hash).order_by(c.id),
                execution_options={"yield_per": 2000},
            )
            events = iter(conn.execute(
                sa.select(events_t).order_by(events_t.c.case_id, events_t.c.seq),
                execution_options={"yield_per": 5000},
            ).mappings())
            replay_type = _Replay
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
            problem = _check_seals(conn, careful=careful)
            if problem is not None:
                raise Broken(*problem)
        except Broken as broken:
            if not careful and not (type(broken.ref) in (str, type(None)) and type(broken.seq) in (int, type(None))):
                # Named by a value that is itself damaged (a ref stored as binary data, say).
                raise _Unreadable(broken.message) from None
            result.failure, result.ref, result.seq = broken.message, broken.ref, broken.seq
    return result


# -- seals -----------------------------------------------------------------------------------


def _heads_digest(conn: sa.Connection, seal_id: int, prev_digest: str, *, careful: bool = False
                  ) -> tuple[str, int, int]:
    """SHA-256 over the previous seal's digest and every sealed head, in case order."""
    h = hashlib.sha256(prev_digest.encode())
    cases = events = 0
    hd = seal_heads_t.c
    rows: Iterable[Sequence[Any]]
    if careful:
        rows = _careful_heads(conn, seal_id)
    else:
        rows = conn.execute(sa.select(hd.case_id, hd.ref, hd.seq, hd.hash).where(hd.seal_id == seal_id)
                            .order_by(hd.case_id), execution_options={"yield_per": 5000})
    for case_id, ref, seq, head in rows:
        h.update(f"{case_id}:{ref}:{seq}:{head}\n".encode())
        cases += 1
        events += seq
    return h.hexdigest(), cases, events


class _DamagedHead(Exception):
    def __init__(self, case_id: Any, damage: str) -> None:
        super().__init__(damage)
        self.case_id, self.damage = case_id, damage


def _careful_heads(conn: sa.Connection, seal_id: int) -> Iterator[tuple[Any, ...]]:
    reader = _RawReader(conn, seal_heads_t, _HEAD_COLUMNS)
    hd = seal_heads_t.c
    query = sa.select(*reader.exprs).where(hd.seal_id == seal_id).order_by(hd.case_id)
    for row in conn.execute(query, execution_options={"yield_per": 5000}):
        values, damage = reader.decode(row)
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
        conn.execute(sa.update(seals_t).where(seals_t.c.id == seal_id)
                     .values(digest=digest, cases=cases, events=events))
    return SealResult(seal_id, now, cases, events, digest)


def _read_seals(conn: sa.Connection, *, careful: bool) -> list[Any]:
    """The seals in order, with what the check needs (a seal's times are not part of its proof)."""
    s = seals_t.c
    if not careful:
        return list(conn.execute(sa.select(s.id, s.prev_digest, s.digest, s.cases).order_by(s.id)).all())
    reader = _RawReader(conn, seals_t, _SEAL_COLUMNS)
    seals = []
    for row in conn.execute(sa.select(s.id, *reader.exprs).order_by(s.id)):
        values, damage = reader.decode(row, 1)
        seals.append(SimpleNamespace(id=row[0], damage=damage, **values))
    return seals


def _check_seals(conn: sa.Connection, *, careful: bool = False) -> tuple[str, str | None, int | None] | None:
    seals = _read_seals(conn, careful=careful)
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
    A stored row that cannot be read back stops the export with HistoryDamaged, naming it;
    what was written before it stays written (the CLI writes to a file it renames at the end).
    """
    import csv
    import io

    if fmt not in ("csv", "jsonl"):
        raise InvalidValue(f"unknown export format {fmt!r} (csv or jsonl)")
    if type_key is not None:
        loket.latest_version(type_key)
    if unit is not None and unit not in loket.organisation().units:
        raise NotFound(f"unknown unit '{unit}'")
    conditions: list[sa.ColumnElement[bool]] = []
    if type_key is not None:
        conditions.append(cases_t.c.type_key == type_key)
    if until is not None:
        conditions.append(events_t.c.at < until)
    query = (sa.select(events_t, cases_t.c.ref, cases_t.c.type_key, cases_t.c.type_version)
             .join(cases_t, cases_t.c.id == events_t.c.case_id)
             .where(*conditions)
             .order_by(events_t.c.case_id, events_t.c.seq))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(EXPORT_COLUMNS)
        write(buffer.getvalue())
    count = 0
    current, state = None, None
    try:
        with loket.read() as conn:
            for ev in conn.execute(query, execution_options={"yield_per": 5000}).mappings():
                data, digests = ev["data"], ev["digests"]
                if (data is not None and type(data) is not dict) or (digests is not None and type(digests) is not dict):
                    raise _Unreadable("data or digests is not an object")  # the careful read below names it
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
                       "data": data, "prev_hash": ev["prev_hash"], "hash": ev["hash"]}
                if fmt == "jsonl":
                    write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                else:
                    buffer.seek(0)
                    buffer.truncate()
                    writer.writerow([json.dumps(row["data"], ensure_ascii=False) if k == "data" and row[k] is not None
                                     else row[k] for k in EXPORT_COLUMNS])
                    write(buffer.getvalue())
                count += 1
    except (LoketError, OSError):
        raise
    except Exception:
        # Most likely a stored value that does not decode: find the first one, value by value.
        with loket.read() as conn:
            where = _first_damaged(conn, conditions)
        if where is None:
            raise
        raise HistoryDamaged(f"the stored history is damaged at {where}; the export stopped there "
                             "(run 'loket audit verify' to check every chain)") from None
    return count


def _first_damaged(conn: sa.Connection, conditions: Sequence[sa.ColumnElement[bool]]) -> str | None:
    """Where the first event (in export order) that does not read back well is, and what is wrong."""
    events = _RawReader(conn, events_t, _EVENT_COLUMNS)
    cases = _RawReader(conn, cases_t, _EXPORT_CASE_COLUMNS)
    query = (sa.select(events_t.c.id, *events.exprs, *cases.exprs)
             .join(cases_t, cases_t.c.id == events_t.c.case_id)
             .where(*conditions)
             .order_by(events_t.c.case_id, events_t.c.seq))
    for row in conn.execute(query, execution_options={"yield_per": 5000}):
        ev, damage = events.decode(row, 1)
        case, case_damage = cases.decode(row, 1 + len(events.exprs))
        if damage is None and case_damage is None:
            continue
        name = case["ref"] if type(case["ref"]) is str else f"case id {ev['case_id']}"
        if case_damage is not None:
            return f"{name} (its case row: {case_damage})"
        if type(ev["seq"]) is int:
            return f"{name} event {ev['seq']} ({damage})"
        return f"{name}, event row {row[0]} ({damage})"
    return None
