"""A seal kept outside the database (SPEC §13.4): `audit seal` prints its digest and mails it
to the auditors through the outbox; `audit verify --against DIGEST` / `--against-file FILE`
catches a history rewritten and sealed again, and a seal that is gone (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from conftest import run_cli

from engine.app.clock import FixedClock
from engine.app.seal import seal
from engine.app.service import Loket
from engine.app.verify import verify
from engine.core.vocabulary import MailKind
from notifications.delivery import MailSettings, deliver
from notifications.transports import SmtpTransport

if TYPE_CHECKING:
    from smtp_server import SmtpServer

pytest_plugins = ["smtp_server"]  # the smtp_server fixture

CLERK = "c.devries"
AUDITOR = "d.smit@voorbeeld.example"


def _sql(loket: Loket, *statements: str) -> None:
    with loket.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def _two_cases(loket: Loket) -> tuple[str, str]:
    keep = loket.new_case("melding", ["omschrijving=Blijft", "locatie=Dorp"], actor=CLERK).ref
    gone = loket.new_case("melding", ["omschrijving=Verdwijnt", "locatie=Dorp"], actor=CLERK).ref
    return keep, gone


def _rewrite_and_seal_again(loket: Loket, gone: str) -> None:
    """What someone with write access does to hide a case: delete it with its history, remove
    the seals that would show it, and seal the result — every chain and seal holds again."""
    _sql(loket,
         f"DELETE FROM case_event WHERE case_id = (SELECT id FROM cases WHERE ref = '{gone}')",
         f"DELETE FROM outbox WHERE case_id = (SELECT id FROM cases WHERE ref = '{gone}')",
         f"DELETE FROM cases WHERE ref = '{gone}'",
         "DELETE FROM audit_seal_head", "DELETE FROM audit_seal")
    seal(loket)
    assert verify(loket).ok  # the database alone cannot tell


def test_the_digest_is_printed_and_mailed_to_the_auditors_in_plain_dutch(
    loket: Loket, clock: FixedClock, db_url: str, capsys: pytest.CaptureFixture[str], smtp_server: SmtpServer
) -> None:
    _two_cases(loket)
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "seal", "--json")
    assert code == 0, err
    sealed = json.loads(out)
    assert sealed["seal"] == 1 and len(sealed["digest"]) == 64 and sealed["at"].endswith("Z")
    assert sealed["mailed_to"] == ["d.smit"]
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "seal")
    assert code == 0, err
    second = out.splitlines()
    assert second[0].startswith("seal 2: 2 cases, 2 events, digest ") and "d.smit" in second[1]

    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))  # the command line sealed on the real clock
    settings = MailSettings(sender="Wijkloket <wijkloket@voorbeeld.example>",
                            transport=SmtpTransport(smtp_server.host, smtp_server.port, timeout=5), template_dir=None)
    report = deliver(loket, settings)
    assert report.sent >= 2 and report.failed == 0
    seals = [item for item in smtp_server.handler.received if "zegel" in str(item.message["Subject"])]
    assert [item.rcpt_tos for item in seals] == [[AUDITOR], [AUDITOR]]
    first = seals[0].message if "zegel 1 " in str(seals[0].message["Subject"]) else seals[1].message
    body = first.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert sealed["digest"] in text and f"loket audit verify --against {sealed['digest']}" in text
    assert "Bewaar deze vingerafdruk buiten het Wijkloket" in text and "2 zaken" in text
    # Sealing again adds a message per seal, never a second one for the same seal.
    with loket.read() as conn:
        kinds = conn.execute(sa.text("SELECT kind, count(*) FROM outbox WHERE kind = :k GROUP BY kind"),
                             {"k": MailKind.SEAL.value}).all()
    assert [tuple(row) for row in kinds] == [("seal", 2)]


def test_without_auditors_the_seal_says_to_keep_the_digest_yourself(
    loket: Loket, db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from conftest import ORG_FILE

    org = Path(ORG_FILE).read_text(encoding="utf-8").replace('roles: {"*": auditor}', "roles: {wijkteam: staff}")
    (tmp_path / "org.yaml").write_text(org, encoding="utf-8")
    loket.load_organisation(tmp_path / "org.yaml")
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "seal")
    assert code == 0, err
    assert "keep the digest outside the database yourself" in out
    with loket.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one() == 0


def test_a_history_rewritten_and_sealed_again_is_caught_by_the_digest_kept_outside(
    loket: Loket, db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _keep, gone = _two_cases(loket)
    kept = seal(loket).digest
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify", "--against", kept.upper())
    assert (code, err) == (0, "") and "1 seal(s) kept outside still hold" in out

    _rewrite_and_seal_again(loket, gone)

    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify")
    assert code == 0, "without the digest kept outside, the rewrite goes unseen"
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify", "--against", kept)
    assert (code, out) == (1, "")
    assert err == (f"Error: no seal in this database has the digest {kept} kept outside it: seals were removed,"
                   " or the history was rewritten and sealed again\n")
    listing = tmp_path / "zegels.txt"
    listing.write_text(f"# zegels van de concerncontroller\n\n{kept}  seal 1, 2026-03-02\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "--db", db_url, "audit", "verify", "--against-file", str(listing), "--json")
    assert code == 1
    result = json.loads(out)
    assert result["ok"] is False and result["against"] == [kept] and kept in result["failure"]


def test_a_seal_that_is_gone_is_caught_and_one_that_holds_passes(loket: Loket, clock: FixedClock) -> None:
    _two_cases(loket)
    first = seal(loket).digest
    loket.new_case("melding", ["omschrijving=Later", "locatie=Dorp"], actor=CLERK)
    second = seal(loket).digest
    assert verify(loket, against=[first, second, first]).ok
    assert verify(loket, against=[first, second]).against == [first, second]
    # Removing the seals one by one from the end keeps the seals' own chain intact.
    _sql(loket, "DELETE FROM audit_seal_head WHERE seal_id = 2", "DELETE FROM audit_seal WHERE id = 2")
    assert verify(loket).ok and verify(loket, against=[first]).ok
    failure = verify(loket, against=[first, second]).failure
    assert failure is not None and failure.startswith(f"no seal in this database has the digest {second}")


def test_an_older_seal_whose_recorded_heads_were_altered_is_named(loket: Loket) -> None:
    keep, _gone = _two_cases(loket)
    first = seal(loket).digest
    seal(loket)
    assert verify(loket).ok
    _sql(loket, f"UPDATE audit_seal_head SET hash = 'ff' WHERE seal_id = 1 AND ref = '{keep}'")
    assert verify(loket).ok  # only the last seal's heads are checked without a kept digest
    assert verify(loket, against=[first]).failure == "seal 1: its recorded chain heads were altered"


@pytest.mark.parametrize(("args", "message"), [
    (["--against", "abc"], "--against: 'abc' is not a seal digest (64 hexadecimal characters, as 'loket audit seal'"
                           " prints)"),
    (["--against", "g" * 64], f"--against: '{'g' * 64}' is not a seal digest"),
    (["--against-file", "missing.txt"], "cannot read --against-file missing.txt: No such file or directory"),
    (["--against-file", "empty.txt"], "--against-file empty.txt holds no digest"),
    (["--against-file", "wrong.txt"], "wrong.txt line 2: 'seal-one' is not a seal digest"),
    (["--against-file", "binary.txt"], "--against-file binary.txt is not UTF-8 text"),
    (["--against-file", "."], "cannot read --against-file .: Is a directory"),
])
def test_digests_that_are_not_digests_are_refused_with_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n", encoding="utf-8")
    (tmp_path / "wrong.txt").write_text(f"{'a' * 64}\nseal-one\n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00digest")
    code, out, err = run_cli(capsys, "--db", sqlite_url, "audit", "verify", *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: {message}") and err.count("\n") == 1
