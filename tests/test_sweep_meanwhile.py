"""A civil servant's change and a sweep on the same case at the same moment (PostgreSQL,
where a read does not hold the row): the sweep's escalation is no reason to refuse the
change, nor is a colleague's comment; a colleague's change of what the step rests on is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.app.bundled import sample_paths
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.verify import verify
from engine.errors import Conflict
from engine.store.db import open_engine

STAFF, LEAD = "c.devries", "b.bakker"
START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)  # rungs 1-3 of `ingediend` are due (03-05, 09, 16)


@pytest.fixture
def two(db_url: str) -> Iterator[tuple[Loket, Loket, str]]:
    """Two lokets on one PostgreSQL database (a civil servant's and a worker's), one case."""
    mine = Loket(open_engine(db_url), FixedClock(START))
    org, types = sample_paths()
    mine.load_organisation(org)
    mine.load_request_types(types)
    ref = mine.new_case("bewonersinitiatief", ["title=Straatfeest"], actor=STAFF).ref
    mine.clock = FixedClock(LATE)
    worker = Loket(open_engine(db_url), FixedClock(LATE))
    yield mine, worker, ref
    mine.engine.dispose()
    worker.engine.dispose()


def meanwhile(loket: Loket, monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> list[int]:
    """Run `action` once, after `loket` has read the case for its next change and before it
    writes; returns how often the change read the case."""
    reads: list[int] = []
    original = loket._check_not_earlier

    def hook(case: Any, now: dt.datetime) -> None:
        reads.append(case.version)
        if len(reads) == 1:
            action()
        original(case, now)

    monkeypatch.setattr(loket, "_check_not_earlier", hook)
    return reads


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_escalation_in_between_does_not_refuse_the_change(
    two: tuple[Loket, Loket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, worker, ref = two
    reads = meanwhile(mine, monkeypatch, lambda: sweep(worker))

    moved = mine.advance(ref, "in_behandeling", actor=STAFF)

    assert moved.state == "beoordeling"
    assert len(reads) == 2 and reads[1] == reads[0] + 1  # planned again on the swept row
    actions = [(e["actor"], e["action"]) for e in mine.history(ref)[1]]
    assert actions == [(STAFF, "created"), *[("system", "escalated")] * 3, (STAFF, "transition")]
    assert verify(mine).ok


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_colleagues_comment_in_between_does_not_refuse_the_change(
    two: tuple[Loket, Loket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, worker, ref = two
    colleague = Loket(worker.engine, FixedClock(LATE))
    reads = meanwhile(mine, monkeypatch, lambda: colleague.comment(ref, "Ik bel de bewoner", actor=LEAD))

    assert mine.advance(ref, "in_behandeling", actor=STAFF).state == "beoordeling"

    assert len(reads) == 2
    assert [e["action"] for e in mine.history(ref)[1]] == ["created", "comment", "transition"]
    assert verify(mine).ok


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_colleagues_change_in_between_is_still_a_conflict(
    two: tuple[Loket, Loket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, worker, ref = two
    colleague = Loket(worker.engine, FixedClock(LATE))
    reads = meanwhile(mine, monkeypatch, lambda: colleague.assign(ref, "l.mulder", actor=LEAD))

    with pytest.raises(Conflict, match="changed by someone else meanwhile"):
        mine.advance(ref, "in_behandeling", actor=STAFF)

    assert len(reads) == 1  # the second read saw the assignment and planned nothing
    assert mine.get_case(ref).state == "ingediend"
