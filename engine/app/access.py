"""Need-to-know reads on a database (SPEC §13.2): the rules of `engine.core.access` applied to
cases as stored, and the access log written for every read of personal values.

When the log cannot be written (the database is too busy for `engine.store.access.WAIT_MS`),
the read goes on without the personal values: nothing personal is ever shown that the log does
not record, and no read fails or waits long for the log's sake. The command says so on stderr.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import sqlalchemy as sa

from engine.app.service import Loket
from engine.core import access
from engine.core.access import Access, Reader
from engine.core.casework import Case
from engine.core.identity import Identity
from engine.errors import NotFound
from engine.store import access as log_store
from engine.store import cases

LOG_UNAVAILABLE = ("personal values hidden: the access log could not be written (the database is busy);"
                   " run the command again to see them")

_CHUNK = 500


class Reading:
    """One command's reads: who reads, what of each case they may see, and the log of it."""

    def __init__(self, loket: Loket, identity: Identity, command: str) -> None:
        self.loket = loket
        self.org = loket.organisation()
        self.reader: Reader = access.reader_of(identity)
        self.command = command

    @property
    def everything(self) -> bool:
        return self.reader.everything

    def is_auditor(self) -> bool:
        return self.reader.everything or self.org.is_auditor(self.reader.id)

    def _portfolio(self, case: Case) -> str | None:
        try:
            return self.loket.type_of(case).portfolio
        except NotFound:
            return None

    def _owner_of(self, type_key: str) -> Any:
        def owner(version: int, state: str) -> str | None:
            try:
                spec = self.loket.request_type(type_key, version).states.get(state)
            except NotFound:
                return None
            return spec.owner if spec is not None else None
        return owner

    def _held(self, case: Case, events: Sequence[dict[str, Any]]) -> list[tuple[int, str | None]]:
        return access.holdings(events, access.first_version(events, case.type_version), self._owner_of(case.type_key))

    def access(self, case: Case) -> Access:
        """What the reader may see of `case`."""
        known = access.quick(self.org, self.reader, owner=case.owner, portfolio=self._portfolio(case))
        if known is not None:
            return known
        with self.loket.read() as conn:
            events = _holding_events(conn, [case.id])[case.id]
        return access.decide(self.org, self.reader, ref=case.ref, owner=case.owner, portfolio=self._portfolio(case),
                             held=self._held(case, events))

    def readable(self, found: Iterable[Case], limit: int | None = None) -> Iterator[tuple[Case, Access]]:
        """The cases among `found` the reader may read, with what they may see of each (at
        most `limit`); the hand-overs of a chunk of cases are read in one query."""
        if self.reader.everything or self.org.is_auditor(self.reader.id):
            everything = ((c, access.EVERYTHING) for c in found)
            return islice(everything, limit) if limit else everything

        def chunks() -> Iterator[tuple[Case, Access]]:
            it = iter(found)
            while chunk := list(islice(it, _CHUNK)):
                decided: dict[int, Access] = {}
                unknown: list[Case] = []
                for c in chunk:
                    known = access.quick(self.org, self.reader, owner=c.owner, portfolio=self._portfolio(c))
                    if known is not None:
                        decided[c.id] = known
                    else:
                        unknown.append(c)
                if unknown:
                    with self.loket.read() as conn:
                        events = _holding_events(conn, [c.id for c in unknown])
                    for c in unknown:
                        decided[c.id] = access.decide(self.org, self.reader, ref=c.ref, owner=c.owner,
                                                      portfolio=self._portfolio(c), held=self._held(c, events[c.id]))
                for c in chunk:
                    if decided[c.id].case:
                        yield c, decided[c.id]
        return islice(chunks(), limit) if limit else chunks()

    def log(self, shown: Sequence[Case], *, detail: str | None = None, whole: bool = False,
            wait_ms: int = log_store.WAIT_MS) -> bool:
        """Record that the reader was shown these cases' personal values (or, `whole`, those of
        many cases at once, described by `detail`); False when the log could not be written."""
        now = self.loket.clock.now()
        recorded = dt.datetime.now(dt.UTC)
        base = {"at": now, "recorded_at": recorded, "reader": self.reader.id, "login": self.reader.login,
                "command": self.command, "detail": detail}
        rows = ([{**base, "case_id": None, "ref": None}] if whole
                else [{**base, "case_id": c.id, "ref": c.ref} for c in shown])
        return log_store.record(self.loket.engine, rows, wait_ms=wait_ms)


def _holding_events(conn: sa.Connection, case_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    return cases.clock_events(conn, case_ids, access.HOLDING_ACTIONS)
