"""Civil servants changing one case at the same moment: what does not collide gets through,
a real conflict is refused (exit 3) with nothing written. SQLite and PostgreSQL.

Each person works in a thread of their own with a Loket and connections of their own, as
separate processes would. On PostgreSQL a read does not hold the row, so the guarded write of
all but one of them misses; to make that certain rather than likely, every thread waits after
planning until all have planned (`overlapping`). SQLite's writers take turns on the write
lock from their read onwards: nobody plans on a row that changes under them, and waiting
there would deadlock, so there they only start together. One test runs the real `loket`
command in six processes, as the drill did.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import ORG_FILE, START, WORKFLOWS

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core import commands, meanwhile
from engine.core.casework import Case
from engine.errors import Conflict, LoketError, TransitionNotAllowed
from engine.store.db import open_engine

PEOPLE = ["c.devries", "l.mulder", "t.visser", "b.bakker", "c.devries", "l.mulder"]  # all in wijkteam


def _loket(url: str) -> Loket:
    loket = Loket(open_engine(url), FixedClock(START))
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    return loket


@pytest.fixture
def case_ref(db_url: str) -> Iterator[str]:
    loket = _loket(db_url)
    yield loket.new_case("bewonersinitiatief", ["title=Straatfeest", "amount=100"], actor="c.devries").ref
    loket.engine.dispose()


def overlapping(monkeypatch: pytest.MonkeyPatch, db_url: str, command: str, parties: int) -> list[int]:
    """On PostgreSQL, hold each thread's first plan of `command` until all `parties` have
    planned on the same row. Returns the list the plans are counted in."""
    plans: list[int] = []
    if not db_url.startswith("postgresql"):
        return plans
    original: Callable[..., Any] = getattr(commands, command)
    everyone = threading.Barrier(parties, timeout=30)
    waited = threading.local()

    def plan(*args: Any, **kwargs: Any) -> Any:
        change = original(*args, **kwargs)
        plans.append(1)
        if not getattr(waited, "done", False):
            waited.done = True
            everyone.wait()
        return change

    monkeypatch.setattr(commands, command, plan)
    return plans


def at_once(url: str, calls: list[Callable[[Loket], Case]]) -> list[Case | LoketError]:
    """Run each call in its own thread on its own Loket, all starting together; the case
    each returned, or the error it raised."""
    lokets = [_loket(url) for _ in calls]
    results: list[Case | LoketError | None] = [None] * len(calls)
    start = threading.Barrier(len(calls), timeout=30)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index](lokets[index])
        except LoketError as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for loket in lokets:
        loket.engine.dispose()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_six_people_commenting_at_once_all_get_through(
    db_url: str, case_ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = overlapping(monkeypatch, db_url, "comment", len(PEOPLE))
    def commenting(text: str, who: str) -> Callable[[Loket], Case]:
        return lambda loket: loket.comment(case_ref, text, actor=who)

    results = at_once(db_url, [commenting(f"Opmerking {i}", who) for i, who in enumerate(PEOPLE)])

    assert all(isinstance(r, Case) for r in results), results
    if plans:
        assert len(plans) > len(PEOPLE)  # the writes did collide, and were planned again
    loket = _loket(db_url)
    case, history = loket.history(case_ref)
    assert sorted(e["comment"] for e in history if e["action"] == "comment") == [
        f"Opmerking {i}" for i in range(len(PEOPLE))]
    assert [e["seq"] for e in history] == list(range(1, len(PEOPLE) + 2)) and case.last_seq == len(PEOPLE) + 1
    assert verify(loket).ok
    loket.engine.dispose()


def test_setting_different_fields_at_once_both_get_through(
    db_url: str, case_ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlapping(monkeypatch, db_url, "set_fields", 2)
    results = at_once(db_url, [
        lambda loket: loket.set_fields(case_ref, ["amount=250"], actor="c.devries"),
        lambda loket: loket.set_fields(case_ref, ["category=straatfeest", "participants=40"], actor="l.mulder"),
    ])

    assert all(isinstance(r, Case) for r in results), results
    loket = _loket(db_url)
    case = loket.get_case(case_ref)
    assert (str(case.data["amount"]), case.data["category"], case.data["participants"]) == ("250", "straatfeest", 40)
    assert verify(loket).ok
    loket.engine.dispose()


def test_setting_the_same_field_at_once_is_a_conflict_where_both_read_the_same_row(
    db_url: str, case_ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = overlapping(monkeypatch, db_url, "set_fields", 2)
    results = at_once(db_url, [
        lambda loket: loket.set_fields(case_ref, ["amount=250", "category=groen"], actor="c.devries"),
        lambda loket: loket.set_fields(case_ref, ["amount=300"], actor="l.mulder"),
    ])

    loket = _loket(db_url)
    case, history = loket.history(case_ref)
    changes = [e["data"] for e in history if e["action"] == "data_changed"]
    if plans:
        # Both planned on amount 100: the one written second would silently undo the first.
        won = [r for r in results if isinstance(r, Case)]
        lost = [r for r in results if not isinstance(r, Case)]
        assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], Conflict), results
        assert lost[0].exit_code == 3
        first_won = isinstance(results[0], Case)
        assert len(changes) == 1 and set(changes[0]) == ({"amount", "category"} if first_won else {"amount"})
        assert str(case.data["amount"]) == ("250" if first_won else "300")
        assert case.version == won[0].version  # nothing of the loser was written
    else:
        # SQLite: the second writer waited for the first and read its amount: no collision.
        assert all(isinstance(r, Case) for r in results), results
        assert len(changes) == 2
    assert verify(loket).ok
    loket.engine.dispose()


def test_advancing_at_once_one_wins(db_url: str, case_ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plans = overlapping(monkeypatch, db_url, "advance", 2)
    def advancing(who: str) -> Callable[[Loket], Case]:
        return lambda loket: loket.advance(case_ref, "in_behandeling", actor=who)

    results = at_once(db_url, [advancing("c.devries"), advancing("l.mulder")])

    won = [r for r in results if isinstance(r, Case)]
    lost = [r for r in results if not isinstance(r, Case)]
    assert len(won) == 1 and len(lost) == 1, results
    # PostgreSQL: both planned on `ingediend`, the state changed under one of them. SQLite:
    # the second read `beoordeling`, where the step is no longer allowed.
    assert isinstance(lost[0], Conflict if plans else TransitionNotAllowed), lost
    loket = _loket(db_url)
    case, history = loket.history(case_ref)
    assert [e["action"] for e in history] == ["created", "transition"] and case.state == "beoordeling"
    assert verify(loket).ok
    loket.engine.dispose()


def _comment_process(url: str, ref: str, who: str, text: str, start: Any, codes: Any) -> None:
    import contextlib
    import io

    import cli

    start.wait()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            cli.main(["--db", url, "--as", who, "case", "comment", ref, text])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    codes.put((code, err.getvalue()))


def test_six_loket_processes_commenting_at_once_all_exit_0(db_url: str, case_ref: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(PEOPLE))
    codes = context.Queue()
    processes = [context.Process(target=_comment_process, args=(db_url, case_ref, who, f"Gebeld {i}", start, codes))
                 for i, who in enumerate(PEOPLE)]
    for process in processes:
        process.start()
    outcomes = [codes.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert outcomes == [(0, "")] * len(PEOPLE)
    loket = _loket(db_url)
    assert len([e for e in loket.history(case_ref)[1] if e["action"] == "comment"]) == len(PEOPLE)
    assert verify(loket).ok
    loket.engine.dispose()


# -- what collides: the pure rule --------------------------------------------------------------


def _case(**changes: Any) -> Case:
    base = Case(id=1, ref="BI-2026-00001", type_key="bewonersinitiatief", type_version=1, state="ingediend",
                owner="wijkteam", assignee=None, data={"title": "Straatfeest", "amount": 100},
                created_at=START, created_by="c.devries", state_entered_at=START, stay=1, state_due=None,
                service_due=None, case_due=None, case_due_limit=None, next_fire_at=None, suspended_at=None,
                suspended_manually=False, closed_at=None, escalation_level=0, service_fired=False,
                lead_fired=False, version=1, last_seq=1, last_hash="0" * 64, salt=None, redacted_at=None,
                last_at=START)
    return base.apply(changes)


def test_what_a_change_touched_and_what_collides_with_it() -> None:
    before = _case()
    commented = _case(version=2, last_seq=2, last_at=START + dt.timedelta(minutes=1))
    assert meanwhile.touched(before, commented, [{"action": "comment", "data": None}]) == frozenset()
    swept = _case(version=2, escalation_level=2, next_fire_at=START)
    assert meanwhile.touched(before, swept, [{"action": "escalated", "data": {"rung": "1"}}]) == frozenset()
    amount = meanwhile.touched(before, _case(data={"title": "Straatfeest", "amount": 200}),
                               [{"action": "data_changed", "data": {"amount": 200}}])
    assert amount == {"data.amount"}
    # A field set and set back shows only in the history.
    assert meanwhile.touched(before, before, [{"action": "data_changed", "data": {"amount": 5}},
                                              {"action": "data_changed", "data": {"amount": 100}}]) == amount
    moved = meanwhile.touched(before, _case(state="beoordeling"), [{"action": "transition", "data": None}])
    assert moved == {"state"}
    assert meanwhile.touched(before, before, [{"action": "something_new", "data": None}]) == {meanwhile.ANY}

    setting = meanwhile.fields_and_state(["category"])
    assert meanwhile.collision(amount, setting) == []
    assert meanwhile.collision(amount, meanwhile.fields_and_state(["amount"])) == ["data.amount"]
    assert meanwhile.collision(moved, setting) == ["state"]
    assert meanwhile.collision(moved | amount, meanwhile.NOTHING) == []
    assert meanwhile.collision(amount, meanwhile.EVERYTHING) == ["data.amount"]
    assert meanwhile.collision(frozenset(), meanwhile.EVERYTHING) == []
