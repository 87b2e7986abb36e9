"""Carrying out retention terms (SPEC §15): `loket retention list` and `loket retention run`.

A request type's `retention` (`engine.core.retention`) — in its newest version: the selection
list in force decides — says how long after closing a case is kept, and whether it is then
redacted (its personal data erased, as `case redact` does) or destroyed.

Destroying deletes the case with its events, escalations, mail and every other row of it
(`engine.store.retention.case_tables`) and leaves a tombstone: reference, type, closed date,
term, destroyed at, by whom, why, under which run, and the head of its chain (last seq and
hash). The seals recorded that head; `audit verify` accepts a sealed case that is gone when
its tombstone holds that head or a later one, and says how many cases each run destroyed.

A run is an event in the configuration history (`retention_run`), recorded before it
destroys anything; each tombstone names it. Cases are destroyed in batches, one transaction
each, so a case is destroyed wholly or not at all, and a run killed half-way leaves whole
cases and their tombstones behind: the next run carries on with what is still due. Two runs
at once are kept apart by a lease (`loket_meta`), which a run killed on this machine does
not keep: the next run sees its process is gone and takes over. The tombstones' unique case
ids are the last guard: a case cannot be destroyed twice.

The destruction list (`--list FILE`, CSV) names the cases this run destroyed, in the columns
an archivist expects; its SHA-256 is printed and recorded in the configuration history
(`retention_list`), so the *verklaring van vernietiging* the archivist signs can name it.
Like a redaction, a destruction leaves the deleted bytes in the database files until they
are rewritten (`engine.app.maintenance`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from engine.app.verify import RETENTION_LIST, RETENTION_RUN
from engine.core.fields import check_free_text
from engine.core.identity import Identity
from engine.core.retention import Retention, parse_term
from engine.core.views import formatted
from engine.errors import Conflict, InvalidValue, Refused, first_line
from engine.store import redact as erasure
from engine.store import retention as store

if TYPE_CHECKING:
    from engine.app.service import Loket

RUN = RETENTION_RUN
LIST = RETENTION_LIST
NO_TERMS = ("no request type has a retention term: add 'retention: {after: {years: N}, action: destroy}'"
            " (or redact) to a request type and load it")
LEASE_SECONDS = 600
"""How long a run's lease lasts unless renewed (it is, after every batch)."""
LIST_COLUMNS = ("zaaknummer", "zaaktype", "zaaktype versie", "datum afgesloten", "bewaartermijn",
                "vernietigbaar vanaf", "vernietigd op", "vernietigd door", "reden", "laatste volgnummer",
                "laatste hash", "vernietigingsronde")
"""The destruction list's columns (Dutch: the archivist's words)."""


class Due(NamedTuple):
    id: int
    ref: str
    type_key: str
    type_version: int
    closed_at: dt.datetime
    due_on: dt.date
    """The day the term passed."""
    action: str
    term: str
    last_seq: int
    last_hash: str

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "type": self.type_key, "type_version": self.type_version,
                "closed_at": self.closed_at.isoformat(), "due_on": self.due_on.isoformat(), "action": self.action,
                "term": self.term}


@dataclass
class RunResult:
    run: int | None = None
    """The configuration event recording the run (None when nothing was due)."""
    destroyed: int = 0
    redacted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(ref, why) of due cases left as they were."""
    list_file: str | None = None
    list_sha256: str | None = None
    list_runs: list[int] = field(default_factory=list)
    """The runs the destruction list covers: this one and earlier ones that wrote none."""
    listed: int = 0
    files_clean: bool = True
    files_message: str = ""
    stopped: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"run": self.run, "destroyed": self.destroyed, "redacted": self.redacted,
                "skipped": [{"ref": r, "why": w} for r, w in self.skipped], "list": self.list_file,
                "list_sha256": self.list_sha256, "list_runs": self.list_runs, "listed": self.listed,
                "stopped": self.stopped,
                "erasure": {"files_clean": self.files_clean, "message": self.files_message}}


def terms(loket: Loket) -> dict[str, Retention]:
    """The retention term of each request type that has one (its newest version's)."""
    return {rt.key: rt.retention for rt in loket.latest_types() if rt.retention is not None}


def _zone(loket: Loket) -> ZoneInfo:
    return ZoneInfo(loket.organisation().timezone)


def due(loket: Loket, *, type_key: str | None = None, after_id: int = 0, limit: int | None = None) -> Iterator[Due]:
    """The closed cases whose term has passed today, by type and then case id; streamed."""
    zone = _zone(loket)
    today = loket.clock.now().astimezone(zone).date()
    for key, retention in sorted(terms(loket).items()):
        if type_key is not None and key != type_key:
            continue
        yield from _due_of(loket, key, retention, zone, today, after_id=after_id, limit=limit)


def _due_of(loket: Loket, key: str, retention: Retention, zone: ZoneInfo, today: dt.date, *, after_id: int,
            limit: int | None) -> Iterator[Due]:
    last = retention.latest_closing(today)
    before = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    term = str(retention.after)
    with loket.read() as conn:
        for row in store.closed_before(conn, key, before, after_id=after_id, limit=limit,
                                       unredacted=retention.action == "redact"):
            found = _is_due(row, retention, zone, today, term)
            if found is not None:
                yield found


def _batches(loket: Loket, key: str, retention: Retention, zone: ZoneInfo, today: dt.date) -> Iterator[list[Due]]:
    """The due cases of ``key`` in batches of at most `store.BATCH`, each read afresh (a batch
    is destroyed before the next is read); paged by the rows read, so that a page of cases not
    due after all (closed within the search's slack) does not end the run early."""
    last = retention.latest_closing(today)
    before = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    term = str(retention.after)
    after_id = 0
    while True:
        with loket.read() as conn:
            rows = list(store.closed_before(conn, key, before, after_id=after_id, limit=store.BATCH,
                                            unredacted=retention.action == "redact"))
        if not rows:
            return
        after_id = rows[-1].id
        batch = [d for d in (_is_due(row, retention, zone, today, term) for row in rows) if d is not None]
        if batch:
            yield batch


def _is_due(row: Any, retention: Retention, zone: ZoneInfo, today: dt.date, term: str) -> Due | None:
    due_on = retention.due_on(row.closed_at.astimezone(zone).date())
    if due_on > today:
        return None
    if retention.action == "redact" and row.redacted_at is not None and row.redacted_at >= row.closed_at:
        return None  # redacted since it closed: nothing left to erase
    return Due(row.id, row.ref, row.type_key, row.type_version, row.closed_at, due_on, retention.action, term,
               row.last_seq, row.last_hash)


def nothing_due(loket: Loket) -> str:
    """Why nothing is due: which types carry a term, and how many closed cases each has."""
    found = terms(loket)
    if not found:
        return NO_TERMS
    with loket.read() as conn:
        parts = []
        for key, retention in sorted(found.items()):
            closed = store.count_closed(conn, key)
            said = "no closed cases" if not closed else f"{closed} closed case(s), none past the term"
            parts.append(f"{key} ({retention.action} after {retention.after}): {said}")
    return "nothing is due: " + "; ".join(parts)


# -- the run -----------------------------------------------------------------------------------


class _Lease:
    """One retention run at a time: a row in `loket_meta` naming the machine, process and
    until when; renewed after every batch. A lease past its time, or held by a process of
    this machine that is gone (killed), is taken over."""

    def __init__(self, loket: Loket) -> None:
        self.loket = loket
        self.host = socket.gethostname()
        self.value: str | None = None

    def _make(self) -> str:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=LEASE_SECONDS)
        return f"{self.host} {os.getpid()} {threading.get_ident()} {until.isoformat()}"

    def _stale(self, held: str) -> bool:
        try:
            host, pid, _thread, until = held.split(" ")
            if dt.datetime.fromisoformat(until) < dt.datetime.now(dt.UTC):
                return True
            if host == self.host and int(pid) != os.getpid():
                os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (ValueError, PermissionError):
            return False
        return False

    def take(self) -> None:
        value = self._make()
        with self.loket.engine.begin() as conn:
            held = store.read_lease(conn)
            if held is not None and not self._stale(held):
                host, pid, _thread, until = (held.split(" ") + ["?"] * 4)[:4]
                raise Conflict(f"another retention run is under way (process {pid} on {host}, its lease lasts until"
                               f" {until[:19]} UTC): nothing was done; run again when it has ended")
            if not store.take_lease(conn, value, held):
                raise Conflict("another retention run started at the same moment: nothing was done;"
                               " run again when it has ended")
        self.value = value

    def renew(self) -> None:
        assert self.value is not None
        value = self._make()
        with self.loket.engine.begin() as conn:
            if not store.swap_lease(conn, self.value, value):
                raise Conflict("another retention run took over this run's lease: this run stopped; what it"
                               " destroyed has its tombstones")
        self.value = value

    def release(self) -> None:
        if self.value is not None:
            with self.loket.engine.begin() as conn:
                store.drop_lease(conn, self.value)
            self.value = None


def check_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InvalidValue("give a reason: --reason TEXT")
    return check_free_text(reason.strip(), "--reason", multiline=False)


def run(loket: Loket, reason: str, *, by: Identity, list_path: str | None = None, database: str | None = None,
        stop: threading.Event | None = None, progress: Callable[[int], None] | None = None) -> RunResult:
    """Carry out every term that has passed: redact or destroy each due case. `list_path`
    receives the destruction list (checked before anything is destroyed) of the cases this run
    destroyed and of earlier runs that wrote none (a run that was killed, the worker's). `stop`
    ends the run between batches; `progress` hears how many cases are done after each batch."""
    from engine.app.maintenance import after_redaction
    from engine.store.outfile import output_file

    reason = check_reason(reason)
    if not terms(loket):
        raise Refused(NO_TERMS)
    result = RunResult()
    if next(due(loket), None) is None and not (list_path is not None and unlisted_runs(loket)):
        result.files_message = nothing_due(loket)
        return result
    lease = _Lease(loket)
    with output_file(list_path, database=database) if list_path is not None else nullcontext() as handle:
        lease.take()
        try:
            _run(loket, reason, by, lease, result, stop, progress)
        finally:
            # What was destroyed is listed even when the run stopped half-way.
            if handle is not None:
                _list(loket, handle, result)
            lease.release()
    if list_path is not None and result.list_runs:
        result.list_file = list_path
        with loket.engine.begin() as conn:
            loket.record_config(conn, by, LIST, {"runs": result.list_runs, "file": os.path.basename(list_path),
                                                 "sha256": result.list_sha256, "cases": result.listed})
    if result.destroyed or result.redacted:
        done = after_redaction(loket)
        result.files_clean, result.files_message = done.clean, done.message
    elif result.run is None:
        result.files_message = nothing_due(loket)
    return result


def retention_job(loket: Loket, reason: str, by: Identity | None, echo: Callable[[str], None],
                  stop: threading.Event | None = None) -> None:
    """`run` as a worker job (`loket worker --retention-every`): a line in the worker's log when
    it did something; a run already under way elsewhere is left to finish."""
    loket.refresh()
    try:
        result = run(loket, reason, by=by if by is not None else loket.identity(), stop=stop)
    except (Conflict, Refused) as exc:
        echo(f"retention: {first_line(exc)}")
        return
    if result.run is not None:
        echo(f"retention: run {result.run}: {result.destroyed} destroyed, {result.redacted} redacted,"
             f" {len(result.skipped)} left as they were"
             + ("; stopped, the next run carries on" if result.stopped else "")
             + (f"; files: {result.files_message}" if result.destroyed or result.redacted else ""))


def unlisted_runs(loket: Loket) -> list[int]:
    """The runs that destroyed cases but wrote no destruction list, in order."""
    with loket.read() as conn:
        listed = {run for d in _lists(conn).values() for run in d.get("runs") or []}
        return [run for run, _n in store.destroyed_per_run(conn) if run not in listed]


def _lists(conn: Any) -> dict[int, dict[str, Any]]:
    from engine.app.verify import destruction_lists

    return destruction_lists(conn)


def _list(loket: Loket, handle: Any, result: RunResult) -> None:
    runs = unlisted_runs(loket)
    result.list_runs = runs
    result.list_sha256, result.listed = _write_list(loket, handle, runs)


def _run(loket: Loket, reason: str, by: Identity, lease: _Lease, result: RunResult,
         stop: threading.Event | None, progress: Callable[[int], None] | None) -> None:
    zone = _zone(loket)
    today = loket.clock.now().astimezone(zone).date()
    found = terms(loket)
    pending = sum(1 for _ in due(loket))
    if not pending:
        return
    with loket.engine.begin() as conn:
        result.run = loket.record_config(conn, by, RUN, {
            "reason": reason, "due": pending,
            "terms": {key: {"after": r.after.as_data(), "action": r.action} for key, r in sorted(found.items())}})
    actor = by.person if by.assisting and by.person else by.actor
    for key, retention in sorted(found.items()):
        for batch in _batches(loket, key, retention, zone, today):
            if stop is not None and stop.is_set():
                result.stopped = True
                return
            if retention.action == "destroy":
                result.destroyed += _destroy(loket, batch, retention, zone, today, reason, actor, result.run)
            else:
                _redact(loket, batch, reason, actor, result)
            lease.renew()
            if progress is not None:
                progress(result.destroyed + result.redacted)


def _destroy(loket: Loket, batch: list[Due], retention: Retention, zone: ZoneInfo, today: dt.date, reason: str,
             actor: str, run: int) -> int:
    """Destroy a batch in one transaction; how many were (a case changed or destroyed
    meanwhile is left out: read again under lock)."""
    now = loket.clock.now()
    term = str(retention.after)
    with loket.engine.begin() as conn:
        rows = store.lock_closed(conn, [d.id for d in batch])
        tombstones = []
        for row in rows:
            still = _is_due(row, retention, zone, today, term)
            if still is None:
                continue
            tombstones.append({"case_id": row.id, "ref": row.ref, "type_key": row.type_key,
                               "type_version": row.type_version, "closed_at": row.closed_at, "term": term,
                               "due_on": still.due_on, "destroyed_at": now, "destroyed_by": actor, "reason": reason,
                               "run": run, "last_seq": row.last_seq, "last_hash": row.last_hash})
        if tombstones:
            store.destroy(conn, tombstones)
            erasure.mark_pending(conn)
    return len(tombstones)


def _redact(loket: Loket, batch: list[Due], reason: str, actor: str, result: RunResult) -> None:
    from engine.app.redact import redact

    for item in batch:
        try:
            redact(loket, item.ref, reason, actor=actor, retention=True)
        except (Refused, Conflict) as exc:
            result.skipped.append((item.ref, str(exc)))
        else:
            result.redacted += 1


def _dutch(term: str) -> str:
    try:
        return parse_term(term).label("nl")
    except ValueError:
        return term


def _write_list(loket: Loket, handle: Any, runs: list[int]) -> tuple[str, int]:
    """Write the destruction list of ``runs``; its SHA-256 and how many cases it lists."""
    zone = _zone(loket)
    digest = hashlib.sha256()

    class _Tee:
        def write(self, text: str) -> int:
            digest.update(text.encode())
            return int(handle.write(text))

    writer = csv.writer(_Tee(), lineterminator="\r\n")
    writer.writerow(LIST_COLUMNS)
    with loket.read() as conn:
        listed = 0
        for t in store.tombstones_of(conn, runs):
            listed += 1
            destroyed = formatted(t.destroyed_at.astimezone(zone), "%Y-%m-%d %H:%M")
            writer.writerow((t.ref, t.type_key, t.type_version, t.closed_at.astimezone(zone).date().isoformat(),
                             _dutch(t.term), t.due_on.isoformat(), destroyed, t.destroyed_by, t.reason, t.last_seq,
                             t.last_hash, t.run))
    return digest.hexdigest(), listed
