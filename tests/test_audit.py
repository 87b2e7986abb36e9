"""Seals, exports and redaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.audit import export, seal, verify
from engine.errors import InvalidValue, NotFound, Refused, RoleRequired
from engine.redact import redact
from engine.schema import cases_t, events_t
from engine.service import Loket

CLERK, LEAD, HEAD = "c.devries", "b.bakker", "a.jansen"
SECRET_NAME = "Geertruida Zwanenburg"
SECRET_MAIL = "g.zwanenburg.geheim@example.org"


def _initiative(loket: Loket, title: str = "Straatfeest", **extra: str) -> str:
    data = [f"title={title}", *(f"{k}={v}" for k, v in extra.items())]
    return loket.new_case("bewonersinitiatief", data, actor=CLERK).ref


def _sql(loket: Loket, statement: str, **params: object) -> None:
    with loket.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.execute(sa.text(statement), params)


# -- seal ------------------------------------------------------------------------------------


def test_seal_counts_every_chain_and_verify_stays_ok(loket: Loket) -> None:
    refs = [_initiative(loket, f"Initiatief {i}") for i in range(3)]
    loket.advance(refs[0], "in_behandeling", actor=CLERK)
    result = seal(loket)
    assert (result.cases, result.events) == (3, 4)
    assert verify(loket).ok


def test_a_case_deleted_after_the_seal_is_detected(loket: Loket) -> None:
    keep, gone = _initiative(loket, "Blijft"), _initiative(loket, "Verdwijnt")
    seal(loket)
    _sql(loket, "DELETE FROM case_event WHERE case_id = (SELECT id FROM cases WHERE ref = :r)", r=gone)
    _sql(loket, "DELETE FROM cases WHERE ref = :r", r=gone)
    result = verify(loket)
    assert not result.ok
    assert result.ref == gone and "deleted" in (result.failure or "")
    assert keep != gone


def test_history_cut_back_behind_the_seal_is_detected(loket: Loket) -> None:
    ref = _initiative(loket)
    loket.advance(ref, "in_behandeling", actor=CLERK)
    seal(loket)
    # A careful forger removes the last event and resets the case row to the earlier head,
    # so the chain itself is consistent again: only the seal can tell.
    _sql(loket, "DELETE FROM case_event WHERE seq = 2 AND case_id = (SELECT id FROM cases WHERE ref = :r)", r=ref)
    _sql(loket, "UPDATE cases SET last_seq = 1, state = 'ingediend', "
                "last_hash = (SELECT hash FROM case_event e WHERE e.case_id = cases.id AND e.seq = 1) WHERE ref = :r",
         r=ref)
    result = verify(loket)
    assert not result.ok
    assert result.ref == ref and result.seq == 2 and "cut" in (result.failure or "")


def test_tampering_with_the_seal_itself_is_detected(loket: Loket) -> None:
    _initiative(loket)
    seal(loket)
    _sql(loket, "UPDATE audit_seal_head SET seq = seq + 1")
    assert "altered" in (verify(loket).failure or "")


def test_a_removed_earlier_seal_breaks_the_seal_chain(loket: Loket) -> None:
    _initiative(loket)
    seal(loket)
    seal(loket)
    _sql(loket, "DELETE FROM audit_seal_head WHERE seal_id = 1")
    _sql(loket, "DELETE FROM audit_seal WHERE id = 1")
    assert "does not follow" in (verify(loket).failure or "")


# -- export ----------------------------------------------------------------------------------


def _exported(loket: Loket, **options: object) -> list[dict[str, object]]:
    out = io.StringIO()
    count = export(loket, out.write, **options)  # type: ignore[arg-type]
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == count
    return rows


def test_export_jsonl_carries_every_event_with_its_hashes(loket: Loket) -> None:
    ref = _initiative(loket)
    loket.advance(ref, "in_behandeling", actor=CLERK)
    rows = _exported(loket)
    assert [(r["ref"], r["seq"], r["action"]) for r in rows] == [(ref, 1, "created"), (ref, 2, "transition")]
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[0]["unit"] == "wijkteam"


def test_export_filters_by_period_type_and_unit(loket: Loket, clock) -> None:  # type: ignore[no-untyped-def]
    first = _initiative(loket, "Maart")
    clock.advance(dt.timedelta(days=10))
    later = loket.new_case("melding", ["omschrijving=Lamp kapot", "locatie=Kerkstraat 4"], actor=CLERK).ref
    loket.advance(first, "in_behandeling", actor=CLERK)
    since = clock.now() - dt.timedelta(days=1)
    assert {r["ref"] for r in _exported(loket, since=since)} == {first, later}
    assert {(r["ref"], r["seq"]) for r in _exported(loket, since=since, type_key="bewonersinitiatief")} == {(first, 2)}
    assert {r["ref"] for r in _exported(loket, until=since)} == {first}
    assert _exported(loket, unit="openbare_ruimte") == []
    with pytest.raises(NotFound):
        _exported(loket, unit="nergens")
    with pytest.raises(NotFound):
        _exported(loket, type_key="onbekend")
    with pytest.raises(InvalidValue):
        _exported(loket, fmt="xml")


def test_export_csv_has_a_header_and_json_data(loket: Loket) -> None:
    _initiative(loket, "Buurtfeest, met komma")
    out = io.StringIO()
    export(loket, out.write, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 1
    assert json.loads(rows[0]["data"])["title"] == "Buurtfeest, met komma"


# -- redaction -------------------------------------------------------------------------------


def test_redaction_erases_personal_values_and_keeps_the_chain(loket: Loket) -> None:
    ref = _initiative(loket, name=SECRET_NAME, email=SECRET_MAIL)
    loket.set_fields(ref, ["address=Geheimstraat 1"], actor=CLERK)
    before = verify(loket)
    assert before.ok
    case, fields = redact(loket, ref, "bewaartermijn verstreken", actor=HEAD)
    assert fields == ["address", "email", "name"]
    assert case.data == {"title": "Straatfeest"} and case.salt is None and case.redacted_at is not None
    with loket.read() as conn:
        datas = [r.data for r in conn.execute(sa.select(events_t.c.data).order_by(events_t.c.seq))]
    assert all(not ({"name", "email", "address"} & (d or {}).keys()) for d in datas[:-1])
    assert datas[-1]["fields"] == ["address", "email", "name"]
    assert verify(loket).ok


def test_redaction_needs_the_head_and_happens_once(loket: Loket) -> None:
    ref = _initiative(loket, name=SECRET_NAME)
    with pytest.raises(RoleRequired):
        redact(loket, ref, "bewaartermijn", actor=LEAD)
    with pytest.raises(InvalidValue):
        redact(loket, ref, "  ", actor=HEAD)
    redact(loket, ref, "bewaartermijn", actor=HEAD)
    with pytest.raises(Refused):
        redact(loket, ref, "nogmaals", actor=HEAD)


def test_a_closed_case_is_redacted_by_the_head_of_the_unit_that_closed_it(loket: Loket) -> None:
    ref = _initiative(loket, name=SECRET_NAME, amount="100")
    loket.advance(ref, "in_behandeling", actor=CLERK)
    loket.advance(ref, "naar_besluit", actor=CLERK)
    loket.advance(ref, "toekennen", actor=LEAD)
    _, fields = redact(loket, ref, "bewaartermijn", actor=HEAD)
    assert "name" in fields


def test_redacted_bytes_are_gone_from_the_sqlite_files(sqlite_url: str, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    loket = _fresh(sqlite_url, clock)
    refs = [_initiative(loket, f"Initiatief {i}", name=SECRET_NAME, email=SECRET_MAIL) for i in range(5)]
    files = list(tmp_path.glob("loket.db*"))
    assert any(SECRET_NAME.encode() in f.read_bytes() for f in files)
    for ref in refs:
        redact(loket, ref, "bewaartermijn", actor=HEAD)
    loket.engine.dispose()
    for f in tmp_path.glob("loket.db*"):
        content = f.read_bytes()
        assert SECRET_NAME.encode() not in content, f.name
        assert SECRET_MAIL.encode() not in content, f.name


def _fresh(url: str, clock) -> Loket:  # type: ignore[no-untyped-def]
    from engine.db import open_engine
    from tests.conftest import ORG_FILE, WORKFLOWS

    loket = Loket(open_engine(url), clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    return loket


def test_redacted_bytes_are_gone_from_the_postgresql_table_files(pg_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import _truncate

    _truncate(pg_url)
    loket = _fresh(pg_url, clock)
    refs = [_initiative(loket, f"Initiatief {i}", name=SECRET_NAME, email=SECRET_MAIL) for i in range(5)]
    for ref in refs:
        redact(loket, ref, "bewaartermijn", actor=HEAD)
    with loket.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        paths = [conn.execute(sa.text("SELECT current_setting('data_directory') || '/' || pg_relation_filepath(:t)"),
                              {"t": table}).scalar() for table in ("cases", "case_event")]
    for path in paths:
        content = Path(str(path)).read_bytes()
        assert SECRET_NAME.encode() not in content
        assert SECRET_MAIL.encode() not in content
    with loket.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cases_t)
                            .where(cases_t.c.redacted_at.is_not(None))).scalar() == 5
    loket.engine.dispose()


@pytest.mark.parametrize(
    ("column", "statement", "words"),
    [
        ("data", "UPDATE cases SET data = :v WHERE ref = :r", "field(s) amount differ"),
        ("assignee", "UPDATE cases SET assignee = :v WHERE ref = :r", "assigned to 'b.bakker'"),
    ],
)
def test_a_case_row_changed_without_its_event_is_detected(
    loket: Loket, column: str, statement: str, words: str
) -> None:
    ref = _initiative(loket, amount="750")
    loket.assign(ref, CLERK, actor=CLERK)
    value: object = json.dumps({"title": "Straatfeest", "amount": "75000"}) if column == "data" else LEAD
    _sql(loket, statement, v=value, r=ref)
    result = verify(loket)
    assert (result.ok, result.ref) == (False, ref)
    assert words in (result.failure or "")
