"""A small SMTP server that fails on purpose, for the delivery drills (plain sockets, threads).

It speaks just enough SMTP for smtplib (EHLO, MAIL, RCPT, DATA, NOOP, RSET, QUIT) and fails
the way real servers and networks do, chosen by ``mode``:

- ``ok``: accepts everything;
- ``drop_mid_data``: closes the connection halfway through a message's DATA;
- ``accept_then_drop``: answers 250 to the message, then closes before QUIT;
- ``temporary`` / ``permanent``: answers the message with 451 / 554;
- ``hang_greeting``: accepts the connection and never says a word;
- ``hang_after_data``: takes the message and never answers it;
- ``trickle``: sends every reply one byte at a time, ``interval`` seconds apart;
- ``slow``: waits ``delay`` seconds before its 250 (a number, or a function of the message's
  number).

``times``: only the first ``times`` messages meet the fault (connection-level faults: the first
``times`` connections); after that the server behaves. A message counts as received (by
Message-ID, in :attr:`received`) once its DATA is complete, whatever the server answers then:
that is the moment a real server may have delivered it. ``hold``: an event the server waits
for (after setting :attr:`holding`) before answering the message numbered ``hold_at``.
"""

from __future__ import annotations

import contextlib
import email
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from email import policy

import pytest

MODES = ("ok", "drop_mid_data", "accept_then_drop", "temporary", "permanent", "hang_greeting",
         "hang_after_data", "trickle", "slow")


class FaultySmtpServer:
    host = "127.0.0.1"

    def __init__(self, mode: str = "ok", *, times: int | None = None, interval: float = 0.5,
                 delay: float | Callable[[int], float] = 0.5, hold_at: int | None = None) -> None:
        assert mode in MODES, mode
        self.mode, self.times, self.interval = mode, times, interval
        self._delay = delay
        self.hold_at = hold_at
        self.holding = threading.Event()
        self.hold = threading.Event()
        self.received: list[str] = []
        self.connections = 0
        self.data_count = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._clients: list[socket.socket] = []
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> FaultySmtpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self.hold.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.close()

    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def counts(self) -> Counter[str]:
        """How often each Message-ID arrived."""
        with self._lock:
            return Counter(self.received)

    # -- the server ---------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._clients.append(client)
            threading.Thread(target=self._talk, args=(client, number), daemon=True).start()

    def _faulty(self, number: int) -> bool:
        return self.times is None or number <= self.times

    def _talk(self, client: socket.socket, connection: int) -> None:
        with contextlib.suppress(OSError), client:
            reader = client.makefile("rb")
            if self.mode == "hang_greeting" and self._faulty(connection):
                self._closing.wait()
                return
            self._reply(client, "220 faulty.test ESMTP")
            for raw in reader:
                command = raw.decode("ascii", "replace").strip().upper()
                if command.startswith(("EHLO", "HELO")):
                    self._reply(client, "250-faulty.test\r\n250 8BITMIME")
                elif command.startswith(("MAIL", "RCPT", "NOOP", "RSET")):
                    self._reply(client, "250 OK")
                elif command.startswith("QUIT"):
                    self._reply(client, "221 bye")
                    return
                elif command.startswith("DATA"):
                    self._reply(client, "354 go ahead")
                    if not self._message(client, reader):
                        return
                else:
                    self._reply(client, "500 what?")

    def _message(self, client: socket.socket, reader: Iterator[bytes]) -> bool:
        """One message's DATA and the answer to it; whether the connection goes on."""
        with self._lock:
            self.data_count += 1
            number = self.data_count
        faulty = self._faulty(number)
        lines = []
        for raw in reader:
            if raw == b".\r\n":
                break
            lines.append(raw)
            if self.mode == "drop_mid_data" and faulty and len(lines) == 5:
                client.shutdown(socket.SHUT_RDWR)
                return False
        else:
            return False
        parsed = email.message_from_bytes(b"".join(lines), policy=policy.default)
        with self._lock:
            self.received.append(str(parsed["Message-ID"]))
        if self.hold_at == number:
            self.holding.set()
            self.hold.wait()
        if not faulty:
            self._reply(client, "250 queued")
            return True
        if self.mode == "accept_then_drop":
            self._reply(client, "250 queued")
            client.shutdown(socket.SHUT_RDWR)
            return False
        if self.mode == "temporary":
            self._reply(client, "451 4.3.0 try again later")
        elif self.mode == "permanent":
            self._reply(client, "554 5.7.1 message refused")
        elif self.mode == "hang_after_data":
            self._closing.wait()
            return False
        else:
            if self.mode == "slow":
                self._closing.wait(self._delay(number) if callable(self._delay) else self._delay)
            self._reply(client, "250 queued")
        return True

    def _reply(self, client: socket.socket, text: str) -> None:
        data = (text + "\r\n").encode("ascii")
        if self.mode != "trickle":
            client.sendall(data)
            return
        for byte in data:
            if self._closing.wait(self.interval):
                return
            client.sendall(bytes([byte]))


@pytest.fixture
def faulty_smtp() -> Iterator[Callable[..., FaultySmtpServer]]:
    """Start faulty servers with :class:`FaultySmtpServer`'s options; all stopped afterwards."""
    servers: list[FaultySmtpServer] = []

    def make(*args: object, **kwargs: object) -> FaultySmtpServer:
        server = FaultySmtpServer(*args, **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
