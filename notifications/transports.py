"""Delivering email: over SMTP, or into a folder of ``.eml`` files (the default).

A transport takes a batch and answers one :class:`DeliveryResult` per message, in order; it
never raises for a delivery problem, because the outbox must record every outcome. Whether a
failure is *permanent* decides whether the outbox retries: only a refusal that names this
message (a 5xx for its recipient or its content) is permanent; anything about the connection
is temporary, since the same message may well go through later.
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Final, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from engine.errors import ConfigurationError

Security = Literal["plain", "starttls", "tls"]

#: scheme → (security, default port)
_SCHEMES: Final[Mapping[str, tuple[Security, int]]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one message. ``permanent`` only matters when ``ok`` is false.

    A message accepted for some recipients but refused for others is ``ok`` (retrying would
    duplicate it for the ones that got it), with the refusals in ``error``.
    """

    message_id: str
    ok: bool
    error: str | None = None
    permanent: bool = False

    @classmethod
    def delivered(cls, message_id: str, note: str | None = None) -> DeliveryResult:
        return cls(message_id, ok=True, error=note)

    @classmethod
    def failed(cls, message_id: str, error: str, *, permanent: bool = False) -> DeliveryResult:
        return cls(message_id, ok=False, error=error, permanent=permanent)


class Transport(Protocol):
    """Delivers a batch of messages; one result per message, in the same order."""

    def send(self, messages: Sequence[EmailMessage]) -> list[DeliveryResult]: ...


def _message_id(message: EmailMessage) -> str:
    return str(message.get("Message-ID", "")).strip()


# -- SMTP -------------------------------------------------------------------------------------


class SmtpTransport:
    """Sends a batch over one SMTP connection.

    ``security`` is ``plain`` (no encryption), ``starttls`` (upgrade, refusing to go on in
    plain text when the server cannot) or ``tls`` (encrypted from the first byte). The server's
    certificate is verified against the system's trust store unless another ``tls_context`` is
    given.
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
        timeout: float = 30,
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
    def from_url(cls, url: str, timeout: float = 30) -> SmtpTransport:
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

    def send(self, messages: Sequence[EmailMessage]) -> list[DeliveryResult]:
        if not messages:
            return []
        try:
            connection = self._connect()
        except OSError as exc:  # smtplib.SMTPException is an OSError too
            error = f"cannot deliver through {self.host}:{self.port}: {_describe(exc)}"
            return [DeliveryResult.failed(_message_id(m), error) for m in messages]
        results: list[DeliveryResult] = []
        try:
            for message in messages:
                results.append(self._send_one(connection, message))
                if connection.sock is None:  # the server hung up (421) or the line broke
                    break
        finally:
            with suppress(OSError):
                connection.quit()
            connection.close()
        lost = f"connection to {self.host}:{self.port} lost before this message was sent"
        results.extend(
            DeliveryResult.failed(_message_id(m), lost) for m in messages[len(results) :]
        )
        return results

    def _connect(self) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if self.security == "tls":
            connection = smtplib.SMTP_SSL(
                self.host,
                self.port,
                self.local_hostname,
                timeout=self.timeout,
                context=self._tls_context,
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, self.local_hostname, self.timeout)
        try:
            connection.ehlo()
            if self.security == "starttls":
                connection.starttls(context=self._tls_context)
                connection.ehlo()
            if self.username is not None and self._password is not None:
                connection.login(self.username, self._password)
        except BaseException:
            connection.close()
            raise
        return connection

    def _send_one(self, connection: smtplib.SMTP, message: EmailMessage) -> DeliveryResult:
        message_id = _message_id(message)
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
            return DeliveryResult.failed(message_id, f"connection failed: {_describe(exc)}")
        if refused:
            return DeliveryResult.delivered(
                message_id, f"some recipients refused: {_refusals(refused)}"
            )
        return DeliveryResult.delivered(message_id)


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__


# -- directory --------------------------------------------------------------------------------


class DirectoryTransport:
    """Writes each message as an ``.eml`` file that a mail client opens.

    The file name comes from the Message-ID, so delivering a message again replaces its file.
    Each file is written to a temporary name, flushed to disk and renamed into place: a reader
    never sees half a message, and a crash leaves either the old file or the new one.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DirectoryTransport({str(self.path)!r})"

    def send(self, messages: Sequence[EmailMessage]) -> list[DeliveryResult]:
        if not messages:
            return []
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            error = f"cannot create mail folder {self.path}: {exc}"
            return [DeliveryResult.failed(_message_id(m), error) for m in messages]
        results = [self._write(message) for message in messages]
        _fsync_directory(self.path)
        return results

    def _write(self, message: EmailMessage) -> DeliveryResult:
        message_id = _message_id(message)
        if not message_id:
            return DeliveryResult.failed("", "message has no Message-ID", permanent=True)
        target = self.path / file_name_for(message_id)
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(temporary)
            return DeliveryResult.failed(message_id, f"cannot write {target}: {exc}")
        return DeliveryResult.delivered(message_id)


def file_name_for(message_id: str) -> str:
    """``<wijkloket.ab12…@gemeente.example>`` → ``wijkloket.ab12…@gemeente.example.eml``.

    Characters that do not belong in a file name are replaced; when that happened, a digest of
    the full Message-ID is added so that two different ids never share a file.
    """
    core = message_id.strip().removeprefix("<").removesuffix(">")
    safe = re.sub(r"[^A-Za-z0-9._@+=-]", "_", core)[:160].lstrip(".")
    if safe != core:
        safe = f"{safe}-{hashlib.sha256(message_id.encode('utf-8')).hexdigest()[:16]}"
    return f"{safe}.eml"


def _fsync_directory(path: Path) -> None:
    """Make the renames durable; not every platform can open a folder, which is fine."""
    with suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# -- for tests ----------------------------------------------------------------------------------


class MemoryTransport:
    """Keeps what it is given; for tests of code that delivers mail.

    ``refuse`` maps a recipient address to a result error: such messages fail (permanently
    when the error starts with ``5``).
    """

    def __init__(self, refuse: Mapping[str, str] | None = None) -> None:
        self.sent: list[EmailMessage] = []
        self.batches: list[int] = []
        self.refuse = dict(refuse or {})

    def send(self, messages: Sequence[EmailMessage]) -> list[DeliveryResult]:
        self.batches.append(len(messages))
        results = []
        for message in messages:
            error = self.refuse.get(str(message["To"].addresses[0].addr_spec))
            message_id = _message_id(message)
            if error is None:
                self.sent.append(message)
                results.append(DeliveryResult.delivered(message_id))
            else:
                permanent = error.startswith("5")
                results.append(DeliveryResult.failed(message_id, error, permanent=permanent))
        return results


def transport_from_env(environ: Mapping[str, str]) -> Transport:
    """``LOKET_SMTP_URL`` when set, else the folder ``LOKET_MAIL_DIR`` (default ``./outbox``)."""
    url = environ.get("LOKET_SMTP_URL", "").strip()
    if url:
        return SmtpTransport.from_url(url)
    return DirectoryTransport(Path(environ.get("LOKET_MAIL_DIR") or "outbox"))
