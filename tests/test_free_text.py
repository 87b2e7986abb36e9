"""Free text is erasable (SPEC §15): comments, `text` field values, instruction texts and typed
reasons enter the chain by a digest under a salt of their own, so `case redact --comments` and
`--field F` erase them with the chain still verifying and the bytes gone from the files. Events
written before (schema revision 0005) keep their format: their texts are listed, not erased.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import START, run_cli

from engine.app import maintenance
from engine.app.clock import FixedClock
from engine.app.redact import OLD_FORMAT, redact
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core.durations import parse_term
from engine.core.history import COMMENT, OWN
from engine.errors import InvalidValue, Refused
from engine.store.db import SCHEMA_REVISION, current_revision, migrate, open_engine
from engine.store.tables import cases_t, events_t, outbox_t

CLERK, HEAD, ALDERMAN = "c.devries", "a.jansen", "wethouder.wijken"
COMMENT_SECRET = "Melder Els de Wit, tel 06-98765432"
DESCRIPTION = "Buurman Kees Oudevrijs parkeert op de stoep"
REASON = "Wachten op de brief van Jan Klaassen"
INSTRUCTION = "Bel mevrouw Bakhuizen-Terpstra vandaag nog"
OLD_DUMP = Path(__file__).resolve().parent / "data" / "loket-0005.sql"


def _events(loket: Loket, ref: str) -> list[dict[str, Any]]:
    with loket.engine.connect() as conn:
        case_id = conn.execute(sa.select(cases_t.c.id).where(cases_t.c.ref == ref)).scalar()
        rows = conn.execute(sa.select(events_t).where(events_t.c.case_id == case_id)
                            .order_by(events_t.c.seq)).mappings().all()
    return [dict(r) for r in rows]


def _set_event(loket: Loket, ref: str, seq: int, **values: Any) -> None:
    event = next(e for e in _events(loket, ref) if e["seq"] == seq)
    with loket.engine.begin() as conn:
        conn.execute(sa.update(events_t).where(events_t.c.id == event["id"]).values(**values))


def _full_case(loket: Loket) -> str:
    """A case with free text everywhere: a text field, a comment, an instruction, a reason."""
    ref = loket.new_case("bewonersinitiatief", ["title=Straatfeest", f"description={DESCRIPTION}"],
                         actor=CLERK).ref
    loket.comment(ref, COMMENT_SECRET, actor=CLERK)
    loket.direct(ref, parse_term("5wd"), INSTRUCTION, actor=ALDERMAN)
    loket.suspend(ref, REASON, actor=CLERK)
    return ref


def _files_holding(loket: Loket, value: bytes) -> list[str]:
    """The database files (SQLite) or table files (PostgreSQL) that hold `value`."""
    url = loket.engine.url
    if url.get_backend_name() == "sqlite":
        folder = Path(str(url.database)).parent
        return sorted(f.name for f in folder.glob("loket.db*") if value in f.read_bytes())
    with loket.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        paths = [Path(str(conn.execute(
            sa.text("SELECT current_setting('data_directory') || '/' || pg_relation_filepath(:t)"), {"t": t},
        ).scalar())) for t in ("cases", "case_event", "outbox")]
    return [p.name for p in paths if value in p.read_bytes()]


def _maintained(loket: Loket) -> None:
    """Maintenance until the files are clean (on PostgreSQL another test process's session may
    hold a rewrite back for a moment); it must get there."""
    said = ""
    for _ in range(20):
        done = maintenance.run(loket)
        if done is None or done.clean:
            return
        said = done.message
        time.sleep(0.5)
    raise AssertionError(f"the files stayed unclean: {said}")


def test_free_text_enters_the_chain_by_digest_under_its_own_salt(loket: Loket) -> None:
    ref = _full_case(loket)
    created, commented, directed, suspended = _events(loket, ref)
    assert set(created["salts"]) == {"description", "title"}
    assert created["digests"]["description"].startswith(OWN)
    assert commented["comment"] == COMMENT_SECRET and commented["digests"][COMMENT].startswith(OWN)
    assert set(commented["salts"]) == {COMMENT}
    assert directed["digests"]["text"].startswith(OWN) and set(directed["salts"]) == {"text"}
    assert suspended["digests"]["reason"].startswith(OWN) and set(suspended["salts"]) == {"reason"}
    # Each text its own salt: erasing one leaves nothing that confirms a guess of another.
    salts = [s for e in (created, commented, directed, suspended) for s in e["salts"].values()]
    assert len(set(salts)) == len(salts)
    assert verify(loket).ok


def test_redact_comments_erases_comments_instructions_and_reasons_and_the_chain_verifies(
    loket: Loket, capsys: pytest.CaptureFixture[str], db_url: str,
) -> None:
    ref = _full_case(loket)
    other = loket.new_case("bewonersinitiatief", ["title=Buurtmoestuin"], actor=CLERK).ref
    loket.comment(other, "Blijft staan", actor=CLERK)
    assert _files_holding(loket, COMMENT_SECRET.encode())
    with loket.engine.connect() as conn:
        contexts = json.dumps([r for r in conn.execute(sa.select(outbox_t.c.context)).scalars()])
    assert INSTRUCTION in contexts  # the instruction went out to the unit

    code, out, err = run_cli(capsys, "--db", db_url, "--as", HEAD, "case", "redact", ref,
                             "--comments", "--reason", "bewaartermijn", "--json")

    assert (code, err) == (0, ""), err
    shown = json.loads(out)
    assert shown["redacted"] == {"fields": [], "texts": 3, "not_erased": []}
    events = _events(loket, ref)
    assert [e["comment"] for e in events[:4]] == [None, None, None, None]
    assert "text" not in events[2]["data"] and "reason" not in events[3]["data"]
    assert events[1]["salts"] is None and events[2]["salts"] is None and events[3]["salts"] is None
    assert events[0]["data"]["description"] == DESCRIPTION  # not asked for
    assert events[-1]["action"] == "redacted" and events[-1]["data"]["texts"] == 3
    assert _events(loket, other)[1]["comment"] == "Blijft staan"
    result = verify(loket)
    assert result.ok, result.failure
    # Gone from the outbox's stored context ...
    with loket.engine.connect() as conn:
        contexts = json.dumps([r for r in conn.execute(sa.select(outbox_t.c.context)).scalars()])
    assert INSTRUCTION not in contexts
    # ... and from the files, once maintenance rewrote them.
    _maintained(loket)
    for secret in (COMMENT_SECRET, INSTRUCTION, REASON):
        assert _files_holding(loket, secret.encode()) == [], secret
    # A later comment is erasable again (the command ran on the system clock).
    loket.clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))  # type: ignore[attr-defined]
    loket.comment(ref, "Nog een telefoonnummer: 06-11112222", actor=CLERK)
    assert redact(loket, ref, "opnieuw", actor=HEAD, comments=True).texts == 1
    assert verify(loket).ok


def test_redact_field_erases_a_text_field_from_history_row_and_files(
    loket: Loket, capsys: pytest.CaptureFixture[str], db_url: str,
) -> None:
    ref = _full_case(loket)
    loket.resume(ref, actor=CLERK)
    loket.set_fields(ref, ["description=Nu woont Kees Oudevrijs er niet meer"], actor=CLERK)

    code, out, err = run_cli(capsys, "--db", db_url, "--as", HEAD, "case", "redact", ref,
                             "--field", "description", "--reason", "bewaartermijn")

    assert (code, err) == (0, ""), err
    assert out.startswith("redacted: description\n")
    assert "description" not in loket.get_case(ref).data
    assert all("description" not in (e["data"] or {}) for e in _events(loket, ref))
    assert _events(loket, ref)[0]["data"]["title"] == "Straatfeest"
    assert _events(loket, ref)[1]["comment"] == COMMENT_SECRET  # not asked for
    result = verify(loket)
    assert result.ok, result.failure
    _maintained(loket)
    assert _files_holding(loket, b"Kees Oudevrijs") == []


def test_a_pseudonymised_export_replaces_digested_texts_and_survives_their_erasure(
    loket: Loket, capsys: pytest.CaptureFixture[str], db_url: str,
) -> None:
    ref = _full_case(loket)
    auditor = ["--db", db_url, "--as", "d.smit", "audit", "export", "--pseudonymise"]
    code, before, err = run_cli(capsys, *auditor)
    assert (code, err) == (0, ""), err
    rows = [json.loads(line) for line in before.splitlines()]
    assert rows[1]["comment"].startswith("tekst-") and rows[0]["data"]["description"].startswith("tekst-")
    assert all(secret not in before for secret in (COMMENT_SECRET, DESCRIPTION, INSTRUCTION, REASON))
    redact(loket, ref, "bewaartermijn", actor=HEAD, comments=True)
    code, after, err = run_cli(capsys, *auditor)
    assert (code, err) == (0, ""), err
    rows = [json.loads(line) for line in after.splitlines()]
    assert [r["comment"] for r in rows[:4]] == [None, None, None, None] and "reason" not in rows[3]["data"]


def test_redact_refuses_a_field_that_holds_no_free_text_and_an_unknown_one(loket: Loket) -> None:
    ref = _full_case(loket)
    with pytest.raises(InvalidValue, match="a decimal field, not free text"):
        redact(loket, ref, "x", actor=HEAD, fields=["amount"])
    with pytest.raises(InvalidValue, match="has no such field"):
        redact(loket, ref, "x", actor=HEAD, fields=["nope"])
    redact(loket, ref, "x", actor=HEAD, comments=True)
    with pytest.raises(Refused, match="holds none of the texts asked for"):
        redact(loket, ref, "x", actor=HEAD, comments=True)


# -- an attacker ---------------------------------------------------------------------------------


def test_an_edited_digested_comment_or_text_is_caught(loket: Loket) -> None:
    ref = _full_case(loket)
    _set_event(loket, ref, 2, comment="Niets bijzonders")
    result = verify(loket)
    assert not result.ok and result.failure == f"{ref} event 2: its comment was altered (it does not match its digest)"
    _set_event(loket, ref, 2, comment=COMMENT_SECRET)
    assert verify(loket).ok
    # A text put back without its salt (a forger does not have it) is caught as well.
    _set_event(loket, ref, 4, salts=None)
    assert verify(loket).failure == f"{ref} event 4: data 'reason' was altered (it does not match its digest)"


def test_switching_an_events_format_breaks_its_hash(loket: Loket) -> None:
    """Which form a text has is in `digests`, which the hash covers: taking the digest away
    (the text then hashed in clear) or adding one (to an event that hashed its text in
    clear) is an edit."""
    ref = _full_case(loket)
    commented = _events(loket, ref)[1]
    _set_event(loket, ref, 2, digests=None, salts=None)
    assert verify(loket).failure == f"{ref} event 2: its content does not match its hash (edited)"
    _set_event(loket, ref, 2, digests=commented["digests"], salts=commented["salts"])
    assert verify(loket).ok
    # After erasure, a comment slipped back into the erased event is caught.
    redact(loket, ref, "bewaartermijn", actor=HEAD, comments=True)
    _set_event(loket, ref, 2, comment="Verzonnen opmerking")
    assert verify(loket).failure == f"{ref} event 2: its comment was altered (it does not match its digest)"


# -- a database made by the version before --------------------------------------------------------


def _old_database(tmp_path: Path) -> Loket:
    path = tmp_path / "loket.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_DUMP.read_text())
    db.close()
    engine = open_engine(f"sqlite:///{path}")
    assert current_revision(engine) == "0005"
    migrate(engine)
    assert current_revision(engine) == SCHEMA_REVISION
    return Loket(engine, FixedClock(START.replace(hour=15)))


def test_a_database_made_by_revision_0005_upgrades_and_every_chain_still_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    loket = _old_database(tmp_path)
    ref = "BI-2026-00001"
    result = verify(loket)
    assert result.ok and result.events == 3, result.failure

    # Nothing it holds can be erased: it says which and why, and writes nothing.
    with pytest.raises(Refused, match=r"none of the texts asked for can be erased.*event 2 \(comment\), event 3"
                                      r" \(reason\)"):
        redact(loket, ref, "bewaartermijn", actor=HEAD, comments=True)
    assert len(_events(loket, ref)) == 3

    loket.resume(ref, actor=CLERK)
    loket.comment(ref, "Na de upgrade: Els de Wit belde opnieuw", actor=CLERK)
    code, out, err = run_cli(capsys, "--db", str(loket.engine.url), "--as", HEAD, "case", "redact", ref,
                             "--comments", "--reason", "bewaartermijn")
    assert (code, err) == (0, ""), err
    assert out.startswith("redacted: 1 text(s)\n")
    assert f"not erased: event 2 (comment): {OLD_FORMAT}\n" in out
    assert f"not erased: event 3 (reason): {OLD_FORMAT}\n" in out
    events = _events(loket, ref)
    assert events[1]["comment"].startswith("Melder Els de Wit") and events[4]["comment"] is None
    assert verify(loket).ok
    # The same in JSON.
    db = ["--db", str(loket.engine.url)]
    assert run_cli(capsys, *db, "--as", CLERK, "case", "comment", ref, "Nog eens gebeld")[0] == 0
    code, out, err = run_cli(capsys, *db, "--as", HEAD, "case", "redact", ref, "--comments", "--reason", "opnieuw",
                             "--json")
    assert (code, err) == (0, ""), err
    assert json.loads(out)["redacted"] == {"fields": [], "texts": 1, "not_erased": [
        {"seq": 2, "what": "comment", "why": OLD_FORMAT}, {"seq": 3, "what": "reason", "why": OLD_FORMAT}]}

    code, out, err = run_cli(capsys, "--db", str(loket.engine.url), "--as", HEAD, "case", "redact", ref,
                             "--field", "description", "--reason", "bewaartermijn")
    assert (code, out) == (1, "") and "event 1 (field 'description')" in err

    # The personal fields erase as they always did, old events included (the commands ran on
    # the system clock).
    loket.clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))  # type: ignore[attr-defined]
    done = redact(loket, ref, "bewaartermijn", actor=HEAD)
    assert done.fields == ["email", "name"]
    result = verify(loket)
    assert result.ok, result.failure
    loket.engine.dispose()
