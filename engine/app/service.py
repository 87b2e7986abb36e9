"""The application: cases on top of a database, a clock, the configuration and the pure core.

`Loket` is the one object the command line, the worker and the tests hold; it extends
`Definitions` (the organisation and request types) with the cases. Each public method is one
transaction. A case change reads the row (`engine.store.cases`), asks the rules what they
make of it (`engine.core.commands`) and writes the new row, guarded by its version, and its
events together. A concurrent writer makes the guarded update miss: the command plans again on
the new row, unless what it rests on changed meanwhile (`engine.core.meanwhile`) — then the
caller gets a Conflict.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.app.clock import FixedClock
from engine.app.definitions import Definitions
from engine.core import casework, commands, meanwhile
from engine.core import stays as core_stays
from engine.core.announce import announce
from engine.core.calendar import WorkingCalendar
from engine.core.casework import Case, Change
from engine.core.definition import RequestType
from engine.core.durations import Duration
from engine.core.history import new_salt, timestamp
from engine.core.notices import Notice
from engine.core.organisation import Organisation
from engine.core.vocabulary import Action
from engine.errors import Conflict, HistoryDamaged, InvalidValue, NotFound, first_line
from engine.store import cases, outbox
from engine.store import stays as stored_stays

Plan = Callable[[sa.Connection, RequestType, Organisation, WorkingCalendar, Case, dt.datetime, str], Change]
"""What a command makes of a case: given the connection it was read on (for anything else the
command must read first), the case's context as `engine.core.commands` takes it."""


RECENT = 5
"""How many of a case's latest events `case show` lists."""


class Staged(NamedTuple):
    case: Case
    columns: frozenset[str]
    params: dict[str, Any]
    events: list[dict[str, Any]]
    notices: list[Notice]
    """Who is told of the change (`engine.core.announce`): written with the events."""


class Loket(Definitions):
    # -- cases: reading ----------------------------------------------------------------------

    def get_case(self, ref: str, conn: sa.Connection | None = None) -> Case:
        if conn is None:
            with self.read() as own:
                return self.get_case(ref, own)
        case = cases.case_by_ref(conn, ref)
        if case is None:
            raise NotFound(f"unknown case '{ref}'")
        return case

    def type_of(self, case: Case) -> RequestType:
        return self.request_type(case.type_key, case.type_version)

    def list_cases(
        self,
        *,
        type_key: str | None = None,
        state: str | None = None,
        unit: str | None = None,
        assignee: str | None = None,
        overdue: bool = False,
        open_: bool | None = None,
        limit: int | None = None,
    ) -> Iterator[Case]:
        if type_key:
            self.latest_version(type_key)
        if state:
            types = [self.request_type(type_key, self.latest_version(type_key))] if type_key else self.latest_types()
            # A state only an older version of a type has may still hold cases of that version.
            if not any(state in rt.states for rt in types) and not self._state_in_use(state, type_key):
                where = f" in request type '{type_key}'" if type_key else ""
                raise NotFound(f"unknown state '{state}'{where}")
        if unit and unit not in self.organisation().units:
            raise NotFound(f"unknown unit '{unit}'")
        overdue_at = self.clock.now() if overdue else None
        with self.read() as conn:
            yield from cases.listed(conn, type_key=type_key, state=state, unit=unit, assignee=assignee,
                                    overdue_at=overdue_at, open_=open_, limit=limit)

    def _state_in_use(self, state: str, type_key: str | None) -> bool:
        with self.read() as conn:
            return cases.state_in_use(conn, state, type_key)

    def history(self, ref: str) -> tuple[Case, list[dict[str, Any]]]:
        with self.read() as conn:
            case = self.get_case(ref, conn)
            try:
                return case, cases.history_rows(conn, case.id)
            except (ValueError, TypeError, OverflowError) as exc:
                # A value the column types cannot decode (bad JSON, a time that is no time):
                # edited behind the engine's back. `audit verify` names the event.
                raise HistoryDamaged(f"the stored history of {ref} cannot be read back ({first_line(exc)}):"
                                     " run 'loket audit verify' to find the damaged event") from None

    def recent_events(self, case: Case, count: int = RECENT) -> list[dict[str, Any]]:
        """The case's latest ``count`` events, oldest first (one query, however long its history)."""
        with self.read() as conn:
            return outbox.event_windows(conn, [(case.id, case.last_seq)], count).get(case.id, [])

    def holding_unit(self, case: Case, conn: sa.Connection | None = None) -> str | None:
        """The unit holding the case: its owner, or for a closed case the unit that closed it.

        Pass the caller's connection to read inside its transaction (redaction does).
        """
        if case.owner is not None:
            return case.owner
        if conn is None:
            with self.read() as own:
                return self.holding_unit(case, own)
        return casework.last_owner(self.type_of(case), cases.states_left(conn, case.id))

    # -- cases: changing ---------------------------------------------------------------------

    def require_person(self, actor: str | None) -> str:
        return commands.require_person(self.organisation(), actor)

    def new_case(
        self,
        type_key: str,
        assignments: Iterable[str] = (),
        *,
        actor: str | None,
        assign: str | None = None,
    ) -> Case:
        org = self.organisation()
        actor = self.require_person(actor)
        rt = self.request_type(type_key)
        version = self.latest_version(type_key)
        data = commands.opening_data(rt, org, actor, assignments=list(assignments), assign=assign)
        now = self.clock.now()
        cal = self.calendar()
        with self.engine.begin() as conn:
            ref = cases.next_ref(conn, rt.prefix, cal.local_date(now).year)
            case = casework.new_case(rt, version, cal, now, ref=ref, actor=actor, data=data)
            case = case.apply({"id": cases.insert_case(conn, case)})
            change = commands.opened(rt, org, cal, case, now, actor, assign=assign)
            return self.write_case(conn, rt, case, change, actor, now)

    def advance(
        self,
        ref: str,
        trigger: str,
        *,
        actor: str | None,
        comment: str | None = None,
        assignments: Sequence[str] = (),
        dry_run: bool = False,
    ) -> Case:
        if comment is not None:
            comment = commands.free_text(comment, "--comment", multiline=True)
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.advance(
            rt, org, cal, case, now, who, trigger=trigger, comment=comment, assignments=assignments,
            newest=self._newest(case),
        ), dry_run=dry_run)

    def _newest(self, case: Case) -> tuple[int, RequestType] | None:
        """The newest version of the case's type, when the case is on an older one."""
        latest = self.latest_version(case.type_key)
        return (latest, self.request_type(case.type_key, latest)) if latest > case.type_version else None

    def assign(self, ref: str, person: str, *, actor: str | None) -> Case:
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.assign(
            rt, org, cal, case, now, who, person=person))

    def comment(self, ref: str, text: str, *, actor: str | None) -> Case:
        text = commands.comment_text(text)
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.comment(
            rt, org, cal, case, now, who, text=text,
            closed_by=None if case.closed_at is None else self.holding_unit(case, conn)),
            rests_on=meanwhile.NOTHING, administrators=True)

    def direct(self, ref: str, within: Duration, text: str, *, actor: str | None) -> Case:
        """A bestuurlijke opdracht (SPEC §12.1): the case must leave its state within `within`."""
        text = commands.instruction_text(text)
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.direct(
            rt, org, cal, case, now, who, within=within, text=text), administrators=True)

    def directive_of(self, case: Case) -> dict[str, Any] | None:
        """The case's latest instruction as `case show` gives it: `{by, text, given_at, due,
        met_at}` (and `on_behalf_of`, `within`, `state`, `missed_at`), or None if none was given."""
        if case.directive_seq is None:
            return None
        with self.read() as conn:
            event = cases.event_at(conn, case.id, case.directive_seq)
        data = (event or {}).get("data") or {}
        return {
            "by": event["actor"] if event else None,
            "on_behalf_of": data.get("on_behalf_of"),
            "text": data.get("text"),
            "within": data.get("within"),
            "state": case.directive_state,
            "given_at": timestamp(case.directive_given_at),
            "due": timestamp(case.directive_due),
            "met_at": timestamp(case.directive_met_at),
            "missed_at": timestamp(case.directive_missed_at),
        }

    def set_fields(self, ref: str, assignments: Sequence[str], *, actor: str | None) -> Case:
        if not assignments:
            raise InvalidValue("give at least one FIELD=VALUE")
        names = (item.partition("=")[0].strip() for item in assignments)
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.set_fields(
            rt, org, cal, case, now, who, assignments=assignments), rests_on=meanwhile.fields_and_state(names))

    def suspend(self, ref: str, reason: str, *, actor: str | None) -> Case:
        """Stop the clocks (opschorting, Awb 4:15): the resident must act first."""
        reason = commands.reason_text(reason)
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.suspend(
            rt, org, cal, case, now, who, reason=reason))

    def resume(self, ref: str, *, actor: str | None) -> Case:
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.resume(
            rt, org, cal, case, now, who))

    def extend(self, ref: str, by: Duration, reason: str, *, actor: str | None) -> Case:
        """Move the legal decision term (beslistermijn), within the type's max_extension."""
        reason = commands.reason_text(reason)
        return self._change(ref, actor, lambda conn, rt, org, cal, case, now, who: commands.extend(
            rt, org, cal, case, now, who, by=by, reason=reason,
            last_extension=cases.last_event_data(conn, case.id, Action.EXTENDED)))

    def _change(
        self, ref: str, actor: str | None, plan: Plan, *, rests_on: frozenset[str] = meanwhile.EVERYTHING,
        dry_run: bool = False, administrators: bool = False,
    ) -> Case:
        """Read a case, let `plan` decide the Change, write it guarded by the version read.

        When the guard misses (someone wrote first), plan again on the new row, unless
        something the command `rests_on` (see `engine.core.meanwhile`) changed since the first
        read: that is a real conflict, and nothing is written. The check and the write share a
        transaction, so nothing can slip in between them.
        """
        org = self.organisation()
        cal = self.calendar()
        # An administrator may give the commands that say `administrators` (comment, direct).
        actor = commands.require_speaker(org, actor) if administrators else self.require_person(actor)
        now = self.clock.now()
        if dry_run:
            with self.read() as conn:
                case = self.get_case(ref, conn)
                rt = self.type_of(case)
                change = plan(conn, rt, org, cal, case, now, actor)
            return case.apply(change.updates)
        first: Case | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                _pause(attempt)
            collided = False
            try:
                with self.engine.begin() as conn:
                    case = self.get_case(ref, conn)
                    if first is None:
                        first = case
                    elif meanwhile.collision(self._touched_since(conn, first, case), rests_on):
                        collided = True
                        raise _conflict(case)
                    self._check_not_earlier(case, now)
                    rt = self.type_of(case)
                    change = plan(conn, rt, org, cal, case, now, actor)
                    return self.write_case(conn, rt, case, change, actor, now)
            except Conflict:
                if collided or attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _touched_since(conn: sa.Connection, first: Case, case: Case) -> frozenset[str]:
        """What changed between the command's first read of the case and this one."""
        return meanwhile.touched(first, case, cases.events_since(conn, first.id, first.last_seq))

    def _check_not_earlier(self, case: Case, now: dt.datetime) -> None:
        """A simulation's clock (`--now`) may not go back before what the case already records:
        a history whose events run backwards in time would make every deadline and figure
        derived from it wrong. The system clock is not checked: between machines it may lag
        by moments, and refusing real work for that would be worse."""
        if not isinstance(self.clock, FixedClock):
            return
        latest = max(t for t in (case.created_at, case.state_entered_at, case.suspended_at, case.closed_at,
                                 case.last_at) if t is not None)
        if now < latest:
            raise InvalidValue(f"the time of this run ({timestamp(now)}) is before {case.ref}'s last event"
                               f" ({timestamp(latest)}): a simulation cannot go back in time")

    def stage_case(
        self, rt: RequestType, case: Case, change: Change, actor: str, now: dt.datetime, *, notify: bool = True,
        recorded_at: dt.datetime | None = None,
    ) -> Staged:
        """What writing a change means: the new row, its guarded UPDATE, its chained events and
        (unless not `notify`, for a run whose writes are thrown away) the notices of them.

        The events are recorded at `recorded_at` (default: the wall clock now); a sweep gives
        all the cases of one transaction the same."""
        if case.salt is None and change.drafts and rt.personal_fields() and any(
                rt.personal_fields() & (draft.data or {}).keys() for draft in change.drafts):
            # Personal data entered after a redaction (which removed the salt): a fresh salt,
            # so the chain commits to the new values by digest, and a later redaction can
            # erase them again without breaking it.
            change = Change({**change.updates, "salt": new_salt()}, change.drafts)
        new = case.apply(change.updates)
        events: list[dict[str, Any]] = []
        if change.drafts:
            events, head = casework.chain(
                new, change.drafts, actor=actor, at=now, recorded_at=recorded_at or dt.datetime.now(dt.UTC),
                personal=rt.personal_fields(), text_fields=rt.text_fields(),
            )
            new.last_seq, new.last_hash = head["last_seq"], head["last_hash"]
            new.last_at = now
        new.next_fire_at = casework.next_fire_at(rt, self.calendar(), new)
        new.version = case.version + 1
        columns = frozenset((*change.updates, "last_seq", "last_hash", "next_fire_at", "version",
                             *(("last_at",) if change.drafts else ())))
        params = {name: getattr(new, name) for name in columns}
        params["_id"], params["_version"] = case.id, case.version
        notices: list[Notice] = []
        if notify and events:
            numbered = [(event["seq"], draft) for event, draft in zip(events, change.drafts, strict=True)]
            notices = announce(rt, self.organisation(), new, numbered, actor)
        return Staged(new, columns, params, events, notices)

    def write_case(
        self, conn: sa.Connection, rt: RequestType, case: Case, change: Change, actor: str,
        now: dt.datetime,
    ) -> Case:
        """Write a case's new values, its events and their mail, guarded by the version that
        was read: a writer that lost the race writes none of them."""
        new, columns, params, events, notices = self.stage_case(rt, case, change, actor, now)
        if not cases.update(conn, columns, params) or (events and not cases.insert_events(conn, events)):
            raise _conflict(case)
        if notices:
            outbox.queue_new(conn, [outbox.pending_row(notice, now) for notice in notices])
        quick = self.ended_stay_row(rt, case, events)
        if quick is None:
            self.record_stays(conn, [(new, events)])
        elif quick:
            stored_stays.insert(conn, quick)
        return new

    def ended_stay_row(self, rt: RequestType, case: Case, events: Sequence[dict[str, Any]]
                       ) -> list[dict[str, Any]] | None:
        """The `case_stay` row of the one stay a change ended, from the case as it was read,
        without reading its history again — when that row is sure to be what the history gives
        (`record_stays`): one transition among the change's moves, out of a paused state (it has
        no deadline) or out of a stay whose clock never stood still (its deadline is the one it
        was given when it began). [] when the stay keeps no row (a final state); None when the
        history must be read."""
        moves = [e for e in events if e["action"] in core_stays.MOVE_ACTIONS]
        if len(moves) != 1 or moves[0]["action"] != Action.TRANSITION:
            return None
        spec = rt.states.get(case.state)
        if spec is None or case.stay < 1 or moves[0]["from_state"] != case.state:
            return None
        if spec.final:
            return []
        if not spec.paused and case.suspended_at is not None:  # a paused state's stops change nothing
            return None
        stay = core_stays.EndedStay(case.stay, case.state, case.state_entered_at, moves[0]["at"],
                                    moves[0]["seq"], ())
        rows = core_stays.rows(case.id, case.type_key, case.type_version, rt, self.calendar(), [stay])
        if rows and rows[0]["due_at"] is not None and rows[0]["due_at"] != case.state_due:
            return None  # its deadline was moved by a suspension: the history says by how much
        return rows

    def record_stays(self, conn: sa.Connection, written: Iterable[tuple[Case, Sequence[dict[str, Any]]]]) -> None:
        """The stays these changes ended (`case_stay`), in their transaction, after their events:
        each case whose new events hold a transition has its moves read once more (one query
        for all of them) and the stays those transitions ended written."""
        ended = {case.id: (case, {e["seq"] for e in events if e["action"] == Action.TRANSITION})
                 for case, events in written if any(e["action"] == Action.TRANSITION for e in events)}
        if not ended:
            return
        cal = self.calendar()
        rows: list[dict[str, Any]] = []
        for case_id, own in stored_stays.moves(conn, list(ended)).items():
            case, seqs = ended[case_id]
            rows.extend(core_stays.rows(case_id, case.type_key, case.type_version, self.type_of(case), cal,
                                        [s for s in core_stays.ended(own) if s.end_seq in seqs]))
        stored_stays.insert(conn, rows)


ATTEMPTS = 12
"""How often a command plans its change before it gives up (exit 3). Only writers that keep
winning the race in between use them up: each round, one of the writers gets through."""


def _pause(attempt: int) -> None:
    """A short wait before planning again, random so that writers that just collided do not
    collide again in step; longer the more often this one lost, a fifth of a second at most."""
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))


def _conflict(case: Case) -> Conflict:
    return Conflict(f"{case.ref} was changed by someone else meanwhile; nothing was written")
