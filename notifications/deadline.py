"""SMTP with a clock of its own: an overall deadline per exchange, and a way to stop.

smtplib's ``timeout`` bounds each socket operation, not an exchange: a server that answers
one byte every 20 seconds never trips a 30-second timeout, and a delivery run waits for it
for ever. :class:`TimedSMTP` reads and writes through :class:`DeadlineSocket`, which waits
in short slices and, between them, checks a deadline the caller sets per exchange (opening
the connection; sending one message) and an optional stop event. Either ends the exchange
with an :class:`OSError`, which smtplib reports as a lost connection; the connection's
``expired`` then says why.

What the slices cannot reach: the TCP connect and the TLS handshake of ``smtps://`` each
wait at most the time left to the deadline per operation, the handshake being a few of
them.
"""

from __future__ import annotations

import io
import smtplib
import socket
import threading
import time
from typing import Any

SLICE = 0.25
"""Seconds one wait on the socket lasts before the deadline and the stop event are checked."""


class Expired(TimeoutError):
    """The exchange ran past its deadline, or the sender is stopping."""


class DeadlineSocket:
    """A connected socket whose every read and write gives up at its owner's deadline.

    Only what smtplib uses is provided (``sendall``, ``makefile('rb')``, ``close``); the rest
    is passed on to the socket.
    """

    def __init__(self, sock: socket.socket, owner: TimedSMTP) -> None:
        self.raw = sock
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def _wait(self) -> float:
        """How long the next wait on the socket may last; :class:`Expired` when none."""
        owner = self._owner
        if owner.stop is not None and owner.stop.is_set():
            owner.expired = "the sender is stopping"
            raise Expired(owner.expired)
        left = owner.deadline - time.monotonic()
        if left <= 0:
            owner.expired = f"no complete answer within {owner.patience:g} s"
            raise Expired(owner.expired)
        return min(left, SLICE)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        while True:
            self.raw.settimeout(self._wait())
            try:
                return self.raw.recv_into(buffer, nbytes)
            except TimeoutError:
                continue

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.raw.settimeout(self._wait())
            try:
                sent = self.raw.send(view)
            except TimeoutError:
                continue  # nothing was written: the same bytes go again
            view = view[sent:]

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("a DeadlineSocket only reads through its file")
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        self.raw.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class TimedSMTP(smtplib.SMTP):
    """An SMTP connection whose exchanges end at ``deadline`` (a ``time.monotonic()``) or when
    ``stop`` is set; start each with :meth:`allow`.

    ``patience`` is the time one exchange may take: it bounds the connect and is what
    :meth:`allow` gives; not connected by the constructor (call :meth:`open`).
    """

    def __init__(self, *, patience: float, stop: threading.Event | None = None,
                 local_hostname: str | None = None, **kwargs: Any) -> None:
        self.patience = patience
        self.stop = stop
        self.deadline = time.monotonic() + patience
        self.expired: str | None = None
        super().__init__(local_hostname=local_hostname, timeout=patience, **kwargs)

    def allow(self, seconds: float | None = None) -> None:
        """Start a new exchange: ``seconds`` (default ``patience``) from now."""
        self.deadline = time.monotonic() + (self.patience if seconds is None else min(seconds, self.patience))
        self.expired = None

    def open(self, host: str, port: int) -> None:
        """Connect and read the greeting within one exchange's time; :class:`OSError` (an
        :class:`smtplib.SMTPConnectError` when the greeting is no 220) otherwise."""
        self.allow()
        self._host = host  # what TLS checks the certificate against; smtplib sets it only when
        #                    the constructor connects
        code, message = self.connect(host, port)
        if code != 220:
            self.close()
            raise smtplib.SMTPConnectError(code, message)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        """smtplib's hook for making the socket (``SMTP_SSL`` wraps it in TLS there)."""
        left = max(self.deadline - time.monotonic(), 0.001)
        sock = super()._get_socket(host, port, min(timeout, left))  # type: ignore[misc]  # not in typeshed
        return DeadlineSocket(sock, self)

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """As smtplib's, with the handshake on the plain socket and the deadline kept after."""
        timed = self.sock
        assert isinstance(timed, DeadlineSocket)
        self.sock = timed.raw
        self.sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
        try:
            reply = super().starttls(*args, **kwargs)
        finally:
            if not isinstance(self.sock, DeadlineSocket) and self.sock is not None:
                self.sock = DeadlineSocket(self.sock, self)
        return reply


class TimedSMTPSSL(TimedSMTP, smtplib.SMTP_SSL):
    """:class:`TimedSMTP` encrypted from the first byte (``smtps://``)."""
