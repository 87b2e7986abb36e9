"""How cases and events look to people and scripts: the JSON shapes of SPEC §10 and tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.casework import Case, allowed_triggers
from engine.core.definition import RequestType
from engine.core.durations import UNITS, Duration
from engine.core.history import timestamp
from engine.core.organisation import Organisation


def iso(value: dt.datetime | None) -> str | None:
    return timestamp(value)


def case_json(
    case: Case, rt: RequestType, org: Organisation, now: dt.datetime, actor: str | None
) -> dict[str, Any]:
    state = rt.states[case.state]
    return {
        "id": case.id,
        "ref": case.ref,
        "type": case.type_key,
        "type_title": rt.title,
        "type_version": case.type_version,
        "state": case.state,
        "state_label": state.label,
        "owner": case.owner,
        "owner_name": org.units[case.owner].name if case.owner is not None and case.owner in org.units else None,
        "assignee": case.assignee,
        "data": dict(case.data),
        "created_at": iso(case.created_at),
        "created_by": case.created_by,
        "state_entered_at": iso(case.state_entered_at),
        "due": iso(case.state_due),
        "service_due": iso(case.service_due),
        "case_due": iso(case.case_due),
        "overdue": is_overdue(case, now),
        "suspended": case.suspended_at is not None,
        "closed_at": iso(case.closed_at),
        "escalation_level": case.escalation_level,
        "triggers": allowed_triggers(rt, org, case, actor) if actor in org.people else [],
        "redacted": case.redacted_at is not None,
    }


def is_overdue(case: Case, now: dt.datetime) -> bool:
    return (
        case.closed_at is None
        and case.suspended_at is None
        and case.state_due is not None
        and case.state_due < now
    )


def event_json(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": event["seq"],
        "at": iso(event["at"]),
        "recorded_at": iso(event["recorded_at"]),
        "actor": event["actor"],
        "action": event["action"],
        "from_state": event["from_state"],
        "to_state": event["to_state"],
        "trigger": event["trigger"],
        "comment": event["comment"],
        "data": event["data"],
        "digests": event["digests"],
        "prev_hash": event["prev_hash"],
        "hash": event["hash"],
    }


def recent_json(events: Iterable[Mapping[str, Any]], rt: RequestType, language: str) -> list[dict[str, Any]]:
    """A case's latest events as `case show` lists them: what happened, by whom, with what
    comment, in a line each (`summary`); personal values are named, not shown."""
    labels = {name: state.label for name, state in rt.states.items()}
    return [{
        "seq": event["seq"], "at": iso(event["at"]), "actor": event["actor"], "action": event["action"],
        "from_state": event["from_state"], "to_state": event["to_state"], "trigger": event["trigger"],
        "comment": event["comment"],
        "summary": event_detail(event, labels=labels, hide=rt.personal_fields(), language=language),
    } for event in events]


def formatted(value: dt.date, pattern: str) -> str:
    """`value.strftime(pattern)` with the year always in four digits (0001-01-02): the C
    library behind strftime writes year 1 as `1`, where isoformat writes `0001`."""
    return value.strftime(pattern.replace("%Y", f"{value.year:04d}"))


def local(value: dt.datetime | None, timezone: str) -> str:
    if value is None:
        return "-"
    return formatted(value.astimezone(ZoneInfo(timezone)), "%Y-%m-%d %H:%M")


# Control characters (C0, DEL, C1) as visible escapes: `\x1b` stays four characters.
_VISIBLE = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_VISIBLE.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


def visible(value: Any) -> str:
    """A value as text a terminal shows as it is: what a resident or colleague typed may hold
    escape sequences (which would retitle or clear the terminal) or line breaks (which would
    break a table's rows); they are shown escaped. JSON output keeps the value itself."""
    return str(value).translate(_VISIBLE)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned table for terminals; the last column may run long."""
    body = [["-" if v is None else visible(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def event_detail(
    event: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    hide: frozenset[str] = frozenset(),
    language: str = "en",
) -> str:
    """What an event did beyond its action, in no particular language: states, people, fields.

    `labels` turns state names into their labels; terms are written in `language`; fields in
    `hide` (personal data) are named without their value, so an email never repeats what a
    resident entered about themselves.
    """
    action = event["action"]
    data = event.get("data") or {}

    def label(state: Any) -> str:
        return (labels or {}).get(state, state) if state is not None else "-"

    if action == "created":
        text = label(event["to_state"])
    elif action == "transition":
        text = f"{event['trigger']}: {label(event['from_state'])} → {label(event['to_state'])}"
    elif action == "assigned":
        text = str(data.get("assignee")) if data.get("assignee") else f"- (released: {data.get('released', '-')})"
    elif action == "data_changed":
        # A change of personal fields only, erased since by a redaction, keeps no values at all.
        text = ", ".join(k if k in hide else f"{k}={_short(v)}" for k, v in data.items()) or "(erased)"
    elif action == "escalated":
        text = f"{data.get('rung')} → {data.get('to')}"
    elif action == "extended":
        by = str(data.get("by"))
        if data.get("unit") in UNITS and isinstance(data.get("amount"), int):
            by = Duration(str(data["unit"]), int(data["amount"])).label(language)
        text = f"+{by}" + (f": {data['reason']}" if data.get("reason") else "")
    elif action == "suspended":
        text = str(data.get("reason") or "")
    elif action == "migrated":
        text = f"v{data.get('from_version')} → v{data.get('to_version')}"
        if event["from_state"] != event["to_state"]:
            text += f": {label(event['from_state'])} → {label(event['to_state'])}"
    elif action == "redacted":
        text = ", ".join(data.get("fields", []))
    elif action == "directed":
        text = f"within {data.get('within')}: {data.get('text')}"
    else:
        text = ""
    if event.get("comment"):
        text = f"{text} — {event['comment']}" if text else str(event["comment"])
    if data.get("on_behalf_of"):
        text = f"{text} (for {data['on_behalf_of']})"
    return text


def _short(value: Any, width: int = 40) -> str:
    text = str(value) if value is not None else "∅"
    return text if len(text) <= width else text[: width - 1] + "…"
