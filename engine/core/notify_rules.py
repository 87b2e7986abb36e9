"""Who is told of what happens to a case (SPEC §11.1): the `contact`, `summary` and `notify`
keys of a request type, checked with the rest of the file and indexed once, so that a change
to a case only looks up the events it caused.

The resident who applied hears of the steps the law makes the municipality tell them (Awb
4:3a acknowledgement, 4:14 extension, suspension and resumption, the decision) whenever the
type names their `contact` field, without any rule; a rule `enabled: false` switches one off.
Everything else is told only where a rule asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from engine.core.checking import Checker, type_name
from engine.core.vocabulary import NoticeEvent

if TYPE_CHECKING:
    from engine.core.fields import FieldSpec
    from engine.core.organisation import Organisation

RECIPIENTS = ("requester", "assignee", "unit", "lead", "head", "administrator")
"""The roles a rule may name; anything else in `to` is a person's (or administrator's) id."""
REQUESTER = "requester"
RULE_KEYS = ("on", "to", "enabled")
NAMED_EVENTS = tuple(e for e in NoticeEvent if e not in (NoticeEvent.STATE, NoticeEvent.TRIGGER))
"""The events a rule names by their word; `{state: S}` and `{trigger: T}` name what they match."""
RESIDENT_DEFAULTS = (NoticeEvent.CREATED, NoticeEvent.EXTENDED, NoticeEvent.SUSPENDED, NoticeEvent.RESUMED,
                     NoticeEvent.CLOSED)
"""What the resident is told without a rule, whenever the type names a `contact` field."""

Listening = tuple[NoticeEvent, str | None]
"""An event a rule listens for: the event, and for `{state: S}` / `{trigger: T}` the S or T."""


@dataclass(frozen=True)
class NotifyRule:
    event: NoticeEvent
    target: str | None
    """The state or trigger of `{state: S}` / `{trigger: T}`; None for the other events."""
    to: tuple[str, ...]
    enabled: bool = True


@dataclass(frozen=True)
class Notify:
    """A request type's rules as written, and whom each event reaches once the legal defaults
    are added and the rules switched off are taken out."""

    rules: tuple[NotifyRule, ...] = ()
    listeners: Mapping[Listening, tuple[str, ...]] = field(default_factory=dict)

    def to(self, event: NoticeEvent, target: str | None = None) -> tuple[str, ...]:
        """The recipients (roles and ids) of this event, in the order the rules name them."""
        return self.listeners.get((event, target), ())


def parse_notify(
    check: Checker,
    root: Mapping[str, Any],
    fields: Mapping[str, FieldSpec],
    states: Mapping[str, Any],
    triggers: set[str],
    portfolio: str | None,
    org: Organisation | None,
) -> tuple[str | None, tuple[str, ...], Notify]:
    """The `contact` field, the `summary` fields and the rules of a request type's file (its
    top-level mapping `root`); problems go to `check` with their place."""
    contact = _contact(check, root.get("contact"), fields) if "contact" in root else None
    summary = _summary(check, root.get("summary"), fields) if "summary" in root else ()
    rules: list[NotifyRule] = []
    if "notify" in root:
        # A broken contact is reported once, where it is written, not again by each rule.
        recipient = partial(_check_recipient, check, "contact" in root, portfolio, org)
        rules = _rules(check, root.get("notify"), states, triggers, recipient)
    return contact, summary, _index(rules, with_defaults=contact is not None)


def _index(rules: list[NotifyRule], *, with_defaults: bool) -> Notify:
    """Whom each event reaches: the resident's defaults (`with_defaults`), less those a rule
    switches off, and every enabled rule, each recipient once."""
    listeners: dict[Listening, list[str]] = {}
    if with_defaults:
        off = {rule.event for rule in rules if not rule.enabled and REQUESTER in rule.to and rule.target is None}
        for event in RESIDENT_DEFAULTS:
            if event not in off:
                listeners[(event, None)] = [REQUESTER]
    for rule in rules:
        if not rule.enabled:
            continue
        named = listeners.setdefault((rule.event, rule.target), [])
        for recipient in rule.to:
            if recipient not in named:
                named.append(recipient)
    return Notify(tuple(rules), {key: tuple(value) for key, value in listeners.items() if value})


def _contact(check: Checker, value: Any, fields: Mapping[str, FieldSpec]) -> str | None:
    path = ("contact",)
    if not isinstance(value, str) or value not in fields:
        known = ", ".join(name for name, spec in fields.items() if spec.type == "email") or "none"
        check.problem(path, f"contact must name a field of type email (email fields: {known}), got {value!r}")
        return None
    spec = fields[value]
    if spec.type != "email":
        check.problem(path, f"contact field '{value}' is of type {spec.type}: it must be of type email")
        return None
    if not spec.personal:
        # The resident's address is personal data: unmarked, `case redact` would not erase it
        # from the case, its history or its mail.
        check.problem(path, f"contact field '{value}' holds a resident's address, which is personal data:"
                            " mark the field personal: true")
        return None
    return value


def _summary(check: Checker, value: Any, fields: Mapping[str, FieldSpec]) -> tuple[str, ...]:
    if not isinstance(value, list):
        check.problem(("summary",), f"summary must be a list of fields, got {type_name(value)}")
        return ()
    out: list[str] = []
    for i, name in enumerate(value):
        path = ("summary", i)
        if not isinstance(name, str) or name not in fields:
            check.problem(path, f"unknown field {name!r} (fields: {', '.join(fields) or 'none'})")
        elif fields[name].personal:
            # The summary goes to staff, partners and administrators in every message about
            # the case: it must not carry what a resident gave about themselves.
            check.problem(path, f"field '{name}' is personal: a summary shows only what the case is about,"
                                " never personal data")
        elif name in out:
            check.problem(path, f"field '{name}' is named twice")
        else:
            out.append(name)
    return tuple(out)


def _rules(
    check: Checker, value: Any, states: Mapping[str, Any], triggers: set[str],
    recipient: Callable[[tuple[Any, ...], str], None],
) -> list[NotifyRule]:
    if not isinstance(value, list):
        check.problem(("notify",), f"notify must be a list of rules ({{on: EVENT, to: RECIPIENT}}),"
                                   f" got {type_name(value)}")
        return []
    out = []
    for i, body in enumerate(value):
        path = ("notify", i)
        spec = check.mapping(body, path)
        if spec is None:
            continue
        check.keys(spec, path, RULE_KEYS, required=("on", "to"))
        on = _event(check, spec.get("on"), (*path, "on"), states, triggers)
        to = spec.get("to")
        recipients = [r for r in (to if isinstance(to, list) else [to]) if isinstance(r, str) and r]
        if not recipients or len(recipients) != (len(to) if isinstance(to, list) else 1):
            if to is not None:
                check.problem((*path, "to"), "to must be a recipient or a list of recipients"
                                             f" ({', '.join(RECIPIENTS)} or a person's id)")
            continue
        for j, name in enumerate(recipients):
            recipient((*path, "to", j) if isinstance(to, list) else (*path, "to"), name)
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            check.problem((*path, "enabled"), f"enabled must be true or false, got {type_name(enabled)}")
            continue
        if on is not None:
            out.append(NotifyRule(on[0], on[1], tuple(recipients), enabled))
    return out


def _event(
    check: Checker, value: Any, path: tuple[Any, ...], states: Mapping[str, Any], triggers: set[str]
) -> Listening | None:
    named = ", ".join(NAMED_EVENTS)
    if isinstance(value, str):
        if value in NAMED_EVENTS:
            return NoticeEvent(value), None
        check.problem(path, f"unknown event {value!r} (events: {named}, {{state: S}}, {{trigger: T}})")
        return None
    if not isinstance(value, Mapping) or len(value) != 1:
        if value is not None:
            check.problem(path, f"on must be an event ({named}) or one of {{state: S}}, {{trigger: T}},"
                                f" got {type_name(value)}")
        return None
    (kind, target), = value.items()
    if kind == NoticeEvent.STATE:
        if target not in states:
            check.problem((*path, kind), f"unknown state {target!r}")
            return None
    elif kind == NoticeEvent.TRIGGER:
        if target not in triggers:
            check.problem((*path, kind), f"unknown trigger {target!r}")
            return None
    else:
        check.problem((*path, kind), f"unknown key '{kind}' (allowed: state, trigger)")
        return None
    return NoticeEvent(kind), str(target)


def _check_recipient(
    check: Checker, contact: bool, portfolio: str | None, org: Organisation | None, path: tuple[Any, ...],
    recipient: str,
) -> None:
    """Like a ladder's `to`, a person's id is checked only when the organisation is at hand (a
    stored version is read back without it)."""
    if recipient == REQUESTER:
        if not contact:
            check.problem(path, "'requester' needs the request type to name its contact field (contact: FIELD)")
    elif recipient == "administrator":
        if portfolio is None:
            check.problem(path, "'administrator' needs a portfolio on the request type")
    elif recipient not in RECIPIENTS and org is not None and org.recipient(recipient) is None:
        check.problem(path, f"unknown recipient {recipient!r} ({', '.join(RECIPIENTS)} or a person's id)")
