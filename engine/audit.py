"""Checking the history: recompute every chain and name the first event that does not match.

Events are streamed in (case, seq) order, so memory stays flat however long the history is.
Each case's chain must start at the genesis hash, run without gaps, hash to what each row
says, and end where the case row says its head is — which catches an edited, inserted or
deleted event, a deleted tail, and a case row whose state moved without its event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.history import GENESIS, chain_hash, event_content, personal_digest
from engine.schema import cases_t, events_t

if TYPE_CHECKING:
    from engine.service import Loket


@dataclass
class VerifyResult:
    cases: int = 0
    events: int = 0
    failure: str | None = None
    ref: str | None = None
    seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "cases": self.cases, "events": self.events, "failure": self.failure,
                "ref": self.ref, "seq": self.seq}


def _events(conn: sa.Connection) -> Iterator[Any]:
    query = (
        sa.select(events_t, cases_t.c.ref, cases_t.c.salt)
        .join(cases_t, cases_t.c.id == events_t.c.case_id)
        .order_by(events_t.c.case_id, events_t.c.seq)
    )
    yield from conn.execution_options(yield_per=5000, stream_results=True).execute(query).mappings()


def verify(loket: Loket) -> VerifyResult:
    result = VerifyResult()
    with loket.read() as conn:
        heads = {
            row.id: row
            for row in conn.execute(
                sa.select(cases_t.c.id, cases_t.c.ref, cases_t.c.last_seq, cases_t.c.last_hash,
                          cases_t.c.state)
            )
        }
        result.cases = len(heads)
        seen: set[int] = set()
        current, prev, expected_seq, last_state = None, GENESIS, 1, None

        def close(case_id: int | None) -> str | None:
            if case_id is None:
                return None
            head = heads[case_id]
            if head.last_seq != expected_seq - 1 or head.last_hash != prev:
                return (f"{head.ref}: the case row says its history ends at event {head.last_seq}, "
                        f"but the chain ends at event {expected_seq - 1}: events were deleted or added")
            if last_state is not None and head.state != last_state:
                return (f"{head.ref}: the case is in state '{head.state}' but its history ends in "
                        f"'{last_state}'")
            return None

        for ev in _events(conn):
            if ev["case_id"] != current:
                problem = close(current)
                if problem:
                    return _fail(result, problem, heads[current].ref, expected_seq - 1)
                current, prev, expected_seq, last_state = ev["case_id"], GENESIS, 1, None
                seen.add(current)
            result.events += 1
            ref, seq = ev["ref"], ev["seq"]
            if seq != expected_seq:
                return _fail(result, f"{ref} event {expected_seq}: missing (next stored is {seq})", ref, expected_seq)
            if ev["prev_hash"] != prev:
                return _fail(result, f"{ref} event {seq}: its link to event {seq - 1} is broken", ref, seq)
            digests = ev["digests"] or {}
            data = ev["data"] or {}
            if ev["salt"]:
                for name, digest in digests.items():
                    if name in data and personal_digest(ev["salt"], name, data[name]) != digest:
                        return _fail(result, f"{ref} event {seq}: personal field '{name}' was altered", ref, seq)
            content = event_content(
                ref=ref, seq=seq, at=ev["at"], recorded_at=ev["recorded_at"], actor=ev["actor"],
                action=ev["action"], from_state=ev["from_state"], to_state=ev["to_state"],
                trigger=ev["trigger"], comment=ev["comment"], data=data, digests=digests,
            )
            if chain_hash(content, prev) != ev["hash"]:
                return _fail(result, f"{ref} event {seq}: its content does not match its hash (edited)", ref, seq)
            prev = ev["hash"]
            if ev["to_state"] is not None:
                last_state = ev["to_state"]
            expected_seq += 1
        problem = close(current)
        if problem and current is not None:
            return _fail(result, problem, heads[current].ref, expected_seq - 1)
        for case_id, head in heads.items():
            if case_id not in seen and head.last_seq != 0:
                return _fail(result, f"{head.ref}: its whole history is missing", head.ref, None)
    return result


def _fail(result: VerifyResult, message: str, ref: str | None, seq: int | None) -> VerifyResult:
    result.failure, result.ref, result.seq = message, ref, seq
    return result
