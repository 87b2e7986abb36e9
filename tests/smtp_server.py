"""A real SMTP server for tests: aiosmtpd in a thread on 127.0.0.1.

The handler records what arrives and which TCP connection brought it, and can refuse chosen
recipients (550) or answer chosen DATA commands with a scripted reply (421 hangs up). TLS uses
a throw-away self-signed certificate made with the ``cryptography`` package when installed,
else with the ``openssl`` command; tests that need it are skipped only when neither exists.
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    """One message as the server saw it."""

    peer: tuple[str, int]  # the client's address and port: one per TCP connection
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


class RecordingHandler:
    """aiosmtpd handler that keeps every message and counts connections.

    ``reject``: recipients answered with 550. ``data_replies``: the n-th DATA (1-based, counted
    over the server's life) gets this reply instead of being accepted.
    """

    def __init__(
        self, *, reject: Iterable[str] = (), data_replies: Mapping[int, str] | None = None
    ) -> None:
        self.reject = {address.lower() for address in reject}
        self.data_replies = dict(data_replies or {})
        self.received: list[Received] = []
        self.connections: set[tuple[str, int]] = set()
        self.data_count = 0
        self._lock = threading.Lock()

    @property
    def messages(self) -> list[EmailMessage]:
        return [item.message for item in self.received]

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self._lock:
            self.connections.add(session.peer)
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: recipient unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.data_count += 1
            reply = self.data_replies.get(self.data_count)
        if reply is not None:
            return reply
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(
                Received(
                    peer=session.peer,
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    tls=session.ssl is not None,
                    authenticated=bool(session.authenticated),
                )
            )
        return "250 2.0.0 OK: queued"


def free_port() -> int:
    """A port nobody listens on now. Controller cannot take port 0: it connects back to the
    configured port to check that it started."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def password_authenticator(users: Mapping[str, str]) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator accepting exactly ``users`` (name → password)."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8")
            if login in users and users[login] == auth_data.password.decode("utf-8"):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


class SmtpServer:
    """One aiosmtpd server that can be stopped and started again on the same port.

    ``reject`` and ``data_replies`` configure a :class:`RecordingHandler` (when no ``handler``
    is given); ``starttls``: a server TLS context offered through STARTTLS (and then required);
    ``implicit_tls``: a server TLS context wrapping the whole connection (smtps);
    ``users``: require AUTH with these name → password pairs (over TLS only).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        reject: Iterable[str] = (),
        data_replies: Mapping[int, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.handler = handler or RecordingHandler(reject=reject, data_replies=data_replies)
        self.port = free_port()
        self._options: dict[str, Any] = {"server_hostname": "mail.test"}
        if starttls is not None:
            self._options |= {"tls_context": starttls, "require_starttls": True}
        if implicit_tls is not None:
            self._options["ssl_context"] = implicit_tls
        if users is not None:
            self._options |= {
                "authenticator": password_authenticator(users),
                "auth_required": True,
            }
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        assert self._controller is None, "already running"
        controller = Controller(self.handler, hostname=self.host, port=self.port, **self._options)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running server that accepts everything."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Start servers with :class:`SmtpServer`'s options; all are stopped afterwards."""
    servers: list[SmtpServer] = []

    def make(*args: Any, **kwargs: Any) -> SmtpServer:
        server = SmtpServer(*args, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1``, and its key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate, and nothing else, with full checks."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    try:
        _make_with_cryptography(files)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("TLS tests need the cryptography package or the openssl command")
        _make_with_openssl(files)
    return files


def _make_with_cryptography(files: TlsFiles) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _make_with_openssl(files: TlsFiles) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(files.key),
            "-out",
            str(files.cert),
        ],
        check=True,
        capture_output=True,
    )
