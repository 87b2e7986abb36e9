"""The escalation sweep: fire every rung, breach and timeout that is due, exactly once.

The sweep reads only cases whose `next_fire_at` has come (an indexed column kept by every
write), so its cost follows the cases that fire, not the cases that are open. Cases are
claimed in batches with `FOR UPDATE SKIP LOCKED` on PostgreSQL — several sweeps on several
machines split the work — and under SQLite's write lock elsewhere. Each case's firings, their
`escalated` events, the escalation rows (unique per case, stay and rung) and the outbox rows
are written in one transaction: a sweep killed at any moment leaves either all or nothing of a
batch, and the next sweep finishes the work. A batch goes to the database in a few bulk
statements, so its cost is the firings' work, not a round trip per case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.casework import SYSTEM, Case, Change, Draft
from engine.core.durations import Duration
from engine.core.history import timestamp
from engine.core.ladder import Firing, due_firings, resolve
from engine.errors import Conflict, InvalidValue
from engine.store.cases import CASE_COLUMNS, update_case
from engine.store.schema import cases_t, escalations_t, events_t, outbox_t

if TYPE_CHECKING:
    from engine.app.service import Loket
    from engine.core.definition import RequestType
    from engine.core.organisation import Organisation

BATCH = 500


@dataclass
class SweepResult:
    checked: int = 0
    fired: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "fired": self.fired}


def _claim(conn: sa.Connection, now: dt.datetime, batch: int) -> list[Case]:
    """The next due cases no other sweep holds, locked until this batch commits.

    Ordered by `next_fire_at` alone, the order its index gives: every case that entered a
    state on one day shares one deadline (the end of a day), and a tie-break on id would make
    PostgreSQL sort all the tied rows again for each claim.
    """
    query = (
        sa.select(*CASE_COLUMNS)
        .where(cases_t.c.next_fire_at <= now)
        .order_by(cases_t.c.next_fire_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    return [Case(*row) for row in conn.execute(query)]


def sweep(loket: Loket, now: dt.datetime | None = None, *, dry_run: bool = False,
          batch: int = BATCH) -> SweepResult:
    """Run one sweep at `now` (default: the loket's clock)."""
    now = now or loket.clock.now()
    result = SweepResult()
    cal = loket.calendar()
    if dry_run:
        # The very same work, its writes thrown away: the prediction cannot drift from the sweep.
        with loket.read() as conn:
            for case in _due_cases(conn, now):
                result.checked += 1
                _fire_case(loket, cal, _Writes(), case, now, result, mail=False)
        return result
    while True:
        with loket.engine.begin() as conn:
            cases = _claim(conn, now, batch)
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
    escalations: list[dict[str, Any]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)

    def case(self, loket: Loket, rt: RequestType, case: Case, change: Change, now: dt.datetime) -> Case:
        staged = loket.stage_case(rt, case, change, SYSTEM, now)
        self.events.extend(staged.events)
        self.rows.setdefault(staged.columns, []).append(staged.params)
        return staged.case

    def flush(self, conn: sa.Connection) -> None:
        for columns, params in self.rows.items():
            if conn.execute(update_case(columns), params).rowcount != len(params):
                raise Conflict("a case changed under the sweep's claim: its batch was not written")
        for table, rows in ((events_t, self.events), (escalations_t, self.escalations),
                            (outbox_t, self.mails)):
            if rows:
                _insert(conn, table, rows)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows of one shape straight through the driver: COPY on PostgreSQL, one
    executemany on SQLite.

    An executemany costs PostgreSQL a statement per row, and those statements were nearly
    half of the sweep's time; COPY takes the batch as one stream. On SQLite the statements are
    cheap but SQLAlchemy's handling of each row's parameters was a fifth of the sweep. Each
    value is bound exactly as an INSERT would bind it (the column types' own processors: UTC
    instants, JSON), so the rows are the same either way.
    """
    names = list(rows[0])
    dialect = conn.dialect
    binds = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    bound = ([row[name] if bind is None else bind(row[name]) for name, bind in zip(names, binds, strict=True)]
             for row in rows)
    driver: Any = conn.connection.driver_connection  # the driver's own, in this transaction
    if dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for values in bound:
                copy.write_row(values)
    elif dialect.name == "sqlite":
        driver.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                           bound)
    else:
        conn.execute(sa.insert(table), rows)


def _due_cases(conn: sa.Connection, now: dt.datetime) -> Any:
    query = sa.select(*CASE_COLUMNS).where(cases_t.c.next_fire_at <= now).order_by(cases_t.c.next_fire_at)
    for row in conn.execute(query, execution_options={"yield_per": 1000}):
        yield Case(*row)


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
            if firing.kind == "timeout":
                continue
            drafts.append(Draft("escalated", from_state=current.state, data={
                "rung": firing.rung, "kind": firing.kind, "to": firing.recipient, "asked": firing.asked,
                "due_at": timestamp(firing.due_at),
            }))
            pending.append((firing, case.last_seq + len(drafts), current, current))
            if firing.place is not None:
                updates["escalation_level"] = max(updates.get("escalation_level", 0), firing.place)
            elif firing.rung == "service_norm":
                updates["service_fired"] = True
            elif firing.rung == "lead_time":
                updates["lead_fired"] = True
        timeout = next((f for f in firings if f.kind == "timeout"), None)
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
    writes.case(loket, rt, case, Change(updates, drafts), now)
    for firing, seq, at_firing, after in pending:
        writes.escalations.append({
            "case_id": case.id, "stay": firing.stay, "rung": firing.rung, "state": at_firing.state,
            "unit": at_firing.owner, "recipient": firing.recipient or "", "due_at": firing.due_at,
            "fired_at": now,
        })
        result.fired.append(_report(loket, at_firing, firing))
        row = _mail(loket, rt, org, cal, at_firing, after, firing, seq, now) if mail else None
        if row is not None:
            writes.mails.append(row)


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


def _mail(
    loket: Loket,
    rt: RequestType,
    org: Organisation,
    cal: WorkingCalendar,
    case: Case,
    new: Case,
    firing: Firing,
    seq: int,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The outbox row for a firing; its facts are fixed now, its events read at delivery."""
    recipient_id = firing.recipient
    if firing.kind == "timeout":
        recipient_id = resolve(org, rt, new, "assignee", new.owner)
    who = org.recipient(recipient_id) if recipient_id else None
    if who is None:
        return None
    state = rt.states[case.state]
    assignee = org.people.get(case.assignee) if case.assignee else None
    context: dict[str, Any] = {
        "municipality": org.municipality,
        "recipient_name": who.name,
        "ref": case.ref,
        "type_title": rt.title,
        "state_label": state.label,
        "unit_name": _unit_name(org, case.owner),
        "assignee_name": assignee.name if assignee else None,
        "due_at": timestamp(case.state_due if firing.place is not None or firing.kind == "timeout"
                            else firing.due_at),
        "command": f"loket case show {case.ref}",
        "case_id": case.id,
        "event_seq": seq,
        "rung": firing.json_rung(),
        "ladder_size": len(rt.ladder(case.state)) if firing.place is not None else None,
        "asked": firing.asked,
        # A timeout's recipient was looked up in the state the case went to.
        "resolved": _role_of(org, rt, new if firing.kind == "timeout" else case, recipient_id or ""),
        # Only a type with a decision term and a maximum extension can be extended (`case extend`).
        "extendable": case.case_due is not None and rt.max_extension is not None,
    }
    # A ladder rung and a timeout are about the state's deadline (the one the email names); a
    # breach is about its own clock.
    due = case.state_due if firing.place is not None or firing.kind == "timeout" else firing.due_at
    if due is not None:
        context["days_overdue"] = cal.working_days_between(due, now)
    if firing.kind == "reminder" and due is not None:
        # A reminder is meant to come before the deadline, but a sweep that did not run for
        # a while fires it afterwards: it is still sent (nothing else tells the assignee), and
        # says that the deadline has passed instead of that it ends today.
        context["days_left"] = cal.working_days_between(now, due)
        context["deadline_passed"] = due <= now
    if firing.kind == "timeout":
        context["to_state_label"] = rt.states[new.state].label
        context["to_unit_name"] = _unit_name(org, new.owner)
    return {
        "key": f"{case.ref}/{firing.stay}/{firing.rung}",
        "case_id": case.id,
        "kind": firing.kind,
        "language": org.language,
        "recipient": recipient_id,
        "to_email": who.email,
        "to_name": who.name,
        "subject": _subject(org.language, firing, case.ref, rt.title, state.label),
        "context": context,
        "created_at": now,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
    }


def _unit_name(org: Organisation, unit: str | None) -> str:
    found = org.units.get(unit) if unit else None
    return found.name if found else ""


def _role_of(org: Organisation, rt: RequestType, case: Case, person: str) -> str:
    """Which role the recipient was reached in, after vacancies moved the rung up."""
    if person == case.assignee:
        return "assignee"
    for role in ("lead", "head"):
        if case.owner and any(p.id == person for p in org.holders(case.owner, role)):
            return role
    if person in org.administrators:
        return "administrator"
    return person


_SUBJECTS = {
    "nl": {"reminder": "Herinnering", "escalation": "Escalatie", "timeout": "Termijn verlopen"},
    "en": {"reminder": "Reminder", "escalation": "Escalation", "timeout": "Term expired"},
}


def _subject(language: str, firing: Firing, ref: str, title: str, state: str) -> str:
    """A short subject for listings; the delivered message carries the rendered template's."""
    word = _SUBJECTS.get(language, _SUBJECTS["nl"])[firing.kind]
    return f"{word} {ref}: {title} — {state}"


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
