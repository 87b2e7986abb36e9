"""`loket audit export`: the events as CSV or JSON Lines, each with the unit that held its case.

The events are streamed per case in order, so memory stays flat at millions of events. A
stored row that cannot be read back stops the export, named: the quick read decodes as
usual, and only when it fails is the history read again value by value (`engine.store.raw`)
to find the first damaged row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core.history import timestamp
from engine.core.pseudonyms import Pseudonyms
from engine.errors import HistoryDamaged, InvalidValue, LoketError, NotFound
from engine.store import audit as store
from engine.store.raw import Unreadable

if TYPE_CHECKING:
    from engine.app.service import Loket


EXPORT_COLUMNS = ("ref", "type", "unit", "seq", "at", "recorded_at", "actor", "action", "from_state",
                  "to_state", "trigger", "comment", "data", "prev_hash", "hash")


def export(
    loket: Loket,
    write: Callable[[str], Any],
    *,
    fmt: str = "jsonl",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    type_key: str | None = None,
    unit: str | None = None,
    pseudonymise: bool = False,
) -> int:
    """Stream events as CSV or JSON Lines; returns how many were written.

    The unit of an event is the owner of the state the case was in when it happened, so the
    events are read per case in order (streamed: memory stays flat at millions of events).
    A stored row that cannot be read back stops the export with HistoryDamaged, naming it;
    what was written before it stays written (the CLI writes to a file it renames at the end).
    With ``pseudonymise``, people, personal values and free texts are replaced by pseudonyms
    of this export only (`engine.core.pseudonyms`).
    """
    import csv
    import io

    if fmt not in ("csv", "jsonl"):
        raise InvalidValue(f"unknown export format {fmt!r} (csv or jsonl)")
    if type_key is not None:
        loket.latest_version(type_key)
    if unit is not None and unit not in loket.organisation().units:
        raise NotFound(f"unknown unit '{unit}'")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(EXPORT_COLUMNS)
        write(buffer.getvalue())
    count = 0
    current, state = None, None
    pseudonyms = Pseudonyms() if pseudonymise else None
    try:
        with loket.read() as conn:
            for ev in store.export_events(conn, type_key=type_key, until=until):
                data, digests = ev["data"], ev["digests"]
                if (data is not None and type(data) is not dict) or (digests is not None and type(digests) is not dict):
                    raise Unreadable("data or digests is not an object")  # the careful read below names it
                if ev["case_id"] != current:
                    current, state = ev["case_id"], None
                rt = loket.request_type(ev["type_key"], ev["type_version"])
                at_state = ev["from_state"] or ev["to_state"] or state
                if ev["to_state"] is not None:
                    state = ev["to_state"]
                owner = rt.states[at_state].owner if at_state is not None and at_state in rt.states else None
                if unit is not None and owner != unit:
                    continue
                if since is not None and ev["at"] < since:
                    continue
                row = {"ref": ev["ref"], "type": ev["type_key"], "unit": owner, "seq": ev["seq"],
                       "at": timestamp(ev["at"]), "recorded_at": timestamp(ev["recorded_at"]),
                       "actor": ev["actor"], "action": ev["action"], "from_state": ev["from_state"],
                       "to_state": ev["to_state"], "trigger": ev["trigger"], "comment": ev["comment"],
                       "data": data, "prev_hash": ev["prev_hash"], "hash": ev["hash"]}
                if pseudonyms is not None:
                    row = pseudonyms.event(row, rt.fields)
                if fmt == "jsonl":
                    write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                else:
                    buffer.seek(0)
                    buffer.truncate()
                    writer.writerow([json.dumps(row["data"], ensure_ascii=False) if k == "data" and row[k] is not None
                                     else row[k] for k in EXPORT_COLUMNS])
                    write(buffer.getvalue())
                count += 1
    except (LoketError, OSError):
        raise
    except Exception:
        # Most likely a stored value that does not decode: find the first one, value by value.
        with loket.read() as conn:
            where = _first_damaged(conn, type_key=type_key, until=until)
        if where is None:
            raise
        raise HistoryDamaged(f"the stored history is damaged at {where}; the export stopped there "
                             "(run 'loket audit verify' to check every chain)") from None
    return count


def _first_damaged(conn: sa.Connection, *, type_key: str | None, until: dt.datetime | None) -> str | None:
    """Where the first event (in export order) that does not read back well is, and what is wrong."""
    for row_id, ev, damage, case, case_damage in store.careful_export_events(conn, type_key=type_key, until=until):
        if damage is None and case_damage is None:
            continue
        name = case["ref"] if type(case["ref"]) is str else f"case id {ev['case_id']}"
        if case_damage is not None:
            return f"{name} (its case row: {case_damage})"
        if type(ev["seq"]) is int:
            return f"{name} event {ev['seq']} ({damage})"
        return f"{name}, event row {row_id} ({damage})"
    return None
