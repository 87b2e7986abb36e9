"""The sweep's groups (issue 16): cases that agree on everything a firing reads share its work,
and write exactly what firing each case on its own writes.

A grouped sweep over a varied set of cases — reminders and escalations on several ladders and
deadlines, vacancies, personal data by digest, unicode in the summaries, missed instructions,
service-norm and lead-time breaches (the latter to the responsible unit's head too), timeouts
whose step is a transition — is compared, at several moments, with a reference made case by
case by the general path (`_fire_case`) on the same rows just before: the same events (hash
chains included), escalation rows, outbox rows (and so the same emails, which are rendered
from them and the events), case rows and report. On SQLite and PostgreSQL.

The canonical JSON of a group's events is made from a template: it is compared byte for byte
with the generic encoder over varied contents.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.app import sweep as sweeping
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import SweepResult, sweep
from engine.app.verify import verify
from engine.core import history
from engine.core.casework import CASE_FIELDS, Case
from engine.core.durations import parse_term
from engine.core.history import ContentTemplate, canonical, chain_hash, event_content, timestamp
from engine.store.sweeps import due_cases
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t

STAFF, WIJK_STAFF, ALDERMAN = "c.devries", "l.mulder", "wethouder.wijken"
TUESDAY = dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC)
MOMENTS = [
    dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC),  # the meldingen's rungs
    dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC),  # `ingediend` overdue, the instructions missed
    dt.datetime(2026, 3, 23, 12, 0, tzinfo=dt.UTC),  # heads, partners' ladders
    dt.datetime(2026, 5, 11, 12, 0, tzinfo=dt.UTC),  # service norms, lead times, timeouts
]
ROOT = Path(__file__).resolve().parent.parent
RECORDED = dt.datetime(2026, 5, 11, 13, 14, 15, 161718, tzinfo=dt.UTC)


# -- canonical JSON from a template ---------------------------------------------------------------

TEXTS = ["", "BI-2026-00001", "Ærøweg 1 — “hoek” 🚲", "中文", 'quote " and \\ backslash', "\x00\x1f\x7f",
         "line\nbreak\ttab", "\u2028\u2029", "</script>", "é" * 300]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("seq", [0, 1, 42, 10**20])
def test_a_content_template_writes_the_bytes_of_the_canonical_encoder(text: str, seq: int) -> None:
    at = dt.datetime(2026, 3, 5, 9, 0, 0, 1, tzinfo=dt.UTC)
    for data in ({"rung": "2", "kind": "escalation", "to": text, "asked": "lead", "due_at": text},
                 {"n": 1.5, "big": 10**30, "no": None, "yes": True, "list": [1, "ü", {"z": 0, "a": text}], text: text},
                 None):
        content = event_content(ref=text, seq=seq, at=at, recorded_at=RECORDED, actor="system",
                                action="escalated", from_state=text or None, to_state=None, trigger=None,
                                comment=text, data=data, digests=None)
        # Made on another case's content: only "case", "seq" and "recorded_at" are the case's own.
        template = ContentTemplate({**content, "case": "other", "seq": 7, "recorded_at": "2000-01-01T00:00:00Z"})
        recorded = timestamp(RECORDED) or ""
        assert template.text(text, seq, recorded).encode() == canonical(content)
        prev = "f" * 64
        assert template.chain_hash(text, seq, recorded, prev) == chain_hash(content, prev)


def test_a_content_template_needs_a_case_a_number_and_a_time_of_recording() -> None:
    with pytest.raises(ValueError, match="'case', 'recorded_at' and 'seq'"):
        ContentTemplate({"case": "X", "seq": 1})


# -- a grouped sweep writes what the case-by-case path writes -------------------------------------


def _open_cases(loket: Loket, clock: FixedClock) -> None:
    """Cases in several types, states, deadlines and clocks; most of them in threes, so that
    the sweep finds groups, some alone."""
    for n in range(3):
        loket.new_case("melding", [f"omschrijving=Paal {n}", "locatie=Ærøweg 1 — “hoek” 🚲",
                                   "categorie=verlichting", "melder_naam=Jan de Vries"], actor=STAFF)
    for n in range(2):
        loket.new_case("melding", [f"omschrijving=Put {n}", "locatie=Lindelaan 中文"], actor=STAFF,
                       assign=WIJK_STAFF)
    submitted = [loket.new_case("bewonersinitiatief", [f"title=Straatfeest {n}", "amount=750", "name=Els Kok"],
                                actor=STAFF).ref for n in range(3)]
    for ref in submitted[:2]:
        loket.direct(ref, parse_term("5wd"), "Binnen een week beoordelen", actor=ALDERMAN)
    for n in range(3):
        ref = loket.new_case("bewonersinitiatief", [f"title=Speeltuin {n}", "category=spelen"], actor=STAFF,
                             assign=STAFF).ref
        loket.advance(ref, "in_behandeling", actor=STAFF)
    for n in range(2):
        ref = loket.new_case("bewonersinitiatief", [f"title=Bankje {n}", "amount=300"], actor=STAFF).ref
        loket.advance(ref, "in_behandeling", actor=STAFF)
        loket.advance(ref, "vraag_bijdrage", actor=STAFF)  # to Openbare Ruimte, with a timeout
    for n in range(2):
        ref = loket.new_case("bijdrage", [f"title=Buurtpreventie {n}"], actor=STAFF).ref
        loket.advance(ref, "in_behandeling", actor=STAFF)
        loket.advance(ref, "vraag_politie", actor=STAFF, assignments=["requested=Extra surveillance"])
    clock.set(TUESDAY)  # another day, other deadlines
    for n in range(3):
        loket.new_case("bewonersinitiatief", [f"title=Moestuin {n}"], actor=STAFF)
    loket.new_case("melding", ["omschrijving=Losse tegel", "locatie=Dorpsstraat"], actor=STAFF)


def _rows(loket: Loket, table: sa.Table, after: int, columns: list[str]) -> list[dict[str, Any]]:
    with loket.read() as conn:
        query = sa.select(*(table.c[name] for name in columns)).where(table.c.id > after)
        return [dict(row) for row in conn.execute(query).mappings()]


def _last_ids(loket: Loket) -> dict[sa.Table, int]:
    with loket.read() as conn:
        return {table: conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
                for table in (events_t, escalations_t, outbox_t)}


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As read back: JSON values through JSON (enum members become their text)."""
    return [{name: json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value
             for name, value in row.items()} for row in rows]


def _spy_on_plans(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """(plan, report) of each firing of a case that its group's plan fired (not the group's
    first case, which the general path fires and the plan is checked against)."""
    out: list[tuple[Any, dict[str, Any]]] = []
    first: set[int] = set()
    general, fire = sweeping._Firer._general, sweeping._Plan.fire

    def first_of_group(firer: sweeping._Firer, writes: sweeping._Writes, case: Any) -> Any:
        first.add(case.id)
        return general(firer, writes, case)

    def firing(plan: sweeping._Plan, writes: sweeping._Writes, case: Any, fired: list[dict[str, Any]],
               *args: Any) -> None:
        count = len(fired)
        fire(plan, writes, case, fired, *args)
        if case.id not in first:
            out.extend((plan, report) for report in fired[count:])

    monkeypatch.setattr(sweeping._Firer, "_general", first_of_group)
    monkeypatch.setattr(sweeping._Plan, "fire", firing)
    return out


def test_a_grouped_sweep_writes_exactly_what_firing_case_by_case_writes(
    loket: Loket, clock: FixedClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _open_cases(loket, clock)
    # The time of recording and the salts of free text (a timeout's comment) are the only
    # things not given by the rows and `now`: fixed, so that the reference can be compared.
    monkeypatch.setattr(sweeping, "_recorded", lambda: RECORDED)
    monkeypatch.setattr(history, "new_salt", lambda: "5a" * 16)
    general = sweeping._fire_case
    by_plan = _spy_on_plans(monkeypatch)  # what cases fired by their group's plan fired
    grouped_total = 0
    rungs: set[Any] = set()
    reached: set[tuple[Any, Any]] = set()
    everything: set[Any] = set()
    for moment in MOMENTS:
        clock.set(moment)
        # The reference: every due case fired on its own by the general path, nothing written.
        expected, reference = sweeping._Writes(), SweepResult()
        with loket.read() as conn:
            due = list(due_cases(conn, moment))
            for case in due:
                general(loket, loket.calendar(), expected, case, moment, reference, RECORDED)
        assert reference.fired, moment
        before = _last_ids(loket)
        # A dry run (the forecast's) and the sweep, both by groups; batches of 4 split groups.
        predicted = sweep(loket, moment, dry_run=True)
        by_plan.clear()
        result = sweep(loket, moment, batch=4)
        grouped = len({report["ref"] for _plan, report in by_plan})
        rungs.update(report["rung"] for _plan, report in by_plan)
        reached.update((report["rung"], report["to"]) for _plan, report in by_plan)
        everything.update(report["rung"] for report in reference.fired)
        assert result.checked == predicted.checked == len(due)
        assert grouped > 0, f"no group at {moment}: nothing compared"
        grouped_total += grouped
        assert _sorted(result.fired) == _sorted(predicted.fired) == _sorted(reference.fired)

        columns = list(expected.events[0])
        assert _sorted(_rows(loket, events_t, before[events_t], columns)) == _sorted(_plain(expected.events))
        columns = list(expected.escalations[0])
        assert (_sorted(_rows(loket, escalations_t, before[escalations_t], columns))
                == _sorted(_plain(expected.escalations)))
        columns = list(expected.mails[0])
        assert _sorted(_rows(loket, outbox_t, before[outbox_t], columns)) == _sorted(_plain(expected.mails))
        written = [row for rows in expected.rows.values() for row in rows]
        assert len(written) == len(due)
        with loket.read() as conn:
            for params in written:
                stored = conn.execute(sa.select(cases_t).where(cases_t.c.id == params["_id"])).mappings().one()
                assert {name: stored[name] for name in params if not name.startswith("_")} == {
                    name: value for name, value in params.items() if not name.startswith("_")}
    assert grouped_total >= 10
    # Every kind of firing went through a group's plan somewhere (a timeout never does).
    assert rungs >= {1, 2, 3, "directive", "service_norm", "lead_time"}, rungs
    assert ("lead_time", "a.jansen") in reached  # the responsible unit's head, besides the administrator
    assert "timeout" in everything
    assert verify(loket).ok


def test_a_group_spread_over_batches_records_each_batch_at_its_own_time(
    loket: Loket, clock: FixedClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(6):
        loket.new_case("melding", [f"omschrijving=Paal {n}", "locatie=Lindelaan"], actor=STAFF)
    ticks = iter(RECORDED + dt.timedelta(seconds=n) for n in range(100))
    monkeypatch.setattr(sweeping, "_recorded", lambda: next(ticks))
    by_plan = _spy_on_plans(monkeypatch)
    before = _last_ids(loket)
    assert sweep(loket, MOMENTS[0], batch=2).checked == 6
    assert len(by_plan) == 5 and all(plan is by_plan[0][0] for plan, _report in by_plan)  # one plan for all
    recorded = [row["recorded_at"] for row in _rows(loket, events_t, before[events_t], ["recorded_at"])]
    # Each batch of two has its own instant.
    assert len(recorded) == 6 and len(set(recorded)) == 3, recorded
    assert verify(loket).ok  # every chain, hashed over its own batch's time


# -- the bench's floor sends the sweep's statements ---------------------------------------------


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "bench" / "bench_sweep.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shape(value: Any) -> Any:
    """Keys (in order) and types of a row, down into its JSON; the texts' lengths within 25%."""
    if isinstance(value, dict):
        return [(key, _shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, str):
        return ("str", round(len(value) / 4) if len(value) > 8 else "short")
    return type(value).__name__


def test_the_bench_floor_sends_rows_of_the_shape_the_sweep_writes(loket: Loket, clock: FixedClock) -> None:
    """`bench/bench_sweep.py`'s floor stands for the sweep's statements: same columns, same
    keys down into the email's facts, texts of about the same length. A column the sweep comes
    to write makes this fail until the floor writes it too."""
    bench = _bench()
    due, _later = bench.make_templates(loket)
    row = {**due[0], "ref": "BK-0001234", "data": {**due[0]["data"], "title": "Kopie 123456"}}  # as copied
    case = Case(*(row[name] for name in CASE_FIELDS))
    writes = sweeping._Writes()
    sweeping._Firer(loket, loket.calendar(), bench.NOW, SweepResult()).fire(writes, [case])
    [(columns, [params])] = writes.rows.items()
    assert columns == bench.FLOOR_COLUMNS
    [event], [escalation], [mail] = writes.events, writes.escalations, writes.mails
    floor = bench.floor_rows(row, bench.NOW, bench.NOW, "0" * 64)
    for ours, theirs in zip((params, event, escalation, mail), floor, strict=True):
        assert set(theirs) == set(ours)
    assert _shape(floor[1]["data"]) == _shape(_plain([event])[0]["data"])
    context = {**mail["context"], "assignee_name": "Chris de Vries"}  # the floor's copy has one
    assert _shape(floor[3]["context"]) == _shape(context)


def test_cases_alone_in_their_groups_make_no_plan(
    loket: Loket, clock: FixedClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A case that shares its group with no other fires by the general path alone: no plan is
    made for it (that would cost more than it saves)."""
    loket.new_case("melding", ["omschrijving=Paal", "locatie=Lindelaan"], actor=STAFF)
    loket.new_case("melding", ["omschrijving=Put", "locatie=Lindelaan"], actor=STAFF, assign=WIJK_STAFF)
    clock.set(TUESDAY)
    loket.new_case("melding", ["omschrijving=Tegel", "locatie=Dorpsstraat"], actor=STAFF)

    def no_plan(*args: Any) -> None:
        raise AssertionError("a plan for a group of one")

    monkeypatch.setattr(sweeping._Firer, "_plan", no_plan)
    result = sweep(loket, MOMENTS[0])
    assert result.checked == 3 and len({report["ref"] for report in result.fired}) == 3
    assert verify(loket).ok
