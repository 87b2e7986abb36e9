"""`loket db repair-stays`: rebuild the `case_stay` rows (`engine.store.stays`) of the cases
whose stored rows are not what their history gives, and count `stay_tally` again from the rows
when it does not agree with them.

The rows are derived data: `audit verify` recomputes each from the history and names the
first that differs. The repair recomputes them the same way and, per case that differs,
deletes its rows and inserts the ones its history gives — in one transaction per batch of
cases, with an event in the configuration history saying how many cases and rows it
rewrote. The history itself is never touched, and a case whose rows hold is not written.

Two passes, so that a million cases need no more memory than the ids of the damaged ones:
the first streams the expected and the stored rows side by side in one snapshot and keeps
the ids of the cases that differ; the second takes them a batch at a time, locks their case
rows (a transition of one of them waits, or is waited for), and compares and rewrites them
again from what is committed by then.

The rows are only as good as the history they come from: before anything is written (and
with `--check` too), the histories of the cases found are checked as `audit verify` checks
them. One that does not hold (an event edited, missing or out of its chain) refuses the
repair (`HistoryDamaged`, exit 1), naming it: rows rebuilt from a damaged history would look
sound and hide the damage from the report.

Who: an operator (when the organisation names operators); on PostgreSQL also a login that
is, or may act as, the tables' owner role: `loket_users` may only read and add to
`case_stay`, never delete from it (`engine.store.grants`). `--check` only reads.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engine.core.confighistory import STAYS_REPAIRED
from engine.core.identity import Identity
from engine.errors import HistoryDamaged
from engine.store import grants as store_grants
from engine.store import stays as stored_stays
from engine.store.db import snapshot

if TYPE_CHECKING:
    from engine.app.service import Loket

COMMAND = "db repair-stays"
CHUNK = 2000
"""Cases repaired per transaction (and per configuration event)."""
SHOWN = 20
"""How many of the cases repaired (or found) are named by reference."""


@dataclass
class StayRepair:
    check: bool
    cases: int = 0
    """The cases whose stored rows differed from their history (repaired unless `check`)."""
    removed: int = 0
    """The rows deleted (with `check`: that would be)."""
    written: int = 0
    """The rows inserted from the history (with `check`: that would be)."""
    refs: list[str] = field(default_factory=list)
    """The references of the first `SHOWN` of those cases."""
    events: list[int] = field(default_factory=list)
    """The configuration events that record the repair (one per transaction)."""
    tally: bool = False
    """Whether the counts of the ended stays (`stay_tally`) differed from the rows (counted
    again from them unless `check`)."""

    @property
    def found(self) -> bool:
        return bool(self.cases or self.tally)

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "cases": self.cases, "removed": self.removed, "written": self.written,
                "refs": self.refs, "tally": self.tally, "config_events": self.events}


def stays_to_repair(loket: Loket) -> StayRepair:
    """The cases whose stored stay rows differ from their history, changing nothing; refused
    (`HistoryDamaged`) when the history of one of them does not hold."""
    result = StayRepair(check=True)
    found = array("q")
    with snapshot(loket.engine) as conn:
        for case_id, want, have in stored_stays.side_by_side(conn, loket.calendar(), loket.request_type):
            _count(result, conn, case_id, len(have), len(want))
            found.append(case_id)
        _refuse_damaged(loket, conn, found)
        result.tally = stored_stays.tally_drift(conn) is not None
    return result


def repair_stays(loket: Loket, by: Identity) -> StayRepair:
    """Rewrite the stay rows of every case whose rows differ from its history."""
    loket.require_operator(by, COMMAND)
    role = _owner_role(loket)
    found = array("q")
    with snapshot(loket.engine) as conn:
        for case_id, _want, _have in stored_stays.side_by_side(conn, loket.calendar(), loket.request_type):
            found.append(case_id)
        _refuse_damaged(loket, conn, found)
    result = StayRepair(check=False)
    for start in range(0, len(found), CHUNK):
        _repair(loket, by, result, found[start:start + CHUNK].tolist(), role)
    _recount(loket, by, result, role)
    return result


def _act_as(conn: sa.Connection, role: str | None) -> None:
    if role is not None:
        # A member of the owner role that does not inherit its privileges acts as it for
        # this transaction, as `db grants --apply` does.
        conn.execute(sa.text("SELECT set_config('role', :owner, true)"), {"owner": role})


def _recount(loket: Loket, by: Identity, result: StayRepair, role: str | None) -> None:
    """Count `stay_tally` again from the (repaired) rows when the two differ, with an event.
    Compared in one snapshot (so that a transition meanwhile does not look like a difference),
    counted again under `rebuild_tally`'s lock."""
    with snapshot(loket.engine) as conn:
        if stored_stays.tally_drift(conn) is None:
            return
    with loket.engine.begin() as conn:
        _act_as(conn, role)
        stored_stays.rebuild_tally(conn)
        result.tally = True
        result.events.append(loket.record_config(conn, by, STAYS_REPAIRED, {
            "cases": 0, "removed": 0, "written": 0, "refs": [], "tally": True}))


def _repair(loket: Loket, by: Identity, result: StayRepair, ids: Sequence[int], role: str | None) -> None:
    """Compare the cases `ids` again under their locks, and rewrite those that still differ,
    with one configuration event: in one transaction."""
    here = StayRepair(check=False)
    with loket.engine.begin() as conn:
        _act_as(conn, role)
        stored_stays.lock_cases(conn, ids)
        _refuse_damaged(loket, conn, ids)  # again, under the locks: as committed now
        # Read the batch whole before writing: no statement reads case_stay while it changes.
        differ = list(stored_stays.side_by_side(conn, loket.calendar(), loket.request_type, ids))
        for case_id, want, _have in differ:
            _count(here, conn, case_id, stored_stays.rewrite(conn, case_id, want), len(want))
        if here.cases:
            here.events.append(loket.record_config(conn, by, STAYS_REPAIRED, {
                "cases": here.cases, "removed": here.removed, "written": here.written, "refs": here.refs}))
    result.cases += here.cases
    result.removed += here.removed
    result.written += here.written
    result.refs += here.refs[:SHOWN - len(result.refs)]
    result.events += here.events


def _refuse_damaged(loket: Loket, conn: sa.Connection, ids: Sequence[int]) -> None:
    """Refuse (`HistoryDamaged`, exit 1) when the history of one of the cases `ids` does not
    hold, checked a batch at a time in the snapshot `conn`."""
    from engine.app.verify import chain_damage

    for start in range(0, len(ids), CHUNK):
        damage = chain_damage(loket, conn, ids[start:start + CHUNK])
        if damage is not None:
            raise HistoryDamaged(f"{damage}: the stay rows are worked out from the history, and are not rebuilt"
                                 " from one that does not hold; 'loket audit verify' checks the whole database")


def _count(result: StayRepair, conn: sa.Connection, case_id: int, removed: int, written: int) -> None:
    result.cases += 1
    result.removed += removed
    result.written += written
    if len(result.refs) < SHOWN:
        result.refs.append(stored_stays.ref_of(conn, case_id) or f"case id {case_id}")


def _owner_role(loket: Loket) -> str | None:
    """On PostgreSQL, refuse (exit 1) a login that may not act as the tables' owner role, the
    one role that may delete from `case_stay`; the role to act as for a member of it that is
    neither the owner itself nor a superuser (None: act as the login)."""
    from engine.app.grants import require_owner

    require_owner(loket, f"{COMMAND} (it deletes rows of case_stay, which people's logins may only add to)")
    if loket.engine.dialect.name != "postgresql":
        return None
    with loket.read() as conn:
        inst = store_grants.installation(conn)
        if inst is None:
            return None
        who = store_grants.login_roles(conn, inst.owner)
    return None if who["user"] == inst.owner or who["superuser"] else inst.owner
