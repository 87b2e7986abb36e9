"""The people around a case (SPEC §11) on both databases: each message of a change is an
outbox row written in the change's own transaction, once per event and recipient whatever
retries and races it goes through; redaction erases the resident from the outbox, bytes
included; and `case show` tells a reader what happened lately and how to resume.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ORG_FILE, START, WORKFLOWS, run_cli

from engine.app import maintenance
from engine.app.clock import FixedClock
from engine.app.redact import CANCELLED, redact
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.app.verify import verify
from engine.core.notices import EventFacts
from engine.core.vocabulary import MailKind, OutboxStatus
from engine.errors import Conflict, LoketError
from engine.store import outbox
from engine.store.db import open_engine
from engine.store.tables import outbox_t

CLERK, OTHER, LEAD, HEAD = "c.devries", "l.mulder", "b.bakker", "a.jansen"
SECRET = "Geertruida Zwanenburg"
MAIL = "g.zwanenburg.geheim@example.org"
BI = "bewonersinitiatief"
TYPES = sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml")


def _loket(url: str, org_file: Path = ORG_FILE) -> Loket:
    loket = Loket(open_engine(url), FixedClock(START))
    loket.load_organisation(org_file)
    loket.load_request_types(TYPES)
    return loket


def _rows(loket: Loket) -> list[dict[str, Any]]:
    with loket.read() as conn:
        return outbox.listing(conn)


def _keys(loket: Loket) -> list[str]:
    return [row["key"] for row in _rows(loket)]


def _events(loket: Loket, ref: str) -> list[dict[str, Any]]:
    return loket.history(ref)[1]


# -- written with the change -----------------------------------------------------------------


def test_the_messages_of_a_change_are_written_with_its_events(db_url: str) -> None:
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest", f"email={MAIL}", f"name={SECRET}"], actor=CLERK,
                         assign=OTHER).ref
    loket.advance(ref, "in_behandeling", actor=OTHER)
    loket.advance(ref, "vraag_bijdrage", actor=OTHER, assignments=["amount=450"], comment="Past het op het plein?")
    rows = {row["key"]: row for row in _rows(loket)}
    assert list(rows) == [f"{ref}/e1/requester", f"{ref}/e2/{OTHER}", f"{ref}/e4/unit:openbare_ruimte"]
    assert [(r["kind"], r["recipient"], r["to_email"], r["status"]) for r in rows.values()] == [
        (MailKind.RESIDENT_CREATED, "requester", MAIL, OutboxStatus.PENDING),
        (MailKind.ASSIGNED, OTHER, "l.mulder@voorbeeld.example", OutboxStatus.PENDING),
        (MailKind.HANDED_OVER, "unit:openbare_ruimte", "openbareruimte@voorbeeld.example", OutboxStatus.PENDING),
    ]
    handed = EventFacts.from_json(rows[f"{ref}/e4/unit:openbare_ruimte"]["context"])
    assert (handed.event_seq, handed.from_unit_name, handed.unit_name, handed.comment, handed.actor_name) == (
        4, "Wijkteam Noord", "Openbare Ruimte", "Past het op het plein?", "Lotte Mulder")
    assert handed.summary == [["Naam van het initiatief", "Straatfeest"], ["Gevraagd bedrag (EUR)", "450"]]
    for row in rows.values():
        assert SECRET not in str(row) and "Geertruida" not in row["subject"]
    assert verify(loket).ok
    loket.engine.dispose()


class _DiskFull(Exception):
    pass


def test_a_change_whose_mail_cannot_be_written_writes_nothing(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest", "amount=450"], actor=CLERK).ref
    loket.advance(ref, "in_behandeling", actor=CLERK)
    before = loket.get_case(ref)

    def full(conn: sa.Connection, rows: Any) -> None:
        raise _DiskFull

    monkeypatch.setattr(outbox, "queue_new", full)
    with pytest.raises(_DiskFull):
        loket.advance(ref, "vraag_bijdrage", actor=CLERK)
    after = loket.get_case(ref)
    assert (after.state, after.last_seq, after.version) == (before.state, before.last_seq, before.version)
    assert len(_events(loket, ref)) == before.last_seq
    assert _keys(loket) == []
    loket.engine.dispose()


def test_a_change_retried_after_a_conflict_queues_its_mail_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt queues its message and then loses its transaction: the retry, planned
    again, queues the same key once."""
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest", "amount=450"], actor=CLERK).ref
    loket.advance(ref, "in_behandeling", actor=CLERK)
    real = outbox.queue_new
    calls: list[int] = []

    def then_lose(conn: sa.Connection, rows: Any) -> None:
        real(conn, rows)
        calls.append(len(rows))
        if len(calls) == 1:
            raise Conflict("someone else wrote first")

    monkeypatch.setattr(outbox, "queue_new", then_lose)
    loket.advance(ref, "vraag_bijdrage", actor=CLERK)
    assert calls == [1, 1]
    assert _keys(loket) == [f"{ref}/e3/unit:openbare_ruimte"]
    loket.engine.dispose()


def _together(actions: list[Any]) -> list[object]:
    """Run the actions in threads that start at the same moment; what each returned or raised."""
    ready = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def run(i: int) -> None:
        ready.wait()
        try:
            results[i] = actions[i]()
        except LoketError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_concurrent_changes_queue_each_message_once(db_url: str) -> None:
    """Four people hand the same case over at once, and four leads assign it: one hand-over
    happens, and each assignment that happened has its one message."""
    lokets = [_loket(db_url) for _ in range(4)]
    ref = lokets[0].new_case(BI, ["title=Straatfeest", "amount=450"], actor=CLERK).ref
    lokets[0].advance(ref, "in_behandeling", actor=CLERK)
    actors = [CLERK, OTHER, "t.visser", LEAD]
    results = _together([lambda app=app, who=who: app.advance(ref, "vraag_bijdrage", actor=who)
                         for app, who in zip(lokets, actors, strict=True)])
    assert sum(1 for r in results if not isinstance(r, LoketError)) == 1
    people = ["k.hendriks", "n.yilmaz", "c.devries", "k.hendriks"]
    _together([lambda app=app, who=who: app.assign(ref, who, actor="e.vanleeuwen")
               for app, who in zip(lokets, people, strict=True)])

    keys = _keys(lokets[0])
    assert len(keys) == len(set(keys))
    events = _events(lokets[0], ref)
    handovers = [e["seq"] for e in events if e["action"] == "transition" and e["trigger"] == "vraag_bijdrage"]
    assigned = [(e["seq"], e["data"]["assignee"]) for e in events if e["action"] == "assigned"]
    assert len(handovers) == 1 and assigned
    assert Counter(keys) == Counter([f"{ref}/e{handovers[0]}/unit:openbare_ruimte",
                                     *(f"{ref}/e{seq}/{who}" for seq, who in assigned)])
    assert verify(lokets[0]).ok
    for app in lokets:
        app.engine.dispose()


# -- the sweep -------------------------------------------------------------------------------

TIMEOUT = dt.datetime(2026, 4, 1, 21, 59, 59, tzinfo=dt.UTC)
"""When a bewonersinitiatief sent to Openbare Ruimte on Mon 2 March times out back to the
wijkteam (tests/test_ladder.py derives it)."""


def _at_openbare_ruimte(loket: Loket) -> str:
    ref = loket.new_case(BI, ["title=Moestuin", "amount=800", f"email={MAIL}"], actor=CLERK).ref
    loket.advance(ref, "in_behandeling", actor=CLERK)
    loket.advance(ref, "vraag_bijdrage", actor=CLERK)
    return ref


def test_sweeps_racing_on_a_timeout_hand_over_make_one_row(db_url: str) -> None:
    lokets = [_loket(db_url) for _ in range(4)]
    ref = _at_openbare_ruimte(lokets[0])
    before = set(_keys(lokets[0]))
    reports = _together([lambda app=app: sweep(app, TIMEOUT) for app in lokets])
    fired = [f for r in reports if not isinstance(r, LoketError) for f in r.fired]  # type: ignore[attr-defined]
    assert Counter(f["rung"] for f in fired)["timeout"] == 1
    seq = next(e["seq"] for e in _events(lokets[0], ref) if e["trigger"] == "geen_reactie_openbare_ruimte")
    new = [key for key in _keys(lokets[0]) if key not in before]
    assert len(new) == len(set(new))
    # The timeout tells the wijkteam's lead (nobody holds the case); its mailbox hears of the
    # hand-over. The resident is not told of an internal step.
    assert f"{ref}/3/timeout" in new and new.count(f"{ref}/e{seq}/unit:wijkteam") == 1
    assert not [key for key in new if key.endswith("/requester")]
    assert verify(lokets[0]).ok
    for app in lokets:
        app.engine.dispose()


def test_whom_a_timeout_tells_is_not_told_of_its_hand_over_again(sqlite_url: str, tmp_path: Path) -> None:
    """Without a mailbox the wijkteam's hand-overs go to its lead, who hears of this one from
    the timeout's own message already."""
    text = ORG_FILE.read_text(encoding="utf-8").replace(", email: wijkteam.noord@voorbeeld.example", "")
    assert "wijkteam.noord" not in text
    org_file = tmp_path / "organisation.yaml"
    org_file.write_text(text, encoding="utf-8")
    loket = _loket(sqlite_url, org_file)
    ref = _at_openbare_ruimte(loket)
    sweep(loket, TIMEOUT)
    rows = [row for row in _rows(loket) if row["key"].startswith(ref)]
    mine = [(row["kind"], row["recipient"]) for row in rows if row["recipient"] == LEAD]
    assert mine == [(MailKind.TIMEOUT, LEAD)]
    loket.engine.dispose()


# -- redaction -------------------------------------------------------------------------------


def _sqlite_files_holding(folder: Path, value: str) -> list[str]:
    return sorted(f.name for f in folder.glob("loket.db*") if value.encode() in f.read_bytes())


def _pg_files_holding(loket: Loket, value: str) -> list[str]:
    with loket.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        paths = [Path(str(conn.execute(
            sa.text("SELECT current_setting('data_directory') || '/' || pg_relation_filepath(:t)"), {"t": table},
        ).scalar())) for table in ("cases", "case_event", "outbox")]
    return [path.name for path in paths if value.encode() in path.read_bytes()]


def _failed_mail_report(loket: Loket, ref: str) -> None:
    """The operators' report of mail that could not be delivered, naming the address."""
    with loket.engine.begin() as conn:
        conn.execute(sa.insert(outbox_t).values(
            key="delivery_failed/1", case_id=None, kind=MailKind.DELIVERY_FAILED, language="nl",
            recipient="operator", to_email="beheer@voorbeeld.example", to_name="Beheer", subject="Mislukte mail",
            context={"count": 1, "failed": [{"key": f"{ref}/e1/requester", "to": MAIL,
                                             "error": f"550 <{MAIL}>: no such user"}]},
            created_at=START, status=OutboxStatus.SENT, attempts=1))


def test_redaction_erases_the_resident_from_the_outbox_down_to_the_bytes(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest", f"name={SECRET}", f"email={MAIL}"], actor=CLERK).ref
    loket.advance(ref, "in_behandeling", actor=CLERK)
    loket.advance(ref, "vraag_informatie", actor=CLERK, comment="Stuur de begroting na")
    loket.advance(ref, "informatie_ontvangen", actor=CLERK)
    loket.advance(ref, "vraag_bijdrage", actor=CLERK, assignments=["amount=450"])
    other = loket.new_case(BI, ["title=Buurtmoestuin", "email=buur@example.org"], actor=CLERK).ref
    with loket.engine.begin() as conn:  # the acknowledgement went out; the rest waits
        conn.execute(sa.update(outbox_t).where(outbox_t.c.key == f"{ref}/e1/requester")
                     .values(status=OutboxStatus.SENT, subject=f"Ontvangstbevestiging {ref}"))
    _failed_mail_report(loket, ref)
    resident = {row["key"] for row in _rows(loket) if row["key"].startswith(ref) and row["recipient"] == "requester"}
    assert resident == {f"{ref}/e1/requester", f"{ref}/e3/requester", f"{ref}/e4/requester"}

    code, out, err = run_cli(capsys, "--db", db_url, "--as", "h.smits", "case", "redact", ref,  # head there
                             "--reason", "bewaartermijn")
    assert (code, err) == (0, "")
    assert out.startswith("redacted: email, name\n")
    assert ("mail: erased from 4 message(s) in the outbox; 2 message(s) to the resident not yet sent are"
            " cancelled; 1 message(s) already delivered to the resident are out of reach (sent .eml files,"
            " mailboxes)\n") in out

    rows = {row["key"]: row for row in _rows(loket)}
    for key in resident:
        assert (rows[key]["to_email"], rows[key]["to_name"]) == ("", None)
    assert rows[f"{ref}/e1/requester"]["status"] == OutboxStatus.SENT
    for key in (f"{ref}/e3/requester", f"{ref}/e4/requester"):
        assert (rows[key]["status"], rows[key]["last_error"], rows[key]["next_attempt_at"]) == (
            OutboxStatus.FAILED, CANCELLED, None)
    assert rows[f"{ref}/e5/unit:openbare_ruimte"]["status"] == OutboxStatus.PENDING  # staff still hear of it
    assert rows["delivery_failed/1"]["context"]["failed"][0] == {
        "key": f"{ref}/e1/requester", "to": "[verwijderd]", "error": "550 <[verwijderd]>: no such user"}
    assert rows[f"{other}/e1/requester"]["to_email"] == "buur@example.org"  # another case keeps its mail
    for row in rows.values():
        assert SECRET not in str(row) and MAIL not in str(row)
    # Nothing to send: a cancelled message is not taken up by a delivery run.
    with loket.engine.begin() as conn:
        claimed = outbox.claim(conn, START + dt.timedelta(days=1), 100, lease=dt.timedelta(minutes=5), owner="t")
    assert {row["key"] for row in claimed} == {f"{ref}/e5/unit:openbare_ruimte", f"{other}/e1/requester"}

    if loket.engine.dialect.name == "sqlite":
        assert "files: " + maintenance.GONE in out
        assert _sqlite_files_holding(tmp_path, MAIL) == [] and _sqlite_files_holding(tmp_path, SECRET) == []
    else:
        # The worker's maintenance rewrites the tables; a run that meets another session on
        # them (autovacuum, on a busy machine), or that had to keep old row versions, defers to
        # the next one, as the worker's would.
        done = maintenance.run(loket)
        for _ in range(50):
            assert done is not None
            if done.clean:
                break
            time.sleep(0.2)  # for the other session to end, not for a deadline
            done = maintenance.run(loket)
        assert done is not None and done.message == maintenance.PG_REWRITTEN, done
        assert _pg_files_holding(loket, MAIL) == [] and _pg_files_holding(loket, SECRET) == []
    assert verify(loket).ok
    loket.engine.dispose()


def test_redaction_erases_personal_values_from_what_staff_messages_tell(db_url: str) -> None:
    """A comment that names the resident stays in the history (the chain holds it), but the
    messages in the outbox lose the name, sent or not."""
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest", f"name={SECRET}", "amount=450"], actor=CLERK).ref
    loket.advance(ref, "in_behandeling", actor=CLERK)
    loket.advance(ref, "vraag_bijdrage", actor=CLERK, comment=f"Overleg met {SECRET} over de plek")
    assert redact(loket, ref, "bewaartermijn", actor="h.smits").mail == (1, 0, 0)
    (row,) = _rows(loket)
    assert row["context"]["comment"] == "Overleg met [verwijderd] over de plek"
    assert row["status"] == OutboxStatus.PENDING
    loket.engine.dispose()


def test_redaction_says_what_it_did_to_the_mail_in_json(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest", f"email={MAIL}"], actor=CLERK).ref
    code, out, _ = run_cli(capsys, "--db", db_url, "--as", HEAD, "case", "redact", ref, "--reason", "bewaartermijn",
                           "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["mail"]["changed"] == 1 and shown["mail"]["cancelled"] == 1 and shown["mail"]["delivered"] == 0
    assert "out of reach" in shown["mail"]["message"] and "erasure" in shown
    loket.engine.dispose()


# -- what a reader finds ---------------------------------------------------------------------


def test_case_show_lists_the_latest_events_and_how_to_resume(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    loket = _loket(db_url)
    ref = loket.new_case(BI, ["title=Straatfeest"], actor=CLERK).ref
    for i in range(5):
        loket.comment(ref, f"Opmerking {i}", actor=CLERK)
    loket.suspend(ref, "Wacht op de vergunning", actor=CLERK)
    code, out, _ = run_cli(capsys, "--db", db_url, "--as", CLERK, "case", "show", ref)
    assert code == 0
    lines = out.splitlines()
    assert f"  resume with   loket case resume {ref}" in lines
    start = lines.index("  latest events (audit history shows all)")
    shown = lines[start + 1:start + 6]
    assert [line.split()[3] for line in shown] == ["comment"] * 4 + ["suspended"]
    assert shown[0].endswith("Opmerking 1") and shown[-1].endswith("Wacht op de vergunning")
    assert "created" not in out.split("latest events")[1]  # only the latest five

    code, out, _ = run_cli(capsys, "--db", db_url, "case", "show", ref, "--json")
    view = json.loads(out)
    assert [e["seq"] for e in view["recent_events"]] == [3, 4, 5, 6, 7]
    assert view["recent_events"][0]["comment"] == "Opmerking 1" and view["suspended"] is True
    loket.resume(ref, actor=CLERK)
    code, out, _ = run_cli(capsys, "--db", db_url, "--as", CLERK, "case", "show", ref)
    assert "resume with" not in out
    loket.engine.dispose()
