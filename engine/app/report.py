"""The report at the loket's clock, read from its database inside one snapshot.

The cases and their state changes are streamed side by side into the builder, so memory
follows the number of groups, states and stays, never the number of events held at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.reporting.builder import ReportBuilder, with_moves
from engine.reporting.figures import FAILED_SHOWN, CaseFacts, EscalationFact, FailedEmail, Move, Report
from engine.store import reports
from engine.store.db import snapshot

if TYPE_CHECKING:
    from engine.app.service import Loket


def gather(loket: Loket) -> Report:
    """Five queries, two of them streamed side by side; all see the same moment."""
    now = loket.clock.now()
    builder = ReportBuilder(
        now=now, org=loket.organisation(), calendar=loket.calendar(), latest=loket.latest_types(),
        type_of=loket.request_type,
    )
    with snapshot(loket.engine) as conn:
        cases = map(CaseFacts._make, reports.case_rows(conn, now))
        moves = map(Move._make, reports.move_rows(conn))
        for case, own in with_moves(cases, moves):
            builder.add_case(case, own)
        for escalation in map(EscalationFact._make, reports.escalation_rows(conn)):
            builder.add_escalation(escalation)
        failed_count = reports.failed_count(conn)
        failed = [FailedEmail._make(row) for row in reports.failed_rows(conn, FAILED_SHOWN)]
    return builder.finish(failed, failed_count)
