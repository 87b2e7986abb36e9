"""On PostgreSQL the report counts the closed cases on the database (`engine.store.closed`):
grouped queries, ranks by `percentile_disc`, working days from prefix sums bound as an array.
Each test holds that path to the streamed one (every case through the builder, as on SQLite)
on the same rows: the `Report` and its text, JSON and public page are the same — over closed
cases of every type, outcome and area, measures in every stored form, instants in the last
second of a local day and across both of Amsterdam's clock changes, terms met and late, and
with periods and a type filter. Where a stored form could be read otherwise on the database
(a measure as a float, an area stored as 5 and as "5"), the closed cases are streamed instead,
with the same figures."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, WORKFLOWS, _truncate

from cli import run_report
from engine.app import report as report_module
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.reporting.figures import Filters
from engine.store import closed, reports
from engine.store.db import open_engine
from engine.store.tables import cases_t

UTC = dt.UTC
CLERK = "c.devries"
TYPES = sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml")
NOW = dt.datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
FINALS = {
    "bewonersinitiatief": ["toegekend", "afgewezen", "ingetrokken", "buiten_behandeling"],
    "bijdrage": ["afgerond", "afgewezen"],
    "melding": ["afgehandeld", "niet_in_behandeling"],
}
AREAS = [None, "", "Centrum", "Noord", "De Hoven", "Molenwijk"]


@pytest.fixture
def pg_loket(pg_url: str) -> Iterator[Loket]:
    """A PostgreSQL loket, emptied, with the bundled types."""
    _truncate(pg_url)
    loket = Loket(open_engine(pg_url), FixedClock(dt.datetime(2026, 1, 5, 9, tzinfo=UTC)))
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(TYPES)
    yield loket
    loket.engine.dispose()


def _instants(rng: random.Random) -> Iterator[dt.datetime]:
    """Instants over 2026: at random, in the last second of a local day (CET and CEST), at
    local midnight, and around both clock changes."""
    edges = [
        dt.datetime(2026, 2, 10, 22, 59, 59, 500_000, tzinfo=UTC),  # 23:59:59.5 CET
        dt.datetime(2026, 2, 10, 22, 59, 59, tzinfo=UTC),  # 23:59:59 CET
        dt.datetime(2026, 2, 10, 22, 59, 58, 999_999, tzinfo=UTC),
        dt.datetime(2026, 6, 10, 21, 59, 59, 999_999, tzinfo=UTC),  # 23:59:59.999999 CEST
        dt.datetime(2026, 6, 10, 22, 0, tzinfo=UTC),  # local midnight CEST
        dt.datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # just before the clocks go forward
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC),  # just before they go back
        dt.datetime(2026, 10, 25, 1, 0, 0, 1, tzinfo=UTC),
        dt.datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC),  # New Year's Eve, last second
    ]
    yield from edges
    base = dt.datetime(2026, 1, 5, tzinfo=UTC)
    while True:
        yield base + dt.timedelta(microseconds=rng.randrange(0, 330 * 86_400 * 10**6))


def _fill(loket: Loket, count: int = 90, seed: int = 7) -> None:
    """`count` cases of the three types, most of them closed by hand in SQL at chosen
    instants, in a final state of every outcome, with areas and measures in every form the
    fields store (and a few left open)."""
    rng = random.Random(seed)
    instants = _instants(rng)
    keys = list(FINALS)
    made = []
    for n in range(count):
        key = keys[n % 3]
        fields = {"bewonersinitiatief": [f"title=Initiatief {n}"], "bijdrage": [f"title=Verzoek {n}"],
                  "melding": [f"omschrijving=Melding {n}", "locatie=Plein"]}[key]
        made.append((loket.new_case(key, fields, actor=CLERK).ref, key))
    with loket.engine.begin() as conn:
        for n, (ref, key) in enumerate(made):
            if n % 9 == 4:
                continue  # stays open
            created = next(instants)
            closed_at = created + dt.timedelta(seconds=rng.choice([0, 1, 3599, 86_399, 86_400, 90_000])
                                               + rng.randrange(0, 40 * 86_400), microseconds=rng.randrange(10**6))
            if n % 17 == 3:
                created, closed_at = closed_at, created  # a clock set back: closed before it was made
            if n % 23 == 5:
                closed_at = next(instants)  # an edge instant as the closing one too
            data: dict[str, Any] = {"title": f"Zaak {n}"}
            area = rng.choice(AREAS)
            if area is not None:
                data["buurt"] = area
            if key == "bewonersinitiatief":
                amount = rng.choice([None, "", "0", "1250.50", "300", "12,5", "-0.000001", "999999999999999.999999",
                                     "abc", "NaN"])
                if amount is not None:
                    data["amount"] = amount
                people = rng.choice([None, 1, 12, 250, True, None])
                if people is not None:
                    data["participants"] = people
            elif key == "bijdrage":
                data["estimated_cost"] = rng.choice(["4000.00", "17.5", "0.10", "0.20", "3"])
            due = rng.choice([None, created + dt.timedelta(days=rng.randrange(1, 60))])
            conn.execute(sa.update(cases_t).where(cases_t.c.ref == ref).values(
                state=rng.choice(FINALS[key]), created_at=created, closed_at=closed_at,
                state_entered_at=closed_at, state_due=None, data=data, service_due=due,
                case_due=rng.choice([None, closed_at, closed_at - dt.timedelta(microseconds=1),
                                     created + dt.timedelta(days=rng.randrange(1, 60))])))


FILTERS = [
    None,
    Filters(since=dt.datetime(2026, 3, 20, tzinfo=UTC), until=dt.datetime(2026, 11, 5, tzinfo=UTC)),
    Filters(since=dt.datetime(2026, 6, 10, 22, tzinfo=UTC)),
    Filters(until=dt.datetime(2026, 6, 10, 21, 59, 59, 999_999, tzinfo=UTC)),
    Filters(type_key="bewonersinitiatief"),
    Filters(type_key="bijdrage", since=dt.datetime(2026, 2, 1, tzinfo=UTC), until=dt.datetime(2026, 9, 1, tzinfo=UTC)),
]


def _outputs(loket: Loket, filters: Filters | None, folder: Path) -> tuple[Any, str, str, bytes]:
    text: list[str] = []
    as_json: list[str] = []
    page = folder / "public.html"
    found = run_report(loket, None, False, text.append, filters=filters)
    run_report(loket, None, True, as_json.append, filters=filters)
    run_report(loket, None, False, lambda _: None, filters=filters, public=str(page))
    return found, "\n".join(text), "\n".join(as_json), page.read_bytes()


def _both(loket: Loket, filters: Filters | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[tuple[Any, ...], tuple[Any, ...], list[bool]]:
    """The outputs with the closed cases counted on the database, and streamed; and for each
    report of the first, whether the closed cases were counted on the database (True) or,
    having been prepared for it, streamed after all (False)."""
    answers: list[bool] = []
    prepare, add = report_module._prepare_closed, report_module._add_closed

    def prepared(*args: Any) -> Any:
        answers.append(False)
        return prepare(*args)

    def added(*args: Any) -> None:
        answers[-1] = True
        add(*args)

    monkeypatch.setattr(report_module, "_prepare_closed", prepared)
    monkeypatch.setattr(report_module, "_add_closed", added)
    (tmp_path / "db").mkdir(exist_ok=True)
    (tmp_path / "stream").mkdir(exist_ok=True)
    on_db = _outputs(loket, filters, tmp_path / "db")
    with monkeypatch.context() as patched:
        patched.setattr(closed, "supported", lambda conn: False)
        streamed = _outputs(loket, filters, tmp_path / "stream")
    assert len(answers) == 3  # not prepared for the streamed reports
    return on_db, streamed, answers


@pytest.mark.parametrize("filters", FILTERS, ids=["all", "period", "since", "until", "type", "type-period"])
def test_closed_cases_counted_on_the_database_give_the_streamed_figures(
    pg_loket: Loket, filters: Filters | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(pg_loket)
    pg_loket.clock.set(NOW)  # type: ignore[attr-defined]
    on_db, streamed, answers = _both(pg_loket, filters, tmp_path, monkeypatch)
    assert answers and all(answers)  # the database path was taken
    assert on_db[0] == streamed[0]
    assert on_db[1] == streamed[1]
    assert on_db[2] == streamed[2]
    assert on_db[3] == streamed[3]
    if filters is None:  # the data set reaches every part the database counts
        figures = json.loads(on_db[2])
        assert figures["total"]["closed"] > 60
        found = on_db[0]
        assert found.realised and len({a.area for a in found.areas}) > 3
        assert any(area.results.measures for area in found.areas)
        assert any(area.lead_days.count > 1 for area in found.areas)


@pytest.mark.parametrize(("key", "field", "value"), [
    ("bewonersinitiatief", "amount", 12.5),  # a JSON float: the builder reads it as one
    ("bewonersinitiatief", "amount", " 12"),  # Decimal reads it, the database's pattern does not
    ("bewonersinitiatief", "participants", 1e3),
    ("melding", "buurt", 5),  # told as "5", like the string "5" of another case
])
def test_a_stored_form_the_database_could_read_otherwise_streams_the_closed_cases(
    pg_loket: Loket, key: str, field: str, value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(pg_loket, count=30)
    pg_loket.clock.set(NOW)  # type: ignore[attr-defined]
    with pg_loket.engine.begin() as conn:
        ids = conn.execute(sa.select(cases_t.c.id).where(cases_t.c.type_key == key, cases_t.c.closed_at.is_not(None))
                           .order_by(cases_t.c.id)).scalars().all()
        for case_id, stored in ((ids[0], value), (ids[1], str(value))):
            data = conn.execute(sa.select(cases_t.c.data).where(cases_t.c.id == case_id)).scalar_one()
            conn.execute(sa.update(cases_t).where(cases_t.c.id == case_id).values(data={**data, field: stored}))
    on_db, streamed, answers = _both(pg_loket, None, tmp_path, monkeypatch)
    assert answers == [False, False, False]  # streamed, every time
    assert on_db == streamed


def test_a_sibling_connection_sees_the_reports_snapshot(pg_loket: Loket) -> None:
    """The report's queries beside the stream run on connections that adopt its snapshot: a
    case made after the report began is seen by none of them, though it is committed."""
    from engine.store.db import adopt, export_snapshot, snapshot

    pg_loket.new_case("melding", ["omschrijving=Eerste", "locatie=Plein"], actor=CLERK)
    count = sa.select(sa.func.count()).select_from(cases_t)
    with snapshot(pg_loket.engine) as conn:
        assert conn.execute(count).scalar_one() == 1
        pg_loket.new_case("melding", ["omschrijving=Tweede", "locatie=Plein"], actor=CLERK)  # committed now
        with adopt(pg_loket.engine, export_snapshot(conn)) as other:
            assert other.execute(count).scalar_one() == 1
        with pg_loket.engine.connect() as fresh:
            assert fresh.execute(count).scalar_one() == 2


def test_the_lanes_beside_the_stream_are_opened_only_where_they_group(
    pg_loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three connections adopt the report's one snapshot; under --unit, which streams every case,
    none."""
    _fill(pg_loket, count=12)
    pg_loket.clock.set(NOW)  # type: ignore[attr-defined]
    opened: list[object] = []
    real = report_module.adopt

    def counted(engine: Any, exported: str) -> Any:
        opened.append(exported)
        return real(engine, exported)

    monkeypatch.setattr(report_module, "adopt", counted)
    run_report(pg_loket, None, False, lambda _: None)
    assert len(opened) == report_module._Beside.LANES == 3
    assert len(set(opened)) == 1  # one snapshot, adopted by each
    opened.clear()
    unit = sorted(pg_loket.organisation().units)[0]
    run_report(pg_loket, None, False, lambda _: None, filters=Filters(unit=unit))
    assert opened == []


def test_lead_times_beyond_thirty_four_years_are_exact_to_the_microsecond(
    pg_loket: Loket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below 2³⁰ seconds the database reads a lead time from the interval's seconds as a double;
    above it from whole seconds and µs (`closed._lead`). Cases opened in 2014 (the calendar's
    first year), closed in 2048 (beyond) and 2046 (below), a µs apart, rank as the streamed pass
    ranks them."""
    _fill(pg_loket, count=12)
    refs = []
    for n in range(5):
        refs.append(pg_loket.new_case("melding", [f"omschrijving=Oud {n}", "locatie=Plein"], actor=CLERK).ref)
    with pg_loket.engine.begin() as conn:
        for n, ref in enumerate(refs):
            created = dt.datetime(2014, 1, 2, 0, 0, 0, 1 + n, tzinfo=UTC)
            closed_at = dt.datetime(2048 - 2 * (n % 2), 5, 4, 12, 0, 0, 999_999 - n, tzinfo=UTC)
            conn.execute(sa.update(cases_t).where(cases_t.c.ref == ref).values(
                state="afgehandeld", created_at=created, closed_at=closed_at, state_entered_at=closed_at,
                state_due=None))
    pg_loket.clock.set(NOW)  # type: ignore[attr-defined]
    with pg_loket.engine.connect() as conn:
        spreads = closed.lead_spreads(conn, reports.ALL, {("melding", 1): closed.Version(None, (), ())})
    melding = next(row for row in spreads if row[0] == "melding" and not row[2])
    lead = (dt.datetime(2048, 5, 4, 12, 0, 0, 999_999, tzinfo=UTC)
            - dt.datetime(2014, 1, 2, 0, 0, 0, 1, tzinfo=UTC))
    assert lead > dt.timedelta(seconds=closed._EXACT_SECONDS)
    assert melding[4] is not None and melding[5] == lead // dt.timedelta(microseconds=1)  # the 90th: the longest
    on_db, streamed, answers = _both(pg_loket, None, tmp_path, monkeypatch)
    assert answers and all(answers)
    assert on_db == streamed
