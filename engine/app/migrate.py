"""`loket workflow migrate`: move open cases to another version of their request type.

The rules are pure (`engine.core.migration`); here they meet the database. Cases are walked
in batches by id, so memory stays flat however many there are. Each batch is read and planned
outside any write transaction, then written in one: every case's guarded UPDATE and its
`migrated` event (and, when its assignee is let go, the `assigned` event) go in together, so a
case is moved wholly or not at all.

Workers keep running meanwhile. A case a sweep or a colleague wrote after the batch was read
makes its guarded UPDATE miss, and nothing of it is written; it is then read again and planned
once more on what it has become — unless its state, version or closing changed, which the
operator's map (and the dry run they looked at) rested on: then it is refused as changed
meanwhile (exit 3 for that case), and a second run of the same command takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.core import meanwhile
from engine.core.casework import Case
from engine.core.definition import RequestType
from engine.core.history import timestamp
from engine.core.ladder import due_firings
from engine.core.migration import CLOCK_ACTIONS, REFUSED_CHANGED, NotMigrated, Plan, check_map, clocks_changed, plan
from engine.errors import InvalidValue, NotFound
from engine.store import cases
from engine.store.sweeps import insert_rows
from engine.store.tables import events_t

if TYPE_CHECKING:
    from engine.app.service import Loket

BATCH = 500

RESTS_ON = frozenset({"state", "type_version", "closed_at"})
"""What a migration planned on a case rests on (`engine.core.meanwhile`): the state its map
was read for, the version it moves from, and that the case runs. A change to anything else
(a reminder fired, a comment, a suspension) is planned again on the new row."""

ATTEMPTS = 5


@dataclass(frozen=True)
class Refusal:
    ref: str
    state: str
    reason: str
    exit_code: int = 1

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "state": self.state, "reason": self.reason, "exit": self.exit_code}


@dataclass(frozen=True)
class Preview:
    """One case before and after (what `--dry-run` prints)."""

    ref: str
    before: dict[str, Any]
    after: dict[str, Any]
    fires: list[str]
    """What the new dates make due at once, which the next sweep fires ("3 → a.jansen",
    "lead_time → wethouder.wijken")."""
    due_anyway: list[str]
    """What was due already under the old dates and still is (a sweep has not run since)."""

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "before": self.before, "after": self.after, "fires_at_once": self.fires,
                "due_anyway": self.due_anyway}


@dataclass
class MigrationResult:
    key: str
    to_version: int
    dry_run: bool
    count: int = 0
    migrated: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every case moved; 3 when one changed meanwhile; else 1 when one was refused."""
        if any(r.exit_code == REFUSED_CHANGED for r in self.refused):
            return REFUSED_CHANGED
        return 1 if self.refused else 0

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "to_version": self.to_version, "dry_run": self.dry_run,
                "migrated": self.migrated, "refused": [r.as_json() for r in self.refused]}


def _shown(case: Case) -> dict[str, Any]:
    return {"version": case.type_version, "state": case.state, "owner": case.owner, "assignee": case.assignee,
            "due": timestamp(case.state_due), "service_due": timestamp(case.service_due),
            "case_due": timestamp(case.case_due), "next_fire_at": timestamp(case.next_fire_at)}


class Migration:
    """One run of `workflow migrate`: the versions, the map, and what came of each case."""

    def __init__(
        self, loket: Loket, key: str, to_version: int, *, from_version: int | None, state_map: dict[str, str],
        refs: Sequence[str], actor: str, dry_run: bool, keep_refs: bool = True,
        preview: Callable[[Preview], None] | None = None, batch: int = BATCH,
    ) -> None:
        self.loket, self.key, self.to_version = loket, key, to_version
        loket.latest_version(key)  # an unknown type is named as such
        self.new = loket.request_type(key, to_version)
        if from_version is not None:
            if from_version == to_version:
                raise InvalidValue(f"--from and --to are both version {to_version}")
            loket.request_type(key, from_version)
            self.versions = [from_version]
        else:
            self.versions = list(range(1, to_version))
            if not self.versions:
                raise InvalidValue(f"{key} has no version before {to_version}: give --from M to move cases back")
        self.old = {v: loket.request_type(key, v) for v in self.versions}
        check_map(state_map, [(v, self.old[v]) for v in self.versions], self.new, to_version)
        self.state_map, self.actor, self.dry_run = state_map, actor, dry_run
        self.ids = self._ids(refs) if refs else None
        self.keep_refs, self.preview, self.batch = keep_refs, preview, batch
        self.org, self.cal = loket.organisation(), loket.calendar()
        self.result = MigrationResult(key, to_version, dry_run)

    def _ids(self, refs: Sequence[str]) -> list[int]:
        """The cases named with --case: each must exist and be of this type (bad input
        otherwise, before anything is written)."""
        ids = []
        with self.loket.read() as conn:
            for ref in dict.fromkeys(refs):
                case = cases.case_by_ref(conn, ref)
                if case is None:
                    raise NotFound(f"unknown case '{ref}'")
                if case.type_key != self.key:
                    raise InvalidValue(f"{ref} is a {case.type_key}, not a {self.key}")
                ids.append(case.id)
        return ids

    def types(self, version: int) -> RequestType:
        return self.loket.request_type(self.key, version)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> MigrationResult:
        if self.ids is not None:
            self._refuse_unmovable()
        after = 0
        while True:
            with self.loket.read() as conn:
                batch = cases.migratable(conn, self.key, self.versions, after=after, limit=self.batch, ids=self.ids)
                if not batch:
                    break
                plans = self._plan(conn, batch)
            after = batch[-1].id
            if self.dry_run:
                self._show(plans)
            else:
                self._write(plans)
            if len(batch) < self.batch:
                break
        return self.result

    def _refuse_unmovable(self) -> None:
        """Cases named with --case that no batch will meet (closed, already moved, another
        version) are listed as refused, so that every name gets an answer."""
        assert self.ids is not None
        with self.loket.read() as conn:
            for case_id in self.ids:
                case = cases.migratable(conn, self.key, self.versions, after=case_id - 1, limit=1, ids=[case_id])
                if case:
                    continue
                row = cases.case_by_id(conn, case_id)
                assert row is not None
                if row.closed_at is not None:
                    why = f"{row.ref} is closed"
                elif row.type_version == self.to_version:
                    why = f"{row.ref} is already on version {self.to_version}"
                else:
                    why = f"{row.ref} is on version {row.type_version}, not {', '.join(map(str, self.versions))}"
                self.result.refused.append(Refusal(row.ref, row.state, why))

    def _plan(self, conn: Any, batch: list[Case]) -> list[tuple[Case, Plan | None]]:
        """Each case's plan, or None when it was refused (listed)."""
        needing = [c.id for c in batch if self._recounts(c)]
        events = cases.clock_events(conn, needing, CLOCK_ACTIONS) if needing else {}
        return [(case, self._one(case, events.get(case.id))) for case in batch]

    def _recounts(self, case: Case) -> bool:
        """Whether the case's terms change, so that its history must be read to count them."""
        old, dest = self.old[case.type_version], self.state_map.get(case.state, case.state)
        return case.state in old.states and dest in self.new.states and clocks_changed(old, self.new, case.state, dest)

    def _one(self, case: Case, events: list[dict[str, Any]] | None) -> Plan | None:
        now = self.loket.clock.now()
        try:
            self.loket._check_not_earlier(case, now)
            return plan(self.old[case.type_version], self.new, self.to_version, self.org, self.cal, case, now,
                        state_map=self.state_map, events=events, types=self.types)
        except (NotMigrated, InvalidValue) as exc:
            self.result.refused.append(Refusal(case.ref, case.state, str(exc)))
            return None

    def _show(self, plans: list[tuple[Case, Plan | None]]) -> None:
        now = self.loket.clock.now()
        for case, planned in plans:
            if planned is None:
                continue
            staged = self.loket.stage_case(self.new, case, planned.change, self.actor, now, notify=False)
            due_before = {firing.rung for firing in due_firings(self.old[case.type_version], self.org, self.cal,
                                                                 case, now)}
            after = [(firing.rung in due_before, f"{firing.rung} → {firing.recipient or '-'}")
                     for firing in due_firings(self.new, self.org, self.cal, staged.case, now)]
            self._moved(case)
            if self.preview is not None:
                self.preview(Preview(case.ref, _shown(case), _shown(staged.case),
                                     [text for anyway, text in after if not anyway],
                                     [text for anyway, text in after if anyway]))

    def _moved(self, case: Case) -> None:
        self.result.count += 1
        if self.keep_refs:
            self.result.migrated.append(case.ref)

    def _write(self, plans: list[tuple[Case, Plan | None]]) -> None:
        """One transaction for the batch: the guarded UPDATEs in one driver call per set of
        columns, then the events of the cases whose guard let them through. A case whose guard
        missed writes nothing and is planned again on its own."""
        now = self.loket.clock.now()
        staged = [self.loket.stage_case(self.new, case, planned.change, self.actor, now, notify=False)
                  for case, planned in plans if planned is not None]
        if not staged:
            return
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for one in staged:
            groups.setdefault(one.columns, []).append(one.params)
        with self.loket.engine.begin() as conn:
            for columns, params in groups.items():
                cases.update_many(conn, columns, params)
            heads = cases.heads(conn, [one.case.id for one in staged])
            written = [one for one in staged if heads.get(one.case.id) == one.case.last_hash]
            events = [event for one in written for event in one.events]
            if events:
                insert_rows(conn, events_t, events)
        firsts = {case.id: case for case, planned in plans if planned is not None}
        for one in written:
            self._moved(one.case)
        for one in staged:
            if heads.get(one.case.id) != one.case.last_hash:
                self._again(firsts[one.case.id])

    def _again(self, first: Case) -> None:
        """A case written meanwhile: planned again on its new row, alone, unless what the
        migration rests on changed."""
        for _attempt in range(ATTEMPTS):
            try:
                with self.loket.engine.begin() as conn:
                    case = cases.case_by_id(conn, first.id)
                    assert case is not None
                    touched = meanwhile.touched(first, case, cases.events_since(conn, first.id, first.last_seq))
                    if meanwhile.collision(touched, RESTS_ON):
                        self.result.refused.append(Refusal(
                            first.ref, first.state, f"{first.ref} was changed meanwhile"
                            f" ({', '.join(sorted(touched))}); nothing was written: run the migration again",
                            REFUSED_CHANGED))
                        return
                    planned = self._one(case, cases.clock_events(conn, [case.id], CLOCK_ACTIONS)[case.id])
                    if planned is None:
                        return
                    staged = self.loket.stage_case(self.new, case, planned.change, self.actor,
                                                   self.loket.clock.now(), notify=False)
                    if not (cases.update(conn, staged.columns, staged.params)
                            and cases.insert_events(conn, staged.events)):
                        raise _Missed  # rolls back whatever of it was written
            except _Missed:
                continue
            self._moved(case)
            return
        self.result.refused.append(Refusal(first.ref, first.state, f"{first.ref} kept changing meanwhile; nothing"
                                           " was written: run the migration again", REFUSED_CHANGED))


class _Missed(Exception):
    """A write whose guard missed: another writer was first."""


def migrate(
    loket: Loket, key: str, to_version: int, *, from_version: int | None = None, maps: dict[str, str] | None = None,
    refs: Sequence[str] = (), actor: str, dry_run: bool = False, keep_refs: bool = True,
    preview: Callable[[Preview], None] | None = None, batch: int = BATCH,
) -> MigrationResult:
    """Move the open cases of `key` (on `from_version`, or any before `to_version`) to
    `to_version`; see the module's docstring."""
    return Migration(loket, key, to_version, from_version=from_version, state_map=maps or {}, refs=refs,
                     actor=actor, dry_run=dry_run, keep_refs=keep_refs, preview=preview, batch=batch).run()


def open_on_older(loket: Loket, key: str, version: int) -> list[dict[str, Any]]:
    """Per older version and state, the open cases still there, and whether `version` has that
    state (what `workflow load` reports after loading it)."""
    rt = loket.request_type(key, version)
    with loket.read() as conn:
        rows = cases.open_on_versions(conn, key, version)
    return [{"version": v, "state": state, "cases": n, "in_new_version": state in rt.states}
            for v, state, n in rows]
