"""The application: configuration and cases on top of a database, a clock and the pure core.

Each public method is one transaction. A case change reads the row, asks `casework` what
the rules make of it, and writes the new row (guarded by its version) and its events together;
a concurrent writer makes the guarded update miss and the caller gets a Conflict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.app.clock import Clock, FixedClock, SystemClock
from engine.core import casework
from engine.core.calendar import WorkingCalendar
from engine.core.casework import CASE_FIELDS, Case, Change, Draft
from engine.core.definition import RequestType, parse_request_type
from engine.core.durations import Duration
from engine.core.fields import check_free_text, parse_assignments
from engine.core.history import GENESIS, new_salt, timestamp
from engine.core.organisation import Organisation, organisation_to_data, parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import (
    ConfigurationError,
    Conflict,
    HistoryDamaged,
    InvalidDefinition,
    InvalidValue,
    NotFound,
    Problem,
    Refused,
    RoleRequired,
)
from engine.store.schema import (
    cases_t,
    events_t,
    meta_t,
    organisation_t,
    ref_counter_t,
    request_type_t,
)

_UPDATES: dict[frozenset[str], sa.Update] = {}


class Staged(NamedTuple):
    case: Case
    columns: frozenset[str]
    params: dict[str, Any]
    events: list[dict[str, Any]]


def update_case(columns: frozenset[str]) -> sa.Update:
    """The guarded UPDATE of exactly these columns, built once per set of columns.

    Writing only what changed keeps the hot path's parameter handling small; the few
    distinct sets (advance, assign, sweep...) each compile once.
    """
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = _UPDATES[columns] = (
            sa.update(cases_t)
            .where(cases_t.c.id == sa.bindparam("_id"), cases_t.c.version == sa.bindparam("_version"))
            .values({name: sa.bindparam(name) for name in sorted(columns)})
        )
    return statement


CASE_COLUMNS = tuple(cases_t.c[name] for name in CASE_FIELDS)
"""The case columns in the order of `Case`'s fields: a row unpacks straight into a Case."""
_SELECT_CASE = sa.select(*CASE_COLUMNS).where(cases_t.c.ref == sa.bindparam("ref"))
_INSERT_EVENT = sa.insert(events_t)


def jsonable(value: Any) -> Any:
    """Definition data as stored: dates become ISO text, everything else stays plain."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Loaded:
    key: str
    version: int
    changed: bool


class Loket:
    def __init__(self, engine: sa.Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self._org: Organisation | None = None
        self._calendar: WorkingCalendar | None = None
        self._types: dict[tuple[str, int], RequestType] = {}
        self._latest: dict[str, int] | None = None

    # -- transactions ------------------------------------------------------------------------

    def read(self) -> sa.engine.Connection:
        return self.engine.connect().execution_options(loket_readonly=True)

    def refresh(self) -> None:
        """Forget cached configuration (a long-running worker calls this between sweeps)."""
        self._org = None
        self._calendar = None
        self._latest = None

    # -- meta --------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self.read() as conn:
            return conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == key)).scalar()

    def set_meta(self, conn: sa.Connection, key: str, value: str) -> None:
        if conn.execute(sa.select(meta_t.c.key).where(meta_t.c.key == key)).first():
            conn.execute(sa.update(meta_t).where(meta_t.c.key == key).values(value=value))
        else:
            conn.execute(sa.insert(meta_t).values(key=key, value=value))

    def is_simulation(self) -> bool:
        return self.meta("simulation") == "true"

    # -- the organisation --------------------------------------------------------------------

    def organisation(self) -> Organisation:
        if self._org is None:
            with self.read() as conn:
                row = conn.execute(
                    sa.select(organisation_t.c.data).order_by(organisation_t.c.id.desc()).limit(1)
                ).first()
            if row is None:
                raise ConfigurationError(
                    "no organisation loaded: run 'loket org load FILE' (or 'loket init --sample')"
                )
            self._org = parse_organisation(row.data, "<stored organisation>")
        return self._org

    def calendar(self) -> WorkingCalendar:
        if self._calendar is None:
            org = self.organisation()
            self._calendar = WorkingCalendar(org.timezone, org.closed_days)
        return self._calendar

    def load_organisation(self, path: str | Path) -> Organisation:
        org, source = self._checked_organisation(path)
        with self.engine.begin() as conn:
            self._store_organisation(conn, org, source)
        self._org, self._calendar = org, None
        return org

    def orphaned_assignees(self) -> list[tuple[str, str]]:
        """(ref, person) of open cases assigned to someone the organisation no longer has:
        their rungs for the assignee go to the lead (vacancy rule) until someone reassigns them."""
        people = self.organisation().people
        query = (sa.select(cases_t.c.ref, cases_t.c.assignee)
                 .where(cases_t.c.closed_at.is_(None), cases_t.c.assignee.is_not(None)).order_by(cases_t.c.id))
        with self.read() as conn:
            return [(ref, who) for ref, who in conn.execute(query) if who not in people]

    def _checked_organisation(self, path: str | Path) -> tuple[Organisation, str]:
        data, locate, source = load_file(path)
        org = parse_organisation(data, str(path), locate)
        # A new organisation must still carry every loaded request type: owners, ladders.
        problems: list[Problem] = []
        for rt in self.latest_types():
            try:
                parse_request_type(self._definition_data(rt.key, self.latest_version(rt.key)), org,
                                   f"request type '{rt.key}'")
            except InvalidDefinition as exc:
                problems.extend(exc.problems)
        if problems:
            raise InvalidDefinition(problems)
        return org, source

    def _store_organisation(self, conn: sa.Connection, org: Organisation, source: str) -> None:
        conn.execute(sa.insert(organisation_t).values(
            data=jsonable(organisation_to_data(org)), source=source, loaded_at=self.clock.now(),
        ))

    def load_setup(
        self, org_path: str | Path | None, type_paths: Sequence[str | Path]
    ) -> tuple[Organisation | None, list[Loaded]]:
        """An organisation file and request-type files together, all or nothing (`loket init`):
        the types are checked against the new organisation, and a problem in any file leaves
        the database as it was."""
        org, source = self._checked_organisation(org_path) if org_path else (self._org_or_none(), None)
        if org is None and type_paths:
            raise ConfigurationError("load the organisation first: 'loket org load FILE'")
        parsed = self.validate_files(type_paths, org) if type_paths else []
        with self.engine.begin() as conn:
            if org is not None and source is not None:
                self._store_organisation(conn, org, source)
            loaded = self._store_types(conn, parsed)
        if source is not None:
            self._org, self._calendar = org, None
        self._latest = None
        return (org if source is not None else None), loaded

    # -- request types -----------------------------------------------------------------------

    def _versions(self) -> dict[str, int]:
        if self._latest is None:
            with self.read() as conn:
                rows = conn.execute(
                    sa.select(request_type_t.c.key, sa.func.max(request_type_t.c.version))
                    .group_by(request_type_t.c.key)
                ).all()
            self._latest = {key: version for key, version in rows}
        return self._latest

    def latest_version(self, key: str) -> int:
        version = self._versions().get(key)
        if version is None:
            known = ", ".join(sorted(self._versions())) or "none loaded"
            raise NotFound(f"unknown request type '{key}' (types: {known})")
        return version

    def _definition_data(self, key: str, version: int) -> Any:
        with self.read() as conn:
            row = conn.execute(
                sa.select(request_type_t.c.definition).where(
                    request_type_t.c.key == key, request_type_t.c.version == version)
            ).first()
        if row is None:
            raise NotFound(f"request type '{key}' has no version {version}")
        return row.definition

    def request_type(self, key: str, version: int | None = None) -> RequestType:
        if version is None:
            version = self.latest_version(key)
        found = self._types.get((key, version))
        if found is None:
            # A stored version was valid when loaded and stays immutable: read it back
            # without checking it against today's organisation.
            found = parse_request_type(self._definition_data(key, version), None, f"{key} v{version}")
            self._types[(key, version)] = found
        return found

    def latest_types(self) -> list[RequestType]:
        return [self.request_type(key) for key in sorted(self._versions())]

    def validate_files(
        self, paths: Sequence[str | Path], org: Organisation | None = None
    ) -> list[tuple[RequestType, Any, str, str]]:
        """Parse and check every file (against `org`, by default the loaded organisation);
        all problems of all files are reported together.

        Everything `load` would refuse is refused here too, including a prefix that another
        loaded request type already uses.
        """
        org = org if org is not None else self._org_or_none()
        problems: list[Problem] = []
        parsed: list[tuple[RequestType, Any, str, str]] = []
        prefixes = self._loaded_prefixes()
        for path in paths:
            try:
                data, locate, source = load_file(path)
                rt = parse_request_type(data, org, str(path), locate)
            except InvalidDefinition as exc:
                problems.extend(exc.problems)
                continue
            owner = prefixes.setdefault(rt.prefix, rt.key)
            if owner != rt.key:
                problems.append(Problem(str(path), "prefix", f"prefix '{rt.prefix}' is already used by '{owner}'",
                                        locate(("prefix",))))
            parsed.append((rt, data, source, str(path)))
        if problems:
            raise InvalidDefinition(problems)
        return parsed

    def _loaded_prefixes(self) -> dict[str, str]:
        try:
            with self.read() as conn:
                rows = conn.execute(sa.select(request_type_t.c.prefix, request_type_t.c.key).distinct()).all()
        except sa.exc.OperationalError:
            return {}
        return {prefix: key for prefix, key in rows}

    def _org_or_none(self) -> Organisation | None:
        try:
            return self.organisation()
        except ConfigurationError:
            return None

    def load_request_types(self, paths: Sequence[str | Path]) -> list[Loaded]:
        if self._org_or_none() is None:
            raise ConfigurationError("load the organisation first: 'loket org load FILE'")
        parsed = self.validate_files(paths)
        with self.engine.begin() as conn:
            out = self._store_types(conn, parsed)
        self._latest = None
        return out

    def _store_types(self, conn: sa.Connection, parsed: list[tuple[RequestType, Any, str, str]]) -> list[Loaded]:
        out: list[Loaded] = []
        now = self.clock.now()
        for rt, data, source, _path in parsed:
            latest = conn.execute(
                sa.select(request_type_t.c.version, request_type_t.c.digest)
                .where(request_type_t.c.key == rt.key)
                .order_by(request_type_t.c.version.desc()).limit(1)
            ).first()
            if latest is not None and latest.digest == rt.digest:
                out.append(Loaded(rt.key, latest.version, False))
                continue
            version = (latest.version if latest else 0) + 1
            conn.execute(sa.insert(request_type_t).values(
                key=rt.key, version=version, title=rt.title, prefix=rt.prefix, digest=rt.digest,
                definition=jsonable(data), source=source, loaded_at=now,
            ))
            out.append(Loaded(rt.key, version, True))
        return out

    # -- cases: reading ----------------------------------------------------------------------

    def get_case(self, ref: str, conn: sa.Connection | None = None) -> Case:
        if conn is None:
            with self.read() as own:
                return self.get_case(ref, own)
        row = conn.execute(_SELECT_CASE, {"ref": ref}).first()
        if row is None:
            raise NotFound(f"unknown case '{ref}'")
        return Case(*row)

    def type_of(self, case: Case) -> RequestType:
        return self.request_type(case.type_key, case.type_version)

    def _state_in_use(self, state: str, type_key: str | None) -> bool:
        query = sa.select(cases_t.c.id).where(cases_t.c.state == state).limit(1)
        if type_key:
            query = query.where(cases_t.c.type_key == type_key)
        with self.read() as conn:
            return conn.execute(query).first() is not None

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
        c = cases_t.c
        query = sa.select(*CASE_COLUMNS).order_by(c.id)
        if type_key:
            self.latest_version(type_key)
            query = query.where(c.type_key == type_key)
        if state:
            types = [self.request_type(type_key, self.latest_version(type_key))] if type_key else self.latest_types()
            # A state only an older version of a type has may still hold cases of that version.
            if not any(state in rt.states for rt in types) and not self._state_in_use(state, type_key):
                where = f" in request type '{type_key}'" if type_key else ""
                raise NotFound(f"unknown state '{state}'{where}")
            query = query.where(c.state == state)
        if unit:
            if unit not in self.organisation().units:
                raise NotFound(f"unknown unit '{unit}'")
            query = query.where(c.owner == unit)
        if assignee:
            query = query.where(c.assignee == assignee)
        if overdue:
            query = query.where(c.state_due < self.clock.now(), c.suspended_at.is_(None),
                                c.closed_at.is_(None))
        if open_ is True:
            query = query.where(c.closed_at.is_(None))
        elif open_ is False:
            query = query.where(c.closed_at.is_not(None))
        if limit:
            query = query.limit(limit)
        with self.read() as conn:
            for row in conn.execute(query, execution_options={"yield_per": 1000}):
                yield Case(*row)

    def history(self, ref: str) -> tuple[Case, list[dict[str, Any]]]:
        with self.read() as conn:
            case = self.get_case(ref, conn)
            try:
                rows = conn.execute(
                    sa.select(events_t).where(events_t.c.case_id == case.id).order_by(events_t.c.seq)
                ).mappings().all()
            except (ValueError, TypeError, OverflowError) as exc:
                # A value the column types cannot decode (bad JSON, a time that is no time):
                # edited behind the engine's back. `audit verify` names the event.
                raise HistoryDamaged(f"the stored history of {ref} cannot be read back ({_first_line(exc)}):"
                                     " run 'loket audit verify' to find the damaged event") from None
        return case, [dict(r) for r in rows]

    # -- cases: changing ---------------------------------------------------------------------

    def require_person(self, actor: str | None) -> str:
        org = self.organisation()
        if not actor:
            raise InvalidValue("this command changes a case: say who you are with --as PERSON")
        if actor not in org.people:
            if actor in org.administrators:
                raise RoleRequired(f"{actor} is an administrator: administrators read cases (with --as), they"
                                   " do not hold or change them")
            raise NotFound(f"unknown person '{actor}' (not in the organisation)")
        return actor

    def _require_member(self, org: Organisation, actor: str, case: Case, what: str) -> None:
        if org.is_auditor(actor) and org.rank(actor, case.owner) == 0:
            raise RoleRequired(f"{actor} is an auditor: auditors read, they do not change cases")
        if not org.may(actor, case.owner, ("staff",)):
            where = f"unit '{case.owner}'" if case.owner else "an open unit"
            raise RoleRequired(f"{actor} may not {what} {case.ref}: it needs a role in {where}")

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
        data = {k: v for k, v in parse_assignments(rt.fields, list(assignments)).items() if v is not None}
        casework.check_required_fields(rt, data)
        owner = rt.states[rt.initial].owner
        if not org.may(actor, owner, ("staff",)):
            raise RoleRequired(f"{actor} may not open a {rt.key}: it needs a role in unit '{owner}'")
        if assign is not None:
            self._check_assignee(org, assign, owner)
        now = self.clock.now()
        cal = self.calendar()
        with self.engine.begin() as conn:
            ref = self._next_ref(conn, rt.prefix, cal.local_date(now).year)
            base = {
                "ref": ref, "type_key": rt.key, "type_version": version, "state": rt.initial,
                "owner": owner, "assignee": None, "data": data, "created_at": now,
                "created_by": actor, "state_entered_at": now, "stay": 0, "state_due": None,
                "next_fire_at": None, "suspended_at": None, "suspended_manually": False,
                "closed_at": None, "escalation_level": 0, "service_fired": False,
                "lead_fired": False, "version": 1, "last_seq": 0, "last_hash": GENESIS,
                "salt": new_salt() if rt.personal_fields() else None, "redacted_at": None, "last_at": None,
                **casework.start_clocks(rt, cal, now),
            }
            case_id = conn.execute(sa.insert(cases_t).values(base).returning(cases_t.c.id)).scalar_one()
            case = Case(**{**base, "id": case_id})
            updates = casework.enter_state(rt, cal, case, rt.initial, now)
            drafts = [Draft("created", None, rt.initial, None, None, dict(data))]
            if assign is not None:
                updates["assignee"] = assign
                drafts.append(Draft("assigned", data={"assignee": assign}))
            return self.write_case(conn, rt, case, Change(updates, drafts), actor, now)

    def _check_assignee(self, org: Organisation, person: str, unit: str | None) -> None:
        if person not in org.people:
            raise NotFound(f"unknown person '{person}' (not in the organisation)")
        if not org.may(person, unit, ("staff",)):
            raise Refused(f"{person} cannot hold this case: no role in unit '{unit}'")

    def _next_ref(self, conn: sa.Connection, prefix: str, year: int) -> str:
        c = ref_counter_t.c
        bump = (
            sa.update(ref_counter_t).where(c.prefix == prefix, c.year == year)
            .values(last=c.last + 1).returning(c.last)
        )
        number = conn.execute(bump).scalar()
        if number is None:
            conn.execute(_insert_ignore(conn, ref_counter_t, {"prefix": prefix, "year": year, "last": 0}))
            number = conn.execute(bump).scalar_one()
        return f"{prefix}-{year}-{number:05d}"

    def _change(
        self,
        ref: str,
        actor: str | None,
        plan: Any,
        *,
        dry_run: bool = False,
        system: bool = False,
    ) -> Case:
        """Read a case, let `plan(rt, org, case, now)` decide the Change, write it guarded."""
        org = self.organisation()
        if not system:
            actor = self.require_person(actor)
        assert actor is not None
        now = self.clock.now()
        if dry_run:
            with self.read() as conn:
                case = self.get_case(ref, conn)
                rt = self.type_of(case)
                change = plan(rt, org, case, now)
            return case.apply(change.updates)
        read: Case | None = None
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    read = case = self.get_case(ref, conn)
                    self._check_not_earlier(case, now)
                    rt = self.type_of(case)
                    change = plan(rt, org, case, now)
                    return self.write_case(conn, rt, case, change, actor, now)
            except Conflict:
                # A sweep that escalated the case in between changed nothing the plan depends
                # on: plan again on the new row, once. Anything else is a real conflict.
                if attempt == 2 or read is None or not self._only_escalated_since(read):
                    raise
        raise AssertionError("unreachable")

    def _only_escalated_since(self, case: Case) -> bool:
        """Whether every change to the case since `case` was read is a sweep's escalation (or
        its bookkeeping, which writes no event)."""
        with self.read() as conn:
            since = conn.execute(
                sa.select(events_t.c.actor, events_t.c.action)
                .where(events_t.c.case_id == case.id, events_t.c.seq > case.last_seq)
            ).all()
        return all(actor == casework.SYSTEM and action == "escalated" for actor, action in since)

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
        self, rt: RequestType, case: Case, change: Change, actor: str, now: dt.datetime,
    ) -> Staged:
        """What writing a change means: the new row, its guarded UPDATE and its chained events."""
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
                new, change.drafts, actor=actor, at=now, recorded_at=dt.datetime.now(dt.UTC),
                personal=rt.personal_fields(),
            )
            new.last_seq, new.last_hash = head["last_seq"], head["last_hash"]
            new.last_at = now
        new.next_fire_at = casework.next_fire_at(rt, self.calendar(), new)
        new.version = case.version + 1
        columns = frozenset((*change.updates, "last_seq", "last_hash", "next_fire_at", "version",
                             *(("last_at",) if change.drafts else ())))
        params = {name: getattr(new, name) for name in columns}
        params["_id"], params["_version"] = case.id, case.version
        return Staged(new, columns, params, events)

    def write_case(
        self, conn: sa.Connection, rt: RequestType, case: Case, change: Change, actor: str,
        now: dt.datetime,
    ) -> Case:
        """Write a case's new values and events, guarded by the version that was read."""
        new, columns, params, events = self.stage_case(rt, case, change, actor, now)
        if conn.execute(update_case(columns), params).rowcount != 1:
            raise Conflict(f"{case.ref} was changed by someone else meanwhile; nothing was written")
        if events:
            try:
                conn.execute(_INSERT_EVENT, events)
            except sa.exc.IntegrityError:
                raise Conflict(f"{case.ref} was changed by someone else meanwhile; nothing was written") from None
        return new

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
        cal = self.calendar()
        if comment is not None:
            comment = _free_text(comment, "--comment", multiline=True)

        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            if case.closed_at is not None:
                raise Refused(f"{case.ref} is closed ({rt.states[case.state].label}): nothing can fire")
            data = parse_assignments(rt.fields, list(assignments)) if assignments else None
            if data:
                casework.check_required_fields(rt, {**case.data, **data}, emptying=True)
            return casework.advance(rt, org, cal, case, trigger, actor or "", now, comment, data)

        return self._change(ref, actor, plan, dry_run=dry_run)

    def assign(self, ref: str, person: str, *, actor: str | None) -> Case:
        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            self._open(rt, case)
            self._require_member(org, actor or "", case, "assign")
            self._check_assignee(org, person, case.owner)
            if case.assignee == person:
                raise Refused(f"{case.ref} is already assigned to {person}")
            updates = {"assignee": person}
            return Change(updates, [Draft("assigned", data={"assignee": person})])

        return self._change(ref, actor, plan)

    def comment(self, ref: str, text: str, *, actor: str | None) -> Case:
        text = _free_text(text, "a comment", multiline=True)
        if not text.strip():
            raise InvalidValue("a comment needs text")

        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            # A closed case still takes comments (a resident calls back), from the unit that held it.
            unit = case.owner if case.closed_at is None else self.holding_unit(case)
            self._require_member(org, actor or "", case.apply({"owner": unit}), "comment on")
            return Change({}, [Draft("comment", comment=text.strip())])

        return self._change(ref, actor, plan)

    def set_fields(self, ref: str, assignments: Sequence[str], *, actor: str | None) -> Case:
        if not assignments:
            raise InvalidValue("give at least one FIELD=VALUE")

        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            self._open(rt, case)
            self._require_member(org, actor or "", case, "change")
            data = parse_assignments(rt.fields, list(assignments))
            changed = {k: v for k, v in data.items() if case.data.get(k) != v}
            if not changed:
                raise Refused(f"{case.ref} already holds these values; nothing changed")
            merged = {k: v for k, v in {**case.data, **changed}.items() if v is not None}
            casework.check_required_fields(rt, merged, emptying=True)
            return Change({"data": merged}, [Draft("data_changed", data=changed)])

        return self._change(ref, actor, plan)

    def suspend(self, ref: str, reason: str, *, actor: str | None) -> Case:
        """Stop the clocks (opschorting, Awb 4:15): the resident must act first."""
        reason = _reason(reason)

        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            self._open(rt, case)
            self._require_member(org, actor or "", case, "suspend")
            if case.suspended_manually:
                raise Refused(f"{case.ref} is already suspended")
            if case.suspended_at is not None:
                raise Refused(f"{case.ref}'s clock already stands still in state '{case.state}'")
            return Change({"suspended_at": now, "suspended_manually": True},
                          [Draft("suspended", data={"reason": reason})])

        return self._change(ref, actor, plan)

    def resume(self, ref: str, *, actor: str | None) -> Case:
        cal = self.calendar()

        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            self._open(rt, case)
            self._require_member(org, actor or "", case, "resume")
            if not case.suspended_manually or case.suspended_at is None:
                raise Refused(f"{case.ref} is not suspended")
            if now < case.suspended_at:
                raise InvalidValue(f"{case.ref} was suspended at {timestamp(case.suspended_at)}: it cannot be"
                                   f" resumed earlier, at {timestamp(now)}")
            updates = casework.resume_clocks(rt, cal, case, now, state_running=True)
            days = (cal.local_date(now) - cal.local_date(case.suspended_at)).days
            return Change(updates, [Draft("resumed", data={"suspended_days": days})])

        return self._change(ref, actor, plan)

    def extend(self, ref: str, by: Duration, reason: str, *, actor: str | None) -> Case:
        """Move the legal decision term (beslistermijn), within the type's max_extension."""
        reason = _reason(reason)
        cal = self.calendar()

        def plan(rt: RequestType, org: Organisation, case: Case, now: dt.datetime) -> Change:
            self._open(rt, case)
            if not org.may(actor or "", case.owner, ("lead",)):
                raise RoleRequired(
                    f"{actor} may not extend {case.ref}: it needs role lead or head in unit '{case.owner}'")
            if case.case_due is None or rt.max_extension is None:
                raise Refused(f"{rt.key} has no extendable lead time (no lead_time/max_extension)")
            if by.unit not in ("weeks", "working_days") or by.amount < 1:
                raise InvalidValue(f"an extension is a positive number of weeks or working days, got {by}")
            # The same derivation `case show --explain` replays, counted from the deadline's day
            # (the day an earlier extension counted to, before the Atw moved it).
            base = self._extension_base(case, by)
            new_due = cal.deadline(base, by).due
            limit = case.case_due_limit
            if limit is not None and new_due > limit and by.unit in ("weeks", "calendar_days"):
                # The deadline may stand where the Atw moved it (after a suspension shifted it
                # onto a holiday, say), while the maximum was counted without that move: counted
                # from the day before the move, the extension may still fit.
                earlier = cal.before_moves(base)
                if earlier != base and cal.deadline(earlier, by).due <= limit:
                    base, new_due = earlier, cal.deadline(earlier, by).due
            if limit is not None and new_due > limit:
                raise Refused(
                    f"extending {case.ref} by {by} would pass the maximum extension of {rt.max_extension}"
                    f" (the term may run until {cal.local_date(limit).isoformat()} at most)"
                )
            data = {"by": str(by), "unit": by.unit, "amount": by.amount, "reason": reason,
                    "from": timestamp(case.case_due), "to": timestamp(new_due)}
            unmoved = cal.unmoved(base, by)
            if unmoved != new_due:
                data["unmoved"] = timestamp(unmoved)
            if base != case.case_due:
                data["counted_from"] = timestamp(base)  # so that --explain replays it as it was
            return Change({"case_due": new_due}, [Draft("extended", data=data)])

        return self._change(ref, actor, plan)

    def _extension_base(self, case: Case, by: Duration) -> dt.datetime:
        """Where an extension of the decision term by `by` counts from: see
        :func:`casework.extension_base`, given the case's last `extended` event."""
        assert case.case_due is not None
        with self.read() as conn:
            last = conn.execute(
                sa.select(events_t.c.data).where(events_t.c.case_id == case.id,
                                                 events_t.c.action == "extended")
                .order_by(events_t.c.seq.desc()).limit(1)
            ).scalar()
        return casework.extension_base(case.case_due, last, by)

    def holding_unit(self, case: Case, conn: sa.Connection | None = None) -> str | None:
        """The unit holding the case: its owner, or for a closed case the unit that closed it.

        Pass the caller's connection to read inside its transaction (redaction does).
        """
        if case.owner is not None:
            return case.owner
        if conn is None:
            with self.read() as own:
                return self.holding_unit(case, own)
        rt = self.type_of(case)
        states = conn.execute(
            sa.select(events_t.c.from_state).where(events_t.c.case_id == case.id,
                                                   events_t.c.from_state.is_not(None))
            .order_by(events_t.c.seq.desc())
        ).scalars()
        for state in states:
            if state in rt.states and rt.states[state].owner is not None:
                return rt.states[state].owner
        return None

    @staticmethod
    def _open(rt: RequestType, case: Case) -> None:
        if case.closed_at is not None:
            raise Refused(f"{case.ref} is closed ({rt.states[case.state].label})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _reason(text: str | None) -> str:
    if not text or not text.strip():
        raise InvalidValue("give a reason: --reason TEXT")
    return _free_text(text, "--reason", multiline=False).strip()


def _free_text(text: str, what: str, *, multiline: bool) -> str:
    """Text a person typed, with Windows and old Mac line ends made plain newlines; control
    characters that could reach a terminal as escape sequences are refused."""
    return check_free_text(text.replace("\r\n", "\n").replace("\r", "\n"), what, multiline=multiline)


def _insert_ignore(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(values).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).values(values).on_conflict_do_nothing()
