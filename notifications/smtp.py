"""Delivering over SMTP: one connection per delivery run while the server keeps it open, every
exchange within an overall deadline (:mod:`notifications.deadline`)."""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from email.message import EmailMessage
from typing import Final, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from engine.errors import ConfigurationError
from notifications.deadline import Expired, TimedSMTP, TimedSMTPSSL
from notifications.outcome import DeliveryResult, id_of, send_all

Security = Literal["plain", "starttls", "tls"]

#: scheme → (security, default port)
_SCHEMES: Final[Mapping[str, tuple[Security, int]]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
DEFAULT_TIMEOUT: Final = 60.0
"""Seconds opening an SMTP connection, or sending one message, may take in all."""
QUIT_PATIENCE: Final = 5.0
"""Seconds the goodbye (QUIT) may take at most."""
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


class SmtpTransport:
    """Sends over SMTP, one connection per session while the server keeps it open.

    ``security`` is ``plain`` (no encryption), ``starttls`` (upgrade, refusing to go on in
    plain text when the server cannot) or ``tls`` (encrypted from the first byte). The server's
    certificate is verified against the system's trust store unless another ``tls_context`` is
    given. ``timeout`` is the overall deadline, in seconds, of opening a connection and of
    sending one message, however the server dribbles its answers (see
    :mod:`notifications.deadline`).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "plain",
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("plain", "starttls", "tls"):
            raise ConfigurationError(f"unknown SMTP security {security!r}")
        if timeout <= 0:
            raise ConfigurationError("the SMTP timeout must be positive")
        self.host = host
        self.port = port
        self.security: Security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._tls_context = tls_context
        if security != "plain" and tls_context is None:
            self._tls_context = ssl.create_default_context()

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"SmtpTransport({self.host!r}, {self.port}, security={self.security!r}{user})"

    @classmethod
    def from_url(cls, url: str, timeout: float = DEFAULT_TIMEOUT) -> SmtpTransport:
        """Configure from ``smtp://host:25``, ``smtp+starttls://user:pass@host:587`` or
        ``smtps://user:pass@host:465``; ``?verify=false`` skips certificate checks (testing only).

        User name and password are percent-decoded. Error messages never repeat the URL, which
        holds the password.
        """
        prefix = "LOKET_SMTP_URL"
        try:
            parts = urlsplit(url.strip())
            port = parts.port
            query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise ConfigurationError(
                f"{prefix} cannot be parsed: check the port, and percent-encode special "
                "characters in the user name and password (@ : / ? # as %40 %3A %2F %3F %23)"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                f"{prefix} must start with smtp://, smtp+starttls:// or smtps://"
            )
        security, default_port = _SCHEMES[scheme]
        host = parts.hostname
        if not host:
            raise ConfigurationError(f"{prefix} names no host")
        if port == 0:
            raise ConfigurationError(f"{prefix}: port 0 is not a port")
        if parts.path not in ("", "/") or parts.fragment:
            raise ConfigurationError(
                f"{prefix} has a path or '#' part; an SMTP URL is scheme://user:password@host:port"
                " (percent-encode / and # in a password)"
            )
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if (username is None) != (password is None) or username == "":
            raise ConfigurationError(f"{prefix} needs both a user name and a password, or neither")
        if username is not None and security == "plain":
            raise ConfigurationError(
                f"{prefix} would send the password unencrypted; use smtp+starttls:// or smtps://"
            )
        verify = True
        for key, value in query:
            if key != "verify":
                raise ConfigurationError(f"{prefix}: the only query option is ?verify=false")
            if value.lower() not in _TRUE | _FALSE:
                raise ConfigurationError(f"{prefix}: verify must be true or false")
            verify = value.lower() in _TRUE
        if not verify and security == "plain":
            raise ConfigurationError(f"{prefix}: verify=false only applies to TLS connections")
        context = None
        if security != "plain":
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return cls(
            host,
            port or default_port,
            security=security,
            username=username,
            password=password,
            tls_context=context,
            timeout=timeout,
        )

    def open(self, stop: threading.Event | None = None) -> SmtpSession:
        return SmtpSession(self, stop)

    def send(self, messages: Sequence[EmailMessage]) -> list[DeliveryResult]:
        """A batch through one session (see :func:`send_all`)."""
        return send_all(self, messages)

    def connect(self, stop: threading.Event | None = None) -> TimedSMTP:
        """A connection greeted, upgraded and logged in within one deadline; :class:`OSError`
        (smtplib's errors are OSErrors) when that fails."""
        connection: TimedSMTP
        if self.security == "tls":
            connection = TimedSMTPSSL(patience=self.timeout, stop=stop, local_hostname=self.local_hostname,
                                      context=self._tls_context)
        else:
            connection = TimedSMTP(patience=self.timeout, stop=stop, local_hostname=self.local_hostname)
        try:
            connection.open(self.host, self.port)
            connection.ehlo()
            if self.security == "starttls":
                connection.starttls(context=self._tls_context)
                connection.ehlo()
            if self.username is not None and self._password is not None:
                connection.login(self.username, self._password)
        except BaseException:
            connection.close()
            if connection.expired:  # smtplib's "connection unexpectedly closed" hides why
                raise Expired(connection.expired) from None
            raise
        return connection

    def send_one(self, connection: TimedSMTP, message: EmailMessage) -> DeliveryResult:
        """Send one message within its own deadline over an open connection."""
        message_id = id_of(message)
        connection.allow()
        try:
            refused = connection.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)  # no recipients at all: too
            refusals = _refusals(exc.recipients) or "no recipients"
            return DeliveryResult.failed(
                message_id, f"recipient refused: {refusals}", permanent=permanent
            )
        except smtplib.SMTPDataError as exc:
            return DeliveryResult.failed(
                message_id,
                f"message refused: {_describe(exc)}",
                permanent=500 <= exc.smtp_code < 600,
            )
        except smtplib.SMTPSenderRefused as exc:
            # About the configured From, not this message: retry once the configuration is fixed.
            return DeliveryResult.failed(message_id, f"sender refused: {_describe(exc)}")
        except smtplib.SMTPNotSupportedError as exc:
            # An internationalised address and a server without SMTPUTF8: retrying cannot help.
            return DeliveryResult.failed(message_id, str(exc), permanent=True)
        except ValueError as exc:  # the message itself cannot be sent as it is
            return DeliveryResult.failed(message_id, f"malformed message: {exc}", permanent=True)
        except OSError as exc:
            connection.close()
            return DeliveryResult.failed(message_id, f"connection failed: {connection.expired or _describe(exc)}")
        if refused:
            return DeliveryResult.delivered(
                message_id, f"some recipients refused: {_refusals(refused)}"
            )
        return DeliveryResult.delivered(message_id)


class SmtpSession:
    """The connection of one delivery run: opened for the first message, checked (NOOP) before
    each later one and opened again when the server dropped it, so that a dropped connection
    costs only the message that was in flight."""

    def __init__(self, transport: SmtpTransport, stop: threading.Event | None) -> None:
        self.transport = transport
        self.stop = stop
        self.connections = 0
        """How many connections this session opened."""
        self._connection: TimedSMTP | None = None

    def send(self, message: EmailMessage) -> DeliveryResult:
        connection = self._connection
        if connection is not None and not _alive(connection):
            connection = self._connection = None
        if connection is None:
            try:
                connection = self._connection = self.transport.connect(self.stop)
            except OSError as exc:
                reason = _describe(exc)
                where = f"{self.transport.host}:{self.transport.port}"
                return DeliveryResult.failed(id_of(message), f"cannot deliver through {where}: {reason}",
                                             reached=False)
            self.connections += 1
        result = self.transport.send_one(connection, message)
        if connection.sock is None:  # the server hung up (421), the line broke or the time ran out
            self._connection = None
        return result

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.sock is not None:
            connection.allow(QUIT_PATIENCE)  # a courtesy: a server that dawdles over it is left
            with suppress(OSError):
                connection.quit()
        connection.close()


def _alive(connection: TimedSMTP) -> bool:
    """Whether a connection used before still answers; closed when it does not."""
    connection.allow()
    try:
        code, _ = connection.noop()
    except OSError:
        connection.close()
        return False
    if code != 250:
        connection.close()
        return False
    return True


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__


