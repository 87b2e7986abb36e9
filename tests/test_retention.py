"""Retention terms carried out (SPEC §15): `retention list`, `retention run` with redact and
destroy, tombstones that seals and `audit verify` account for, the destruction list, the
bytes gone from the files, and the bad input around it."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, START, WORKFLOWS, run_cli

from engine.app import retention
from engine.app.clock import FixedClock
from engine.app.maintenance import PG_REWRITTEN, maintain
from engine.app.seal import seal
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core.checking import Checker
from engine.core.retention import Term, parse_retention, parse_term
from engine.errors import Conflict, InvalidDefinition
from engine.store.db import open_engine
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t, tombstones_t

CLERK, HEAD, OPERATOR = "c.devries", "a.jansen", "a.jansen"
SECRET = "Geertruida Zwanenburg"
MAIL = "g.zwanenburg.geheim@example.org"
YEAR = dt.timedelta(days=366)


def write_types(folder: Path, *, action: str | None = "destroy", after: str = "{years: 1}") -> list[str]:
    """The bundled request types, bewonersinitiatief with a retention term and no other type with one."""
    folder.mkdir(exist_ok=True)
    paths = []
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        if path.name == "organisation.yaml":
            continue
        text = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                       if not line.startswith("retention:"))
        if path.name == "bewonersinitiatief.yaml" and action is not None:
            text += f"\nretention: {{after: {after}, action: {action}}}\n"
        (folder / path.name).write_text(text, encoding="utf-8")
        paths.append(str(folder / path.name))
    return paths


def make_loket(url: str, folder: Path, *, action: str | None = "destroy", after: str = "{years: 1}") -> Loket:
    loket = Loket(open_engine(url), FixedClock(START))
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(write_types(folder, action=action, after=after))
    return loket


def closed_case(loket: Loket, title: str = "Straatfeest") -> str:
    data = [f"title={title}", f"name={SECRET}", f"email={MAIL}"]
    ref = loket.new_case("bewonersinitiatief", data, actor=CLERK).ref
    loket.advance(ref, "intrekken", comment="ingetrokken door de bewoner", actor=CLERK)
    return ref


def count(loket: Loket, table: sa.Table) -> int:
    with loket.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def later(loket: Loket, delta: dt.timedelta) -> None:
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    clock.advance(delta)


# -- the term in the request type ----------------------------------------------------------------


def test_terms_are_read_as_the_spec_writes_them_and_as_text() -> None:
    assert parse_term({"years": 7}) == Term(7)
    assert parse_term("7 years") == parse_term("7 jaar") == parse_term("7y") == Term(7)
    assert parse_term("18 months") == Term(1, 6)
    assert parse_term({"weeks": 2, "days": 1}) == Term(days=15)
    assert Term(1).after(dt.date(2024, 2, 29)) == dt.date(2025, 2, 28)
    assert Term(0, 1).after(dt.date(2026, 1, 31)) == dt.date(2026, 2, 28)
    assert Term(10, 6).label("nl") == "10 jaar, 6 maanden"
    for bad in ({}, {"years": -1}, {"years": True}, {"decades": 1}, "soon", "", 7, {"years": 0}, "300 years"):
        with pytest.raises(ValueError):
            parse_term(bad)


def test_a_bad_retention_is_refused_at_load_naming_what_is_wrong(tmp_path: Path, sqlite_url: str) -> None:
    check = Checker("t.yaml")
    assert parse_retention(check, {"after": "7 years", "action": "destroy"}, False) is not None
    for bad, said in (({"after": {"years": 7}}, "missing required key 'action'"),
                      ({"after": {"years": 7}, "action": "shred"}, "action must be one of redact, destroy"),
                      ({"after": "ever", "action": "destroy"}, "invalid retention term"),
                      ({"after": {"years": 7}, "action": "destroy", "when": 1}, "unknown key 'when'"),
                      ("7 years", "expected a mapping")):
        check = Checker("t.yaml")
        parse_retention(check, bad, True)
        assert any(said in p.message for p in check.problems), (bad, [p.message for p in check.problems])
    check = Checker("t.yaml")
    parse_retention(check, {"after": {"years": 1}, "action": "redact"}, False)
    assert ["no field is marked 'personal: true'" in p.message for p in check.problems] == [True]
    loket = Loket(open_engine(sqlite_url), FixedClock(START))
    loket.load_organisation(ORG_FILE)
    for after in ("{years: 0}", "'someday'", "{years: 7, decades: 1}"):
        with pytest.raises(InvalidDefinition, match=r"retention\.after"):
            loket.load_request_types(write_types(tmp_path / "wf", after=after))
    with pytest.raises(InvalidDefinition, match="action must be one of redact, destroy"):
        loket.load_request_types(write_types(tmp_path / "wf", action="shred"))
    assert loket.latest_types() == []  # nothing was loaded
    loket.engine.dispose()


# -- list and run: destroy -----------------------------------------------------------------------


def test_destroy_leaves_tombstones_that_seals_and_verify_account_for(db_url: str, tmp_path: Path) -> None:
    loket = make_loket(db_url, tmp_path / "wf")
    refs = [closed_case(loket, f"Initiatief {i}") for i in range(3)]
    kept = loket.new_case("bewonersinitiatief", ["title=Nog open"], actor=CLERK).ref
    seal(loket)
    assert list(retention.due(loket)) == []
    later(loket, YEAR)
    due = list(retention.due(loket))
    assert [d.ref for d in due] == refs and {d.due_on for d in due} == {dt.date(2027, 3, 2)}
    before = {t: count(loket, t) for t in (events_t, outbox_t, escalations_t)}
    assert before[outbox_t] > 0

    result = retention.run(loket, "selectielijst 2020, categorie 1.1", by=loket.identity(OPERATOR),
                           list_path=str(tmp_path / "vernietiging.csv"), database=db_url)

    assert (result.destroyed, result.redacted, result.skipped) == (3, 0, [])
    with loket.read() as conn:
        assert conn.execute(sa.select(cases_t.c.ref)).scalars().all() == [kept]
        assert conn.execute(sa.select(sa.func.count()).select_from(events_t)
                            .where(events_t.c.case_id.not_in(sa.select(cases_t.c.id)))).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox_t)
                            .where(outbox_t.c.case_id.is_not(None),
                                   outbox_t.c.case_id.not_in(sa.select(cases_t.c.id)))).scalar_one() == 0
        stones = conn.execute(sa.select(tombstones_t).order_by(tombstones_t.c.id)).all()
    assert [s.ref for s in stones] == refs
    assert {(s.type_key, s.destroyed_by, s.reason, s.run, s.term) for s in stones} == {
        ("bewonersinitiatief", OPERATOR, "selectielijst 2020, categorie 1.1", result.run, "1 year")}
    assert all(len(s.last_hash) == 64 and s.last_seq >= 2 for s in stones)

    checked = verify(loket)
    assert checked.ok, checked.failure
    assert checked.destroyed == [{"run": result.run, "cases": 3, "list": "vernietiging.csv",
                                  "list_sha256": result.list_sha256}]
    listed = (tmp_path / "vernietiging.csv").read_bytes()
    assert hashlib.sha256(listed).hexdigest() == result.list_sha256
    rows = list(csv.DictReader(listed.decode().splitlines()))
    assert [r["zaaknummer"] for r in rows] == refs
    assert rows[0]["bewaartermijn"] == "1 jaar" and rows[0]["datum afgesloten"] == "2026-03-02"
    assert rows[0]["laatste hash"] == stones[0].last_hash and rows[0]["vernietigd door"] == OPERATOR
    actions = [e["action"] for e in loket.config_history()]
    assert actions[-2:] == ["retention_run", "retention_list"]
    # A later seal and verify hold too, and nothing is due any more.
    seal(loket)
    assert verify(loket).ok
    assert list(retention.due(loket)) == []
    again = retention.run(loket, "nogmaals", by=loket.identity(OPERATOR))
    assert again.run is None and again.files_message == ("nothing is due: bewonersinitiatief (destroy after 1 year):"
                                                         " no closed cases")
    loket.engine.dispose()


def test_verify_still_finds_a_sealed_case_deleted_without_its_tombstone(db_url: str, tmp_path: Path) -> None:
    loket = make_loket(db_url, tmp_path / "wf")
    refs = [closed_case(loket, f"Initiatief {i}") for i in range(2)]
    seal(loket)
    later(loket, YEAR)
    retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
    assert verify(loket).ok
    with loket.engine.begin() as conn:
        conn.execute(sa.delete(tombstones_t).where(tombstones_t.c.ref == refs[1]))
    result = verify(loket)
    assert not result.ok and result.ref == refs[1] and "deleted after seal 1" in (result.failure or "")
    loket.engine.dispose()


def test_verify_refuses_tombstones_of_a_run_the_history_does_not_record(db_url: str, tmp_path: Path) -> None:
    loket = make_loket(db_url, tmp_path / "wf")
    closed_case(loket)
    later(loket, YEAR)
    result = retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
    with loket.engine.begin() as conn:
        conn.execute(sa.update(tombstones_t).values(run=result.run + 100))  # type: ignore[operator]
    checked = verify(loket)
    assert not checked.ok and "does not record" in (checked.failure or "")
    loket.engine.dispose()


def test_a_case_closed_in_a_leap_day_is_due_on_the_last_day_of_february(sqlite_url: str, tmp_path: Path) -> None:
    loket = make_loket(sqlite_url, tmp_path / "wf")
    clock = loket.clock
    assert isinstance(clock, FixedClock)
    clock.set(dt.datetime(2028, 2, 29, 10, 0, tzinfo=dt.UTC))
    ref = closed_case(loket)
    clock.set(dt.datetime(2029, 2, 27, 22, 0, tzinfo=dt.UTC))  # 23:00 in Amsterdam: still the 27th
    assert list(retention.due(loket)) == []
    clock.set(dt.datetime(2029, 2, 27, 23, 30, tzinfo=dt.UTC))  # 00:30 on the 28th in Amsterdam
    assert [(d.ref, d.due_on) for d in retention.due(loket)] == [(ref, dt.date(2029, 2, 28))]
    loket.engine.dispose()


# -- redact --------------------------------------------------------------------------------------


def test_redact_erases_the_personal_data_as_case_redact_does_and_keeps_the_case(db_url: str, tmp_path: Path) -> None:
    loket = make_loket(db_url, tmp_path / "wf", action="redact", after="'6 months'")
    ref = closed_case(loket)
    later(loket, dt.timedelta(days=200))
    assert [d.action for d in retention.due(loket)] == ["redact"]
    result = retention.run(loket, "AVG: bewaartermijn persoonsgegevens", by=loket.identity(OPERATOR))
    assert (result.destroyed, result.redacted) == (0, 1)
    case = loket.get_case(ref)
    assert case.redacted_at is not None and "name" not in case.data and "email" not in case.data
    _case, events = loket.history(ref)
    assert events[-1]["action"] == "redacted" and events[-1]["actor"] == OPERATOR
    assert verify(loket).ok
    assert list(retention.due(loket)) == []  # redacted since it closed: not due again
    loket.engine.dispose()


# -- the bytes are gone ----------------------------------------------------------------------------


def test_sqlite_the_destroyed_values_leave_the_files(sqlite_url: str, tmp_path: Path) -> None:
    loket = make_loket(sqlite_url, tmp_path / "wf")
    for i in range(3):
        closed_case(loket, f"Initiatief {i}")
    files = sorted(tmp_path.glob("loket.db*"))
    assert any(SECRET.encode() in f.read_bytes() for f in files)
    later(loket, YEAR)
    result = retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
    assert result.files_clean, result.files_message
    # While this process still has the database open.
    assert [f.name for f in tmp_path.glob("loket.db*") if SECRET.encode() in f.read_bytes()] == []
    assert [f.name for f in tmp_path.glob("loket.db*") if MAIL.encode() in f.read_bytes()] == []
    loket.engine.dispose()


@pytest.mark.postgres
def test_postgresql_the_destroyed_values_leave_the_table_files_at_maintenance(pg_url: str, tmp_path: Path) -> None:
    from conftest import _truncate

    _truncate(pg_url)
    loket = make_loket(pg_url, tmp_path / "wf")
    for i in range(3):
        closed_case(loket, f"Initiatief {i}")

    def files_holding(value: bytes) -> list[str]:
        with loket.engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
            paths = [Path(str(conn.execute(sa.text(
                "SELECT current_setting('data_directory') || '/' || pg_relation_filepath(:t)"), {"t": t}).scalar()))
                for t in ("cases", "case_event", "outbox")]
        return [p.name for p in paths if value in p.read_bytes()]

    assert files_holding(SECRET.encode())
    later(loket, YEAR)
    result = retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
    assert result.destroyed == 3 and not result.files_clean
    # Another test run on the same server may hold back the rewrite a moment: the next run finishes.
    said = [maintain(loket) for _ in range(1)]
    while said[-1] != PG_REWRITTEN and len(said) < 20:
        time.sleep(0.5)
        said.append(maintain(loket))
    assert said[-1] == PG_REWRITTEN, said
    assert files_holding(SECRET.encode()) == [] and files_holding(MAIL.encode()) == []
    assert verify(loket).ok
    loket.engine.dispose()
    _truncate(pg_url)


# -- bad input and runs at once ------------------------------------------------------------------


def test_the_command_line_lists_runs_and_refuses_bad_input_clearly(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loket = make_loket(sqlite_url, tmp_path / "wf", action=None)
    code, _out, err = run_cli(capsys, "--db", sqlite_url, "--as", OPERATOR, "retention", "run", "--reason", "x")
    assert code == 1 and err.startswith("Error: no request type has a retention term")
    loket.load_request_types(write_types(tmp_path / "wf2"))
    code, out, err = run_cli(capsys, "--db", sqlite_url, "retention", "list")
    assert (code, err) == (0, "") and "bewonersinitiatief (destroy after 1 year): no closed cases" in out
    code, out, _ = run_cli(capsys, "--db", sqlite_url, "retention", "run", "--reason", "x")
    assert code == 0 and "nothing is due" in out
    ref = closed_case(loket)
    code, out, _ = run_cli(capsys, "--db", sqlite_url, "retention", "run", "--reason", "x")
    assert code == 0 and "1 closed case(s), none past the term" in out
    later(loket, YEAR)
    # --list where it cannot be written: nothing destroyed.
    for bad in (str(tmp_path / "missing" / "list.csv"), str(tmp_path), str(tmp_path / "loket.db")):
        with pytest.raises(Exception) as info:
            retention.run(loket, "selectielijst", by=loket.identity(OPERATOR), list_path=bad, database=sqlite_url)
        assert getattr(info.value, "exit_code", None) == 2, info.value
        assert count(loket, tombstones_t) == 0 and loket.get_case(ref)
    for reason in ("", "  ", "a\x1bb"):
        with pytest.raises(Exception) as info:
            retention.run(loket, reason, by=loket.identity(OPERATOR))
        assert getattr(info.value, "exit_code", None) == 2
    assert count(loket, tombstones_t) == 0
    loket.engine.dispose()


def test_a_second_run_at_once_is_refused_and_nothing_is_destroyed_twice(db_url: str, tmp_path: Path) -> None:
    from engine.store import retention as store

    loket = make_loket(db_url, tmp_path / "wf")
    for i in range(6):
        closed_case(loket, f"Initiatief {i}")
    later(loket, YEAR)
    first_batch, release = threading.Event(), threading.Event()
    old = store.BATCH
    store.BATCH = 2
    outcome: list[object] = []

    def progress(n: int) -> None:
        first_batch.set()
        release.wait(30)

    def first() -> None:
        outcome.append(retention.run(Loket(loket.engine, loket.clock), "selectielijst",
                                     by=loket.identity(OPERATOR), progress=progress))

    try:
        runner = threading.Thread(target=first)
        runner.start()
        assert first_batch.wait(30)
        with pytest.raises(Conflict, match="another retention run is under way"):
            retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
        release.set()
        runner.join(30)
    finally:
        store.BATCH = old
        release.set()
    assert outcome and outcome[0].destroyed == 6  # type: ignore[attr-defined]
    assert count(loket, tombstones_t) == 6 and count(loket, cases_t) == 0
    # The tombstones' unique case ids: the same case cannot get a second one.
    with loket.read() as conn:
        stone = dict(conn.execute(sa.select(tombstones_t)).mappings().first() or {})
    stone.pop("id")
    with pytest.raises(sa.exc.IntegrityError), loket.engine.begin() as conn:
        conn.execute(sa.insert(tombstones_t).values(**stone))
    assert verify(loket).ok
    loket.engine.dispose()


def test_retention_list_json_names_the_date_the_term_passed(sqlite_url: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    loket = make_loket(sqlite_url, tmp_path / "wf")
    ref = closed_case(loket)
    with loket.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO loket_meta (key, value) VALUES ('simulation', 'true')")
    code, out, err = run_cli(capsys, "--db", sqlite_url, "--now", "2027-03-05T12:00", "retention", "list", "--json")
    assert code == 0, err
    import json

    assert json.loads(out) == [{"ref": ref, "type": "bewonersinitiatief", "type_version": 1,
                                "closed_at": "2026-03-02T09:00:00+00:00", "due_on": "2027-03-02",
                                "action": "destroy", "term": "1 year"}]
    loket.engine.dispose()


# -- the worker ----------------------------------------------------------------------------------


def test_the_worker_runs_retention_only_when_asked(sqlite_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from cli import worker_jobs
    from engine.app.retention import retention_job
    from notifications.delivery import MailSettings

    loket = make_loket(sqlite_url, tmp_path / "wf")
    minute = dt.timedelta(minutes=1)
    settings = MailSettings.from_env()
    assert "retention" not in [j.id for j in worker_jobs(loket, settings, minute, minute, print)]
    jobs = worker_jobs(loket, settings, minute, minute, print, retention=(dt.timedelta(hours=6), "selectielijst", None))
    job = next(j for j in jobs if j.id == "retention")
    assert job.every == dt.timedelta(hours=6) and job.run is retention_job
    for args in (["--retention-every", "1h"], ["--retention-reason", "x"],
                 ["--retention-every", "soon", "--retention-reason", "x"],
                 ["--retention-every", "1h", "--retention-reason", " "]):
        code, _out, err = run_cli(capsys, "--db", sqlite_url, "worker", *args)
        assert code == 2 and err.startswith("Error: ") and len(err.splitlines()) == 1, (args, err)

    ref = closed_case(loket)
    later(loket, YEAR)
    said: list[str] = []
    retention_job(loket, "selectielijst", loket.identity(OPERATOR), said.append)
    assert said and said[0].startswith("retention: run ") and "1 destroyed" in said[0]
    with loket.read() as conn:
        assert conn.execute(sa.select(tombstones_t.c.ref)).scalars().all() == [ref]
    said.clear()
    retention_job(loket, "selectielijst", loket.identity(OPERATOR), said.append)
    assert said == []  # nothing due: nothing to say
    assert retention.unlisted_runs(loket) != []  # the worker writes no list: the next --list names its cases
    loket.engine.dispose()


def test_an_operator_runs_retention_when_the_organisation_names_operators(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = tmp_path / "organisation.yaml"
    text = ORG_FILE.read_text(encoding="utf-8")
    operator = ("\n  - id: o.beheer\n    name: Olaf Beheer\n    email: o.beheer@voorbeeld.example\n"
                "    roles: {\"*\": operator}\n")
    org.write_text(text.rstrip() + operator, encoding="utf-8")
    loket = Loket(open_engine(sqlite_url), FixedClock(START))
    loket.load_organisation(org)
    loket.load_request_types(write_types(tmp_path / "wf"))
    closed_case(loket)
    code, _out, err = run_cli(capsys, "--db", sqlite_url, "--as", CLERK, "retention", "run", "--reason", "x")
    assert code == 1 and "operator" in err and count(loket, tombstones_t) == 0
    later(loket, YEAR)
    with loket.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO loket_meta (key, value) VALUES ('simulation', 'true')")
    code, out, err = run_cli(capsys, "--db", sqlite_url, "--as", "o.beheer", "--now", "2027-03-10T12:00",
                             "retention", "run", "--reason", "selectielijst")
    assert (code, err) == (0, "") and "1 case(s) destroyed" in out and count(loket, tombstones_t) == 1
    loket.engine.dispose()


def test_destroy_erases_the_cases_messages_from_the_operators_failure_reports(db_url: str, tmp_path: Path) -> None:
    from engine.store.tables import outbox_t

    loket = make_loket(db_url, tmp_path / "wf")
    ref = closed_case(loket)
    other = closed_case(loket, "Ander initiatief")
    with loket.engine.begin() as conn:
        ids = {r: loket.get_case(r, conn).id for r in (ref, other)}
        keys = {r: conn.execute(sa.select(outbox_t.c.key).where(outbox_t.c.case_id == ids[r])).scalars().first()
                for r in (ref, other)}
        assert keys[ref] and keys[other]
        failed = [{"key": keys[ref], "kind": "x", "to": MAIL, "subject": f"Uw aanvraag {ref}", "error": "550",
                   "attempts": 5, "created_at": "2026-03-02T09:00:00Z"},
                  {"key": keys[other], "kind": "x", "to": "ander@example.org", "subject": "Uw aanvraag",
                   "error": "550", "attempts": 5, "created_at": "2026-03-02T09:00:00Z"}]
        conn.execute(sa.insert(outbox_t).values(
            key="delivery-failed/test/o", case_id=None, kind="delivery_failed", language="nl", recipient="d.smit",
            to_email="d.smit@voorbeeld.example", subject="2 e-mail(s) niet afgeleverd",
            context={"count": 2, "failed": failed}, created_at=START, status="sent", attempts=1))
    later(loket, YEAR)
    with loket.engine.begin() as conn:  # only `ref` is destroyed: the other case closed later
        conn.execute(sa.update(cases_t).where(cases_t.c.id == ids[other]).values(closed_at=START + YEAR))
    result = retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
    assert result.destroyed == 1
    with loket.read() as conn:
        context = conn.execute(sa.select(outbox_t.c.context).where(outbox_t.c.kind == "delivery_failed")).scalar_one()
    assert [(f["to"], f["subject"]) for f in context["failed"]] == [
        ("[verwijderd]", "[verwijderd]"), ("ander@example.org", "Uw aanvraag")]
    loket.engine.dispose()


def test_a_page_of_cases_not_due_after_all_does_not_end_the_run(sqlite_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.store import retention as store

    monkeypatch.setattr(store, "BATCH", 1)
    loket = make_loket(sqlite_url, tmp_path / "wf")
    first = loket.new_case("bewonersinitiatief", ["title=Eerst gemaakt"], actor=CLERK).ref
    second = loket.new_case("bewonersinitiatief", ["title=Later gemaakt"], actor=CLERK).ref
    loket.advance(second, "intrekken", comment="ingetrokken", actor=CLERK)  # closed 2 March 2026
    later(loket, dt.timedelta(days=3))
    loket.advance(first, "intrekken", comment="ingetrokken", actor=CLERK)  # closed 5 March 2026
    later(loket, dt.timedelta(days=363))  # 3 March 2027: only the second's term has passed
    assert [d.ref for d in retention.due(loket)] == [second]
    result = retention.run(loket, "selectielijst", by=loket.identity(OPERATOR))
    assert result.destroyed == 1 and [c.ref for c in loket.list_cases()] == [first]
    loket.engine.dispose()


def test_destroy_takes_the_cases_access_log_rows_with_it(db_url: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Every table that holds rows of a case goes with it, the access log (SPEC §13.2) too;
    the log's rows of other cases stay."""
    from engine.store.tables import access_t

    loket = make_loket(db_url, tmp_path / "wf")
    gone = closed_case(loket, "Verdwijnt")
    kept = loket.new_case("bewonersinitiatief", ["title=Blijft", f"name={SECRET}"], actor=CLERK).ref
    for ref in (gone, kept):  # an auditor reads the personal values of both
        code, _out, err = run_cli(capsys, "--db", db_url, "--as", "d.smit", "case", "show", ref)
        assert code == 0, err
    with loket.read() as conn:
        assert sorted(conn.execute(sa.select(access_t.c.ref)).scalars()) == sorted([gone, kept])
    later(loket, YEAR)
    result = retention.run(loket, "selectielijst 2020, categorie 1.1", by=loket.identity(OPERATOR))
    assert result.destroyed == 1
    with loket.read() as conn:
        assert conn.execute(sa.select(access_t.c.ref)).scalars().all() == [kept]
        assert conn.execute(sa.select(sa.func.count()).select_from(access_t)
                            .where(access_t.c.case_id.not_in(sa.select(cases_t.c.id)))).scalar_one() == 0
    assert verify(loket).ok
    loket.engine.dispose()
