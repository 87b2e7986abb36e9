"""The escalation sweep: fire every rung, breach and timeout that is due, exactly once.

The sweep reads only cases whose `next_fire_at` has come (an indexed column kept by every
write), so its cost follows the cases that fire, not the cases that are open. Cases are
claimed in batches with `FOR UPDATE SKIP LOCKED` on PostgreSQL — several sweeps on several
machines split the work — and under SQLite's write lock elsewhere. Each case's firings, their
`escalated` events, the escalation rows (unique per case, stay and rung) and the outbox rows
(the firings' own, and those of the events a timeout's step makes, such as a hand-over) are
written in one transaction: a sweep killed at any moment leaves either all or nothing of a
batch, and the next sweep finishes the work. A batch goes to the database in a few bulk
statements, so its cost is the firings' work, not a round trip per case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.casework import SYSTEM, Case, Change, Draft
from engine.core.durations import Duration
from engine.core.history import timestamp
from engine.core.ladder import Firing, due_firings
from engine.core.notices import notice_of
from engine.core.vocabulary import Action, FiringKind, MailKind, Rung
from engine.errors import Conflict, InvalidValue
from engine.store.cases import update_case
from engine.store.outbox import pending_row
from engine.store.schema import escalations_t, events_t, outbox_t
from engine.store.sweeps import claim_due, due_cases, insert_rows

if TYPE_CHECKING:
    from engine.app.service import Loket
    from engine.core.definition import RequestType

BATCH = 500


@dataclass
class SweepResult:
    checked: int = 0
    fired: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "fired": self.fired}


def sweep(loket: Loket, now: dt.datetime | None = None, *, dry_run: bool = False,
          batch: int = BATCH) -> SweepResult:
    """Run one sweep at `now` (default: the loket's clock)."""
    now = now or loket.clock.now()
    result = SweepResult()
    cal = loket.calendar()
    if dry_run:
        # The very same work, its writes thrown away: the prediction cannot drift from the sweep.
        with loket.read() as conn:
            for case in due_cases(conn, now):
                result.checked += 1
                _fire_case(loket, cal, _Writes(), case, now, result, mail=False)
        return result
    while True:
        with loket.engine.begin() as conn:
            cases = claim_due(conn, now, batch)
            if not cases:
                break
            writes = _Writes()
            for case in cases:
                result.checked += 1
                _fire_case(loket, cal, writes, case, now, result)
            writes.flush(conn)
        if len(cases) < batch:
            break
    return result


@dataclass
class _Writes:
    """What one claimed batch writes, sent in one go when the batch is done.

    Each case is staged by `Loket.stage_case`, as `write_case` stages it — the new row guarded
    by the version that was read, its events chained onto its history, its next firing
    recomputed — but the two statements per case that write_case sends made round trips, most
    of the sweep's cost on PostgreSQL. The claim holds the rows (`FOR UPDATE`, or SQLite's
    write lock), so a guard that misses means something else wrote them anyway: the whole
    batch rolls back.
    """

    rows: dict[frozenset[str], list[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    moved: list[tuple[Case, list[dict[str, Any]]]] = field(default_factory=list)
    loket: Loket | None = None
    escalations: list[dict[str, Any]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)

    def case(self, loket: Loket, rt: RequestType, case: Case, change: Change, now: dt.datetime, *,
             mail: bool = True, told: Set[tuple[int | None, str]] = frozenset()) -> Case:
        """Stage one case's change and, with `mail`, the messages of its events, except to
        whom `told` says already hear of that event."""
        staged = loket.stage_case(rt, case, change, SYSTEM, now, notify=mail)
        self.events.extend(staged.events)
        if any(event["action"] == Action.TRANSITION for event in staged.events):
            self.moved.append((staged.case, staged.events))
            self.loket = loket
        self.rows.setdefault(staged.columns, []).append(staged.params)
        self.mails.extend(pending_row(notice, now) for notice in staged.notices
                          if (notice.facts.event_seq, notice.recipient) not in told)
        return staged.case

    def flush(self, conn: sa.Connection) -> None:
        for columns, params in self.rows.items():
            if conn.execute(update_case(columns), params).rowcount != len(params):
                raise Conflict("a case changed under the sweep's claim: its batch was not written")
        for table, rows in ((events_t, self.events), (escalations_t, self.escalations),
                            (outbox_t, self.mails)):
            if rows:
                insert_rows(conn, table, rows)
        if self.loket is not None and self.moved:  # the stays its timeouts ended
            self.loket.record_stays(conn, self.moved)


#: How many times one sweep follows a case through timeouts: each round fires what is due in
#: the state the case is in, a timeout ending the round. A chain longer than this (timeouts
#: that are due the moment their state is entered) is finished by the next sweep.
ROUNDS = 3


def _fire_case(
    loket: Loket,
    cal: WorkingCalendar,
    writes: _Writes,
    case: Case,
    now: dt.datetime,
    result: SweepResult,
    *,
    mail: bool = True,
) -> None:
    rt = loket.type_of(case)
    org = loket.organisation()
    updates: dict[str, Any] = {}
    drafts: list[Draft] = []
    # Each firing with the number of its event and the case as it was when it fired (and,
    # for a timeout, as the timeout left it).
    pending: list[tuple[Firing, int, Case, Case]] = []
    current = case
    for _ in range(ROUNDS):
        firings = due_firings(rt, org, cal, current, now)
        for firing in firings:
            if firing.kind == FiringKind.TIMEOUT:
                continue
            drafts.append(Draft(Action.ESCALATED, from_state=current.state, data={
                "rung": firing.rung, "kind": firing.kind, "to": firing.recipient, "asked": firing.asked,
                "due_at": timestamp(firing.due_at),
            }))
            pending.append((firing, case.last_seq + len(drafts), current, current))
            if firing.place is not None:
                updates["escalation_level"] = max(updates.get("escalation_level", 0), firing.place)
            elif firing.rung == Rung.SERVICE_NORM:
                updates["service_fired"] = True
            elif firing.rung == Rung.LEAD_TIME:
                updates["lead_fired"] = True
            elif firing.rung == Rung.DIRECTIVE:
                updates["directive_missed_at"] = now
        timeout = next((f for f in firings if f.kind == FiringKind.TIMEOUT), None)
        if timeout is None or timeout.trigger is None:
            break
        before = case.apply(updates)
        step = casework.advance(rt, org, cal, before, timeout.trigger, SYSTEM, now,
                                comment=_timeout_comment(rt.states[before.state].timeout.after,  # type: ignore[union-attr]
                                                         org.language))
        updates.update(step.updates)
        drafts.extend(step.drafts)
        current = case.apply(updates)
        pending.append((timeout, case.last_seq + len(drafts), before, current))
    if not drafts:
        # Nothing due after all (the organisation or a rung changed): just look again later.
        writes.case(loket, rt, case, Change(), now)
        return
    notices = []
    for firing, seq, at_firing, after in pending:
        if not firing.also:  # a copy to one more recipient is not a firing of its own
            writes.escalations.append({
                "case_id": case.id, "stay": firing.stay, "rung": firing.rung, "state": at_firing.state,
                "unit": at_firing.owner, "recipient": firing.recipient or "", "due_at": firing.due_at,
                "fired_at": now,
            })
        result.fired.append(_report(loket, at_firing, firing))
        notice = notice_of(rt, org, cal, at_firing, after, firing, seq, now) if mail else None
        if notice is not None:
            notices.append(notice)
    writes.mails.extend(pending_row(notice, now) for notice in notices)
    # A timeout's own message already tells whom the new state makes responsible that the case
    # came to them: a hand-over message about the same event would tell them twice.
    told = {(notice.facts.event_seq, notice.recipient) for notice in notices if notice.kind == MailKind.TIMEOUT}
    writes.case(loket, rt, case, Change(updates, drafts), now, mail=mail, told=told)


def _timeout_comment(after: Duration, language: str) -> str:
    """What the history says of a timeout, in the organisation's language (it is read with the
    rest of the case's Dutch domain text)."""
    if language == "nl":
        return f"termijn verlopen: geen antwoord binnen {after.label('nl')} na de termijn"
    return f"timeout: no answer {after} after the deadline"


def _report(loket: Loket, case: Case, firing: Firing) -> dict[str, Any]:
    org = loket.organisation()
    who = None
    if firing.recipient and firing.recipient != SYSTEM:
        who = org.recipient(firing.recipient)
    return {
        "ref": case.ref,
        "state": case.state,
        "rung": firing.json_rung(),
        "to": firing.recipient,
        "email": who.email if who is not None else None,
        "kind": firing.kind,
        "due_at": timestamp(firing.due_at),
    }


def forecast(loket: Loket, days: int, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """What will fire within `days` days from now if nothing changes; writes nothing.

    Each case is swept as a sweep at the horizon would sweep it, so a timeout inside the
    horizon cuts off its state's later rungs here too.
    """
    now = now or loket.clock.now()
    try:
        horizon = now + dt.timedelta(days=days)
    except OverflowError:
        raise InvalidValue(f"a forecast of {days} days from {timestamp(now)} runs past the last date there is"
                           ) from None
    out = sweep(loket, horizon, dry_run=True).fired
    out.sort(key=lambda r: (r["due_at"], r["ref"]))
    return out
