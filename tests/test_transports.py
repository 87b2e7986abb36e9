"""Transports against a real SMTP server (aiosmtpd) and a real folder."""

from __future__ import annotations

import email
import os
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.errors import ConfigurationError
from notifications.context import sample_contexts
from notifications.message import build_message, message_id_for
from notifications.render import Renderer
from notifications.smtp import SmtpSession
from notifications.transports import (
    DEFAULT_TIMEOUT,
    DeliveryResult,
    DirectoryTransport,
    MemoryTransport,
    SmtpTransport,
    file_name_for,
    send_all,
    smtp_timeout,
    transport_from_env,
)

if TYPE_CHECKING:
    from smtp_server import SmtpServer, TlsFiles

# The fixtures smtp_server, make_smtp_server and tls_files.
pytest_plugins = ["smtp_server"]

MakeServer = Callable[..., "SmtpServer"]
NOW = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
_RENDERED = Renderer("nl").render("escalation", sample_contexts("escalation")[0])


def mail(number: int, to: str | None = None) -> EmailMessage:
    return build_message(
        _RENDERED,
        sender="Wijkloket <loket@gemeente.example>",
        to=to or f"medewerker{number}@gemeente.example",
        to_name=f"Medewerker {number}",
        message_id=message_id_for(f"escalation:{number}", "gemeente.example"),
        date=NOW,
    )


def batch(count: int) -> list[EmailMessage]:
    return [mail(number) for number in range(1, count + 1)]


def plain(server: SmtpServer) -> SmtpTransport:
    return SmtpTransport(server.host, server.port, timeout=5)


def ids(messages: list[EmailMessage]) -> list[str]:
    return [str(message["Message-ID"]) for message in messages]


# -- SMTP -------------------------------------------------------------------------------------


def test_a_batch_goes_over_one_connection(smtp_server: SmtpServer) -> None:
    messages = batch(3)
    results = plain(smtp_server).send(messages)
    assert results == [DeliveryResult(mid, ok=True) for mid in ids(messages)]
    assert ids(smtp_server.messages) == ids(messages)
    assert len(smtp_server.handler.connections) == 1
    received = smtp_server.handler.received[0]
    assert received.rcpt_tos == ["medewerker1@gemeente.example"]
    assert received.mail_from == "loket@gemeente.example"
    body = received.message.get_body(("plain",))
    assert body is not None and "trede 2 van 4: teamleider" in body.get_content()


def test_an_empty_batch_opens_no_connection(smtp_server: SmtpServer) -> None:
    assert plain(smtp_server).send([]) == []
    assert smtp_server.handler.connections == set()


def test_an_outage_fails_the_batch_temporarily_and_a_retry_delivers_each_once(
    smtp_server: SmtpServer,
) -> None:
    transport = plain(smtp_server)
    messages = batch(3)
    smtp_server.stop()
    down = transport.send(messages)
    assert [(r.ok, r.permanent) for r in down] == [(False, False)] * 3
    assert [r.message_id for r in down] == ids(messages)
    assert all(f"127.0.0.1:{smtp_server.port}" in (r.error or "") for r in down)

    smtp_server.start()
    up = transport.send(messages)
    assert all(r.ok for r in up)
    assert sorted(ids(smtp_server.messages)) == sorted(ids(messages))  # each exactly once


def test_a_refused_recipient_fails_permanently_and_alone(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(reject=["vertrokken@gemeente.example"])
    messages = [mail(1), mail(2, to="vertrokken@gemeente.example"), mail(3)]
    results = plain(server).send(messages)
    assert [(r.ok, r.permanent) for r in results] == [(True, False), (False, True), (True, False)]
    assert "550" in (results[1].error or "") and "vertrokken@gemeente.example" in (
        results[1].error or ""
    )
    assert ids(server.messages) == [ids(messages)[0], ids(messages)[2]]
    assert len(server.handler.connections) == 1  # the refusal did not cost the connection


def test_a_server_that_hangs_up_costs_only_the_message_in_flight(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(data_replies={2: "421 4.3.2 shutting down"})
    messages = batch(3)
    session = plain(server).open()
    results = [session.send(message) for message in messages]
    session.close()
    assert [(r.ok, r.permanent) for r in results] == [(True, False), (False, False), (True, False)]
    assert "421" in (results[1].error or "")
    assert ids(server.messages) == [ids(messages)[0], ids(messages)[2]]
    assert isinstance(session, SmtpSession) and session.connections == 2  # the third on a new one


def test_a_server_that_cannot_be_reached_is_not_tried_again_within_the_batch(smtp_server: SmtpServer) -> None:
    smtp_server.stop()
    results = send_all(plain(smtp_server), batch(3))
    assert [(r.ok, r.reached) for r in results] == [(False, False)] * 3
    assert len({r.error for r in results}) == 1


def test_content_refusals_permanent_on_5xx_temporary_on_4xx(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(
        data_replies={1: "554 5.6.0 message refused", 2: "451 4.3.0 try later"}
    )
    results = plain(server).send(batch(3))
    assert [(r.ok, r.permanent) for r in results] == [(False, True), (False, False), (True, False)]
    assert len(server.handler.connections) == 1


def test_a_message_that_cannot_be_sent_as_it_is_fails_permanently_and_alone(
    smtp_server: SmtpServer,
) -> None:
    malformed = mail(1)
    malformed["Resent-Date"] = "Mon, 16 Mar 2026 08:00:00 +0000"
    malformed["Resent-Date"] = "Mon, 16 Mar 2026 09:00:00 +0000"  # two blocks: refused
    results = plain(smtp_server).send([malformed, mail(2)])
    assert [(r.ok, r.permanent) for r in results] == [(False, True), (True, False)]
    assert "malformed message" in (results[0].error or "")
    assert ids(smtp_server.messages) == ids([mail(2)])


def test_starttls_with_a_verified_certificate(
    make_smtp_server: MakeServer, tls_files: TlsFiles
) -> None:
    server = make_smtp_server(starttls=tls_files.server_context())
    transport = SmtpTransport(
        "127.0.0.1",
        server.port,
        security="starttls",
        tls_context=tls_files.client_context(),
        timeout=5,
    )
    assert all(r.ok for r in transport.send(batch(2)))
    assert [item.tls for item in server.handler.received] == [True, True]
    assert len(server.handler.connections) == 1


def test_starttls_verifies_the_certificate_by_default(
    make_smtp_server: MakeServer, tls_files: TlsFiles
) -> None:
    server = make_smtp_server(starttls=tls_files.server_context())
    verified = SmtpTransport.from_url(f"smtp+starttls://127.0.0.1:{server.port}", timeout=5)
    results = verified.send(batch(1))
    assert not results[0].ok and not results[0].permanent
    assert "certificate verify failed" in (results[0].error or "")
    assert server.messages == []

    unverified = SmtpTransport.from_url(
        f"smtp+starttls://127.0.0.1:{server.port}?verify=false", timeout=5
    )
    assert unverified.send(batch(1))[0].ok


def test_starttls_never_falls_back_to_plain_text(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport.from_url(f"smtp+starttls://127.0.0.1:{smtp_server.port}", timeout=5)
    results = transport.send(batch(2))
    assert [(r.ok, r.permanent) for r in results] == [(False, False)] * 2
    assert "STARTTLS" in (results[0].error or "")
    assert smtp_server.messages == []


def test_auth_over_starttls_with_percent_encoded_credentials(
    make_smtp_server: MakeServer, tls_files: TlsFiles
) -> None:
    password = "ge:heim@/p?ss#1"
    server = make_smtp_server(
        starttls=tls_files.server_context(), users={"loket@gemeente.example": password}
    )
    url = (
        f"smtp+starttls://loket%40gemeente.example:ge%3Aheim%40%2Fp%3Fss%231"
        f"@127.0.0.1:{server.port}?verify=false"
    )
    assert all(r.ok for r in SmtpTransport.from_url(url, timeout=5).send(batch(2)))
    assert [item.authenticated for item in server.handler.received] == [True, True]

    wrong = url.replace("ss%231", "ss%232")
    results = SmtpTransport.from_url(wrong, timeout=5).send(batch(1))
    assert not results[0].ok and not results[0].permanent
    assert "535" in (results[0].error or "")
    assert "ss#2" not in (results[0].error or "") and "ss%232" not in (results[0].error or "")
    assert len(server.messages) == 2


def test_smtps_encrypts_from_the_first_byte(
    make_smtp_server: MakeServer, tls_files: TlsFiles
) -> None:
    server = make_smtp_server(implicit_tls=tls_files.server_context())
    transport = SmtpTransport(
        "localhost", server.port, security="tls", tls_context=tls_files.client_context(), timeout=5
    )
    assert all(r.ok for r in transport.send(batch(2)))
    assert len(server.messages) == 2
    from_url = SmtpTransport.from_url(f"smtps://127.0.0.1:{server.port}?verify=false", timeout=5)
    assert from_url.send(batch(1))[0].ok


# -- SMTP URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "security", "username"),
    [
        ("smtp://mail.gemeente.example", "mail.gemeente.example", 25, "plain", None),
        ("smtp://mail.gemeente.example:2525/", "mail.gemeente.example", 2525, "plain", None),
        ("smtp+starttls://u:p@mail.example", "mail.example", 587, "starttls", "u"),
        ("SMTP+STARTTLS://u:p@mail.example:25", "mail.example", 25, "starttls", "u"),
        (
            "smtps://loket%40gemeente.example:p@[2001:db8::1]",
            "2001:db8::1",
            465,
            "tls",
            "loket@gemeente.example",
        ),
    ],
)
def test_smtp_url(url: str, host: str, port: int, security: str, username: str | None) -> None:
    transport = SmtpTransport.from_url(url)
    assert (transport.host, transport.port, transport.security, transport.username) == (
        host,
        port,
        security,
        username,
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://mail.example", "must start with smtp://"),
        ("mail.example:25", "must start with smtp://"),
        ("smtp://", "names no host"),
        ("smtp+starttls://u:s3cret@mail.example:notaport", "cannot be parsed"),
        ("smtp+starttls://u:s3cret@mail.example:99999", "cannot be parsed"),
        ("smtp+starttls://u:s3/cret@mail.example", "cannot be parsed"),
        ("smtp+starttls://u:s3cret#x@mail.example", "cannot be parsed"),
        ("smtp+starttls://u:s3cret@mail.example/inbox", "path or '#'"),
        ("smtp://u:s3cret@mail.example", "unencrypted"),
        ("smtp+starttls://u@mail.example", "both a user name and a password"),
        ("smtp+starttls://:s3cret@mail.example", "both a user name and a password"),
        ("smtps://u:s3cret@mail.example?verify=maybe", "verify must be true or false"),
        ("smtps://u:s3cret@mail.example?s3cret=1", "the only query option"),
        ("smtp://mail.example?verify=false", "only applies to TLS"),
    ],
)
def test_a_bad_smtp_url_is_explained_without_the_password(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match="LOKET_SMTP_URL") as refused:
        SmtpTransport.from_url(url)
    assert complaint in refused.value.message
    assert "s3cret" not in refused.value.message and "s3" not in refused.value.message
    # nor in a chained exception a traceback would show
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None or refused.value.__suppress_context__


def test_the_password_stays_out_of_repr() -> None:
    transport = SmtpTransport.from_url("smtps://loket:s3cret@mail.example")
    assert "s3cret" not in repr(transport) and "loket" in repr(transport)


# -- directory ----------------------------------------------------------------------------------


def eml_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml"))


def test_directory_writes_one_parseable_file_per_message(tmp_path: Path) -> None:
    folder = tmp_path / "post" / "uit"
    messages = batch(3)
    results = DirectoryTransport(folder).send(messages)
    assert results == [DeliveryResult(mid, ok=True) for mid in ids(messages)]
    files = eml_files(folder)
    assert [path.name for path in files] == sorted(file_name_for(mid) for mid in ids(messages))
    assert sorted(os.listdir(folder)) == [path.name for path in files]  # no temporary left over
    for message in messages:
        with (folder / file_name_for(str(message["Message-ID"]))).open("rb") as file:
            back = email.message_from_binary_file(file, policy=policy.default)
        assert back["Message-ID"] == message["Message-ID"]
        assert back["Subject"] == message["Subject"]
        assert back["To"] == message["To"]
        html = back.get_body(("html",))
        assert html is not None and "BI-2026-00042" in html.get_content()


def test_directory_redelivery_overwrites_instead_of_duplicating(tmp_path: Path) -> None:
    transport = DirectoryTransport(tmp_path)
    transport.send([mail(1)])
    again = mail(1, to="vervanger@gemeente.example")  # same Message-ID, changed content
    assert transport.send([again, mail(2)])[0].ok
    assert len(eml_files(tmp_path)) == 2
    with (tmp_path / file_name_for(str(again["Message-ID"]))).open("rb") as file:
        assert "vervanger@gemeente.example" in str(
            email.message_from_binary_file(file, policy=policy.default)["To"]
        )


def test_directory_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transport = DirectoryTransport(tmp_path)
    transport.send([mail(1)])
    target = tmp_path / file_name_for(str(mail(1)["Message-ID"]))
    before = target.read_bytes()

    def broken_replace(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    results = transport.send([mail(1, to="ander@gemeente.example")])
    assert not results[0].ok and not results[0].permanent
    assert "No space left" in (results[0].error or "")
    assert target.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == [target.name]  # and the temporary file is gone


def test_directory_files_use_crlf_and_only_ascii(tmp_path: Path) -> None:
    DirectoryTransport(tmp_path).send([mail(1)])
    raw = eml_files(tmp_path)[0].read_bytes()
    assert raw.isascii()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_directory_refuses_a_message_without_message_id(tmp_path: Path) -> None:
    message = mail(1)
    del message["Message-ID"]
    assert DirectoryTransport(tmp_path).send([message]) == [
        DeliveryResult("", ok=False, error="message has no Message-ID", permanent=True)
    ]


def test_directory_that_cannot_be_made_fails_temporarily(tmp_path: Path) -> None:
    blocker = tmp_path / "bestand"
    blocker.write_text("geen map")
    results = DirectoryTransport(blocker / "outbox").send(batch(2))
    assert [(r.ok, r.permanent) for r in results] == [(False, False)] * 2


@pytest.mark.parametrize(
    ("message_id", "name"),
    [
        ("<wijkloket.ab12@gemeente.example>", "wijkloket.ab12@gemeente.example.eml"),
        ("<a/b@x>", "a_b@x-"),
        ("<a_b@x>", "a_b@x.eml"),
        ("<../../etc/passwd@x>", "_.._etc_passwd@x-"),
    ],
)
def test_file_names_are_safe_and_distinct(message_id: str, name: str) -> None:
    produced = file_name_for(message_id)
    assert produced.startswith(name) and produced.endswith(".eml")
    assert "/" not in produced and not produced.startswith(".")


def test_file_names_of_different_ids_differ_even_after_cleaning() -> None:
    assert file_name_for("<a/b@x>") != file_name_for("<a_b@x>")
    assert file_name_for("<a/b@x>") != file_name_for("<a\\b@x>")


# -- choosing a transport -----------------------------------------------------------------------


def test_transport_from_env(tmp_path: Path) -> None:
    smtp = transport_from_env(
        {"LOKET_SMTP_URL": "smtp://mail.example:2525", "LOKET_MAIL_DIR": str(tmp_path)}
    )
    assert isinstance(smtp, SmtpTransport) and smtp.port == 2525
    folder = transport_from_env({"LOKET_MAIL_DIR": str(tmp_path), "LOKET_SMTP_URL": " "})
    assert isinstance(folder, DirectoryTransport) and folder.path == tmp_path
    default = transport_from_env({})
    assert isinstance(default, DirectoryTransport) and default.path == Path("outbox")
    with pytest.raises(ConfigurationError):
        transport_from_env({"LOKET_SMTP_URL": "smtp:/broken"})


def test_memory_transport_records_and_refuses() -> None:
    transport = MemoryTransport(refuse={"weg@gemeente.example": "550 unknown"})
    messages = [mail(1), mail(2, to="weg@gemeente.example")]
    results = send_all(transport, messages)
    assert [(r.ok, r.permanent) for r in results] == [(True, False), (False, True)]
    assert transport.sent == messages[:1] and transport.sessions == 1


def test_the_smtp_timeout_comes_from_the_environment(tmp_path: Path) -> None:
    url = "smtp://mail.example:2525"
    assert smtp_timeout({}) == DEFAULT_TIMEOUT == 60
    for text, seconds in (("90", 90), ("2m", 120), (" 1.5 ", 1.5), ("1h", 3600)):
        assert smtp_timeout({"LOKET_SMTP_TIMEOUT": text}) == seconds
        transport = transport_from_env({"LOKET_SMTP_URL": url, "LOKET_SMTP_TIMEOUT": text})
        assert isinstance(transport, SmtpTransport) and transport.timeout == seconds
    for bad in ("0", "-5", "0.5", "2h", "soon", "nan"):
        with pytest.raises(ConfigurationError, match="LOKET_SMTP_TIMEOUT must be from 1 second to an hour"):
            transport_from_env({"LOKET_SMTP_URL": url, "LOKET_SMTP_TIMEOUT": bad})
