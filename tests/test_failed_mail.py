"""Mail that could not be delivered is told, not swallowed: a summary to the operators through
the outbox itself (once, and never a summary of a failed summary), a warning from
`outbox send`, a line at the top of `loket report`; and the settings that decide when a
message is given up."""

from __future__ import annotations

import datetime as dt
import json
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import ORG_FILE, run_cli
from test_outbox import FRIDAY, HEAD, LEAD, SENDER, MakeServer, escalate, org_file, part, simulation, smtp

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.core.organisation import parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import ConfigurationError, InvalidDefinition
from notifications.delivery import LIFETIME, DeliveryReport, deliver, mail_lifetime
from notifications.requeue import list_outbox

if TYPE_CHECKING:
    from smtp_server import SmtpServer

pytest_plugins = ["smtp_server"]

OPERATORS = """\
  - id: o.beheer
    name: Olga Beheer
    email: o.beheer@voorbeeld.example
    roles: {"*": operator}
  - id: p.beheer
    name: Piet Beheer
    email: p.beheer@voorbeeld.example
    roles: {"*": operator}
"""
OLGA, PIET = "o.beheer@voorbeeld.example", "p.beheer@voorbeeld.example"


def with_operators(loket: Loket, tmp_path: Path, language: str = "nl") -> None:
    path = org_file(tmp_path, "people:\n", "people:\n" + OPERATORS)
    if language != "nl":
        path.write_text(path.read_text(encoding="utf-8").replace("language: nl", f"language: {language}"),
                        encoding="utf-8")
    loket.load_organisation(path)


def summaries(server: SmtpServer) -> dict[str, EmailMessage]:
    return {item.rcpt_tos[0]: item.message for item in server.handler.received
            if item.rcpt_tos[0] in (OLGA, PIET)}


def test_the_operators_get_one_summary_of_what_failed(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    with_operators(loket, tmp_path)
    rows = escalate(loket, clock, 2, at=FRIDAY)
    refused = [row["key"] for row in rows if row["to_email"] == HEAD]
    server = make_smtp_server(reject=[HEAD])

    report = deliver(loket, smtp(server))

    assert (report.sent, report.failed, report.told) == (4, 2, ["o.beheer", "p.beheer"])  # 2 + 2 summaries
    told = summaries(server)
    assert set(told) == {OLGA, PIET}
    message = told[OLGA]
    assert message["Subject"] == "Wijkloket Gemeente Voorbeeld: 2 e-mail(s) definitief niet afgeleverd"
    text = part(message, "plain")
    assert text.startswith("Beste Olga Beheer,")
    for key in refused:
        assert f"- {key} aan {HEAD}: Escalatie " in text
    assert text.count("550") == 2 and "loket outbox retry --failed" in text
    assert "vrijdag 6 maart 2026 om 10:00" in text  # when they were queued, local time
    assert "&lt;" not in text and "<pre>" in part(message, "html")
    kinds = {row["key"]: (row["kind"], row["status"]) for row in list_outbox(loket)}
    assert sorted(v for k, v in kinds.items() if k.startswith("delivery-failed/")) == [
        ("delivery_failed", "sent")] * 2

    # Nothing new failed: nothing more is said, however often delivery runs.
    clock.advance(dt.timedelta(days=1))
    assert deliver(loket, smtp(server)) == DeliveryReport()
    assert len(server.messages) == 4


def test_a_summary_that_fails_is_not_summarised_again(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    with_operators(loket, tmp_path)
    escalate(loket, clock, 1, at=FRIDAY)
    server = make_smtp_server(reject=[HEAD, PIET])

    report = deliver(loket, smtp(server))

    # The head's message fails; Olga's summary goes, Piet's fails in its turn and ends there.
    assert (report.sent, report.failed) == (2, 2)
    assert [error.split(":")[0] for error in report.errors][1].startswith("delivery-failed/")
    assert set(summaries(server)) == {OLGA}
    assert sum(row["kind"] == "delivery_failed" for row in list_outbox(loket)) == 2
    assert deliver(loket, smtp(server)) == DeliveryReport()


def test_without_operators_nobody_is_mailed_but_outbox_send_warns(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    escalate(loket, clock, 1, at=FRIDAY)
    url = simulation(loket)
    server = make_smtp_server(reject=[HEAD])
    monkeypatch.setenv("LOKET_SMTP_URL", f"smtp://{server.host}:{server.port}")
    monkeypatch.setenv("LOKET_MAIL_FROM", SENDER)

    code, out, err = run_cli(capsys, "--db", url, "--now", FRIDAY.isoformat(), "outbox", "send")

    assert code == 0  # a warning does not change the exit code
    assert out.startswith("1 sent, 0 to retry, 1 failed")
    assert err.splitlines() == [
        "Warning: 1 message(s) failed for good (no operator in the organisation file to tell by email);"
        " 'loket outbox list --failed' shows them, 'loket outbox retry' queues them again"]
    assert [item.rcpt_tos for item in server.handler.received] == [[LEAD]]
    assert not any(row["kind"] == "delivery_failed" for row in list_outbox(loket))


def test_outbox_send_names_the_operators_told_and_report_puts_failures_first(
    loket: Loket, clock: FixedClock, make_smtp_server: MakeServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    with_operators(loket, tmp_path, language="en")
    escalate(loket, clock, 1, at=FRIDAY)
    url = simulation(loket)
    server = make_smtp_server(reject=[HEAD])
    monkeypatch.setenv("LOKET_SMTP_URL", f"smtp://{server.host}:{server.port}")
    monkeypatch.setenv("LOKET_MAIL_FROM", SENDER)

    code, out, err = run_cli(capsys, "--db", url, "--now", FRIDAY.isoformat(), "outbox", "send", "--json")

    assert code == 0
    assert json.loads(out) | {"errors": []} == {"sent": 3, "retrying": 0, "failed": 1, "errors": [],
                                                "operators_told": ["o.beheer", "p.beheer"]}
    assert "operators told by email: o.beheer, p.beheer" in err
    message = summaries(server)[OLGA]
    assert message["Subject"] == "Wijkloket Gemeente Voorbeeld: 1 email(s) could not be delivered"
    assert part(message, "plain").startswith("Dear Olga Beheer,")

    code, out, _ = run_cli(capsys, "--db", url, "--now", FRIDAY.isoformat(), "report")
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == ("!! 1 email(s) failed for good and reached nobody: see 'Failed emails' below,"
                        " and 'loket outbox retry --failed' once the cause is fixed")
    assert "Failed emails: 1" in lines


def test_operator_is_a_role_for_every_unit_only() -> None:
    data, _, _ = load_file(ORG_FILE)
    people = data["people"]
    people.append({"id": "o.beheer", "name": "Olga Beheer", "email": "o.beheer@voorbeeld.example",
                   "roles": {"*": "operator"}})
    org = parse_organisation(data)
    assert org.holders("*", "operator")[0].id == "o.beheer"
    assert org.rank("o.beheer", "wijkteam") == 0 and not org.is_auditor("o.beheer")
    people[-1]["roles"] = {"wijkteam": "operator"}
    with pytest.raises(InvalidDefinition, match=r"the operator role is given for every unit at once \('\*'\)"):
        parse_organisation(data)


@pytest.mark.parametrize(("text", "lifetime"), [
    ("", LIFETIME), ("5d", dt.timedelta(days=5)), ("36h", dt.timedelta(hours=36)),
    ("2d12h", dt.timedelta(days=2, hours=12)), (" 90m ", dt.timedelta(minutes=90)),
    ("90d", dt.timedelta(days=90)),
])
def test_the_lifetime_of_a_message_comes_from_the_environment(text: str, lifetime: dt.timedelta) -> None:
    assert mail_lifetime({"LOKET_MAIL_LIFETIME": text}) == lifetime


@pytest.mark.parametrize("text", ["0", "30s", "91d", "forever", "5 days", "-1d"])
def test_a_lifetime_out_of_bounds_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="LOKET_MAIL_LIFETIME must be from a minute to 90 days"):
        mail_lifetime({"LOKET_MAIL_LIFETIME": text})
