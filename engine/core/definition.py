"""Request types: the YAML state machine of SPEC §4.2, parsed and validated as a whole.

A definition is checked on its own (keys, reachability, dead ends, duplicate triggers, field
references, terms that could never apply: zero terms, a service norm past the lead time, a
deadline in a paused state, ladder rungs past a state's timeout) and against the organisation
(owners, ladder recipients, the portfolio). Every problem is collected with its place; one
problem refuses the whole file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from engine.core.checking import Checker, type_name
from engine.core.conditions import OPERATORS, ORDERED, Condition
from engine.core.durations import Duration, parse_duration
from engine.core.fields import FIELD_KEYS, FIELD_TYPES, FieldSpec
from engine.core.notify_rules import Notify, parse_notify
from engine.core.organisation import RANKS, Organisation
from engine.core.results import parse_results
from engine.core.yamlfile import Locator, no_lines
from engine.errors import InvalidValue, NotFound

TYPE_KEYS = (
    "key", "title", "prefix", "portfolio", "lead_time", "service_norm", "max_extension",
    "fields", "initial", "states", "transitions", "escalation", "contact", "summary", "notify",
    "responsible",
    # results (SPEC §12.2, engine.core.results)
    "measures", "area",
)
STATE_KEYS = ("label", "owner", "deadline", "clock", "final", "timeout", "escalation", "outcome")
TRANSITION_KEYS = ("trigger", "from", "to", "roles", "requires", "comment", "when")
RUNG_KEYS = ("before", "after", "to")
LADDER_TARGETS = ("assignee", "lead", "head", "administrator")
# Matched with fullmatch: `$` would also accept a name that ends in a newline.
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PREFIX = re.compile(r"[A-Z]{1,6}")


@dataclass(frozen=True)
class Rung:
    place: int
    """1-based position on the ladder."""
    offset: Duration
    before: bool
    to: str


@dataclass(frozen=True)
class Timeout:
    after: Duration
    trigger: str


@dataclass(frozen=True)
class StateSpec:
    name: str
    label: str
    owner: str | None = None
    deadline: Duration | None = None
    paused: bool = False
    final: bool = False
    timeout: Timeout | None = None
    escalation: tuple[Rung, ...] | None = None
    outcome: str | None = None
    """A final state's outcome word (granted, rejected, withdrawn, done), if it names one."""


@dataclass(frozen=True)
class TransitionSpec:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    roles: tuple[str, ...] = ("staff",)
    requires: tuple[str, ...] = ()
    comment_required: bool = False
    when: tuple[Condition, ...] = ()
    place: int = 0
    """1-based position in the file's list: checks made later point at the right line, even
    when an earlier transition was too broken to keep."""


@dataclass(frozen=True)
class RequestType:
    key: str
    title: str
    prefix: str
    portfolio: str | None
    fields: Mapping[str, FieldSpec]
    initial: str
    states: Mapping[str, StateSpec]
    transitions: tuple[TransitionSpec, ...]
    escalation: tuple[Rung, ...] = ()
    lead_time: Duration | None = None
    service_norm: Duration | None = None
    max_extension: Duration | None = None
    contact: str | None = None
    """The field holding the resident's email address (`engine.core.notify_rules`)."""
    summary: tuple[str, ...] = ()
    """The fields that say what a case is about, in messages to staff."""
    notify: Notify = field(default_factory=Notify)
    responsible: str | None = None
    """The unit that answers for the decision and its legal term (SPEC §12.3), as written."""
    measures: tuple[str, ...] = ()
    """Numeric fields whose totals per outcome are reported (SPEC §12.2)."""
    area: str | None = None
    """The choice or text field by which results are grouped (SPEC §12.2)."""
    digest: str = ""
    """SHA-256 of the canonical source data: an unchanged file is not a new version."""
    _by_source: Mapping[tuple[str, str], TransitionSpec] = field(default_factory=dict, repr=False)

    def transition(self, state: str, trigger: str) -> TransitionSpec | None:
        return self._by_source.get((state, trigger))

    def transitions_from(self, state: str) -> list[TransitionSpec]:
        return [t for t in self.transitions if state in t.sources]

    def has_trigger(self, trigger: str) -> bool:
        return any(t.trigger == trigger for t in self.transitions)

    def ladder(self, state: str) -> tuple[Rung, ...]:
        spec = self.states[state]
        return spec.escalation if spec.escalation is not None else self.escalation

    def answering_unit(self) -> str | None:
        """The unit that answers for the legal term whoever holds a case: `responsible`, or
        else the owner of the initial state (SPEC §12.3)."""
        return self.responsible if self.responsible is not None else self.states[self.initial].owner

    def state(self, name: str) -> StateSpec:
        try:
            return self.states[name]
        except KeyError:
            raise NotFound(f"request type '{self.key}' has no state {name!r}") from None

    def field_spec(self, name: str) -> FieldSpec:
        try:
            return self.fields[name]
        except KeyError:
            known = ", ".join(self.fields) or "none"
            raise NotFound(f"unknown field {name!r} (fields: {known})") from None

    def personal_fields(self) -> frozenset[str]:
        """The fields that hold personal data; made once per definition (every change to a
        case asks)."""
        made: frozenset[str] | None = self.__dict__.get("_personal")
        if made is None:
            made = frozenset(n for n, f in self.fields.items() if f.personal)
            self.__dict__["_personal"] = made  # a cache beside the frozen fields, not one of them
        return made


def digest_of(data: Any) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def parse_request_type(
    data: Any,
    org: Organisation | None,
    file: str = "<request type>",
    locate: Locator = no_lines,
) -> RequestType:
    """Build and validate a request type; raises InvalidDefinition listing every problem."""
    check = Checker(file, locate)
    root = check.mapping(data, ())
    if root is None:
        check.raise_if_any()
        raise AssertionError("unreachable")
    if "states" not in root and {"units", "people"} & root.keys():
        check.problem((), "this is an organisation file: load it with 'loket org load FILE'")
        check.raise_if_any()
    check.keys(root, (), TYPE_KEYS, required=("key", "title", "prefix", "initial", "states", "transitions"))
    key = check.text(root.get("key"), ("key",)) or ""
    if key and not _NAME.fullmatch(key):
        check.problem(("key",), f"key must be lower-case letters, digits and '_', got {key!r}")
    title = _label(check, root.get("title"), ("title",)) or key
    prefix = check.text(root.get("prefix"), ("prefix",)) or ""
    if prefix and not _PREFIX.fullmatch(prefix):
        check.problem(("prefix",), f"prefix must be 1-6 capital letters, got {prefix!r}")
    portfolio = _label(check, root.get("portfolio"), ("portfolio",))
    durations = {
        name: _duration(check, root.get(name), (name,))
        for name in ("lead_time", "service_norm", "max_extension")
    }
    _check_terms(check, durations)
    fields = _fields(check, root.get("fields") or {})
    states = _states(check, root.get("states"), fields)
    transitions = _transitions(check, root.get("transitions"), states, fields)
    ladder = _ladder(check, root.get("escalation"), ("escalation",)) or ()
    initial = root.get("initial")
    if states and initial not in states:
        check.problem(("initial",), f"initial state {initial!r} is not one of the states")
    _check_graph(check, str(initial), states, transitions)
    _check_timeouts(check, states, transitions)
    _check_timeouts_against_ladders(check, states, ladder)
    if org is not None:
        _check_against_organisation(check, org, portfolio, states, transitions, ladder)
    contact, summary, notify = parse_notify(check, root, fields, states, {t.trigger for t in transitions},
                                            portfolio, org)
    responsible = _responsible(check, root, org)
    results = parse_results(check, root, fields, {name: spec.final for name, spec in states.items()})
    check.raise_if_any()
    states = {name: replace(spec, outcome=results.outcomes.get(name)) for name, spec in states.items()}
    by_source = {(s, t.trigger): t for t in transitions for s in t.sources}
    return RequestType(
        key=key, title=title, prefix=prefix, portfolio=portfolio, fields=fields,
        initial=str(initial), states=states, transitions=tuple(transitions), escalation=ladder,
        lead_time=durations["lead_time"], service_norm=durations["service_norm"],
        max_extension=durations["max_extension"], contact=contact, summary=summary, notify=notify,
        responsible=responsible, measures=results.measures, area=results.area, digest=digest_of(data),
        _by_source=by_source,
    )


def _responsible(check: Checker, root: Mapping[str, Any], org: Organisation | None) -> str | None:
    """`responsible: UNIT` (SPEC §12.3): a unit of the organisation."""
    if root.get("responsible") is None:
        return None
    unit = check.text(root["responsible"], ("responsible",))
    if unit is not None and org is not None and unit not in org.units:
        check.problem(("responsible",), f"unknown unit {unit!r} (not in the organisation)")
    return unit


def _duration(check: Checker, value: Any, path: tuple[Any, ...]) -> Duration | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        check.problem(path, f"invalid duration: {exc}")
        return None


# Every term is approximated in calendar days to compare terms written in different units
# (SPEC §4.2 lets each term pick its own). Fractions, not floats: 5 working days are exactly
# 7 days, so a tie between units stays a tie.
_APPROX_DAYS = {
    "weeks": Fraction(7),
    "calendar_days": Fraction(1),
    "working_days": Fraction(7, 5),
    "hours": Fraction(1, 24),
}


def _approx_days(duration: Duration) -> Fraction:
    """About how many calendar days `duration` lasts: simple, not the calendar's exact count
    (which depends on the day it starts). Only a term longer by this measure is refused, so a
    tie between units (5 working days and a week) is accepted."""
    return _APPROX_DAYS[duration.unit] * duration.amount


def _check_zero(check: Checker, duration: Duration | None, path: tuple[Any, ...], name: str) -> None:
    """A term of zero leaves no time at all: a breach at once, a state that is overdue on entry.
    Ladder rungs and timeouts may be zero: they count from a deadline (`after: {working_days:
    0}` fires at the deadline itself)."""
    if duration is None or duration.amount != 0:
        return
    if name == "max_extension":
        check.problem(path, f"an extension of at most {duration} allows none: leave max_extension out,"
                            " which already means a case cannot be extended")
    else:
        check.problem(path, f"a {name} of {duration} leaves no time at all: give a length above zero,"
                            f" or leave the {name} out")


def _check_terms(check: Checker, durations: Mapping[str, Duration | None]) -> None:
    """The case-wide terms: none of zero, and the service norm (the municipality's own promise)
    not after the legal term it is meant to beat."""
    for name, duration in durations.items():
        _check_zero(check, duration, (name,), name)
    norm, lead = durations["service_norm"], durations["lead_time"]
    if norm is None or lead is None or not norm.amount or not lead.amount:
        return
    if _approx_days(norm) > _approx_days(lead):
        check.problem(("service_norm",), f"service_norm ({norm}) is longer than lead_time ({lead}): the"
                                         " municipality's own promise would end after the legal term")
    elif norm.unit != lead.unit and (late := _norm_after_lead(norm, lead)) is not None:
        # In different units the two only compare on the calendar: 20 working days end after 4
        # weeks whenever a holiday falls in between.
        check.problem(("service_norm",), f"service_norm ({norm}) can end after lead_time ({lead}): for a case"
                                         f" made on {late.isoformat()} the municipality's own promise"
                                         " would end after the legal term")


def _norm_after_lead(norm: Duration, lead: Duration) -> dt.date | None:
    """The first day of two calendar years from which a case's service norm would end after its
    lead time (the Atw holidays; an organisation's closed days can only add to it), or None."""
    from engine.core.calendar import WorkingCalendar

    cal = WorkingCalendar()
    first = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    for offset in range(731):
        start = first + dt.timedelta(days=offset)
        if cal.due(start, norm) > cal.due(start, lead):
            return cal.local_date(start)
    return None


def _label(check: Checker, value: Any, path: tuple[Any, ...]) -> str | None:
    """A title, label or option: see :meth:`Checker.one_line`."""
    return check.one_line(value, path, "the text")


def _fields(check: Checker, value: Any) -> dict[str, FieldSpec]:
    out: dict[str, FieldSpec] = {}
    root = check.mapping(value, ("fields",))
    if root is None:
        return out
    for name, body in root.items():
        path = ("fields", name)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            check.problem(path, f"invalid field name {name!r} (lower-case letters, digits, '_')")
            continue
        spec = check.mapping(body, path)
        if spec is None:
            continue
        check.keys(spec, path, FIELD_KEYS, required=("type",))
        ftype = spec.get("type")
        if ftype not in FIELD_TYPES:
            check.problem((*path, "type"), f"unknown field type {ftype!r} (types: {', '.join(FIELD_TYPES)})")
            continue
        options = spec.get("options") or []
        if ftype == "choice":
            if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
                check.problem((*path, "options"), "a choice field needs a list of text options")
                options = []
            for i, option in enumerate(options):
                # A value is stripped before it is matched, so an option with spaces around it
                # could never be chosen.
                if _label(check, option, (*path, "options", i)) not in (None, option):
                    check.problem((*path, "options", i), f"option {option!r} has spaces around it")
        elif "options" in spec:
            check.problem((*path, "options"), "only choice fields take options")
        for flag in ("required", "personal"):
            if flag in spec and not isinstance(spec[flag], bool):
                check.problem((*path, flag), f"{flag} must be true or false, got {type_name(spec[flag])}")
        label = _label(check, spec.get("label"), (*path, "label"))
        field_spec = FieldSpec(
            name=name, type=ftype, required=spec.get("required") is True, options=tuple(options),
            personal=spec.get("personal") is True, label=label,
        )
        bounds = {}
        for bound in ("min", "max"):
            if bound not in spec:
                continue
            if ftype not in ("integer", "decimal", "date"):
                check.problem((*path, bound), f"{bound} applies to integer, decimal and date fields only")
                continue
            try:
                bounds[bound] = field_spec.parse(spec[bound])
            except InvalidValue as exc:
                check.problem((*path, bound), f"bad {bound}: {exc.message}")
        if len(bounds) == 2:
            low, high = (field_spec.comparable_bound(bounds[b]) for b in ("min", "max"))
            if low > high:
                check.problem((*path, "max"), f"max {spec['max']} is below min {spec['min']}:"
                                              " no value could be given")
        out[name] = FieldSpec(**{**field_spec.__dict__, **bounds})
    return out


def _states(check: Checker, value: Any, fields: Mapping[str, FieldSpec]) -> dict[str, StateSpec]:
    out: dict[str, StateSpec] = {}
    root = check.mapping(value, ("states",))
    if root is None:
        return out
    if not root:
        check.problem(("states",), "a request type needs at least one state")
    for name, body in root.items():
        path = ("states", name)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            check.problem(path, f"invalid state name {name!r} (lower-case letters, digits, '_')")
            continue
        spec = check.mapping(body, path)
        if spec is None:
            continue
        check.keys(spec, path, STATE_KEYS, required=("label",))
        label = _label(check, spec.get("label"), (*path, "label")) or name
        final = spec.get("final", False)
        if not isinstance(final, bool):
            check.problem((*path, "final"), f"final must be true or false, got {type_name(final)}")
            final = False
        clock = spec.get("clock", "running")
        if clock not in ("running", "paused"):
            check.problem((*path, "clock"), f"clock must be 'running' or 'paused', got {clock!r}")
        owner = spec.get("owner")
        if final:
            for key in ("owner", "deadline", "timeout", "escalation", "clock"):
                if key in spec:
                    check.problem((*path, key), f"a final state takes no {key}")
        elif not isinstance(owner, str) or not owner:
            check.problem(path, "a non-final state needs an owner (a unit)")
        deadline = _duration(check, spec.get("deadline"), (*path, "deadline"))
        paused = clock == "paused" and not final
        if paused:
            # The clock of a paused state stands still: no deadline runs, so nothing counted
            # from one (a timeout, a ladder) can ever fire either.
            for key in ("deadline", "timeout", "escalation"):
                if key in spec:
                    check.problem((*path, key), f"a state with clock: paused takes no {key}: its clock"
                                                f" stands still, so the {key} would never apply")
        elif not final:
            _check_zero(check, deadline, (*path, "deadline"), "deadline")
        timeout = None
        if "timeout" in spec:
            tbody = check.mapping(spec["timeout"], (*path, "timeout"))
            if tbody is not None:
                check.keys(tbody, (*path, "timeout"), ("after", "trigger"), required=("after", "trigger"))
                after = _duration(check, tbody.get("after"), (*path, "timeout", "after"))
                trigger = tbody.get("trigger")
                if after is not None and isinstance(trigger, str):
                    timeout = Timeout(after, trigger)
            if deadline is None and not final and not paused:
                check.problem((*path, "timeout"), "a timeout counts from the deadline: give the state a deadline")
        ladder = _ladder(check, spec.get("escalation"), (*path, "escalation")) if "escalation" in spec else None
        out[name] = StateSpec(
            name=name, label=label, owner=owner if not final else None, deadline=deadline,
            paused=clock == "paused", final=final, timeout=timeout, escalation=ladder,
        )
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _transitions(
    check: Checker, value: Any, states: Mapping[str, StateSpec], fields: Mapping[str, FieldSpec]
) -> list[TransitionSpec]:
    out: list[TransitionSpec] = []
    if not isinstance(value, list):
        check.problem(("transitions",), "expected a list of transitions")
        return out
    seen: dict[tuple[str, str], int] = {}
    for i, body in enumerate(value):
        path = ("transitions", i)
        spec = check.mapping(body, path)
        if spec is None:
            continue
        check.keys(spec, path, TRANSITION_KEYS, required=("trigger", "from", "to"))
        trigger = spec.get("trigger")
        if not isinstance(trigger, str) or not _NAME.fullmatch(trigger):
            check.problem((*path, "trigger"), f"invalid trigger {trigger!r} (lower-case letters, digits, '_')")
            continue
        sources = [s for s in _as_list(spec.get("from")) if s is not None]
        if not sources:
            check.problem((*path, "from"), "a transition needs at least one source state")
        for s in sources:
            if s not in states:
                check.problem((*path, "from"), f"unknown state {s!r}")
            elif states[s].final:
                check.problem((*path, "from"), f"'{s}' is final: no transition may leave it")
            elif (s, trigger) in seen:
                other = seen[(s, trigger)]
                check.problem((*path, "trigger"),
                              f"duplicate trigger '{trigger}' from state '{s}' (also transitions[{other}])")
            else:
                seen[(s, trigger)] = i
        dest = spec.get("to")
        if dest not in states:
            check.problem((*path, "to"), f"unknown state {dest!r}")
        roles = _as_list(spec.get("roles", ["staff"]))
        for role in roles:
            if role not in RANKS:
                check.problem((*path, "roles"), f"unknown role {role!r} (roles: {', '.join(RANKS)})")
        requires = _as_list(spec.get("requires", []))
        for name in requires:
            if name not in fields:
                check.problem((*path, "requires"), f"unknown field {name!r}")
        comment = spec.get("comment")
        if comment not in (None, "required", "optional"):
            check.problem((*path, "comment"), f"comment must be 'required' or 'optional', got {comment!r}")
        conditions = _conditions(check, spec.get("when"), (*path, "when"), fields)
        out.append(TransitionSpec(
            trigger=trigger, sources=tuple(str(s) for s in sources), dest=str(dest),
            roles=tuple(str(r) for r in roles), requires=tuple(str(r) for r in requires),
            comment_required=comment == "required", when=conditions, place=i + 1,
        ))
    return out


def _conditions(
    check: Checker, value: Any, path: tuple[Any, ...], fields: Mapping[str, FieldSpec]
) -> tuple[Condition, ...]:
    if value is None:
        return ()
    root = check.mapping(value, path)
    if root is None:
        return ()
    out = []
    for name, tests in root.items():
        where = (*path, name)
        spec = fields.get(name)
        if spec is None:
            check.problem(where, f"condition on unknown field {name!r}")
            continue
        body = check.mapping(tests, where)
        if body is None:
            continue
        for op, operand in body.items():
            if op not in OPERATORS:
                check.problem((*where, op), f"unknown operator {op!r} (operators: {', '.join(OPERATORS)})")
                continue
            if op in ORDERED and spec.type not in ("integer", "decimal", "date"):
                check.problem((*where, op), f"'{op}' compares numbers and dates; '{name}' is {spec.type}")
                continue
            try:
                if op == "present":
                    if not isinstance(operand, bool):
                        raise InvalidValue("present takes true or false")
                    parsed: Any = operand
                elif op == "in":
                    if not isinstance(operand, list):
                        raise InvalidValue("'in' takes a list")
                    parsed = [spec.parse(o) for o in operand]
                else:
                    parsed = spec.parse(operand)
            except InvalidValue as exc:
                check.problem((*where, op), f"bad operand: {exc.message}")
                continue
            out.append(Condition(name, op, parsed))
    return tuple(out)


def _ladder(check: Checker, value: Any, path: tuple[Any, ...]) -> tuple[Rung, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        check.problem(path, "expected a list of rungs")
        return None
    rungs = []
    for i, body in enumerate(value):
        where = (*path, i)
        spec = check.mapping(body, where)
        if spec is None:
            continue
        check.keys(spec, where, RUNG_KEYS, required=("to",))
        if ("before" in spec) == ("after" in spec):
            check.problem(where, "a rung needs exactly one of 'before' or 'after'")
            continue
        direction = "before" if "before" in spec else "after"
        offset = _duration(check, spec[direction], (*where, direction))
        to = spec.get("to")
        if not isinstance(to, str) or not to:
            check.problem((*where, "to"), f"expected a recipient, got {type_name(to)}")
            continue
        if offset is not None:
            rungs.append(Rung(i + 1, offset, direction == "before", to))
    _check_ladder_order(check, rungs, path)
    return tuple(rungs)


_ROUGH_HOURS = {"hours": 1, "working_days": 24, "calendar_days": 24, "weeks": 168}


def _check_ladder_order(check: Checker, rungs: list[Rung], path: tuple[Any, ...]) -> None:
    """Rungs must climb in time: a case remembers only the highest rung fired in a stay, so a
    rung written after a later one would never fire. Units are compared roughly (a working day
    as a day), which orders every ladder a person would write."""
    previous: float | None = None
    for rung in rungs:
        at = _ROUGH_HOURS[rung.offset.unit] * rung.offset.amount * (-1 if rung.before else 1)
        if previous is not None and at < previous:
            check.problem((*path, rung.place - 1), f"rung {rung.place} comes earlier than the rung before it:"
                          " list the rungs in the order they fire")
        previous = at if previous is None else max(previous, at)


def _check_graph(
    check: Checker, initial: str, states: Mapping[str, StateSpec], transitions: list[TransitionSpec]
) -> None:
    if initial not in states:
        return
    edges: dict[str, set[str]] = {s: set() for s in states}
    for t in transitions:
        for s in t.sources:
            if s in edges and t.dest in states:
                edges[s].add(t.dest)
    reached, todo = {initial}, [initial]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    for name, spec in states.items():
        if name not in reached:
            check.problem(("states", name), f"state '{name}' cannot be reached from '{initial}'")
        elif not spec.final and not edges[name]:
            check.problem(("states", name), f"state '{name}' is not final and has no way out")
    # A state may have exits and still never reach an end (a closed loop): that traps cases too.
    ends = {n for n, s in states.items() if s.final}
    can_end = set(ends)
    changed = True
    while changed:
        changed = False
        for name, nexts in edges.items():
            if name not in can_end and nexts & can_end:
                can_end.add(name)
                changed = True
    if ends:
        for name in reached - can_end:
            if edges[name]:
                check.problem(("states", name), f"from state '{name}' no final state can be reached")
    else:
        check.problem(("states",), "a request type needs at least one final state")


def _check_timeouts(
    check: Checker, states: Mapping[str, StateSpec], transitions: list[TransitionSpec]
) -> None:
    for name, spec in states.items():
        if spec.timeout is None:
            continue
        found = [t for t in transitions if name in t.sources and t.trigger == spec.timeout.trigger]
        where = ("states", name, "timeout", "trigger")
        if not found:
            check.problem(where, f"timeout trigger {spec.timeout.trigger!r} is not a transition from '{name}'")
        elif found[0].when or found[0].requires or found[0].comment_required:
            # The sweep fires a timeout as `system`, which can give no data or comment: a
            # timeout that could be refused would leave the case stuck past its deadline.
            check.problem(where, f"timeout trigger {spec.timeout.trigger!r} may not have when, requires"
                                 " or a required comment")


def _check_timeouts_against_ladders(
    check: Checker, states: Mapping[str, StateSpec], ladder: tuple[Rung, ...]
) -> None:
    """A timeout ends the stay, and with it the stay's ladder (SPEC §4.2, §6): a rung of the
    state's own ladder counted from the same deadline to later than the timeout can never fire,
    an authoring mistake. The type's ladder is shared by states with and without timeouts, so
    a short timeout may cut it off in one state on purpose; the sweep stops there. `before`
    rungs come before the deadline, so before any timeout. Units are compared as the service
    norm is (:func:`_approx_days`): a rung at the timeout itself still fires."""
    for name, spec in states.items():
        if spec.timeout is None or spec.deadline is None or spec.paused or spec.final or spec.escalation is None:
            continue  # a timeout without a deadline, or in a paused state, is refused already
        limit = _approx_days(spec.timeout.after)
        for rung in spec.escalation:
            if rung.before or _approx_days(rung.offset) <= limit:
                continue
            check.problem(("states", name, "escalation", rung.place - 1, "after"),
                          f"rung {rung.place} (after {rung.offset}) comes after the state's timeout"
                          f" (after {spec.timeout.after}): the timeout ends the stay first, so"
                          " this rung can never fire")


def _check_against_organisation(
    check: Checker,
    org: Organisation,
    portfolio: str | None,
    states: Mapping[str, StateSpec],
    transitions: list[TransitionSpec],
    ladder: tuple[Rung, ...],
) -> None:
    for name, spec in states.items():
        if spec.owner is not None and spec.owner not in org.units:
            check.problem(("states", name, "owner"), f"unknown unit {spec.owner!r} (not in the organisation)")
    for t in transitions:
        if not all(role in RANKS for role in t.roles):
            continue  # an unknown role is reported where it is written
        for source in t.sources:
            owner = states[source].owner if source in states else None
            if owner is None or owner not in org.units:
                continue
            if not any(org.may(p, owner, t.roles) for p in org.people):
                check.problem(
                    ("transitions", t.place - 1, "roles"),
                    f"nobody in unit '{owner}' holds role {' or '.join(t.roles)}: '{t.trigger}' could never fire",
                )
    if portfolio is not None and org.administrator_for(portfolio) is None:
        check.problem(("portfolio",), f"no administrator holds portfolio '{portfolio}'")
    ladders: list[tuple[tuple[Any, ...], tuple[Rung, ...]]] = [(("escalation",), ladder)]
    ladders += [(("states", n, "escalation"), s.escalation) for n, s in states.items() if s.escalation]
    for path, rungs in ladders:
        for rung in rungs:
            if rung.to in LADDER_TARGETS:
                if rung.to == "administrator" and portfolio is None:
                    check.problem((*path, rung.place - 1, "to"),
                                  "'administrator' needs a portfolio on the request type")
                continue
            if org.recipient(rung.to) is None:
                check.problem(
                    (*path, rung.place - 1, "to"),
                    f"unknown recipient {rung.to!r} (assignee, lead, head, administrator or a person's id)",
                )
