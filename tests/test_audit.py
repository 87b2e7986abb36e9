"""Seals, exports and redaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_cli

from engine.app.export import export
from engine.app.maintenance import run as run_maintenance
from engine.app.redact import redact
from engine.app.seal import seal
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core.history import chain_hash, event_content
from engine.errors import HistoryDamaged, InvalidValue, NotFound, Refused, RoleRequired
from engine.store.tables import cases_t, events_t

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


def test_export_filters_by_period_type_and_unit(loket: Loket, clock) -> None:
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
    case, fields, _ = redact(loket, ref, "bewaartermijn verstreken", actor=HEAD)
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


def test_personal_data_entered_after_a_redaction_can_be_erased_again(loket: Loket) -> None:
    ref = _initiative(loket, name=SECRET_NAME)
    redact(loket, ref, "bewaartermijn", actor=HEAD)
    # The resident calls back and leaves an address: it gets a new salt, so the chain commits
    # to it by digest and verify checks it...
    loket.set_fields(ref, [f"email={SECRET_MAIL}"], actor=CLERK)
    case = loket.get_case(ref)
    assert case.salt is not None and case.data["email"] == SECRET_MAIL
    assert verify(loket).ok
    # ...and a second redaction erases it, the chain still whole.
    case, fields, _ = redact(loket, ref, "verzoek van de bewoner", actor=HEAD)
    assert fields == ["email"] and case.salt is None
    assert SECRET_MAIL not in json.dumps(_exported(loket))
    assert verify(loket).ok
    with pytest.raises(Refused, match=r"holds no personal data \(redacted on 2026-03-02\): nothing to redact"):
        redact(loket, ref, "nogmaals", actor=HEAD)


def test_a_closed_case_is_redacted_by_the_head_of_the_unit_that_closed_it(loket: Loket) -> None:
    ref = _initiative(loket, name=SECRET_NAME, amount="100")
    loket.advance(ref, "in_behandeling", actor=CLERK)
    loket.advance(ref, "naar_besluit", actor=CLERK)
    loket.advance(ref, "toekennen", actor=LEAD)
    _, fields, _ = redact(loket, ref, "bewaartermijn", actor=HEAD)
    assert "name" in fields


def test_redacted_bytes_are_gone_from_the_sqlite_files(sqlite_url: str, tmp_path: Path, clock) -> None:
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


def _fresh(url: str, clock) -> Loket:
    from engine.store.db import open_engine
    from tests.conftest import ORG_FILE, WORKFLOWS

    loket = Loket(open_engine(url), clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    return loket


def test_redacted_bytes_are_gone_from_the_postgresql_table_files(pg_url: str, clock) -> None:
    from tests.conftest import _truncate

    _truncate(pg_url)
    loket = _fresh(pg_url, clock)
    refs = [_initiative(loket, f"Initiatief {i}", name=SECRET_NAME, email=SECRET_MAIL) for i in range(5)]
    for ref in refs:
        redact(loket, ref, "bewaartermijn", actor=HEAD)
    # The redaction erases the rows; the old row versions leave the files when the tables
    # are rewritten, which the worker's maintenance does (test_erasure.py times both). A run
    # that meets another session on the tables (autovacuum, on a busy machine) defers to the
    # next one, as the worker's would.
    for _ in range(10):
        done = run_maintenance(loket)
        if done is None or done.clean:
            break
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


# -- damaged rows ----------------------------------------------------------------------------
#
# A row tampered with so badly that it cannot be read back is a finding of verify (exit 1,
# naming the case and the event), and stops an export with one clear error — never a crash.
# What a database can hold differs: SQLite keeps any value in any column, PostgreSQL checks
# types. A variant PostgreSQL cannot hold is asserted to be refused there, so that each
# parameter runs on both databases.

REFUSED = object()
"""PostgreSQL refuses to store this value: the damage cannot happen there, nothing changes."""
AS_TEXT = object()
"""PostgreSQL stores these bytes as their text form (`\\x00ff`) in a text column: an ordinary
value, which verify sees as an edit, not as damage."""


def _damage(loket: Loket, table: str, assignment: str | dict[str, str], value: object, pg_value: object,
            where: str, **params: object) -> object:
    """Apply `assignment` to the rows `where` picks. None if the row now holds the damage; else
    REFUSED or AS_TEXT, for what PostgreSQL made of it (checked here)."""
    dialect = loket.engine.dialect.name
    if isinstance(assignment, dict):
        assignment = assignment[dialect]
    statement = f"UPDATE {table} SET {assignment} WHERE {where}"
    if dialect == "sqlite" or (pg_value is not REFUSED and pg_value is not AS_TEXT):
        _sql(loket, statement, v=value if dialect == "sqlite" else pg_value, **params)
        return None
    if pg_value is REFUSED:
        with pytest.raises(sa.exc.DBAPIError):
            _sql(loket, statement, v=value, **params)
        return REFUSED
    _sql(loket, statement, v=value, **params)
    with loket.read() as conn:
        stored = conn.execute(sa.text(f"SELECT {assignment.split(' = ')[0]} FROM {table} WHERE {where}"), params)
        assert all(isinstance(v, str) for v in stored.scalars())
    return AS_TEXT


def _not_damaged(loket: Loket, outcome: object, ref: str | None) -> None:
    """What verify says about a damage PostgreSQL refused or turned into an ordinary value."""
    result = verify(loket)
    if outcome is REFUSED:
        assert result.ok
    else:
        assert (result.ok, result.ref) == (False, ref)
        assert "damaged" not in (result.failure or "")


def _words(words: str | dict[str, str], loket: Loket) -> str:
    return words if isinstance(words, str) else words[loket.engine.dialect.name]


def _two_cases(loket: Loket) -> tuple[str, str]:
    """Two cases; the second has two events, the second of which the tests damage."""
    first, second = _initiative(loket, "Eerste"), _initiative(loket, "Tweede")
    loket.advance(second, "in_behandeling", actor=CLERK)
    return first, second


EVENT_2 = "seq = 2 AND case_id = (SELECT id FROM cases WHERE ref = :r)"
NO_TIME = "holds no time that can be read (infinite, or outside the years 1 to 9999)"

EVENT_DAMAGE = [
    pytest.param("data = :v", "[1,2]", "[1,2]", "data holds a JSON array, not an object", id="data-array"),
    # Falsy, so it used to pass as an empty object.
    pytest.param("data = :v", "[]", "[]", "data holds a JSON array, not an object", id="data-empty-array"),
    pytest.param("data = :v", "7", "7", "data holds a JSON number, not an object", id="data-number"),
    pytest.param("data = :v", "not json", REFUSED, "data holds 'not json', which is not JSON", id="data-not-json"),
    pytest.param("digests = :v", "{broken", REFUSED, "digests holds '{broken', which is not JSON",
                 id="digests-not-json"),
    pytest.param("digests = :v", '"abc"', '"abc"', "digests holds a JSON string, not an object", id="digests-string"),
    pytest.param("at = :v", "garbage", REFUSED, "at holds 'garbage', not a time", id="at-garbage"),
    pytest.param("at = :v", "infinity", "infinity",
                 {"sqlite": "at holds 'infinity', not a time", "postgresql": f"at {NO_TIME}"}, id="at-infinity"),
    pytest.param("recorded_at = :v", "20000-01-01 00:00:00", "20000-01-01 00:00:00+00",
                 {"sqlite": "recorded_at holds '20000-01-01 00:00:00', not a time",
                  "postgresql": f"recorded_at {NO_TIME}"},
                 id="recorded_at-year-20000"),
    pytest.param("comment = :v", b"\x00\xff", AS_TEXT, "comment holds binary data, not text", id="comment-binary"),
    pytest.param({"sqlite": "comment = CAST(:v AS TEXT)", "postgresql": "comment = convert_from(:v, 'UTF8')"},
                 b"\xff", REFUSED, "comment holds text that is not valid UTF-8", id="comment-not-utf8"),
]


@pytest.mark.parametrize(("assignment", "value", "pg_value", "words"), EVENT_DAMAGE)
def test_verify_reports_an_unreadable_event_row_as_a_failure(
    loket: Loket, assignment: str | dict[str, str], value: object, pg_value: object, words: str | dict[str, str]
) -> None:
    _first, second = _two_cases(loket)
    outcome = _damage(loket, "case_event", assignment, value, pg_value, EVENT_2, r=second)
    if outcome is not None:
        _not_damaged(loket, outcome, second)
        return
    result = verify(loket)
    assert (result.ok, result.ref, result.seq) == (False, second, 2)
    assert result.failure == f"{second} event 2: its stored row is damaged: {_words(words, loket)}"


@pytest.mark.parametrize(("assignment", "value", "pg_value", "words"), EVENT_DAMAGE)
def test_export_stops_with_one_error_at_an_unreadable_event_row(
    loket: Loket, assignment: str | dict[str, str], value: object, pg_value: object, words: str | dict[str, str]
) -> None:
    _first, second = _two_cases(loket)
    if _damage(loket, "case_event", assignment, value, pg_value, EVENT_2, r=second) is not None:
        assert len(_exported(loket)) == 3
        return
    with pytest.raises(HistoryDamaged) as caught:
        _exported(loket)
    assert caught.value.exit_code == 1
    assert caught.value.message == (f"the stored history is damaged at {second} event 2 ({_words(words, loket)}); "
                                    "the export stopped there (run 'loket audit verify' to check every chain)")


@pytest.mark.parametrize(
    ("assignment", "value", "pg_value", "words"),
    [
        pytest.param("data = :v", "[1]", "[1]", "data holds a JSON array, not an object", id="data-array"),
        pytest.param("data = :v", "{oops", REFUSED, "data holds '{oops', which is not JSON", id="data-not-json"),
        pytest.param("salt = :v", b"\x01", AS_TEXT, "salt holds binary data, not text", id="salt-binary"),
        pytest.param({"sqlite": "last_seq = CAST(:v AS TEXT)", "postgresql": "last_seq = convert_from(:v, 'UTF8')"},
                     b"\xff", REFUSED, "last_seq holds text that is not valid UTF-8", id="last_seq-not-utf8"),
    ],
)
def test_verify_reports_an_unreadable_case_row_as_a_failure(
    loket: Loket, assignment: str | dict[str, str], value: object, pg_value: object, words: str
) -> None:
    _initiative(loket, "Eerste")
    ref = _initiative(loket, name=SECRET_NAME)  # a personal field, so that its salt is used
    outcome = _damage(loket, "cases", assignment, value, pg_value, "ref = :r", r=ref)
    if outcome is not None:
        _not_damaged(loket, outcome, ref)
        return
    result = verify(loket)
    assert (result.ok, result.ref) == (False, ref)
    assert result.failure == f"{ref}: its case row is damaged: {words}"


@pytest.mark.parametrize(
    ("assignment", "value", "pg_value", "words"),
    [
        pytest.param("seq = :v", "x", REFUSED, "seq holds 'x', not a whole number", id="seq-text"),
        pytest.param({"sqlite": "ref = CAST(:v AS TEXT)", "postgresql": "ref = convert_from(:v, 'UTF8')"},
                     b"\xff", REFUSED, "ref holds text that is not valid UTF-8", id="ref-not-utf8"),
    ],
)
def test_verify_reports_an_unreadable_seal_head_as_a_failure(
    loket: Loket, assignment: str | dict[str, str], value: object, pg_value: object, words: str
) -> None:
    _two_cases(loket)
    seal(loket)
    outcome = _damage(loket, "audit_seal_head", assignment, value, pg_value, "seal_id = 1 AND case_id = 2")
    if outcome is not None:
        _not_damaged(loket, outcome, None)
        return
    result = verify(loket)
    assert (result.ok, result.ref, result.seq) == (False, None, None)
    assert result.failure == f"seal 1: the head it records for case id 2 is damaged: {words}"


@pytest.mark.parametrize(
    ("assignment", "value", "words"),
    [
        pytest.param("last_seq = :v", "x", "last_seq holds 'x', not a whole number", id="last_seq-text"),
        pytest.param({"sqlite": "last_seq = CAST(:v AS TEXT)", "postgresql": "last_seq = convert_from(:v, 'UTF8')"},
                     b"\xff", "last_seq holds text that is not valid UTF-8", id="last_seq-not-utf8"),
    ],
)
def test_seal_refuses_a_case_row_it_cannot_read_and_records_nothing(
    loket: Loket, assignment: str | dict[str, str], value: object, words: str
) -> None:
    _two_cases(loket)
    if _damage(loket, "cases", assignment, value, REFUSED, "id = 2") is REFUSED:
        assert seal(loket).cases == 2
        return
    with pytest.raises(HistoryDamaged) as caught:
        seal(loket)
    assert caught.value.message == (f"cannot seal: the case row of case id 2 is damaged ({words}); "
                                    "nothing was recorded (run 'loket audit verify')")
    with loket.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_seal")).scalar() == 0


def test_the_time_of_a_seal_is_not_read_so_its_damage_does_not_stop_verify(loket: Loket) -> None:
    """The seal's digest covers its heads, not its times: verify has no use for them."""
    _initiative(loket)
    seal(loket)
    _damage(loket, "audit_seal", "sealed_at = :v", "garbage", "infinity", "id = 1")
    assert verify(loket).ok


def test_verify_names_the_first_failure_in_case_order_whatever_its_kind(loket: Loket) -> None:
    # An edited event in the first case, an unreadable one in the second (read in the same batch).
    first, _second = _two_cases(loket)
    unreadable = "garbage" if loket.engine.dialect.name == "sqlite" else "infinity"
    _sql(loket, "UPDATE case_event SET comment = 'bijgewerkt' WHERE case_id = 1")
    _sql(loket, "UPDATE case_event SET at = :v WHERE case_id = 2 AND seq = 2", v=unreadable)
    result = verify(loket)
    assert (result.ref, result.seq) == (first, 1)
    assert result.failure == f"{first} event 1: its content does not match its hash (edited)"
    # And the other way round: the unreadable row first.
    _sql(loket, "UPDATE case_event SET at = :v WHERE case_id = 1", v=unreadable)
    result = verify(loket)
    assert (result.ref, result.seq) == (first, 1)
    assert result.failure is not None and result.failure.startswith(f"{first} event 1: its stored row is damaged: at ")


def test_a_forged_event_with_a_valid_hash_but_wrongly_typed_data_is_a_failure(loket: Loket) -> None:
    """Even a forger who recomputes the hashes cannot make verify crash on what the row holds."""
    ref = _initiative(loket)
    with loket.read() as conn:
        case = conn.execute(sa.select(cases_t).where(cases_t.c.ref == ref)).one()
    at = case.created_at + dt.timedelta(days=1)
    fields = {"at": at, "recorded_at": at, "actor": HEAD, "action": "redacted", "from_state": None,
              "to_state": None, "trigger": None, "comment": "vervalst", "data": {"fields": 5}}
    digest = chain_hash(event_content(ref=ref, seq=2, digests=None, **fields), case.last_hash)
    with loket.engine.begin() as conn:
        conn.execute(sa.insert(events_t).values(case_id=case.id, seq=2, digests=None, prev_hash=case.last_hash,
                                                hash=digest, **fields))
        conn.execute(sa.update(cases_t).where(cases_t.c.id == case.id).values(last_seq=2, last_hash=digest))
    result = verify(loket)
    assert (result.ok, result.ref, result.seq) == (False, ref, 2)
    assert result.failure == f"{ref} event 2: its stored row is damaged: data.fields is not a list of field names"


def test_the_careful_reading_agrees_with_the_quick_one_on_an_intact_history(loket: Loket, clock) -> None:
    """verify falls back on reading every value raw: on a sound database both must say the same."""
    from engine.app.verify import _verify

    erased = _initiative(loket, "Ééndags — straatfeest ✓", name=SECRET_NAME, email=SECRET_MAIL)
    ref = _initiative(loket, "Buurtmoestuin", name=SECRET_NAME, amount="1250")
    clock.advance(dt.timedelta(hours=3, microseconds=123457))
    loket.assign(ref, CLERK, actor=CLERK)
    loket.set_fields(ref, ["address=Kerkstraat 4"], actor=CLERK)
    loket.advance(ref, "in_behandeling", actor=CLERK, comment="Gesprek gepland — \"koffie\"")
    redact(loket, erased, "bewaartermijn", actor=HEAD)
    seal(loket)
    quick, careful = _verify(loket, careful=False), _verify(loket, careful=True)
    assert quick.ok and quick.events == 6
    assert careful == quick


def test_cli_verify_names_the_unreadable_event_and_exits_1(
    loket: Loket, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _first, second = _two_cases(loket)
    _sql(loket, "UPDATE case_event SET data = '[1,2]' WHERE " + EVENT_2, r=second)
    expected = f"{second} event 2: its stored row is damaged: data holds a JSON array, not an object"
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify")
    assert (code, out, err) == (1, "", f"Error: {expected}\n")
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify", "--json")
    assert code == 1 and err == f"Error: {expected}\n"
    assert json.loads(out) | {"events": None} == {"ok": False, "cases": 2, "events": None, "config_events": None,
                                                  "failure": expected, "ref": second, "seq": 2}


def test_cli_verify_names_an_event_whose_time_does_not_decode(
    loket: Loket, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _first, second = _two_cases(loket)
    unreadable = "garbage" if loket.engine.dialect.name == "sqlite" else "infinity"
    _sql(loket, "UPDATE case_event SET at = :v WHERE " + EVENT_2, v=unreadable, r=second)
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: {second} event 2: its stored row is damaged: at holds ")
    assert err.count("\n") == 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cli_export_to_a_file_stops_with_one_error_and_leaves_no_file(
    loket: Loket, db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    _first, second = _two_cases(loket)
    unreadable = "garbage" if loket.engine.dialect.name == "sqlite" else "infinity"
    _sql(loket, "UPDATE case_event SET at = :v WHERE " + EVENT_2, v=unreadable, r=second)
    target = tmp_path / f"export.{fmt}"
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "export", "--format", fmt, "-o", str(target))
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: the stored history is damaged at {second} event 2 (at holds ")
    assert err.endswith("(run 'loket audit verify' to check every chain)\n") and err.count("\n") == 1
    assert list(tmp_path.glob("export.*")) == []
