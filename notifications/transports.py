"""Delivering email: over SMTP (:mod:`notifications.smtp`), or into a folder of ``.eml`` files
(the default); which one, from the environment. What a transport is and answers is in
:mod:`notifications.outcome`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from email.message import EmailMessage
from pathlib import Path
from typing import Final

from engine.core.durations import parse_interval
from engine.errors import ConfigurationError
from notifications.message import LABEL_HEADERS, safe_token
from notifications.outcome import DeliveryResult, Session, Transport, id_of, send_all
from notifications.smtp import DEFAULT_TIMEOUT, SmtpTransport

__all__ = ["DEFAULT_TIMEOUT", "DeliveryResult", "DirectoryTransport", "MemoryTransport", "Session",
           "SmtpTransport", "Transport", "file_name_for", "mail_file_name", "send_all", "smtp_timeout",
           "transport_from_env"]


# -- directory --------------------------------------------------------------------------------


class DirectoryTransport:
    """Writes each message as an ``.eml`` file that a mail client opens.

    The file name says what the message is about (:func:`mail_file_name`) and ends in a part of
    its Message-ID, so delivering a message again replaces its file.
    Each file is written to a temporary name, flushed to disk and renamed into place: a reader
    never sees half a message, and a crash leaves either the old file or the new one.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DirectoryTransport({str(self.path)!r})"

    def open(self, stop: threading.Event | None = None) -> DirectorySession:
        return DirectorySession(self)

    def send(self, messages: Sequence[EmailMessage]) -> list[DeliveryResult]:
        """A batch through one session (see :func:`send_all`)."""
        return send_all(self, messages)

    def write(self, message: EmailMessage) -> DeliveryResult:
        """One message as a file, durable (its folder synced) before the result says so."""
        message_id = id_of(message)
        if not message_id:
            return DeliveryResult.failed("", "message has no Message-ID", permanent=True)
        target = self.path / mail_file_name(message)
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=".", suffix=".tmp")
        except OSError as exc:
            return DeliveryResult.failed(message_id, f"cannot write in {self.path}: {exc}")
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
        _fsync_directory(self.path)
        return DeliveryResult.delivered(message_id)


class DirectorySession:
    """The folder, made when the first message comes."""

    def __init__(self, transport: DirectoryTransport) -> None:
        self.transport = transport
        self._ready = False

    def send(self, message: EmailMessage) -> DeliveryResult:
        if not self._ready:
            try:
                self.transport.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return DeliveryResult.failed(id_of(message),
                                             f"cannot create mail folder {self.transport.path}: {exc}", reached=False)
            self._ready = True
        return self.transport.write(message)

    def close(self) -> None:
        """Nothing is held open between messages."""


def mail_file_name(message: EmailMessage) -> str:
    """``2026-03-02_BI-2026-00001_escalation_b.bakker_1f2e3d4c5b6a7988.eml``: the day it was
    queued, the case, the kind, the recipient (``requester`` for a resident), then 16 hex
    digits of the Message-ID's hash — the same message always gets the same name, and the name
    sorts by day in a folder listing. A message without the label headers
    (:class:`~notifications.message.Label`) is named by :func:`file_name_for` alone."""
    message_id = id_of(message)
    parts = [str(message.get(name, "")).strip() for name in LABEL_HEADERS]
    if not all(parts):
        return file_name_for(message_id)
    return "_".join([*(safe_token(part, 40) for part in parts), stable_id(message_id)]) + ".eml"


_OWN_ID = re.compile(r"<wijkloket\.([0-9a-f]{64})@[^<>]*>")


def stable_id(message_id: str) -> str:
    """16 hex digits that stand for a Message-ID: the start of the outbox key's hash in one of
    ours (so ``grep`` finds the file by its Message-ID), else of the id's own hash."""
    own = _OWN_ID.fullmatch(message_id.strip())
    digest = own.group(1) if own else hashlib.sha256(message_id.encode("utf-8")).hexdigest()
    return digest[:16]


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
        self.sessions = 0
        self.refuse = dict(refuse or {})

    def open(self, stop: threading.Event | None = None) -> MemoryTransport:
        self.sessions += 1
        return self

    def send(self, message: EmailMessage) -> DeliveryResult:
        error = self.refuse.get(str(message["To"].addresses[0].addr_spec))
        message_id = id_of(message)
        if error is not None:
            return DeliveryResult.failed(message_id, error, permanent=error.startswith("5"))
        self.sent.append(message)
        return DeliveryResult.delivered(message_id)

    def close(self) -> None:
        """Nothing to close."""


def transport_from_env(environ: Mapping[str, str]) -> Transport:
    """``LOKET_SMTP_URL`` when set (with ``LOKET_SMTP_TIMEOUT``), else the folder
    ``LOKET_MAIL_DIR`` (default ``./outbox``)."""
    url = environ.get("LOKET_SMTP_URL", "").strip()
    if url:
        return SmtpTransport.from_url(url, smtp_timeout(environ))
    return DirectoryTransport(Path(environ.get("LOKET_MAIL_DIR") or "outbox"))


MAX_TIMEOUT: Final = 3600.0


def smtp_timeout(environ: Mapping[str, str]) -> float:
    """``LOKET_SMTP_TIMEOUT``: the seconds an SMTP exchange may take in all (``90``, ``2m``);
    :data:`DEFAULT_TIMEOUT` when unset."""
    text = environ.get("LOKET_SMTP_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_interval(text).total_seconds()
        except ValueError:
            seconds = -1.0
    if not 1 <= seconds <= MAX_TIMEOUT:
        raise ConfigurationError(
            f"LOKET_SMTP_TIMEOUT must be from 1 second to an hour (90, 2m), got {text!r}")
    return seconds
