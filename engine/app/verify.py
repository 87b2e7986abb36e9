"""Checking the history: recompute every chain, replay every case row, name the first damage.

Cases and their events are read as two streams in case order and merged, so memory stays
flat however long the history is. Each case's chain must start at the genesis hash, run
without gaps, hash to what each row says, and end where the case row says its head is. And
the case row must be exactly what its history replays to (`engine.core.replay`): its state,
owner, assignee, field values, deadlines, `next_fire_at`, escalation level, creator, type
version, ... — so that a row changed without its event (an owner, a deadline, a case stopped
from escalating) is found too. Seals (`engine.app.seal`) add what no chain can show by
itself: a whole case deleted, or a history cut back consistently.

Damage to the history itself is reported in case order as it is met. A row that disagrees
with its history is reported only when every chain and seal holds: a history cut back or a
case deleted leaves rows that disagree too, and the chain or the seal names the cause.

A stored value that cannot be read back (see `engine.store.raw`) is a finding like any other,
never a crash. The quick pass lets the driver and SQLAlchemy decode as usual; if anything in
it fails, a careful pass reads every checked column raw, decodes it value by value, and
reports the first damaged row in its place in the order — so the quick pass stays as fast as
it was, and only a damaged database pays for the careful one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core import confighistory
from engine.core.calendar import WorkingCalendar
from engine.core.history import COMMENT, GENESIS, OWN, chain_hash, event_content, own_digest, personal_digest, timestamp
from engine.core.organisation import parse_organisation
from engine.core.replay import REPLAYED, Calendars, Replay, ReplayError, maybe_in_force
from engine.errors import InvalidValue, LoketError, first_line
from engine.store import audit as store
from engine.store import config, retention
from engine.store import stays as stored_stays
from engine.store.db import snapshot
from engine.store.raw import Unreadable, shape

if TYPE_CHECKING:
    from engine.app.service import Loket

RETENTION_RUN = "retention_run"
RETENTION_LIST = "retention_list"
"""The configuration events of a retention run and of its destruction list (`engine.app.retention`)."""

_COMPARED = tuple(name for name in REPLAYED if name not in ("last_seq", "last_hash"))
"""The columns compared with the replay; the chain's head is checked with the chain."""


@dataclass
class VerifyResult:
    cases: int = 0
    events: int = 0
    config_events: int | None = None
    """How many configuration events were checked; None when the check stopped before them."""
    failure: str | None = None
    ref: str | None = None
    seq: int | None = None
    against: list[str] = field(default_factory=list)
    """The seal digests kept outside the database that were checked too."""
    destroyed: list[dict[str, Any]] = field(default_factory=list)
    """Per retention run that destroyed cases: its run (configuration event), how many, and the
    destruction list written (file name and SHA-256, or None)."""

    @property
    def ok(self) -> bool:
        return self.failure is None

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"ok": self.ok, "cases": self.cases, "events": self.events,
                                 "config_events": self.config_events, "failure": self.failure, "ref": self.ref,
                                 "seq": self.seq}
        if self.destroyed:
            shown["destroyed"] = self.destroyed
        # Only when digests kept outside were given: the shape without them stays as it was.
        return shown | {"against": self.against} if self.against else shown

    def destroyed_told(self) -> str:
        """The cases destroyed when their retention ended, per run, for people."""
        parts = []
        for d in self.destroyed:
            listed = f", list {d['list']} (sha256 {d['list_sha256'][:16]}…)" if d.get("list") else ", no list written"
            parts.append(f"{d['cases']} under retention run {d['run']}{listed}")
        return "; ".join(parts)


class Broken(Exception):
    """The first thing found wrong, with the case and event it names (either may be None)."""

    def __init__(self, message: str, ref: str | None, seq: int | None) -> None:
        super().__init__(message)
        self.message, self.ref, self.seq = message, ref, seq


class _Setting:
    """What the replays count with besides the events, read once per check: every request
    type version and every organisation's calendar, each with the time it was loaded."""

    def __init__(self, loket: Loket, conn: sa.Connection, *, careful: bool) -> None:
        self.loket = loket
        loaded: list[tuple[dt.datetime, WorkingCalendar]] = []
        # One calendar per set of working days: most organisations loaded change people, not
        # days, and a calendar remembers what it counted.
        made: dict[tuple[str, tuple[dt.date, ...]], WorkingCalendar] = {}
        for row in store.organisations(conn, careful=careful):
            if careful and row.damage is not None:
                raise Broken(f"organisation {row.id}: its stored row is damaged: {row.damage}", None, None)
            try:
                org = parse_organisation(row.data, f"organisation {row.id}")
            except LoketError as exc:
                raise Broken(f"organisation {row.id}: its stored data is no organisation ({first_line(exc)})",
                             None, None) from None
            # As `Definitions.calendar` makes it from the organisation in force.
            days = (org.timezone, tuple(org.closed_days))
            cal = made.get(days)
            if cal is None:
                cal = made[days] = WorkingCalendar(org.timezone, org.closed_days)
            loaded.append((row.loaded_at, cal))
        self.calendars = Calendars(loaded) if loaded else None
        self.versions: dict[str, list[tuple[dt.datetime, int]]] = {}
        self.prefixes: dict[str, str] = {}
        for row in store.type_versions(conn, careful=careful):
            if careful and row.damage is not None:
                raise Broken(f"request type row {row.id}: its stored row is damaged: {row.damage}", None, None)
            self.versions.setdefault(row.key, []).append((row.loaded_at, row.version))
            self.prefixes[row.prefix] = row.key
        for versions in self.versions.values():
            versions.sort(key=lambda loaded: loaded[1])

    def replay(self, case: Any, first: Any) -> Replay:
        """The replay of a case, on the version of its type in force when it was made
        (`Loket.new_case` takes the newest): the type is the one whose prefix its reference
        has. The row's version is taken where it may have been the one in force; a case since
        migrated says in its history which one it left, and the replay starts again on that
        one if it was another."""
        ref = case.ref
        key = self.prefixes.get(ref.split("-", 1)[0])
        if key is None:
            raise Broken(f"{ref}: no request type has the prefix of its reference", ref, None)
        if self.calendars is None:
            raise Broken(f"{ref}: no organisation is stored to count its deadlines on", ref, None)
        versions = maybe_in_force(self.versions[key], first["at"])
        version = case.type_version if case.type_version in versions else versions[0]
        try:
            rt = self.loket.request_type(key, version)
        except LoketError as exc:
            raise Broken(f"{ref}: its request type {key} v{version} cannot be read ({first_line(exc)})",
                         ref, None) from None
        # A migrated case names the version it left in its history (`Replay` follows it).
        return Replay(rt, version, self.calendars, ref=ref, case_id=case.id,
                      types=lambda v: self.loket.request_type(key, v), alternatives=versions)


class _Chain:
    """One case's chain, event by event, and the row its history replays to."""

    def __init__(self, case: Any, setting: _Setting) -> None:
        self.case, self.setting = case, setting
        self.prev, self.seq = GENESIS, 0
        self.replay: Replay | None = None
        self.erased: dict[str, str] = {}
        """The digest of each personal value the history no longer holds (erased from an event)."""

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
        salts = ev["salts"]
        if type(salts) is not dict:
            if salts is not None:
                raise Broken(f"{ref} event {seq}: its stored row is damaged: salts {shape(salts)}", ref, seq)
            salts = {}
        self._check_digested(ref, seq, ev["comment"], data, digests, salts)
        content = event_content(
            ref=ref, seq=seq, at=ev["at"], recorded_at=ev["recorded_at"], actor=ev["actor"],
            action=ev["action"], from_state=ev["from_state"], to_state=ev["to_state"],
            trigger=ev["trigger"], comment=ev["comment"], data=data, digests=digests,
        )
        if chain_hash(content, self.prev) != ev["hash"]:
            raise Broken(f"{ref} event {seq}: its content does not match its hash (edited)", ref, seq)
        for name, digest in digests.items():
            if name == COMMENT:
                continue
            if name in data:
                self.erased.pop(name, None)
            else:
                self.erased[name] = digest
        self.prev, self.seq = ev["hash"], seq
        if self.replay is None:
            self.replay = self.setting.replay(self.case, ev)
        try:
            self.replay.feed(ev)
        except ReplayError as exc:
            damaged = "its stored row is damaged: " if exc.damaged else ""
            raise Broken(f"{ref} event {seq}: {damaged}{exc.what}", ref, seq) from None

    def _check_digested(self, ref: str, seq: int, comment: Any, data: dict[str, Any], digests: dict[str, Any],
                        salts: dict[str, Any]) -> None:
        """Each value the chain holds by digest that the event still has is the one digested: a
        free text (digest starting with `OWN`) under its own salt, which must be there with it;
        a personal value under the case's salt while the case has one."""
        salt = self.case.salt
        for name, digest in digests.items():
            if name == COMMENT:
                if comment is None:
                    continue
                value, what = comment, "its comment"
            elif name in data:
                value, what = data[name], f"data '{name}'"
            else:
                continue
            if isinstance(digest, str) and digest.startswith(OWN):
                own = salts.get(name)
                if type(own) is not str or own_digest(own, name, value) != digest:
                    raise Broken(f"{ref} event {seq}: {what} was altered (it does not match its digest)", ref, seq)
            elif name == COMMENT:
                raise Broken(f"{ref} event {seq}: its comment's digest is damaged", ref, seq)
            elif salt and personal_digest(salt, name, value) != digest:
                raise Broken(f"{ref} event {seq}: personal field '{name}' was altered", ref, seq)

    def close(self) -> Broken | None:
        """Damage to the chain's end or the row is raised; a row that disagrees with its
        history is returned, to be reported once every chain and seal is known to hold."""
        case, ref = self.case, self.case.ref
        if self.seq == 0 or self.replay is None:
            raise Broken(f"{ref}: its whole history is missing", ref, None)
        if case.last_seq != self.seq:
            raise Broken(f"{ref}: the case row says its history ends at event {case.last_seq}, but the chain ends"
                         f" at event {self.seq}: events were deleted or added, or the row's last_seq changed",
                         ref, self.seq)
        if case.last_hash != self.prev:
            raise Broken(f"{ref}: the case row says last_hash {str(case.last_hash)[:12]}… but its chain ends with"
                         f" {self.prev[:12]}… at event {self.seq}: the last event was replaced, or the row changed",
                         ref, self.seq)
        if type(case.data) is not dict and case.data is not None:
            raise Broken(f"{ref}: its case row is damaged: data {shape(case.data)}", ref, self.seq)
        differ = _differences(case, self.replay, self.erased)
        if not differ:
            return None
        return Broken(_disagreement(case, self.replay.result(), differ, self.erased), ref, self.seq)


def _differences(row: Any, replay: Replay, erased: dict[str, str]) -> list[str]:
    """The columns in which the row differs from its replay, in the order they are reported.

    A personal value the history no longer holds (only its digest) may still be on the row
    if it is the value that digest was made of (under the row's salt).
    """
    replayed = replay.result()
    differ = [name for name in _COMPARED if getattr(row, name) != getattr(replayed, name)]
    if "data" in differ and not _fields_differ(row, replayed.data, erased):
        differ.remove("data")
    if "next_fire_at" in differ and row.next_fire_at in replay.next_fire_candidates():
        differ.remove("next_fire_at")
    return differ


def _fields_differ(row: Any, replayed: dict[str, Any], erased: dict[str, str]) -> list[str]:
    data = row.data or {}
    salt = row.salt
    return sorted(k for k in {*data, *replayed} if data.get(k) != replayed.get(k) and not (
        k in erased and k not in replayed and salt and personal_digest(salt, k, data[k]) == erased[k]))


def _disagreement(row: Any, replayed: Any, differ: list[str], erased: dict[str, str]) -> str:
    """What a row that disagrees with its history says, without a personal value: the first
    column that differs with both values, field values by name only, then the others."""
    ref, first, *more = row.ref, *differ
    if first == "state":
        said = f"the case is in state '{row.state}' but its history ends in '{replayed.state}'"
    elif first == "assignee":
        said = f"the case is assigned to {row.assignee!r} but its history says {replayed.assignee!r}"
    elif first == "data":
        said = f"field(s) {', '.join(_fields_differ(row, replayed.data, erased))} differ from what its history says"
    else:
        said = (f"the case row says {first} {_shown(getattr(row, first))} but its history replays to"
                f" {_shown(getattr(replayed, first))}")
    also = f" (also: {', '.join(more)})" if more else ""
    return f"{ref}: {said}{also}"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return timestamp(value) or ""
    if isinstance(value, str):
        return repr(value)
    return str(value)


class _CarefulChain(_Chain):
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


# -- seals -------------------------------------------------------------------------------------


#: The largest file of kept digests read (one 64-character digest per line).
MAX_DIGEST_FILE_BYTES = 1024 * 1024


def kept_digests(given: Sequence[str], file: str | None) -> list[str]:
    """The seal digests to verify against: those ``given`` and those in ``file`` (one per line;
    blank lines and ``#`` comments ignored; the digest may be the first word of a line). Each
    must be 64 hexadecimal characters; anything else is refused with InvalidValue naming it."""
    found: list[tuple[str, str]] = [(value, "--against") for value in given]
    if file is not None:
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_DIGEST_FILE_BYTES + 1)
        except OSError as exc:
            raise InvalidValue(f"cannot read --against-file {file}: {exc.strerror or exc}") from None
        if len(data) > MAX_DIGEST_FILE_BYTES:
            raise InvalidValue(f"--against-file {file} is larger than {MAX_DIGEST_FILE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValue(f"--against-file {file} is not UTF-8 text") from None
        for number, line in enumerate(text.splitlines(), start=1):
            words = line.split("#", 1)[0].split()
            if words:
                found.append((words[0], f"{file} line {number}"))
        if not any(where != "--against" for _, where in found):
            raise InvalidValue(f"--against-file {file} holds no digest")
    digests = []
    for value, where in found:
        digest = value.strip().lower()
        if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise InvalidValue(f"{where}: {shown!r} is not a seal digest (64 hexadecimal characters,"
                               " as 'loket audit seal' prints)")
        digests.append(digest)
    return digests


def heads_digest(heads: Iterable[Sequence[Any]], prev_digest: str) -> tuple[str, int, int]:
    """A seal's digest: SHA-256 over the previous seal's digest and every (case id, ref, seq,
    hash) head it records, in case order; and how many cases and events that covers."""
    h = hashlib.sha256(prev_digest.encode())
    cases = events = 0
    for case_id, ref, seq, head in heads:
        h.update(f"{case_id}:{ref}:{seq}:{head}\n".encode())
        cases += 1
        events += seq
    return h.hexdigest(), cases, events


class DamagedHead(Exception):
    """A head that cannot be read back: the case it belongs to, and what is wrong with it."""

    def __init__(self, case_id: Any, damage: str) -> None:
        super().__init__(damage)
        self.case_id, self.damage = case_id, damage


def careful_heads(rows: Iterable[tuple[dict[str, Any], str | None]], id_column: str) -> Iterator[tuple[Any, ...]]:
    """Heads read raw (`engine.store.audit`), each (values, damage): the first damaged one
    raises DamagedHead."""
    for values, damage in rows:
        if damage is not None:
            raise DamagedHead(values[id_column], damage)
        yield tuple(values.values())


def check_seals(conn: sa.Connection, *, careful: bool = False,
                against: Sequence[str] = ()) -> tuple[str, str | None, int | None] | None:
    """What is wrong with the seals, as (message, ref, seq), or None if nothing is: their own
    chain, the last seal's recorded heads, and whether the history still holds each of them;
    and for each digest in ``against`` (kept outside the database, SPEC §13.4), that a seal
    with that digest is still here and holds in the same way."""
    seals = store.seals(conn, careful=careful)
    prev = GENESIS
    for row in seals:
        if careful and row.damage is not None:
            return (f"seal {row.id}: its stored row is damaged: {row.damage}", None, None)
        if row.prev_digest != prev:
            return (f"seal {row.id}: it does not follow seal before it (seals were removed or edited)", None, None)
        prev = row.digest
    checked = [seals[-1]] if seals else []
    by_digest = {row.digest: row for row in seals}
    for digest in dict.fromkeys(against):
        kept = by_digest.get(digest)
        if kept is None:
            return (f"no seal in this database has the digest {digest} kept outside it: seals were removed,"
                    " or the history was rewritten and sealed again", None, None)
        if kept not in checked:
            checked.append(kept)
    for seal in checked:
        problem = _seal_problem(conn, seal, careful=careful)
        if problem is not None:
            return problem
    return None


def _seal_problem(conn: sa.Connection, seal: Any, *, careful: bool) -> tuple[str, str | None, int | None] | None:
    """Whether ``seal``'s recorded heads still hash to its digest and the history still holds
    every one of them."""
    heads: Iterable[Sequence[Any]] = (careful_heads(store.careful_sealed_heads(conn, seal.id), "case_id") if careful
                                      else store.sealed_heads(conn, seal.id))
    try:
        digest, cases, _events = heads_digest(heads, seal.prev_digest)
    except DamagedHead as head:
        return (f"seal {seal.id}: the head it records for case id {head.case_id} is damaged: {head.damage}",
                None, None)
    if digest != seal.digest or cases != seal.cases:
        return (f"seal {seal.id}: its recorded chain heads were altered", None, None)
    missing = store.first_unkept_head(conn, seal.id)
    if missing is None:
        return None
    if missing.case_row is None:
        return (f"{missing.ref}: the case was deleted after seal {seal.id}", missing.ref, None)
    if missing.event_hash is None:
        return (f"{missing.ref}: its history was cut after seal {seal.id} (event {missing.seq} is gone)",
                missing.ref, missing.seq)
    return (f"{missing.ref} event {missing.seq}: differs from what seal {seal.id} recorded",
            missing.ref, missing.seq)


# -- the configuration history ----------------------------------------------------------------


class _Recorded:
    """What the configuration history says was loaded and sealed, and whether the database
    was made a simulation."""

    def __init__(self) -> None:
        self.organisations: dict[Any, Any] = {}
        self.types: dict[Any, Any] = {}
        self.seals: dict[Any, Any] = {}
        self.simulation = False
        self.seq = 0
        self.retention_runs: set[Any] = set()

    def take(self, action: str, detail: dict[str, Any]) -> None:
        if action == confighistory.ORG_LOAD:
            self.organisations[detail.get("organisation")] = detail.get("digest")
        elif action == confighistory.WORKFLOW_LOAD:
            self.types.update((t.get("row"), t.get("digest")) for t in detail.get("types") or [])
        elif action == confighistory.AUDIT_SEAL:
            self.seals[detail.get("seal")] = detail.get("digest")
        elif action == RETENTION_RUN:
            self.retention_runs.add(self.seq)
        elif action == confighistory.HISTORY_STARTED:
            self.organisations.update((o.get("organisation"), o.get("digest"))
                                      for o in detail.get("organisations") or [])
            self.types.update((t.get("row"), t.get("digest")) for t in detail.get("request_types") or [])
            self.seals.update((x.get("seal"), x.get("digest")) for x in detail.get("seals") or [])
        if action in (confighistory.INIT, confighistory.HISTORY_STARTED) and "simulation" in detail:
            self.simulation = detail["simulation"] is True


def check_config(conn: sa.Connection, *, careful: bool = False) -> tuple[int, str | None]:
    """How many configuration events there are, and what is wrong with them (or None): their
    chain, and whether every organisation, request type version and seal stored, and the
    simulation flag, is one the history recorded."""
    recorded = _Recorded()
    prev, seq = GENESIS, 0
    events = config.history(conn, careful=careful)
    for ev in events:
        if careful and ev["damage"] is not None:
            return len(events), f"configuration history event {seq + 1}: its stored row is damaged: {ev['damage']}"
        if ev["seq"] != seq + 1:
            return len(events), f"configuration history event {seq + 1}: missing (next stored is {ev['seq']})"
        seq = ev["seq"]
        if ev["prev_hash"] != prev:
            return len(events), f"configuration history event {seq}: its link to event {seq - 1} is broken"
        detail = ev["detail"]
        if type(detail) is not dict:
            return len(events), f"configuration history event {seq}: its stored row is damaged: detail {shape(detail)}"
        content = confighistory.event_content(seq=seq, at=ev["at"], recorded_at=ev["recorded_at"], actor=ev["actor"],
                                              login=ev["login"], action=ev["action"], detail=detail)
        if confighistory.config_hash(content, prev) != ev["hash"]:
            return len(events), (f"configuration history event {seq} ({ev['action']}): its content does not match"
                                 " its hash (edited)")
        prev = ev["hash"]
        recorded.seq = seq
        recorded.take(ev["action"], detail)
    return len(events), _unrecorded(conn, recorded, careful=careful)


def _unrecorded(conn: sa.Connection, recorded: _Recorded, *, careful: bool) -> str | None:
    """The first stored configuration the history does not account for."""
    organisations, types = config.definitions_loaded(conn, careful=careful)
    for row in organisations:
        if row["damage"] is not None:
            return f"organisation {row['id']}: its stored row is damaged: {row['damage']}"
        if row["id"] not in recorded.organisations:
            return (f"organisation {row['id']} is not in the configuration history: it was stored behind the"
                    " history's back")
        if confighistory.data_digest(row["data"]) != recorded.organisations.pop(row["id"]):
            return f"organisation {row['id']}: its data differs from what the configuration history recorded (edited)"
    for row in types:
        name = (f"request type {row['key']} v{row['version']}" if row["damage"] is None
                else f"request type row {row['id']}")
        if row["damage"] is not None:
            return f"{name}: its stored row is damaged: {row['damage']}"
        if row["id"] not in recorded.types:
            return f"{name} is not in the configuration history: it was stored behind the history's back"
        if confighistory.data_digest(row["definition"]) != recorded.types.pop(row["id"]):
            return f"{name}: its definition differs from what the configuration history recorded (edited)"
    for gone in recorded.organisations:
        return f"organisation {gone}, recorded in the configuration history, is gone"
    for gone in recorded.types:
        return f"request type row {gone}, recorded in the configuration history, is gone"
    stored_seals = {row.id: row.digest for row in store.seals(conn, careful=careful)}
    for seal_id, digest in stored_seals.items():
        if seal_id not in recorded.seals:
            return f"seal {seal_id} is not in the configuration history: it was stored behind the history's back"
        if recorded.seals[seal_id] != digest:
            return f"seal {seal_id}: its digest differs from what the configuration history recorded"
    for seal_id in recorded.seals:
        if seal_id not in stored_seals:
            return f"seal {seal_id}, recorded in the configuration history, is gone"
    for run, cases in retention.destroyed_per_run(conn):
        if run not in recorded.retention_runs:
            return (f"{cases} tombstone(s) name retention run {run}, which the configuration history does not record:"
                    " they were stored behind the history's back")
    simulation = config.meta(conn, "simulation") == "true"
    if simulation != recorded.simulation:
        said = "is" if recorded.simulation else "is not"
        return (f"the database's simulation flag was changed behind the configuration history's back (the history"
                f" says it {said} a simulation database)")
    return None


def check_stays(loket: Loket, conn: sa.Connection) -> tuple[str, str | None, int | None] | None:
    """The first row of `case_stay` (the ended stays the report counts) that is not what the
    history gives, or that the history gives and is missing: derived data must not lie
    unnoticed. Recomputed case by case, as migration 0009 filled them."""
    if not store.count_cases(conn):
        return None
    columns = stored_stays.COLUMNS
    missing = (None,) * len(columns)
    # The first case whose rows differ (what `db repair-stays` finds too), and in it the first
    # row: one missing or extra at its end compared with nothing.
    for _case, wanted, held in stored_stays.side_by_side(conn, loket.calendar(), loket.request_type):
        for want, have in zip_longest(wanted, held, fillvalue=missing):
            if want != have:
                return _stay_problem(conn, want, have, columns)
    return None


def check_tally(conn: sa.Connection) -> tuple[str, None, None] | None:
    """The first group of `stay_tally` (the report's counts of the ended stays) that is not
    what `case_stay`'s rows give."""
    drift = stored_stays.tally_drift(conn)
    if drift is None:
        return None
    (key, state, unit, met, n, us), (*_, held, held_us) = drift
    group = f"{key}/{state}, unit {unit or '(none)'}, deadline {_MET_TOLD[met]}"
    return (f"stay_tally: {group} counts {held} stay(s) of {held_us} µs where case_stay holds {n} of {us} µs;"
            " the report's time per state and unit would be wrong ('loket db repair-stays' counts it again)",
            None, None)


_MET_TOLD = {True: "met", False: "missed", None: "none"}


def _stay_problem(conn: sa.Connection, want: tuple[Any, ...], have: tuple[Any, ...], columns: Sequence[str],
                  ) -> tuple[str, str | None, int | None]:
    fix = ("the report's time per state and unit would be wrong (derived from the history, which holds:"
           " 'loket db repair-stays' rebuilds it)")
    first = want if want[0] is not None and (have[0] is None or (want[0], want[1]) <= (have[0], have[1])) else have
    ref = stored_stays.ref_of(conn, first[0])
    if (want[0], want[1]) != (have[0], have[1]):
        told = "is missing" if first is want else "is not in its history"
        return (f"case_stay: stay {first[1]} of {ref or f'case {first[0]}'} {told}; {fix}", ref, first[2])
    differ = ", ".join(f"{name} stored {_shown(b)}, history gives {_shown(a)}"
                       for name, a, b in zip(columns, want, have, strict=True) if a != b)
    return (f"case_stay: stay {want[1]} of {ref} disagrees with its history ({differ}); {fix}", ref, want[2])


def destruction_lists(conn: sa.Connection) -> dict[int, dict[str, Any]]:
    """The destruction lists written, by the retention run they cover (the last list for a run)."""
    lists: dict[int, dict[str, Any]] = {}
    for ev in config.history(conn):
        if ev["action"] == RETENTION_LIST and type(ev["detail"]) is dict:
            for run in ev["detail"].get("runs") or []:
                lists[run] = ev["detail"]
    return lists


def destroyed_runs(conn: sa.Connection) -> list[dict[str, Any]]:
    """The retention runs that destroyed cases, with how many each and the list that names them."""
    lists = destruction_lists(conn)
    return [{"run": run, "cases": cases, "list": lists.get(run, {}).get("file"),
             "list_sha256": lists.get(run, {}).get("sha256")} for run, cases in retention.destroyed_per_run(conn)]


def _orphan(ev: Any) -> Broken:
    seq = ev["seq"] if type(ev["seq"]) is int else None
    if ev.get("lost"):
        return Broken(f"event row {ev['id']} is damaged: {ev['damage']}", None, seq)
    return Broken(f"event {ev['seq']} belongs to case id {ev['case_id']}, which does not exist", None, seq)


def _run_chains(cases: Iterable[Any], events: Iterator[Any], setting: _Setting, chain_type: type[_Chain],
                result: VerifyResult | None = None) -> Broken | None:
    """Each case's chain fed its events (both streams in case id order), raising the first
    damage; an event of no case is damage too (`_orphan`). Counts the events fed into
    `result` as it goes. The first case row that disagrees with its history is returned, not
    raised: `check` tells other damage first."""
    disagreement = None
    pending = next(events, None)
    for case in cases:
        if pending is not None and pending["case_id"] < case.id:
            raise _orphan(pending)
        chain = chain_type(case, setting)
        chain.start()
        while pending is not None and pending["case_id"] == case.id:
            if result is not None:
                result.events += 1
            chain.feed(pending)
            pending = next(events, None)
        found = chain.close()
        if disagreement is None:
            disagreement = found
    if pending is not None:
        raise _orphan(pending)
    return disagreement


def chain_damage(loket: Loket, conn: sa.Connection, ids: Sequence[int]) -> str | None:
    """The first damage to the histories of the cases `ids`, as `check` tells it (an event
    missing, edited or out of its chain, the row's end of the chain, a value altered, an
    unreadable value), or None when each of them holds. A case row that merely disagrees
    with its history is no damage to the history, and not told here."""
    try:
        _run_chains(store.chain_cases(conn, ids), store.chain_events(conn, ids), _Setting(loket, conn, careful=False),
                    _Chain)
    except Broken as broken:
        return broken.message
    except Exception as exc:  # a value the quick pass cannot decode: verify's careful pass names it
        return f"a stored value cannot be read back ({first_line(exc)}); 'loket audit verify' names it"
    return None


def replay_of(loket: Loket, ref: str) -> Replay:
    """Case REF's history replayed as verify replays it (see `check`): its `result()` is the
    row it must be."""
    case, events = loket.history(ref)
    with snapshot(loket.engine) as conn:
        setting = _Setting(loket, conn, careful=False)
    replay = setting.replay(case, events[0])
    for event in events:
        replay.feed(event)
    return replay


def verify(loket: Loket, *, against: Sequence[str] = ()) -> VerifyResult:
    """Verify the whole database; with ``against``, also that the seals of those digests
    (kept outside the database) are still here and still hold."""
    try:
        return _verify(loket, careful=False, against=against)
    except Exception:
        # A value the quick pass could not decode or use (or a failure of another kind, which
        # the careful pass meets again and raises): read everything again, value by value.
        return _verify(loket, careful=True, against=against)


def _verify(loket: Loket, *, careful: bool, against: Sequence[str] = ()) -> VerifyResult:
    with snapshot(loket.engine) as conn:
        return check(loket, conn, careful=careful, against=against)


def check(loket: Loket, conn: sa.Connection, *, careful: bool = False, against: Sequence[str] = ()) -> VerifyResult:
    """Verify what `conn` sees (one snapshot: `engine.store.db.snapshot`, or the transaction
    of a seal). The quick pass raises what it cannot decode; `verify` then reads carefully."""
    result = VerifyResult(against=list(dict.fromkeys(against)))
    result.cases = store.count_cases(conn)
    cases: Iterable[Any]
    events: Iterator[Any]
    chain_type: type[_Chain]
    if careful:
        cases, events, chain_type = store.careful_cases(conn), store.careful_events(conn), _CarefulChain
    else:
        cases, events, chain_type = store.chain_cases(conn), store.chain_events(conn), _Chain
    try:
        disagreement = _run_chains(cases, events, _Setting(loket, conn, careful=careful), chain_type, result)
        problem = check_seals(conn, careful=careful, against=against)
        if problem is not None:
            raise Broken(*problem)
        result.config_events, config_problem = check_config(conn, careful=careful)
        if config_problem is not None:
            raise Broken(config_problem, None, None)
        if disagreement is not None:
            raise disagreement
        problem = check_stays(loket, conn) or check_tally(conn)
        if problem is not None:
            raise Broken(*problem)
        result.destroyed = destroyed_runs(conn)
    except Broken as broken:
        if not careful and not (type(broken.ref) in (str, type(None)) and type(broken.seq) in (int, type(None))):
            # Named by a value that is itself damaged (a ref stored as binary data, say).
            raise Unreadable(broken.message) from None
        result.failure, result.ref, result.seq = broken.message, broken.ref, broken.seq
    return result
