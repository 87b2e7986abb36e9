"""The configuration a loket runs on: its organisation and request types, loaded and read back.

Loading checks everything first and writes all or nothing; reading caches what was read, since
a definition never changes once stored (a new load is a new version). A long-running process
calls `refresh` to see what was loaded meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.app.clock import Clock, SystemClock
from engine.app.identity import establish
from engine.core import confighistory
from engine.core.calendar import WorkingCalendar
from engine.core.definition import RequestType, parse_request_type
from engine.core.history import timestamp
from engine.core.identity import Identity, require_operator
from engine.core.organisation import Organisation, organisation_to_data, parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import ConfigurationError, InvalidDefinition, InvalidValue, NotFound, Problem
from engine.store import audit, cases, config


@dataclass(frozen=True)
class Loaded:
    key: str
    version: int
    changed: bool


class Definitions:
    """The organisation and request types of one database, cached once read."""

    def __init__(self, engine: sa.Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self._org: Organisation | None = None
        self._calendar: WorkingCalendar | None = None
        self._types: dict[tuple[str, int], RequestType] = {}
        self._latest: dict[str, int] | None = None

    # -- transactions ------------------------------------------------------------------------

    def read(self) -> sa.engine.Connection:
        return self.engine.connect().execution_options(loket_readonly=True)

    def _on(self, conn: sa.Connection | None) -> AbstractContextManager[sa.Connection]:
        """`conn` as it is (the caller's, left open), or a read connection of this database's own."""
        return nullcontext(conn) if conn is not None else self.read()

    def refresh(self) -> None:
        """Forget cached configuration (a long-running worker calls this between sweeps)."""
        self._org = None
        self._calendar = None
        self._latest = None

    # -- meta --------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self.read() as conn:
            return config.meta(conn, key)

    def set_meta(self, conn: sa.Connection, key: str, value: str) -> None:
        config.set_meta(conn, key, value)

    def is_simulation(self) -> bool:
        return self.meta("simulation") == "true"

    def refuse_going_back(self, now: dt.datetime) -> None:
        """A simulation's clock (`--now`) may not go back before the latest instant the history
        records (any case's event, an escalation, a configuration change, a seal, a
        destruction): refused before the command reads or writes anything, so a history never
        runs backwards and no figure counts what has not happened yet."""
        with self.read() as conn:
            found = audit.latest_instant(conn)
        if found is not None and now < found[0]:
            at, what = found
            raise InvalidValue(f"--now {timestamp(now)} is before the latest recorded instant of this database,"
                               f" {timestamp(at)} ({what}): a simulation cannot go back in time")

    # -- who acts, and the configuration history (SPEC §13.1) ---------------------------------

    def identity(self, declared: str | None = None) -> Identity:
        """Who runs this command, having declared `declared` (`--as`; None for nobody)."""
        org = self._org_or_none()
        simulation = org is not None and org.identities_established and self.is_simulation()
        return establish(self.engine, org, declared, simulation=simulation)

    def require_operator(self, by: Identity, command: str, *, auditors: bool = False) -> None:
        """Refuse (exit 1) a configuration command by someone who is no operator (nor, with
        `auditors`, an auditor), when the organisation names operators."""
        require_operator(self._org_or_none(), by, command, auditors=auditors)

    def record_config(self, conn: sa.Connection, by: Identity | None, action: str, detail: dict[str, Any]) -> int:
        """One event in the configuration history, in the transaction `conn` of the change;
        its seq. A caller that says nobody (a library call, the demo) is recorded as its login."""
        if by is None:
            by = self.identity()
        actor = by.person if by.assisting and by.person else by.actor
        if by.assisting:
            detail = {**detail, "on_behalf_of": by.actor}
        return config.record(conn, at=self.clock.now(), actor=actor, login=by.login, action=action, detail=detail)

    def record_init(self, conn: sa.Connection, by: Identity | None, *, before: str | None, simulation: bool) -> None:
        """The schema made (`before` None) or upgraded, and whether this is a simulation database:
        in the transaction that marks it one, so that verify can tell the mark from a forged one."""
        from engine.store.db import SCHEMA_REVISION

        self.record_config(conn, by, confighistory.INIT,
                           {"schema": {"from": before, "to": SCHEMA_REVISION}, "simulation": simulation})

    def mark_simulation(self, conn: sa.Connection, by: Identity | None = None) -> None:
        """Make this a simulation database (`--now` sets its clock, `--as` plays every part), in
        the transaction `conn`, with its event in the configuration history: a flag set any
        other way is damage that `audit verify` names."""
        config.set_meta(conn, "simulation", "true")
        self.record_config(conn, by, confighistory.INIT, {"simulation": True})

    def config_history(self) -> list[Any]:
        """The configuration history, oldest first (`loket audit config`)."""
        with self.read() as conn:
            return config.history(conn)

    # -- the organisation --------------------------------------------------------------------

    def organisation(self) -> Organisation:
        if self._org is None:
            with self.read() as conn:
                data = config.organisation_data(conn)
            if data is None:
                raise ConfigurationError(
                    "no organisation loaded: run 'loket org load FILE' (or 'loket init --sample')"
                )
            self._org = parse_organisation(data, "<stored organisation>")
        return self._org

    def calendar(self) -> WorkingCalendar:
        if self._calendar is None:
            org = self.organisation()
            self._calendar = WorkingCalendar(org.timezone, org.closed_days)
        return self._calendar

    def load_organisation(self, path: str | Path, *, by: Identity | None = None) -> Organisation:
        """Load an organisation file. With `by` (who runs the command), an organisation that
        names operators lets only them (`org load`)."""
        if by is not None:
            self.require_operator(by, "org load")
        org, source = self._checked_organisation(path)
        with self.engine.begin() as conn:
            self._store_organisation(conn, org, source, by)
        self._org, self._calendar = org, None
        return org

    def orphaned_assignees(self) -> list[tuple[str, str]]:
        """(ref, person) of open cases assigned to someone the organisation no longer has:
        their rungs for the assignee go to the lead (vacancy rule) until someone reassigns them."""
        people = self.organisation().people
        with self.read() as conn:
            return [(ref, who) for ref, who in cases.open_assigned(conn) if who not in people]

    def _checked_organisation(self, path: str | Path) -> tuple[Organisation, str]:
        data, locate, source = load_file(path)
        org = parse_organisation(data, str(path), locate)
        # A new organisation must still carry every loaded request type: owners, ladders.
        problems: list[Problem] = []
        for rt in self.latest_types():
            try:
                parse_request_type(self._definition_data(rt.key, self.latest_version(rt.key)), org,
                                   f"request type '{rt.key}'")
            except InvalidDefinition as exc:
                problems.extend(exc.problems)
        if problems:
            raise InvalidDefinition(problems)
        return org, source

    def _store_organisation(self, conn: sa.Connection, org: Organisation, source: str, by: Identity | None) -> None:
        before = config.organisation_data(conn)
        data = config.jsonable(organisation_to_data(org))
        row = config.insert_organisation(conn, data, source, self.clock.now())
        self.record_config(conn, by, confighistory.ORG_LOAD, {
            "organisation": row, "digest": confighistory.data_digest(data),
            "changes": confighistory.organisation_changes(before, data)})

    def load_setup(
        self, org_path: str | Path | None, type_paths: Sequence[str | Path], *, by: Identity | None = None,
    ) -> tuple[Organisation | None, list[Loaded]]:
        """An organisation file and request-type files together, all or nothing (`loket init`):
        the types are checked against the new organisation, and a problem in any file leaves
        the database as it was. With `by`, an organisation in force that names operators
        lets only them."""
        if by is not None and (org_path or type_paths):
            self.require_operator(by, "init with files to load")
        org, source = self._checked_organisation(org_path) if org_path else (self._org_or_none(), None)
        if org is None and type_paths:
            raise ConfigurationError("load the organisation first: 'loket org load FILE'")
        parsed = self.validate_files(type_paths, org) if type_paths else []
        with self.engine.begin() as conn:
            if org is not None and source is not None:
                self._store_organisation(conn, org, source, by)
            loaded = self._store_types(conn, parsed, by)
        if source is not None:
            self._org, self._calendar = org, None
        self._latest = None
        return (org if source is not None else None), loaded

    def _org_or_none(self) -> Organisation | None:
        try:
            return self.organisation()
        except ConfigurationError:
            return None

    # -- request types -----------------------------------------------------------------------

    def _versions(self, conn: sa.Connection | None = None) -> dict[str, int]:
        if self._latest is None:
            with self._on(conn) as reading:
                self._latest = config.latest_versions(reading)
        return self._latest

    def latest_version(self, key: str) -> int:
        version = self._versions().get(key)
        if version is None:
            known = ", ".join(sorted(self._versions())) or "none loaded"
            raise NotFound(f"unknown request type '{key}' (types: {known})")
        return version

    def _definition_data(self, key: str, version: int) -> Any:
        with self.read() as conn:
            data = config.definition_data(conn, key, version)
        if data is None:
            raise NotFound(f"request type '{key}' has no version {version}")
        return data

    def request_type(self, key: str, version: int | None = None) -> RequestType:
        if version is None:
            version = self.latest_version(key)
        found = self._types.get((key, version))
        return found if found is not None else self._stored_type(key, version, self._definition_data(key, version))

    def _stored_type(self, key: str, version: int, data: Any) -> RequestType:
        # A stored version was valid when loaded and stays immutable: read it back without
        # checking it against today's organisation.
        found = self._types[(key, version)] = parse_request_type(data, None, f"{key} v{version}")
        return found

    def latest_types(self, conn: sa.Connection | None = None) -> list[RequestType]:
        """The newest version of every request type, by key. Those not read yet are read in
        one query, on `conn` when given (e.g. a report's snapshot: no other connection is
        opened for them)."""
        latest = self._versions(conn)
        missing = [(key, version) for key, version in latest.items() if (key, version) not in self._types]
        if missing:
            with self._on(conn) as reading:
                for key, version, data in config.definitions_data(reading, missing):
                    self._stored_type(key, version, data)
        return [self._types[(key, latest[key])] for key in sorted(latest)]

    def validate_files(
        self, paths: Sequence[str | Path], org: Organisation | None = None
    ) -> list[tuple[RequestType, Any, str, str]]:
        """Parse and check every file (against `org`, by default the loaded organisation);
        all problems of all files are reported together.

        Everything `load` would refuse is refused here too, including a prefix that another
        loaded request type already uses.
        """
        org = org if org is not None else self._org_or_none()
        problems: list[Problem] = []
        parsed: list[tuple[RequestType, Any, str, str]] = []
        prefixes = self._loaded_prefixes()
        for path in paths:
            try:
                data, locate, source = load_file(path)
                rt = parse_request_type(data, org, str(path), locate)
            except InvalidDefinition as exc:
                problems.extend(exc.problems)
                continue
            owner = prefixes.setdefault(rt.prefix, rt.key)
            if owner != rt.key:
                problems.append(Problem(str(path), "prefix", f"prefix '{rt.prefix}' is already used by '{owner}'",
                                        locate(("prefix",))))
            parsed.append((rt, data, source, str(path)))
        if problems:
            raise InvalidDefinition(problems)
        return parsed

    def _loaded_prefixes(self) -> dict[str, str]:
        try:
            with self.read() as conn:
                return config.prefixes(conn)
        except sa.exc.OperationalError:
            return {}

    def load_request_types(self, paths: Sequence[str | Path], *, by: Identity | None = None) -> list[Loaded]:
        """Load request-type files. With `by` (who runs the command), an organisation that
        names operators lets only them (`workflow load`)."""
        if self._org_or_none() is None:
            raise ConfigurationError("load the organisation first: 'loket org load FILE'")
        if by is not None:
            self.require_operator(by, "workflow load")
        parsed = self.validate_files(paths)
        with self.engine.begin() as conn:
            out = self._store_types(conn, parsed, by)
        self._latest = None
        return out

    def _store_types(self, conn: sa.Connection, parsed: list[tuple[RequestType, Any, str, str]],
                     by: Identity | None) -> list[Loaded]:
        out: list[Loaded] = []
        recorded: list[dict[str, Any]] = []
        now = self.clock.now()
        for rt, data, source, _path in parsed:
            latest = config.type_head(conn, rt.key)
            if latest is not None and latest.digest == rt.digest:
                out.append(Loaded(rt.key, latest.version, False))
                continue
            version = (latest.version if latest else 0) + 1
            definition = config.jsonable(data)
            row = config.insert_request_type(
                conn, key=rt.key, version=version, title=rt.title, prefix=rt.prefix, digest=rt.digest,
                definition=definition, source=source, loaded_at=now,
            )
            out.append(Loaded(rt.key, version, True))
            recorded.append({"row": row, "key": rt.key, "version": version,
                             "digest": confighistory.data_digest(definition)})
        if recorded:
            self.record_config(conn, by, confighistory.WORKFLOW_LOAD, {"types": recorded})
        return out
