"""`loket demo`, the main job: in an empty folder, from the installed package, the same each time."""

from __future__ import annotations

import email
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_cli

from engine.app.service import Loket
from engine.app.verify import verify
from engine.store.db import open_engine
from engine.store.tables import cases_t, events_t


def test_the_demo_runs_in_an_empty_folder_and_leaves_a_verifiable_municipality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    code, out, err = run_cli(capsys, "demo", "--dir", str(folder), "--days", "21", "--seed", "7")
    assert code == 0, err
    assert "Traceback" not in err
    for section in ("week of 2026-03-02", "Per request type", "escalations by rung", "administrators:",
                    "messages by kind:", "resident_created:", "handed_over:", "database:", "emails:", "report:",
                    "audit config", "audit access"):
        assert section in out
    emails = sorted((folder / "outbox").glob("*.eml"))
    assert emails, "three weeks with slow partners must escalate something"
    # Leads get digests: the summary counts them, and they are there as files.
    digests = [path for path in emails if "_digest_" in path.name]
    assert digests and f"({len(emails)} messages, {len(digests)} of them digests" in out
    messages = [email.message_from_bytes(path.read_bytes(), policy=policy.default) for path in emails]
    bodies = [message.get_body(("plain",)) for message in messages]
    assert all(message["Subject"] for message in messages) and None not in bodies
    # Staff are told how to open the case (residents are not: they have no loket).
    assert any("loket case show" in body.get_content() for body in bodies if body is not None)
    page = (folder / "rapport.html").read_text(encoding="utf-8")
    assert "Gemeente Voorbeeld" in page and page.count('<svg class="chart-svg"') == 4 + 3  # and waiting per type
    assert "<script" not in page and len(page.encode()) < 1_000_000  # no chart library inside
    public = folder / "resultaten.html"
    assert f"public:   {public.resolve()}" in out
    results = public.read_text(encoding="utf-8")
    assert "Resultaten van de wijkaanpak in Gemeente Voorbeeld" in results and "<svg" in results
    assert "Onlangs gerealiseerd" in results and "<script" not in results
    loket = Loket(open_engine(f"sqlite:///{folder / 'loket.db'}"))
    org = loket.organisation()
    with loket.read() as conn:
        refs = [row[0] for row in conn.exec_driver_sql("SELECT ref FROM cases")]
    assert refs and not [r for r in refs if r in results]
    assert not [p.id for p in org.people.values() if p.id in results or p.name in results]
    assert loket.is_simulation()
    result = verify(loket)
    # Made as a simulation, its organisation, its types, and its seal at the end.
    assert result.ok and result.config_events == 4
    # A head erased the free text of a closed case; the chain above still verified.
    erased = re.search(r"^free text: (\d+) comment\(s\), instruction\(s\) and reason\(s\) of (\S+) erased",
                       out, re.MULTILINE)
    assert erased is not None and int(erased[1]) >= 1, out
    with loket.read() as conn:
        case_id = conn.execute(sa.select(cases_t.c.id).where(cases_t.c.ref == erased[2])).scalar_one()
        comments = conn.execute(sa.select(events_t.c.comment).where(events_t.c.case_id == case_id)).scalars().all()
    assert comments and all(c is None for c in comments)
    # The history is sealed at the end and the digest mailed to the auditor.
    digest = re.search(r"^seal: +1, digest ([0-9a-f]{64}) ", out, re.MULTILINE)
    assert digest is not None and verify(loket, against=[digest[1]]).ok
    (sealed,) = [message for message in messages if "zegel 1" in str(message["Subject"])]
    assert sealed["To"] == "Dana Smit <d.smit@voorbeeld.example>"
    loket.engine.dispose()
    # The meldingen carry a retention term: three weeks in, none has passed it.
    assert "retention list" in out
    code, listed, err = run_cli(capsys, "--db", f"sqlite:///{folder / 'loket.db'}", "retention", "list")
    assert code == 0, err
    assert re.search(r"^nothing is due: melding \(redact after 1 year\): \d+ closed case\(s\), none past the term$",
                     listed.strip()), listed
    # The access line works as printed: the read it suggests is in the log it shows.
    access = re.search(r"^access: +loket --db (\S+) --as (\S+) audit access .*case show (\S+)', that", out,
                       re.MULTILINE)
    assert access is not None
    db, auditor, ref = access.groups()
    assert run_cli(capsys, "--db", db, "--as", auditor, "audit", "access")[1].strip() == "no reads of personal values"
    assert run_cli(capsys, "--db", db, "case", "show", ref)[0] == 0
    code, shown, _ = run_cli(capsys, "--db", db, "--as", auditor, "audit", "access", ref)
    assert code == 0 and f"{ref}  case show" in shown


def test_the_alderman_and_the_assistant_react_some_instructions_met_and_one_missed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    code, out, err = run_cli(capsys, "demo", "--dir", str(folder), "--days", "42", "--seed", "1")
    assert code == 0, err
    found = re.search(r"administrators: (\d+) comments? and (\d+) instructions? on escalations"
                      r" \((\d+) met, (\d+) missed, (\d+) open\)", out)
    assert found, out
    comments, given, met, missed, still = (int(n) for n in found.groups())
    assert missed == 1 and met >= 2 and given == met + missed + still and comments >= 1
    assert "directive: 2" in out  # the missed one, to the administrator and the unit's head
    # The unit answering for the legal term extends some, and their residents are told (Awb 4:14).
    extended = re.search(r"resident_extended: (\d+)", out)
    assert extended is not None and int(extended[1]) >= 1
    loket = Loket(open_engine(f"sqlite:///{folder / 'loket.db'}"))
    org = loket.organisation()
    assistants = {a for admin in org.administrators.values() for a in admin.assistants}
    with loket.read() as conn:
        rows = conn.execute(sa.select(events_t.c.actor, events_t.c.action, events_t.c.data)
                            .where(events_t.c.action.in_(["comment", "directed", "escalated"]))).all()
    acted = [(actor, action, data or {}) for actor, action, data in rows
             if actor in org.administrators or actor in assistants]
    assert {action for _, action, _ in acted} == {"comment", "directed"}
    assert sum(1 for _, action, _ in acted if action == "directed") == given
    # The assistants act too, on their administrator's behalf.
    assert any(actor in assistants and data.get("on_behalf_of") in org.administrators for actor, _, data in acted)
    assert sum(1 for _, action, data in rows if action == "escalated" and data["rung"] == "directive") == 2
    assert verify(loket).ok
    loket.engine.dispose()


def test_the_same_seed_gives_the_same_run_and_another_seed_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    runs = []
    for seed in ("5", "5", "6"):
        code, out, _ = run_cli(capsys, "demo", "--dir", str(folder), "--days", "10", "--seed", seed)
        assert code == 0
        # The seal's digest differs from run to run, and rightly: the chains hash personal values
        # with a random salt per value, so that they cannot be guessed from the history.
        files = (folder / "outbox").glob("*.eml")
        names = sorted(re.sub(r"_seal_(.+)_[0-9a-f]{16}", r"_seal_\1", p.name) for p in files)
        runs.append((re.sub(r"[0-9a-f]{64}", "DIGEST", out), names))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_the_demo_never_replaces_a_real_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "loket.db"
    assert run_cli(capsys, "--db", f"sqlite:///{real}", "init", "--sample")[0] == 0
    before = real.read_bytes()
    code, _out, err = run_cli(capsys, "demo", "--dir", str(tmp_path), "--days", "2")
    assert code == 2
    assert err.startswith("Error:") and "not a demo database" in err and len(err.strip().splitlines()) == 1
    assert real.read_bytes() == before


def test_the_installed_command_runs_the_demo_outside_the_source_tree(tmp_path: Path) -> None:
    """What the README's first command does: the packaged definitions, templates and migrations
    must all be inside the installed distribution, not only in this checkout."""
    script = Path(sys.executable).parent / "loket"
    assert script.exists(), "install the package first (the README's test command does: pip install '.[test]')"
    done = subprocess.run([str(script), "demo", "--days", "3"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    assert (tmp_path / "loket.db").exists() and (tmp_path / "rapport.html").exists()
    package = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert package.returncode == 0 and "unknown" not in package.stdout
