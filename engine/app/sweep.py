"""The escalation sweep: fire every rung, breach and timeout that is due, exactly once.

The sweep reads only cases whose `next_fire_at` has come (an indexed column kept by every
write), so its cost follows the cases that fire, not the cases that are open. Cases are
claimed in batches with `FOR UPDATE SKIP LOCKED` on PostgreSQL — several sweeps on several
machines split the work — and under SQLite's write lock elsewhere. Each case's firings, their
`escalated` events, the escalation rows (unique per case, stay and rung) and the outbox rows
(the firings' own, and those of the events a timeout's step makes, such as a hand-over) are
written in one transaction: a sweep killed at any moment leaves either all or nothing of a
batch, and the next sweep finishes the work. A batch goes to the database in a few bulk
statements, so its cost is the firings' work, not a round trip per case. That work is done once
per group of cases that agree on everything a firing reads (`_Firer`): per case remain only its
own reference, numbers, summary and hash chain.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.casework import CASE_FIELDS, SYSTEM, Case, Change, Draft
from engine.core.durations import Duration
from engine.core.history import ContentTemplate, event_content, timestamp
from engine.core.ladder import Firing, due_firings
from engine.core.notices import FiringNotice, command_for, firing_notice, notice_of, summary_of
from engine.core.vocabulary import Action, FiringKind, MailKind, Rung
from engine.errors import Conflict, InvalidValue
from engine.store.cases import update_case
from engine.store.outbox import pending_row
from engine.store.sweeps import claim_due, due_cases, insert_rows
from engine.store.tables import escalations_t, events_t, outbox_t

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
        firer = _Firer(loket, cal, now, result, mail=False)
        with loket.read() as conn:
            firer.fire(_Writes(), due_cases(conn, now), keep=False)
        return result
    firer = _Firer(loket, cal, now, result)
    while True:
        with loket.engine.begin() as conn:
            cases = claim_due(conn, now, batch)
            if not cases:
                break
            writes = _Writes()
            firer.record(_recorded())
            firer.fire(writes, cases)
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

    def case(self, loket: Loket, rt: RequestType, case: Case, change: Change, now: dt.datetime,
             recorded_at: dt.datetime, *, mail: bool = True, told: Set[tuple[int | None, str]] = frozenset()) -> Case:
        """Stage one case's change and, with `mail`, the messages of its events, except to
        whom `told` says already hear of that event."""
        staged = loket.stage_case(rt, case, change, SYSTEM, now, notify=mail, recorded_at=recorded_at)
        self.events.extend(staged.events)
        if any(event["action"] == Action.TRANSITION for event in staged.events):
            self.moved.append((staged.case, staged.events))
            self.loket = loket
        self.rows.setdefault(staged.columns, []).append(staged.params)
        self.mails.extend(pending_row(notice, now) for notice in staged.notices
                          if (notice.facts.event_seq, notice.recipient) not in told)
        return staged.case

    def extend(self, other: _Writes) -> None:
        for columns, params in other.rows.items():
            self.rows.setdefault(columns, []).extend(params)
        self.events.extend(other.events)
        self.moved.extend(other.moved)
        self.loket = self.loket or other.loket
        self.escalations.extend(other.escalations)
        self.mails.extend(other.mails)

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
    recorded_at: dt.datetime,
    *,
    mail: bool = True,
) -> None:
    """Fire what is due for one case, on its own: the general path, which the groups of
    `_Firer` reproduce for the cases they can."""
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
        writes.case(loket, rt, case, Change(), now, recorded_at, mail=mail)
        return
    notices = []
    for firing, seq, at_firing, after in pending:
        if not firing.also:  # a copy to one more recipient is not a firing of its own
            writes.escalations.append({
                "case_id": case.id, "stay": firing.stay, "rung": firing.rung, "state": at_firing.state,
                "unit": at_firing.owner, "recipient": firing.recipient or "", "due_at": firing.due_at,
                "fired_at": now, "type_key": rt.key,
            })
        result.fired.append(_report(loket, at_firing, firing))
        notice = notice_of(rt, org, cal, at_firing, after, firing, seq, now) if mail else None
        if notice is not None:
            notices.append(notice)
    writes.mails.extend(pending_row(notice, now) for notice in notices)
    # A timeout's own message already tells whom the new state makes responsible that the case
    # came to them: a hand-over message about the same event would tell them twice.
    told = {(notice.facts.event_seq, notice.recipient) for notice in notices if notice.kind == MailKind.TIMEOUT}
    writes.case(loket, rt, case, Change(updates, drafts), now, recorded_at, mail=mail, told=told)


#: The fields of a case that the firings of its group leave to the case itself: its identity,
#: its summary's data, its chain and version (filled in per case), and what no firing reads.
#: Every other field is part of the group's key, so a field added to `Case` splits groups
#: rather than being shared by mistake.
_OWN = frozenset({"id", "ref", "data", "version", "last_seq", "last_hash", "salt", "created_at", "created_by",
                  "state_entered_at", "redacted_at", "last_at"})
_GROUP_KEY = operator.attrgetter(*(name for name in CASE_FIELDS if name not in _OWN))


class _Firer:
    """Fires the due cases of one sweep (or dry run), group by group.

    Cases of one type version that agree on everything a firing reads — state, owner,
    assignee, deadlines, the rungs and clocks already fired, the instruction (the fields not
    in `_OWN`) — get the same firings, recipients, next firing, escalation rows, reports and
    notice facts. A group's first case fires by the general path (`_fire_case`); when a second
    case of the group comes, what the first one wrote becomes the group's `_Plan`, from which
    that case and the later ones only fill in their own reference, id, summary, event numbers
    and hash chain. A plan is only used after it reproduced the general path's rows for the
    first case exactly; a group it does not cover (a timeout, whose step is a transition; a type
    with a personal field named like the event's data; a notice of the events themselves) fires
    case by case, and so does a case alone in its group, at the cost of finding its group.

    The events of one batch (one transaction) are recorded at the same instant.
    """

    #: How many groups (and first cases waiting for a second) one sweep keeps at most: beyond,
    #: it starts over, so that a sweep of cases that share nothing holds no more than this.
    LIMIT = 4096

    def __init__(self, loket: Loket, cal: WorkingCalendar, now: dt.datetime, result: SweepResult, *,
                 mail: bool = True) -> None:
        self.loket, self.cal, self.now, self.result, self.mail = loket, cal, now, result, mail
        self.plans: dict[tuple[Any, ...], _Plan | None] = {}
        self.first: dict[tuple[Any, ...], _First] = {}
        self.record(_recorded())

    def record(self, at: dt.datetime) -> None:
        """Record what is fired from now on at `at` (a new batch)."""
        self.recorded_at = at
        self.recorded_text = timestamp(at) or ""

    def fire(self, writes: _Writes, cases: Iterable[Case], *, keep: bool = True) -> None:
        """Fire these cases into `writes` (unless not `keep`: each case into writes of its own,
        thrown away, for a dry run over any number of cases)."""
        plans, first, fired = self.plans, self.first, self.result.fired
        recorded_at, recorded_text = self.recorded_at, self.recorded_text
        for case in cases:
            self.result.checked += 1
            into = writes if keep else _Writes()
            key = _GROUP_KEY(case)
            plan = plans.get(key, _UNSEEN)
            if plan is _UNSEEN:
                earlier = first.pop(key, None)
                if earlier is None:
                    if len(first) >= self.LIMIT:
                        first.clear()
                    first[key] = self._general(into, case)
                    continue
                if len(plans) >= self.LIMIT:
                    plans.clear()
                plan = plans[key] = self._plan(earlier)
            if plan is None:
                _fire_case(self.loket, self.cal, into, case, self.now, self.result, recorded_at, mail=self.mail)
            else:
                plan.fire(into, case, fired, recorded_at, recorded_text)

    def _general(self, writes: _Writes, case: Case) -> _First:
        """Fire a group's first case by the general path, keeping what it wrote."""
        staged, fired = _Writes(), SweepResult()
        _fire_case(self.loket, self.cal, staged, case, self.now, fired, self.recorded_at, mail=self.mail)
        writes.extend(staged)
        self.result.fired.extend(fired.fired)
        return _First(case, staged, fired.fired, self.recorded_at, self.recorded_text)

    def _plan(self, first: _First) -> _Plan | None:
        """The plan of the group of `first`, if it has one: made from what the general path
        wrote for it, and checked to give that case exactly the same."""
        loket, cal, now, case, staged = self.loket, self.cal, self.now, first.case, first.staged
        rt, org = loket.type_of(case), loket.organisation()
        firings = due_firings(rt, org, cal, case, now)
        if (not firings or any(firing.kind == FiringKind.TIMEOUT for firing in firings)
                or len(staged.events) != len(firings) or len(staged.rows) != 1):
            return None
        [(columns, [params])] = staged.rows.items()
        steps = []
        escalations, mails = iter(staged.escalations), iter(staged.mails)
        for firing, event, report in zip(firings, staged.events, first.fired, strict=True):
            if event["digests"] or event["salts"] or event["comment"]:
                return None
            content = ContentTemplate(event_content(
                ref=case.ref, seq=event["seq"], at=event["at"], recorded_at=event["recorded_at"],
                actor=event["actor"], action=event["action"], from_state=event["from_state"],
                to_state=event["to_state"], trigger=event["trigger"], comment=None, data=event["data"], digests=None,
            ))
            notice = firing_notice(rt, org, cal, case, case, firing, now) if self.mail else None
            mail = next(mails, None) if notice is not None else None
            escalation = None if firing.also else next(escalations, None)
            steps.append(_Step(content, _bare(event), None if escalation is None else _bare(escalation), report,
                               None if notice is None or mail is None else (notice, _bare(mail))))
        plan = _Plan(rt, columns, params, steps, any(step.mail is not None for step in steps), org.language)
        again, reports = _Writes(), list[dict[str, Any]]()
        plan.fire(again, case, reports, first.recorded_at, first.recorded_text)
        if again != staged or reports != first.fired:
            return None
        return plan


_UNSEEN: Any = object()


class _First(NamedTuple):
    """A group's first case, and what the general path wrote for it."""

    case: Case
    staged: _Writes
    fired: list[dict[str, Any]]
    recorded_at: dt.datetime
    recorded_text: str


def _bare(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its enumeration members (an event's action, a mail's kind and status) as
    the plain text they stand for: the same value in the table, but the driver binds a plain
    string without looking up an adapter, for every row the group writes."""
    return {name: str.__str__(value) if isinstance(value, str) and type(value) is not str else value
            for name, value in row.items()}


def _recorded() -> dt.datetime:
    """When a batch's events are recorded (the wall clock: `recorded_at` is the true time of
    writing, unlike `at`, which is the sweep's `now`)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class _Step:
    """One firing of a group, as its first case made it."""

    content: ContentTemplate
    event: dict[str, Any]
    escalation: dict[str, Any] | None
    report: dict[str, Any]
    mail: tuple[FiringNotice, dict[str, Any]] | None
    """Its notice, and the outbox row it made."""


@dataclass(frozen=True)
class _Plan:
    """What the cases of one group write, but for their own reference, id, summary, version
    and chain (see `_Firer`)."""

    rt: RequestType
    columns: frozenset[str]
    params: dict[str, Any]
    steps: list[_Step]
    mails: bool
    """Whether any of the steps makes a mail."""
    language: str

    def fire(self, writes: _Writes, case: Case, fired: list[dict[str, Any]], recorded_at: dt.datetime,
             recorded_text: str) -> None:
        ref, case_id = case.ref, case.id
        seq, prev = case.last_seq, case.last_hash
        summary, command = (summary_of(self.rt, case.data, self.language), command_for(ref)) if self.mails else ([], "")
        for step in self.steps:
            seq += 1
            digest = step.content.chain_hash(ref, seq, recorded_text, prev)
            writes.events.append({**step.event, "case_id": case_id, "seq": seq, "recorded_at": recorded_at,
                                  "prev_hash": prev, "hash": digest})
            prev = digest
            if step.escalation is not None:
                writes.escalations.append({**step.escalation, "case_id": case_id})
            fired.append({**step.report, "ref": ref})
            if step.mail is not None:
                notice, row = step.mail
                writes.mails.append({**row, "key": ref + notice.key_tail, "case_id": case_id,
                                     "subject": notice.subject(ref),
                                     "context": {**row["context"], "ref": ref, "command": command, "case_id": case_id,
                                                 "event_seq": seq, "summary": summary}})
        writes.rows.setdefault(self.columns, []).append({
            **self.params, "last_seq": seq, "last_hash": prev, "version": case.version + 1, "_id": case_id,
            "_version": case.version})


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
