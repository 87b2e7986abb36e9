"""The report at the loket's clock, read from its database inside one snapshot.

The cases and their state changes are streamed side by side into the builder, so memory
follows the number of groups, states and stays, never the number of events held at once
(the events of the bestuurlijke dekking — escalations to administrators, their comments and
instructions — are few, and read first, by case).

On PostgreSQL the closed cases are counted by the database (`engine.store.closed`) and only
the open ones streamed (and the dekking's), while the grouped queries run beside the stream
on connections that adopt the report's snapshot (`_Beside`). A closed case's stored form
the database could read otherwise sends the closed cases through the stream after all.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from engine.core.results import REALISED
from engine.core.vocabulary import Action
from engine.errors import InvalidValue, NotFound
from engine.reporting.builder import RECENT, ReportBuilder, with_moves
from engine.reporting.dekking import acting_for
from engine.reporting.figures import (
    FAILED_SHOWN,
    AdminEvent,
    EscalationFact,
    FailedEmail,
    Filters,
    RawMove,
    Report,
)
from engine.store import closed, reports
from engine.store.db import adopt, export_snapshot, snapshot

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from engine.app.service import Loket


def check_filters(loket: Loket, filters: Filters) -> None:
    """Refuse filters that name nothing: an unknown type or unit, a period that is empty."""
    if filters.type_key is not None and filters.type_key not in {rt.key for rt in loket.latest_types()}:
        known = ", ".join(rt.key for rt in loket.latest_types()) or "none loaded"
        raise NotFound(f"unknown request type '{filters.type_key}' (types: {known})")
    units = loket.organisation().units
    if filters.unit is not None and filters.unit not in units:
        raise NotFound(f"unknown unit '{filters.unit}' (units: {', '.join(units) or 'none'})")
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise InvalidValue("--until must be after --since: the period is empty")


def _valued(loket: Loket) -> set[str]:
    """The request types whose closed cases the report needs the field values of while it
    counts: those with an area or measures in some version."""
    out = set()
    for rt in loket.latest_types():
        versions = (loket.request_type(rt.key, v) for v in range(1, loket.latest_version(rt.key) + 1))
        if any(one.area is not None or one.measures for one in versions):
            out.add(rt.key)
    return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, and restored as it was.

    The report makes no reference cycles of its own (rows, tuples and counts, freed as they
    go), yet the collector's full passes, triggered by the allocations, each walk every
    object the interpreter holds (the libraries' included): about 0.015 s of the report's CPU
    at 20,000 cases, to free nothing of the report's. The cycles the libraries leave (about
    1,200 objects of the statements SQLAlchemy builds, per report, none per case) are
    collected once the collector runs again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_Leads = list[tuple[str | None, str | None, bool, int, int | None, int | None]]


@dataclass
class _Closed:
    """What `_prepare_closed`'s queries read of the closed cases on the database."""

    groups: closed.Groups
    leads: _Leads
    edges: list[tuple[str, int, int]]
    realised: list[tuple[int, str, int, str, int, Any]]


def _prepare_closed(loket: Loket, seen: list[tuple[str, int, Any, Any]], period: reports.Period,
                    builder: ReportBuilder
                    ) -> tuple[Callable[[Connection], _Closed | None], Callable[[Connection], _Leads]] | None:
    """Before the cases are streamed: the definitions of the versions `seen`
    (`closed.versions_seen`), looked up in the order of their first cases, and the two queries
    that count the closed ones on the database (`engine.store.closed`: the groupings, and the
    lead times' ranks) with what they need of the builder — or None when no case is closed."""
    builder.plan_versions((key, version) for key, version, _, _ in seen)
    versions = {}
    for key, version, _, _ in seen:
        rt = loket.request_type(key, version)
        versions[(key, version)] = closed.Version(
            area=rt.area, measures=tuple(rt.measures),
            realised=tuple(name for name, spec in rt.states.items() if spec.final and spec.outcome in REALISED))
    firsts = [first for _, _, first, _ in seen if first is not None]
    lasts = [last for _, _, _, last in seen if last is not None]
    if not firsts:
        return None
    offsets = builder.zone_offsets(min(firsts), max(lasts))
    first_day, sums = builder.working_prefix(min(firsts), max(lasts))

    def count(other: Connection) -> _Closed | None:
        """The closed cases counted (None: a stored form asks for them to be streamed)."""
        groups = closed.closed_groups(other, period, versions, offsets, first_day, sums)
        if not groups.exact or not closed.areas_distinct((row[0], row[3]) for row in groups.results):
            return None
        return _Closed(groups, [], closed.edge_rows(other, groups.edges),
                       closed.recent_realised(other, period, versions, RECENT))

    return count, partial(closed.lead_spreads, filters=period, versions=versions)


_TRANSITION = Action.TRANSITION.value


def _begun_from_rows(pairs: Iterator[tuple[Sequence[Any], Sequence[Any]]]
                     ) -> Iterator[tuple[Sequence[Any], Sequence[Any]]]:
    """The cases and their moves as `reports.move_rows` gives them on PostgreSQL: an open case
    that came without moves was not suspended in its stay now (nor is of the bestuurlijke
    dekking), and is given the one move that began that stay, from its row (`case_rows`:
    id, state, closed_at, state_entered_at at 0, 4, 7 and 8)."""
    for case, moves in pairs:
        if not moves and case[7] is None:
            yield case, (RawMove(case[0], case[8], _TRANSITION, None, case[4]),)
        else:
            yield case, moves


def _add_closed(builder: ReportBuilder, found: _Closed) -> None:
    groups = found.groups
    builder.add_closed_results(groups.results, closed.decode_area)
    builder.add_closed_clocks(groups.clocks)
    builder.add_closed_days(groups.received, groups.closed)
    builder.add_closed_spreads(found.leads, groups.working, found.edges, area_of=closed.decode_area)
    builder.add_closed_realised(found.realised)


@dataclass
class _Stays:
    """The report's grouped queries of the ended stays, and the failed emails."""

    stays: tuple[list[tuple[str, str, str | None, int, int]], list[tuple[str, str | None, bool, int]]] | None
    missed: list[tuple[Any, int]]
    failed_count: int
    failed: list[FailedEmail]


def _stays(conn: Connection, period: reports.Period, stored: bool) -> _Stays:
    failed = reports.failed_count(conn), [FailedEmail._make(row) for row in reports.failed_rows(conn, FAILED_SHOWN)]
    if not stored:  # under --unit the stays come from the streamed state changes
        return _Stays(None, [], *failed)
    return _Stays(reports.stay_counts(conn, period), reports.missed_stay_days(conn, period), *failed)


def _escalations(conn: Connection, period: reports.Period,
                 zone_offsets: Callable[[Any, Any], list[tuple[Any, int]]]
                 ) -> tuple[list[tuple[str, str | None, str, int]], list[tuple[int, str, int]]]:
    """The escalations per type, unit and rung, and per local day and rung."""
    span = reports.escalation_span(conn, period)
    return reports.escalation_groups(conn, period, zone_offsets(*span), span)


_T = TypeVar("_T")


class _Beside:
    """Queries run beside the case stream: on PostgreSQL each lane on a connection of its own
    that sees the report's snapshot (`engine.store.db.adopt`), in a thread of its own, so
    that the server groups while the report counts the streamed cases; elsewhere one after the
    other on the report's own connection, when their answer is asked for. A lane opens its
    connection in its own thread, as its first work: the three open at once, while the report
    goes on."""

    LANES = 3

    def __init__(self, conn: Connection, stack: ExitStack, *, wanted: bool = True) -> None:
        self._conn = conn
        self._lanes: list[tuple[Future[Connection], ThreadPoolExecutor]] = []
        if wanted and conn.dialect.name == "postgresql":
            exported = export_snapshot(conn)
            opened: list[Future[Connection]] = []
            stack.callback(_close_lanes, opened)  # after the pools below have finished their work
            for _ in range(self.LANES):
                pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="loket-report"))
                lane = pool.submit(_lane, conn.engine, exported)
                opened.append(lane)
                self._lanes.append((lane, pool))

    @property
    def lanes(self) -> int:
        """How many lanes run beside (none: everything on the report's own connection)."""
        return len(self._lanes)

    def submit(self, work: Callable[[Connection], _T], lane: int = 0) -> Callable[[], _T]:
        """Start `work` (beside, or later); the function returned waits for its answer."""
        if not self._lanes:
            return partial(work, self._conn)
        opened, pool = self._lanes[lane]
        # The lane's connection was opened by the work before this one, in the same thread.
        return pool.submit(lambda: work(opened.result())).result


class _FirstFree(Generic[_T]):
    """One piece of work offered to every lane, after the work each has in hand: the first
    lane to come to it does it, the others pass it by. Without lanes, done when asked for."""

    def __init__(self, beside: _Beside, work: Callable[[Connection], _T]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._taken = False
        self._done: Future[_T] = Future()
        for lane in range(beside.lanes):
            beside.submit(self._take, lane)  # its answer comes by `_done`, its error too
        self._alone = None if beside.lanes else beside.submit(work)

    def _take(self, conn: Connection) -> None:
        with self._lock:
            if self._taken:
                return
            self._taken = True
        try:
            self._done.set_result(self._work(conn))
        except BaseException as exc:  # handed to whoever asks for the answer
            self._done.set_exception(exc)

    def answer(self) -> _T:
        if self._alone is not None:
            return self._alone()
        return self._done.result()


class _Windows:
    """The stays' rank lookups (`ReportBuilder.window_asks`) in a few batches, each one
    statement (`reports.stay_windows`), taken by whichever lane comes free first: every lane
    is asked to take batches until none is left, after the work it has in hand."""

    BATCHES_PER_LANE = 2

    def __init__(self, beside: _Beside, period: reports.Period, asks: list[tuple[dict[str, Any], int, int]]) -> None:
        size = -(-len(asks) // (beside.lanes * self.BATCHES_PER_LANE))
        self._left = deque(enumerate(asks[start:start + size] for start in range(0, len(asks), size)))
        self._found: list[list[list[float]]] = [[] for _ in self._left]
        self._period = period
        self._waits = [beside.submit(self._take, lane) for lane in range(beside.lanes)]

    def _take(self, conn: Connection) -> None:
        while True:
            try:
                place, batch = self._left.popleft()  # atomic: the lanes share the deque
            except IndexError:
                return
            self._found[place] = reports.stay_windows(conn, self._period, batch)

    def answers(self) -> list[list[float]]:
        """Every window, in the order asked."""
        for wait in self._waits:
            wait()
        return [window for batch in self._found for window in batch]


def _lane(engine: Engine, exported: str) -> Connection:
    """A lane's connection: the report's snapshot, and room to group."""
    other = adopt(engine, exported)
    reports.plain_plans(other)
    reports.roomy(other)
    return other


def _close_lanes(opened: list[Future[Connection]]) -> None:
    for lane in opened:
        if lane.done() and lane.exception() is None:
            lane.result().close()


def gather(loket: Loket, filters: Filters | None = None) -> Report:
    """A few queries, two of them streamed side by side; all see the same moment. The ended
    stays are read grouped from `case_stay`; the state changes only of the open cases (their
    stay now) and of those the bestuurlijke dekking counts — except under --unit, which reads
    every case's to tell which the unit held. On PostgreSQL the closed cases are counted on
    the database, and the grouped queries run beside the stream. With the garbage collector
    paused (`_collector_paused`)."""
    with _collector_paused():
        return _gather(loket, filters)


def _gather(loket: Loket, filters: Filters | None) -> Report:
    filters = filters or Filters()
    check_filters(loket, filters)
    now = loket.clock.now()
    org = loket.organisation()
    period = reports.Period(filters.type_key, filters.since, filters.until)
    with snapshot(loket.engine) as conn, ExitStack() as stack:
        reports.plain_plans(conn)
        # Under --unit every case is streamed and little is grouped: no lanes. Opened first, so
        # that their connections are made while the definitions are read.
        beside = _Beside(conn, stack, wanted=filters.unit is None)
        # The request types read on this snapshot: no other connection for them.
        builder = ReportBuilder(
            now=now, org=org, calendar=loket.calendar(), latest=loket.latest_types(conn),
            type_of=loket.request_type, filters=filters,
            stored_stays=filters.unit is None, data_of=partial(reports.case_data, conn),
        )
        stored = builder.stored_stays
        on_db = stored and closed.supported(conn)
        # Three lanes: the stays; the versions the cases hold, then the closed cases; their
        # lead times. The first two asked at once: the server reads them while the dekking's
        # events are read here. Then the escalations, and the stays' ranks in batches, each
        # taken by whichever lane comes free first.
        stays = beside.submit(partial(_stays, period=period, stored=stored))
        seen = beside.submit(partial(closed.versions_seen, filters=period), lane=1) if on_db else None
        acting = acting_for(org)
        admin_events: dict[int, list[AdminEvent]] = {}
        for row in reports.admin_event_rows(conn, org.administrators, acting, period):
            event = AdminEvent._make(row)
            admin_events.setdefault(event.case_id, []).append(event)
        builder.admin_events = admin_events
        admins = (org.administrators, acting)
        count = _prepare_closed(loket, seen(), period, builder) if seen is not None else None
        counted = beside.submit(count[0], lane=1) if count is not None else None
        ranked = beside.submit(count[1], lane=2) if count is not None else None
        # The escalations to whichever lane is through with the above first.
        escalations = (_FirstFree(beside, partial(_escalations, period=period, zone_offsets=builder.zone_offsets))
                       if stored else None)
        builder.closed_grouped = on_db
        # The case rows as plain tuples: the builder makes a `CaseFacts` only of an open case.
        cases = (reports.case_rows(conn, now, period, data_for=(), open_and_dekking=(admin_events.keys(), admins))
                 if on_db else reports.case_rows(conn, now, period, data_for=_valued(loket)))
        # `tuple.__new__` as `_make` calls it, without its frame: this runs per state change.
        moves: Iterator[RawMove] = map(partial(tuple.__new__, RawMove), reports.move_rows(
            conn, period, stored_stays=stored, dekking=admin_events.keys(), admins=admins))
        paired = with_moves(cases, moves)
        builder.add_cases(_begun_from_rows(paired) if stored and reports.stays_now_from_rows(conn) else paired)
        # The ended stays first: their ranks are looked up on the lanes as each comes free
        # (`_Windows`), while the rest is put in.
        rest = stays()
        windows: _Windows | None = None
        if rest.stays is not None:
            builder.add_stored_stays(
                *rest.stays, rest.missed, partial(reports.stay_window, conn, period),
                partial(reports.stay_version, conn))
            asks = builder.window_asks()
            if beside.lanes and asks:
                windows = _Windows(beside, period, asks)
        found = counted() if counted is not None else None
        if found is not None and ranked is not None:
            found.leads = ranked()
            _add_closed(builder, found)
        elif counted is not None:
            # A stored form the database could read otherwise: the closed cases streamed
            # after all, each counted but for the bestuurlijke dekking (done above).
            builder.closed_grouped = False
            builder.admin_events = {}
            builder.add_cases(with_moves(reports.case_rows(conn, now, period, data_for=_valued(loket),
                                                           closed_only=True), ()))
        if escalations is not None:
            builder.add_escalation_counts(*escalations.answer())
        else:  # under --unit, streamed
            for escalation in map(partial(tuple.__new__, EscalationFact), reports.escalation_rows(conn, period)):
                builder.add_escalation(escalation)
        if windows is not None:
            builder.answer_windows(windows.answers())
        failed_count, failed = rest.failed_count, rest.failed
        # Inside the snapshot: the medians of the ended stays are ranks read from it.
        return builder.finish(failed, failed_count)
