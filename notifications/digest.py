"""One email per reader per delivery run: the firings of one recipient, gathered (SPEC §11.2).

A sweep that finds a lead's three stalled cases makes three outbox rows; the delivery run that
finds them due sends that lead one message listing the three cases — a *digest* — instead of
three. Each row stays its own: its key, its status and its attempts; the digest's rows are
recorded together, once, when the server answers for the one message (see
:mod:`notifications.delivery`).

Rows go together when they are reminders, escalations or timeouts to the same address in the
same language; a group of one is sent as the single email of its kind. A digest lists at most
:data:`LIMIT` firings: more make another digest, so that a message stays readable (and within
the bounds of a render).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from engine.core.vocabulary import MailKind
from notifications.context import KINDS

#: The kinds that go into a digest.
DIGEST_KINDS: Final = frozenset(KINDS)
#: The most firings one digest lists.
LIMIT: Final = 50
#: The events shown per case in a digest (a single email shows more).
EVENTS: Final = 3

_RANK: Final = {MailKind.ESCALATION: 0, MailKind.TIMEOUT: 1, MailKind.REMINDER: 2}

Row = dict[str, Any]


def recipient_of(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """Whom a row's digest goes to (address and language), or ``None`` for a row that is
    always sent on its own (an event's message, the operators' summary)."""
    if row["kind"] not in DIGEST_KINDS:
        return None
    return row["to_email"], row["language"]


def groups(rows: Sequence[Row], limit: int = LIMIT) -> list[list[Row]]:
    """The rows in messages: each row in exactly one group, groups in the order their first
    row came; a digest's rows sorted by key (so a case's firings stand together), at most
    ``limit`` to a group. With a limit of 1, each row alone, in the order given."""
    if limit <= 1:
        return [[row] for row in rows]
    ordered: dict[Any, list[Row]] = {}
    for index, row in enumerate(rows):
        ordered.setdefault(recipient_of(row) or index, []).append(row)
    found: list[list[Row]] = []
    for key, members in ordered.items():
        if isinstance(key, int):
            found.append(members)
            continue
        members = sorted(members, key=lambda row: row["key"])
        found += [members[first:first + limit] for first in range(0, len(members), limit)]
    return found


def room(rows: Sequence[Row], limit: int = LIMIT) -> dict[tuple[str, str], int]:
    """For each recipient of a digest among ``rows``: how many more rows its last digest could
    take (none when it is full). A delivery run claims those of the recipient's other due rows
    too, so that one run sends one digest per reader rather than one per batch."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        recipient = recipient_of(row)
        if recipient is not None:
            counts[recipient] = counts.get(recipient, 0) + 1
    return {recipient: -count % limit for recipient, count in counts.items() if count % limit}


def message_key(rows: Sequence[Row]) -> str:
    """What a message's Message-ID is derived from: a single row's key, or for a digest all
    its keys, sorted: the same rows always make the same Message-ID."""
    if len(rows) == 1:
        return str(rows[0]["key"])
    keys = "\n".join(sorted(str(row["key"]) for row in rows))
    return f"digest/{hashlib.sha256(keys.encode('utf-8')).hexdigest()}"


def digest_context(rows: Sequence[Row], contexts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The digest's template context from the rows' single contexts (each made as for a single
    email): one entry per case, with every firing about it; a case's own facts (its state, its
    holder, its recent events) as its latest firing found them."""
    cases: dict[str, dict[str, Any]] = {}
    latest: dict[str, int] = {}
    counts = {kind: 0 for kind in KINDS}
    for row, context in zip(rows, contexts, strict=True):
        kind = row["kind"]
        counts[kind] += 1
        ref = context["ref"]
        case = cases.setdefault(ref, {"ref": ref, "firings": []})
        seq = int(row["context"].get("event_seq") or 0)
        if seq >= latest.get(ref, -1):
            latest[ref] = seq
            case.update(
                type_title=context["type_title"], summary=context["summary"], state_label=context["state_label"],
                unit_name=context["unit_name"], assignee_name=context["assignee_name"], command=context["command"],
                events=list(context["events"])[-EVENTS:],
            )
        case["firings"].append({
            "kind": kind,
            "state_label": context["state_label"],
            "due": context["due"],
            "days_overdue": context["days_overdue"],
            "days_left": context.get("days_left"),
            "deadline_passed": context.get("deadline_passed"),
            "rung": context["rung"],
            "rung_label": context["rung_label"],
            "reader": context["reader"],
            "extendable": context.get("extendable", kind == MailKind.ESCALATION),
            "to_state_label": context.get("to_state_label"),
            "to_unit_name": context.get("to_unit_name"),
        })
    for case in cases.values():
        case["firings"].sort(key=lambda firing: _RANK[firing["kind"]])
    ordered = sorted(cases.values(), key=lambda case: (_RANK[case["firings"][0]["kind"]], case["ref"]))
    first = contexts[0]
    return {
        "municipality": first["municipality"],
        "recipient_name": first["recipient_name"],
        "count": len(ordered),
        "escalations": counts[MailKind.ESCALATION],
        "reminders": counts[MailKind.REMINDER],
        "timeouts": counts[MailKind.TIMEOUT],
        "cases": ordered,
    }
