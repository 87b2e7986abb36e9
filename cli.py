"""The `loket` command: a thin layer over `engine.app.service.Loket`.

Each command imports what it needs inside its function (SQLAlchemy, the engine, the
notifications, the report), so `loket --help` and shell completion stay fast and a read
command loads nothing only other commands use (docs/architecture.md, "Start-up"; guarded by
tests/test_startup.py). Every domain error is a `LoketError`; `main`
turns it into one `Error:` line and the exit code its kind carries.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from engine.errors import ConfigurationError, InvalidValue, LoketError, NotFound, first_line

if TYPE_CHECKING:
    import datetime as dt

    from engine.app.access import Reading
    from engine.app.service import Loket
    from engine.app.worker import Job
    from engine.core.casework import Case
    from engine.core.identity import Identity
    from notifications.delivery import MailSettings


#: The largest number an integer option takes: every database stores it (a 32-bit INTEGER).
MAX_INT = 2**31 - 1


class Context:
    """What the global options say, and the Loket they open (lazily, once)."""

    def __init__(self, db: str | None, actor: str | None, now: str | None) -> None:
        self.db = db
        self.actor = actor
        self.now_text = now
        self._loket: Loket | None = None
        self._identity: Identity | None = None

    @property
    def url(self) -> str:
        # Resolved on use: engine.store.db imports SQLAlchemy, which `loket case --help` need not load.
        from engine.store.db import resolve_url

        return resolve_url(self.db)

    def open(self, *, create: bool = False) -> Loket:
        if self._loket is not None:
            return self._loket
        from engine.app.clock import FixedClock, parse_now
        from engine.app.service import Loket
        from engine.store.db import SCHEMA_REVISION, current_revision, open_engine

        engine = open_engine(self.url, create=create)
        if not create:
            try:
                revision = current_revision(engine)
            except Exception as exc:  # the database server is down or refuses us
                raise ConfigurationError(f"cannot open database: {first_line(exc)}") from None
            if revision is None:
                raise ConfigurationError("the database has no Wijkloket schema: run 'loket init' first")
            if revision != SCHEMA_REVISION:
                raise ConfigurationError("the database schema is out of date: run 'loket init' to upgrade it")
        loket = Loket(engine)
        if self.now_text is not None and not create:
            if not loket.is_simulation():
                raise InvalidValue("--now is only allowed on a simulation database (loket init --simulation)")
            tz = _timezone_of(loket)
            loket.clock = FixedClock(parse_now(self.now_text, tz))
            loket.refuse_going_back(loket.clock.now())
        self._loket = loket
        if self.actor is not None and not create:
            self.identity()  # an --as that is not allowed is refused by every command, not only some
        return loket

    def identity(self) -> Identity:
        """Who runs this command (SPEC §13.1), decided once: established by the login when the
        organisation gives people a `login`, else `--as` / `LOKET_USER` / the login name as
        given (`engine.core.identity`). A refused `--as` is exit 1."""
        if self._identity is None:
            if self.actor is not None and not self.actor.strip():
                raise InvalidValue("--as (or LOKET_USER) is empty: give the id of a person in the organisation")
            self._identity = self.open().identity(self.actor)
        return self._identity

    def person(self) -> str:
        """The actor of a command that changes something."""
        return self.identity().acting_person()

    def assistant_or_person(self) -> str:
        """The actor of what an administrator may do (comment, instruct): an assistant who acts
        with `--as ADMINISTRATOR` is recorded as themselves, on the administrator's behalf
        (SPEC §12.1), as when they act under their own id."""
        identity = self.identity()
        acting = identity.acting_person()
        return identity.person if identity.assisting and identity.person else acting

    def viewer(self, loket: Loket) -> str:
        """Who reads (whose triggers a listing shows). Someone named with --as or LOKET_USER
        must be in the organisation file, as a person or as an administrator (an alderman,
        whom an escalation email asks to look at the case); the login name, the default, may
        be nobody there and then simply sees no triggers."""
        identity = self.identity()
        person = identity.actor
        if identity.declared and loket.organisation().recipient(person) is None:
            raise NotFound(f"unknown person '{person}' (not in the organisation, as a person or administrator)")
        return person

    def reading(self, loket: Loket, command: str | None = None) -> Reading:
        """The need-to-know reads of this command (SPEC §13.2) by who runs it."""
        from engine.app.access import Reading

        return Reading(loket, self.identity(), command or _command_name())

    def close(self) -> None:
        """Hand back the database connections: one process may run many commands (main)."""
        if self._loket is not None:
            self._loket.engine.dispose()
            self._loket = None
        self._identity = None


def _timezone_of(loket: Loket) -> str:
    try:
        return loket.organisation().timezone
    except ConfigurationError:
        return "Europe/Amsterdam"


pass_ctx = click.make_pass_decorator(Context)

# Options that many commands share, declared once (sqlite-utils does the same): the same
# spelling, help and parameter name everywhere.
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`loket --version`, also from a checkout (`python cli.py`) where nothing is installed."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("wijkloket")
    except PackageNotFoundError:
        number = "unknown (not installed)"
    click.echo(f"loket, version {number}")
    ctx.exit()


class ReaderGone(Exception):
    """The reader of an output went away (`loket audit export | head`)."""


def _reader_went_away(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)


def _late_global(name: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    """The callback of a global option given after the subcommand: it overrides the one before."""
    def take(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None and not ctx.resilient_parsing:
            setattr(ctx.ensure_object(Context), name, value)
    return take


class _LoketCommand(click.Command):
    """A command that also takes the global options `--db`, `--as` and `--now` after its own
    name (`loket case list --mine --as b.bakker`), as people type them. Hidden from each
    command's help; docs/commands.md documents them once."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return [*super().get_params(ctx), *_LATE_GLOBALS]


_LATE_GLOBALS = [
    click.Option(["--db"], metavar="URL", hidden=True, expose_value=False, callback=_late_global("db")),
    click.Option(["--as"], metavar="PERSON", hidden=True, expose_value=False, callback=_late_global("actor")),
    click.Option(["--now"], metavar="ISO-8601", hidden=True, expose_value=False,
                 callback=_late_global("now_text")),
]


class _LoketGroup(click.Group):
    """The top-level group. click ends a command whose output pipe closed with a bare exit 1
    before `run` could see why; here the broken pipe becomes ReaderGone, which `run` ends the
    way other Unix tools end (see `_quiet_exit`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except OSError as exc:
            if _reader_went_away(exc):
                raise ReaderGone from exc
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if _reader_went_away(exc):
                raise ReaderGone from exc
            raise

    command_class = _LoketCommand
    group_class = type  # subgroups are _LoketGroups too, so their commands take the options as well


@click.group(cls=_LoketGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", metavar="URL", help="Database URL (default: LOKET_DB or sqlite:///loket.db).")
@click.option("--as", "actor", metavar="PERSON", envvar="LOKET_USER",
              help="Who is acting (default: LOKET_USER or your login name).")
@click.option("--now", metavar="ISO-8601", envvar="LOKET_NOW",
              help="The time of this run; simulation databases only.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context, db: str | None, actor: str | None, now: str | None) -> None:
    """Wijkloket: residents' requests as audited cases, escalated when they stall."""
    ctx.obj = Context(db, actor, now)
    ctx.call_on_close(ctx.obj.close)


# -- init / org ---------------------------------------------------------------------------


@cli.command()
@click.option("--org", "org_file", type=click.Path(dir_okay=False), help="Organisation file to load.")
@click.option("--workflows", "workflow_dir", type=click.Path(file_okay=False),
              help="Folder of request-type files (*.yaml) to load.")
@click.option("--sample", is_flag=True, help="Load the bundled sample municipality and request types.")
@click.option("--simulation", is_flag=True, help="Make a simulation database: --now sets its clock.")
@pass_ctx
def init(ctx: Context, org_file: str | None, workflow_dir: str | None, sample: bool, simulation: bool) -> None:
    """Create the database, or upgrade its schema; optionally load definitions."""
    from engine.app.bundled import definition_files, sample_paths
    from engine.store.db import SCHEMA_REVISION, current_revision, migrate, shown_url

    if sample and (org_file or workflow_dir):
        raise InvalidValue("--sample loads the bundled files: do not combine it with --org or --workflows")
    files: list[str] = []
    if sample:
        org_file, files = sample_paths()
    elif workflow_dir:
        files = definition_files(workflow_dir)
    if ctx.now_text is not None and not simulation:
        # --now belongs to simulation databases: refuse it before anything is created.
        try:
            ctx.open()
        except ConfigurationError:
            raise InvalidValue("--now is only allowed on a simulation database (loket init --simulation)") from None
        ctx.close()
    new_file = _new_sqlite_file(ctx.url)
    try:
        loket = ctx.open(create=True)
        before = current_revision(loket.engine)
        existed = before is not None
        if existed and simulation and not loket.is_simulation():
            raise InvalidValue("this database holds real cases: it cannot become a simulation database")
        if ctx.now_text is not None and (loket.is_simulation() if existed else simulation):
            # The schema's own history (its creation, an upgrade) is recorded at the run's time too.
            from engine.app.clock import FixedClock, parse_now

            loket.clock = FixedClock(parse_now(ctx.now_text, _timezone_of(loket) if existed else "Europe/Amsterdam"))
            if before == SCHEMA_REVISION:
                loket.refuse_going_back(loket.clock.now())
        if existed and before != SCHEMA_REVISION:
            from engine.app.grants import require_owner

            require_owner(loket, "upgrading the schema")
        migrate(loket.engine)
        with loket.engine.begin() as conn:
            if simulation and not existed:
                loket.set_meta(conn, "simulation", "true")
            if before != SCHEMA_REVISION:
                loket.record_init(conn, None, before=before, simulation=loket.is_simulation() or simulation)
        ctx.close()
        loket = ctx.open()
        org, loaded = loket.load_setup(org_file, files, by=ctx.identity() if existed else None)
    except BaseException:
        # Nothing half-made: a database file this command created goes again.
        ctx.close()
        if new_file is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{new_file}{suffix}").unlink(missing_ok=True)
        raise
    if org is not None:
        click.echo(f"organisation: {org.municipality} ({len(org.units)} units, {len(org.people)} people)")
    if loaded:
        _report_loaded(loaded)
    kind = "simulation database" if loket.is_simulation() else "database"
    what = "created" if before is None else "upgraded" if before != SCHEMA_REVISION else "already up to date"
    click.echo(f"{kind} ready: {shown_url(ctx.url)} ({what})")


def _new_sqlite_file(url: str) -> str | None:
    """The SQLite file `url` names if it does not exist yet (init will create it), else None."""
    if not url.startswith("sqlite"):
        return None
    from engine.store.db import sqlite_path

    path = sqlite_path(url)
    return path if path is not None and not Path(path).exists() else None


@cli.group()
def org() -> None:
    """The organisation: units, people, roles, administrators."""


@org.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_ctx
def org_load(ctx: Context, file: str) -> None:
    """Load (or replace) the organisation file."""
    loket = ctx.open()
    loaded = loket.load_organisation(file, by=ctx.identity())
    click.echo(f"organisation loaded: {loaded.municipality} ({len(loaded.units)} units, {len(loaded.people)} people)")
    orphans = loket.orphaned_assignees()
    if orphans:
        shown = ", ".join(f"{ref} ({who})" for ref, who in orphans[:10]) + (", ..." if len(orphans) > 10 else "")
        click.echo(f"Warning: {len(orphans)} open case(s) are assigned to people no longer in the organisation:"
                   f" {shown}; their reminders go to the unit's lead until 'loket case assign' gives them to"
                   " someone", err=True)


@org.command("show")
@json_option
@pass_ctx
def org_show(ctx: Context, as_json: bool) -> None:
    """Show the organisation."""
    from engine.core.identity import mode
    from engine.core.organisation import organisation_to_data
    from engine.core.views import table

    organisation = ctx.open().organisation()
    identities = mode(organisation)
    if as_json:
        emit_json({**organisation_to_data(organisation), "identities": identities,
                   "operators": organisation.operators()})
        return
    click.echo(f"{organisation.municipality} (language {organisation.language}, {organisation.timezone})")
    click.echo(f"identities: {_identity_mode_line(organisation, identities)}")
    click.echo()
    click.echo(table(["unit", "name", "kind"], [(u.id, u.name, u.kind) for u in organisation.units.values()]))
    click.echo()
    rows = [(p.id, p.name, ", ".join(f"{u}:{r}" for u, r in p.roles.items()), p.login or "-")
            for p in organisation.people.values()]
    click.echo(table(["person", "name", "roles", "login"], rows))
    click.echo()
    admins = [(a.id, a.name, ", ".join(a.portfolios), ", ".join(a.assistants) or "-", a.login or "-")
              for a in organisation.administrators.values()]
    click.echo(table(["administrator", "name", "portfolios", "assistants", "login"], admins))
    if organisation.closed_days:
        click.echo()
        click.echo("closed days: " + ", ".join(d.isoformat() for d in organisation.closed_days))


def _identity_mode_line(org: Any, identities: str) -> str:
    from engine.core.identity import ESTABLISHED

    operators = org.operators()
    configuration = (f"configuration by the operators ({', '.join(operators)})" if operators
                     else "configuration open to whoever can write the database (no operator named)")
    if identities == ESTABLISHED:
        return ("established by the login (PostgreSQL session_user, or the operating-system user on SQLite);"
                " --as only on a simulation database, for an administrator one assists, or as oneself;"
                f" {configuration}")
    return f"taken as given (nobody has a login: --as and the login name are believed); {configuration}"


# -- workflows ----------------------------------------------------------------------------


@cli.group()
def workflow() -> None:
    """Request types: list, show, load, migrate, validate, diagram."""


def _report_loaded(results: Iterable[Any]) -> None:
    for r in results:
        status = "loaded as version" if r.changed else "unchanged, version"
        click.echo(f"{r.key}: {status} {r.version}")


@workflow.command("list")
@json_option
@pass_ctx
def workflow_list(ctx: Context, as_json: bool) -> None:
    """List the loaded request types (newest version of each)."""
    from engine.core.views import table

    loket = ctx.open()
    types = [(rt, loket.latest_version(rt.key)) for rt in loket.latest_types()]
    if as_json:
        emit_json([{"key": rt.key, "version": v, "title": rt.title, "prefix": rt.prefix,
                    "states": len(rt.states), "transitions": len(rt.transitions)} for rt, v in types])
        return
    click.echo(table(["key", "version", "prefix", "title"], [(rt.key, v, rt.prefix, rt.title) for rt, v in types]))


@workflow.command("show")
@click.argument("key")
@click.option("--version", "version", type=click.IntRange(min=1, max=MAX_INT),
              help="A specific version (default: the newest).")
@json_option
@pass_ctx
def workflow_show(ctx: Context, key: str, version: int | None, as_json: bool) -> None:
    """Show a request type: states, owners, deadlines, transitions."""
    from engine.core.views import table

    loket = ctx.open()
    rt = loket.request_type(key, version)
    version = version or loket.latest_version(key)
    if as_json:
        emit_json(_workflow_json(rt, version))
        return
    click.echo(f"{rt.title} ({rt.key} v{version}, prefix {rt.prefix})")
    terms = [f"{name}: {d}" for name, d in (("lead time", rt.lead_time), ("service norm", rt.service_norm),
                                             ("max extension", rt.max_extension)) if d]
    if terms:
        click.echo("; ".join(terms))
    about = [f"answers for the legal term: {rt.answering_unit()}"
             + ("" if rt.responsible else " (owner of the initial state)")]
    if rt.area or rt.measures:
        about.append("results by " + (rt.area or "type")
                     + (f", totals of {', '.join(rt.measures)}" if rt.measures else ""))
    if rt.retention is not None:
        about.append(f"retention: {rt.retention.action} {rt.retention.after} after closing")
    click.echo("; ".join(about))
    click.echo()
    states = [(s.name, s.label, s.owner or "", "paused" if s.paused else (str(s.deadline) if s.deadline else ""),
               f"final ({s.outcome})" if s.final and s.outcome else "final" if s.final else "")
              for s in rt.states.values()]
    click.echo(table(["state", "label", "owner", "deadline", ""], states))
    click.echo()
    rows = [(t.trigger, ", ".join(t.sources), t.dest, ", ".join(t.roles),
             "; ".join([*(f"needs {r}" for r in t.requires), *(str(c) for c in t.when),
                        *(["comment required"] if t.comment_required else [])]))
            for t in rt.transitions]
    click.echo(table(["trigger", "from", "to", "roles", "rules"], rows))


def _workflow_json(rt: Any, version: int) -> dict[str, Any]:
    return {
        "key": rt.key, "version": version, "title": rt.title, "prefix": rt.prefix,
        "portfolio": rt.portfolio, "initial": rt.initial,
        "lead_time": str(rt.lead_time) if rt.lead_time else None,
        "service_norm": str(rt.service_norm) if rt.service_norm else None,
        "max_extension": str(rt.max_extension) if rt.max_extension else None,
        "responsible": rt.responsible, "answering_unit": rt.answering_unit(),
        "area": rt.area, "measures": list(rt.measures),
        "retention": ({"after": str(rt.retention.after), "action": rt.retention.action}
                      if rt.retention is not None else None),
        "fields": {n: {"type": f.type, "required": f.required, "personal": f.personal,
                       "options": list(f.options) or None} for n, f in rt.fields.items()},
        "states": {s.name: {"label": s.label, "owner": s.owner, "final": s.final, "paused": s.paused,
                            "deadline": str(s.deadline) if s.deadline else None, "outcome": s.outcome}
                   for s in rt.states.values()},
        "transitions": [{"trigger": t.trigger, "from": list(t.sources), "to": t.dest, "roles": list(t.roles),
                         "requires": list(t.requires), "comment_required": t.comment_required,
                         "when": [str(c) for c in t.when]} for t in rt.transitions],
    }


@workflow.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option
@pass_ctx
def workflow_load(ctx: Context, files: tuple[str, ...], as_json: bool) -> None:
    """Load request-type files; a changed file becomes the next version.

    A new version says which open cases still run on older ones, per version and state, and
    which of those states it no longer has ('loket workflow migrate' moves them).
    """
    from engine.app.migrate import open_on_older

    loket = ctx.open()
    loaded = loket.load_request_types(list(files), by=ctx.identity())
    older = {r.key: open_on_older(loket, r.key, r.version) if r.changed and r.version > 1 else [] for r in loaded}
    if as_json:
        emit_json([{"key": r.key, "version": r.version, "changed": r.changed, "open_on_older": older[r.key],
                    "missing_states": sorted({o["state"] for o in older[r.key] if not o["in_new_version"]})}
                   for r in loaded])
        return
    _report_loaded(loaded)
    for r in loaded:
        if older[r.key]:
            _report_older(r.key, r.version, older[r.key])


def _report_older(key: str, version: int, older: list[dict[str, Any]]) -> None:
    total = sum(o["cases"] for o in older)
    click.echo(f"  {total} open case(s) still run on older versions:")
    for v in sorted({o["version"] for o in older}):
        parts = [f"{o['state']} {o['cases']}" + ("" if o["in_new_version"] else f" (not in version {version})")
                 for o in older if o["version"] == v]
        click.echo(f"    version {v}: {', '.join(parts)}")
    missing = sorted({o["state"] for o in older if not o["in_new_version"]})
    hint = f" --map {missing[0]}=STATE" if missing else ""
    click.echo(f"  they stay on their version until moved: 'loket workflow migrate {key} --to {version}{hint}"
               " --dry-run' shows what moving them does")


@workflow.command("migrate")
@click.argument("key")
@click.option("--to", "to_version", type=click.IntRange(min=1, max=MAX_INT), required=True,
              help="The version to move the cases to.")
@click.option("--from", "from_version", type=click.IntRange(min=1, max=MAX_INT),
              help="Only cases on this version (default: every version before --to).")
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW",
              help="Move cases in state OLD to state NEW of the new version (default: the state of the same name).")
@click.option("--case", "refs", multiple=True, metavar="REF", help="Only this case (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show per case what would change; write nothing.")
@json_option
@pass_ctx
def workflow_migrate(ctx: Context, key: str, to_version: int, from_version: int | None, maps: tuple[str, ...],
                     refs: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Move open cases to another version of their request type.

    Each case moves wholly or not at all: its state (by name, or as --map says), its deadlines
    counted again under the new version from when their clocks started, and a 'migrated'
    event in its history. A case whose state the new version lacks is refused and left as it
    was; the others go ahead. Exit 1 when a case was refused, 3 when one changed meanwhile.
    """
    from engine.app.migrate import Preview, migrate
    from engine.core.migration import parse_map

    state_map = parse_map(maps)
    loket = ctx.open()
    # A configuration command like 'workflow load': an operator's, when the organisation names
    # one (SPEC §13.1); a migration that moved cases is recorded in the configuration history.
    if not dry_run:
        loket.require_operator(ctx.identity(), "workflow migrate")
    previews: list[dict[str, Any]] = []

    def preview(p: Preview) -> None:
        if as_json:
            previews.append(p.as_json())
        else:
            _report_preview(p)

    result = migrate(loket, key, to_version, from_version=from_version, maps=state_map, refs=list(refs),
                     actor=ctx.person(), dry_run=dry_run, keep_refs=as_json, preview=preview if dry_run else None)
    if not dry_run and result.count:
        with loket.engine.begin() as conn:
            loket.record_config(conn, ctx.identity(), "workflow_migrate",
                                {"key": key, "to_version": to_version, "from_version": from_version,
                                 "state_map": dict(state_map), "cases": result.count})
    if as_json:
        out = result.as_json()
        if dry_run:
            out["cases"] = previews
        emit_json(out)
    else:
        would = "would move" if dry_run else "moved"
        click.echo(f"{key}: {would} {result.count} case(s) to version {to_version}"
                   + (f"; {len(result.refused)} refused:" if result.refused else ""))
        for r in result.refused:
            click.echo(f"  {r.ref} ({r.state}): {r.reason}")
    if result.exit_code:
        raise SystemExit(result.exit_code)


def _report_preview(p: Any) -> None:
    before, after = p.before, p.after
    moved = (f"{before['state']} → {after['state']}" if before["state"] != after["state"] else before["state"])
    click.echo(f"{p.ref}: v{before['version']} → v{after['version']}, {moved}")
    for name in ("owner", "due", "service_due", "case_due", "assignee"):
        if before[name] != after[name]:
            click.echo(f"  {name:<12} {before[name] or '-'} → {after[name] or '-'}")
    if p.fires:
        click.echo(f"  fires at once, as the new dates have passed (the next sweep, once): {', '.join(p.fires)}")
    if p.due_anyway:
        click.echo(f"  due already before the move: {', '.join(p.due_anyway)}")


@workflow.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@pass_ctx
def workflow_validate(ctx: Context, files: tuple[str, ...]) -> None:
    """Check request-type files without loading them (against the loaded organisation, if any)."""
    from engine.app.service import Loket

    try:
        loket = ctx.open()
    except ConfigurationError:
        # No installation to check against: the files alone, in an empty throwaway schema.
        from engine.store.db import migrate, open_engine

        loket = Loket(open_engine("sqlite://", create=True))
        migrate(loket.engine)
    for rt, _data, _source, path in loket.validate_files(list(files)):
        click.echo(f"{path}: ok ({rt.key}: {len(rt.states)} states, {len(rt.transitions)} transitions)")


@workflow.command("diagram")
@click.argument("key")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.option("--version", "version", type=click.IntRange(min=1, max=MAX_INT),
              help="A specific version (default: the newest).")
@pass_ctx
def workflow_diagram(ctx: Context, key: str, fmt: str, version: int | None) -> None:
    """Draw a request type as a Mermaid or Graphviz DOT diagram."""
    from engine.core.diagram import render

    click.echo(render(ctx.open().request_type(key, version), fmt))


# -- cases --------------------------------------------------------------------------------


@cli.group()
def case() -> None:
    """Cases: create, list, show, advance, assign, comment, set."""


def _command_name() -> str:
    """The command being run, as the access log records it (`case show`)."""
    path = click.get_current_context().command_path.split(" ", 1)
    return path[1] if len(path) > 1 else path[0]


def _warn(text: str) -> None:
    click.echo(f"Warning: {text}", err=True)


def _show_case(ctx: Context, loket: Loket, c: Case, as_json: bool, header: str | None = None,
               extra: dict[str, Any] | None = None, recent: bool = False, read: bool = False,
               command: str | None = None) -> None:
    """The case as a command left it; `extra` adds keys to its JSON (the text shows them itself);
    with `recent`, its latest events too (`recent_events`). Need-to-know (SPEC §13.2): a `read`
    of a case the reader may not read is refused (exit 1); personal values are shown only to
    whom they are for, and logged (after a change the changer sees what they may, unrefused)."""
    from engine.app.access import LOG_UNAVAILABLE
    from engine.core.access import HIDDEN_JSON, HIDDEN_TEXT, hide, require, shows_personal
    from engine.core.views import case_json, local, recent_json, visible

    org = loket.organisation()
    rt = loket.type_of(c)
    actor = ctx.viewer(loket)
    reading = ctx.reading(loket, command)
    allowed = reading.access(c)
    if read:
        require(allowed)
    personal = rt.personal_fields()
    shown = allowed.personal
    if shown and shows_personal(c.data, personal) and not reading.log([c]):
        shown = False
        _warn(LOG_UNAVAILABLE)
    view = case_json(c, rt, org, loket.clock.now(), actor)
    if not shown:
        view["data"] = hide(c.data, personal, HIDDEN_JSON)
    directive = loket.directive_of(c)
    events = [e for e in loket.recent_events(c) if e["seq"] >= allowed.since_seq] if recent else []
    if as_json:
        shown_events = {"recent_events": recent_json(events, rt, org.language)} if recent else {}
        emit_json({**view, "directive": directive, **shown_events, **(extra or {})})
        return
    data = c.data if shown else (hide(c.data, personal, HIDDEN_TEXT.get(org.language, HIDDEN_JSON)) or {})
    tz = org.timezone
    if header:
        click.echo(header)
    click.echo(f"{c.ref}  {rt.title} (v{c.type_version})")
    owner = f"{view['owner_name']} ({c.owner})" if c.owner else "-"
    status = "closed " + local(c.closed_at, tz) if c.closed_at else ("suspended" if view["suspended"] else "open")
    lines = [
        ("state", f"{view['state_label']} ({c.state})"),
        ("status", status + ("  OVERDUE" if view["overdue"] else "")),
        ("owner", owner),
        ("assignee", c.assignee or "-"),
        ("due", local(c.state_due, tz)),
        ("service norm", local(c.service_due, tz)),
        ("decision due", local(c.case_due, tz)),
        ("created", f"{local(c.created_at, tz)} by {c.created_by}"),
        ("escalation", str(c.escalation_level)),
    ]
    if c.suspended_manually:
        lines.insert(2, ("resume with", f"loket case resume {c.ref}"))
    if directive is not None:
        lines.append(("instruction", _directive_line(directive, c, tz)))
    for label, value in lines:
        click.echo(f"  {label:<13} {value}")
    if data:
        click.echo("  data")
        for name, value in data.items():
            click.echo(f"    {name:<16} {visible(value)}")
    if events:
        click.echo("  latest events (audit history shows all)")
        for raw, event in zip(events, recent_json(events, rt, org.language), strict=True):
            click.echo(f"    {local(raw['at'], org.timezone)}  {event['actor']:<12} {event['action']:<12}"
                       f" {visible(event['summary'])}".rstrip())
    triggers = view["triggers"]
    click.echo(f"  you ({actor}) may: {', '.join(triggers) if triggers else 'nothing now'}")


def _directive_line(directive: dict[str, Any], c: Case, tz: str) -> str:
    """The latest instruction in `case show`: who gave it, until when, and where it stands."""
    from engine.core.views import local, visible

    by = directive["by"] + (f" for {directive['on_behalf_of']}" if directive.get("on_behalf_of") else "")
    if c.directive_met_at is not None:
        status = f"met {local(c.directive_met_at, tz)}"
    elif c.directive_missed_at is not None:
        status = f"MISSED (escalated {local(c.directive_missed_at, tz)})"
    else:
        status = "open"
    return (f"{status}: by {by} on {local(c.directive_given_at, tz)}, within {directive.get('within')}"
            f" (due {local(c.directive_due, tz)}): {visible(str(directive.get('text') or ''))}")


@case.command("new")
@click.argument("type_key", metavar="TYPE")
@click.option("--data", "assignments", multiple=True, metavar="FIELD=VALUE", help="Field values.")
@click.option("--assign", metavar="PERSON", help="Assign the new case to this person.")
@json_option
@pass_ctx
def case_new(ctx: Context, type_key: str, assignments: tuple[str, ...], assign: str | None, as_json: bool) -> None:
    """Open a new case of request type TYPE."""
    loket = ctx.open()
    c = loket.new_case(type_key, assignments, actor=ctx.person(), assign=assign)
    _show_case(ctx, loket, c, as_json, header="created")


@case.command("list")
@click.option("--type", "type_key", metavar="TYPE", help="Only this request type.")
@click.option("--state", metavar="STATE", help="Only cases in this state.")
@click.option("--unit", metavar="UNIT", help="Only cases held by this unit.")
@click.option("--mine", is_flag=True, help="Only cases assigned to you (--as).")
@click.option("--overdue", is_flag=True, help="Only cases past their state deadline.")
@click.option("--open/--closed", "open_", default=None, help="Only open or only closed cases.")
@click.option("--limit", type=click.IntRange(min=1, max=MAX_INT), help="At most this many cases.")
@json_option
@pass_ctx
def case_list(ctx: Context, type_key: str | None, state: str | None, unit: str | None, mine: bool,
              overdue: bool, open_: bool | None, limit: int | None, as_json: bool) -> None:
    """List cases."""
    from engine.core.views import case_json, is_overdue, local, table

    loket = ctx.open()
    org = loket.organisation()
    now = loket.clock.now()
    actor = ctx.viewer(loket)
    if mine:
        loket.require_person(actor)
    reading = ctx.reading(loket)
    found = loket.list_cases(type_key=type_key, state=state, unit=unit, assignee=actor if mine else None,
                             overdue=overdue, open_=open_, limit=limit if reading.everything else None)
    # Need-to-know (SPEC §13.2): a case the reader may not read is simply left out.
    readable = list(reading.readable(found, limit))
    cases = [c for c, _allowed in readable]
    if as_json:
        from engine.app.access import LOG_UNAVAILABLE
        from engine.core.access import hide, shows_personal

        views = []
        logged: list[Case] = []
        for c, allowed in readable:
            rt = loket.type_of(c)
            view = case_json(c, rt, org, now, actor)
            if not allowed.personal:
                view["data"] = hide(c.data, rt.personal_fields())
            elif shows_personal(c.data, rt.personal_fields()):
                logged.append(c)
            views.append(view)
        if logged and not reading.log(logged):
            _warn(LOG_UNAVAILABLE)
            for view, c in zip(views, cases, strict=True):
                view["data"] = hide(c.data, loket.type_of(c).personal_fields())
        emit_json(views)
        return
    rows = []
    for c in cases:
        rt = loket.type_of(c)
        rows.append((c.ref, rt.key, rt.states[c.state].label, c.owner, c.assignee,
                     "suspended" if c.suspended_manually
                     else local(c.state_due, org.timezone) + (" !" if is_overdue(c, now) else "")))
    if not rows:
        click.echo("no cases")
        return
    click.echo(table(["ref", "type", "state", "owner", "assignee", "due"], rows))


@case.command("show")
@click.argument("ref")
@click.option("--explain", is_flag=True, help="Explain how every deadline was derived.")
@json_option
@pass_ctx
def case_show(ctx: Context, ref: str, explain: bool, as_json: bool) -> None:
    """Show one case."""
    loket = ctx.open()
    c = loket.get_case(ref)
    if explain:
        from engine.app.explain import explain_case
        from engine.core.access import require
        from engine.errors import Refused

        ctx.viewer(loket)  # an --as that names nobody: exit 2, as without --explain
        allowed = require(ctx.reading(loket).access(c))
        if allowed.since_seq:
            raise Refused(f"--explain draws on the whole history of {c.ref}, and a partner sees it from the"
                          " hand-over on: use 'loket case show' and 'loket audit history'")
        lines = explain_case(loket, c)
        if as_json:
            emit_json({"ref": c.ref, "explain": lines})
            return
        _show_case(ctx, loket, c, False, read=True, command="case show --explain")
        click.echo()
        for line in lines:
            click.echo(line)
        return
    _show_case(ctx, loket, c, as_json, recent=True, read=True)


@case.command("triggers")
@click.argument("ref")
@json_option
@pass_ctx
def case_triggers(ctx: Context, ref: str, as_json: bool) -> None:
    """What may be fired on a case now, and by whom."""
    from engine.core.access import require
    from engine.core.casework import allowed_triggers
    from engine.core.views import table

    loket = ctx.open()
    c = loket.get_case(ref)
    actor = ctx.viewer(loket)
    require(ctx.reading(loket).access(c))
    rt = loket.type_of(c)
    org = loket.organisation()
    mine = set(allowed_triggers(rt, org, c, actor)) if actor in org.people else set()
    items: list[dict[str, Any]] = []
    if c.closed_at is None:
        for t in rt.transitions_from(c.state):
            items.append({"trigger": t.trigger, "to": t.dest, "to_label": rt.states[t.dest].label,
                          "roles": list(t.roles), "requires": list(t.requires),
                          "comment_required": t.comment_required, "when": [str(x) for x in t.when],
                          "allowed": t.trigger in mine})
    if as_json:
        emit_json({"ref": c.ref, "state": c.state, "actor": actor, "triggers": items})
        return
    if not items:
        click.echo(f"{c.ref} is closed: nothing can fire")
        return
    rows = [(("* " if i["allowed"] else "  ") + i["trigger"], i["to_label"], ", ".join(i["roles"]),
             "; ".join([*(f"needs {r}" for r in i["requires"]), *i["when"],
                        *(["comment required"] if i["comment_required"] else [])])) for i in items]
    click.echo(table(["trigger", "to", "roles", "rules"], rows))
    click.echo(f"* = you ({actor}) may fire it now")


@case.command("advance")
@click.argument("ref")
@click.argument("trigger")
@click.option("--comment", help="A comment recorded with the step.")
@click.option("--data", "assignments", multiple=True, metavar="FIELD=VALUE", help="Field values set with the step.")
@click.option("--dry-run", is_flag=True, help="Check the step and show the outcome; write nothing.")
@json_option
@pass_ctx
def case_advance(ctx: Context, ref: str, trigger: str, comment: str | None, assignments: tuple[str, ...],
                 dry_run: bool, as_json: bool) -> None:
    """Fire TRIGGER on case REF."""
    loket = ctx.open()
    before = loket.get_case(ref)
    c = loket.advance(ref, trigger, actor=ctx.person(), comment=comment, assignments=assignments, dry_run=dry_run)
    rt = loket.type_of(c)
    header = (f"{'would move' if dry_run else 'moved'}: {rt.states[before.state].label} → "
              f"{rt.states[c.state].label}" + (" (dry run: nothing written)" if dry_run else ""))
    _show_case(ctx, loket, c, as_json, header=header)


@case.command("assign")
@click.argument("ref")
@click.argument("person")
@json_option
@pass_ctx
def case_assign(ctx: Context, ref: str, person: str, as_json: bool) -> None:
    """Assign case REF to PERSON."""
    loket = ctx.open()
    _show_case(ctx, loket, loket.assign(ref, person, actor=ctx.person()), as_json, header=f"assigned to {person}")


@case.command("comment")
@click.argument("ref")
@click.argument("text")
@json_option
@pass_ctx
def case_comment(ctx: Context, ref: str, text: str, as_json: bool) -> None:
    """Add a comment to case REF."""
    loket = ctx.open()
    _show_case(ctx, loket, loket.comment(ref, text, actor=ctx.assistant_or_person()), as_json,
               header="comment added")


@case.command("direct")
@click.argument("ref")
@click.option("--within", "within", required=True, metavar="DURATION",
              help="The term: 5wd (working days), 10d (days), 2w (weeks) or 48h (hours).")
@click.option("--text", required=True, help="What the administrator asks of the unit holding the case.")
@json_option
@pass_ctx
def case_direct(ctx: Context, ref: str, within: str, text: str, as_json: bool) -> None:
    """Give an instruction with a term on case REF (the administrator of its portfolio, or an
    assistant): it is met when the case leaves its state within the term, else it escalates."""
    from engine.core.durations import parse_term

    term = parse_term(within)
    loket = ctx.open()
    before = loket.get_case(ref)
    c = loket.direct(ref, term, text, actor=ctx.assistant_or_person())
    header = f"instruction given, within {within.strip()}"
    if before.directive_open():
        header += " (it replaces the open one)"
    _show_case(ctx, loket, c, as_json, header=header)


@case.command("set")
@click.argument("ref")
@click.argument("assignments", nargs=-1, required=True, metavar="FIELD=VALUE...")
@json_option
@pass_ctx
def case_set(ctx: Context, ref: str, assignments: tuple[str, ...], as_json: bool) -> None:
    """Change field values of case REF (FIELD= empties a field)."""
    loket = ctx.open()
    _show_case(ctx, loket, loket.set_fields(ref, assignments, actor=ctx.person()), as_json, header="fields changed")


@case.command("suspend")
@click.argument("ref")
@click.option("--reason", required=True, help="Why the clock stops (e.g. waiting for the resident).")
@json_option
@pass_ctx
def case_suspend(ctx: Context, ref: str, reason: str, as_json: bool) -> None:
    """Stop the clocks of case REF (opschorting); every deadline moves on resume."""
    loket = ctx.open()
    _show_case(ctx, loket, loket.suspend(ref, reason, actor=ctx.person()), as_json, header="suspended")


@case.command("resume")
@click.argument("ref")
@json_option
@pass_ctx
def case_resume(ctx: Context, ref: str, as_json: bool) -> None:
    """Restart the clocks of a suspended case; running deadlines move later."""
    loket = ctx.open()
    _show_case(ctx, loket, loket.resume(ref, actor=ctx.person()), as_json, header="resumed")


@case.command("extend")
@click.argument("ref")
@click.option("--weeks", type=click.IntRange(min=1), help="Extend by this many weeks.")
@click.option("--working-days", type=click.IntRange(min=1), help="Extend by this many working days.")
@click.option("--reason", required=True, help="Why the decision term is extended.")
@json_option
@pass_ctx
def case_extend(ctx: Context, ref: str, weeks: int | None, working_days: int | None, reason: str,
                as_json: bool) -> None:
    """Extend the legal decision term of case REF (lead or head), within max_extension."""
    from engine.core.durations import Duration

    if (weeks is None) == (working_days is None):
        raise InvalidValue("give exactly one of --weeks N or --working-days N")
    by = Duration("weeks", weeks) if weeks is not None else Duration("working_days", working_days or 0)
    loket = ctx.open()
    _show_case(ctx, loket, loket.extend(ref, by, reason, actor=ctx.person()), as_json, header=f"extended by {by}")


@case.command("redact")
@click.argument("ref")
@click.option("--reason", required=True, help="Why the data is erased (e.g. retention ended).")
@click.option("--comments", is_flag=True,
              help="Erase the comments, instruction texts and typed reasons instead of the personal fields.")
@click.option("--field", "fields", multiple=True, metavar="F",
              help="Erase the values of field F (a text or personal field); may be repeated.")
@json_option
@pass_ctx
def case_redact(ctx: Context, ref: str, reason: str, comments: bool, fields: tuple[str, ...], as_json: bool) -> None:
    """Erase the personal data of case REF (a head of the unit holding it), or its free text
    (--comments, --field F); the chain stays valid. Texts written before free text entered the
    chain by digest cannot be erased: the command lists them, with why."""
    from engine.app.maintenance import after_redaction
    from engine.app.redact import mail_told, redact

    loket = ctx.open()
    done = redact(loket, ref, reason, actor=ctx.person(), comments=comments, fields=fields)
    c, mail = done.case, done.mail
    erasure = after_redaction(loket)
    told = mail_told(mail)
    what = [*done.fields, *([f"{done.texts} text(s)"] if comments else [])]
    _show_case(ctx, loket, c, as_json, header=f"redacted: {', '.join(what) or 'nothing'}",
               extra={"erasure": {"files_clean": erasure.clean, "message": erasure.message},
                      "mail": {"changed": mail.changed, "cancelled": mail.cancelled,
                               "delivered": mail.delivered, "message": told},
                      "redacted": {"fields": done.fields, "texts": done.texts,
                                   "not_erased": [{"seq": n.seq, "what": n.what, "why": n.why}
                                                  for n in done.not_erased]}})
    if not as_json:
        for n in done.not_erased:
            click.echo(f"not erased: event {n.seq} ({n.what}): {n.why}")
        click.echo(f"mail: {told}")
        click.echo(f"files: {erasure.message}")


# -- retention (SPEC §15) ---------------------------------------------------------------------


@cli.group()
def retention() -> None:
    """Retention terms: the closed cases whose term has passed, and carrying the terms out."""


@retention.command("list")
@json_option
@pass_ctx
def retention_list(ctx: Context, as_json: bool) -> None:
    """The closed cases whose retention term has passed, with the date it passed."""
    from engine.app.retention import due, nothing_due
    from engine.core.views import local, table

    loket = ctx.open()
    if as_json:
        emit_json([d.as_json() for d in due(loket)])
        return
    tz = loket.organisation().timezone
    rows = [(d.ref, d.type_key, local(d.closed_at, tz)[:10], d.term, d.due_on.isoformat(), d.action)
            for d in due(loket)]
    if not rows:
        click.echo(nothing_due(loket))
        return
    click.echo(table(["ref", "type", "closed", "term", "passed on", "action"], rows))
    click.echo(f"{len(rows)} case(s) due: 'loket retention run --reason TEXT --list FILE' carries the terms out")


@retention.command("run")
@click.option("--reason", required=True, help="Why (e.g. the selection list and its decision); on every tombstone.")
@click.option("--list", "list_path", metavar="FILE",
              help="Write the destruction list (CSV) of the cases destroyed, for the archivist to sign.")
@json_option
@pass_ctx
def retention_run(ctx: Context, reason: str, list_path: str | None, as_json: bool) -> None:
    """Carry out every retention term that has passed: redact or destroy each due case.

    A destroyed case leaves a tombstone that seals and 'audit verify' account for. Cases are
    destroyed wholly or not at all; a run that was stopped is resumed by running again.
    """
    from engine.app.retention import check_reason, run

    if list_path == "-":
        raise InvalidValue("--list - would mix the destruction list with the run's summary on standard output,"
                           " and the archivist needs a file: give a file name")
    check_reason(reason)
    loket = ctx.open()
    by = ctx.identity()
    loket.require_operator(by, "retention run")
    result = run(loket, reason, by=by, list_path=list_path, database=ctx.url)
    if as_json:
        emit_json(result.as_json())
        return
    if result.run is None:
        click.echo(result.files_message)
    else:
        click.echo(f"retention run {result.run}: {result.destroyed} case(s) destroyed, {result.redacted} redacted"
                   + (f", {len(result.skipped)} left as they were:" if result.skipped else ""))
    for ref, why in result.skipped:
        click.echo(f"  {ref}: {why}")
    if result.list_file is not None:
        runs = ", ".join(str(r) for r in result.list_runs)
        click.echo(f"destruction list: {result.list_file}, {result.listed} case(s) of run(s) {runs}"
                   f" (sha256 {result.list_sha256}); recorded in the configuration history for the archivist's"
                   " verklaring van vernietiging")
    if result.destroyed or result.redacted:
        click.echo(f"files: {result.files_message}")


# -- escalation, worker, outbox -------------------------------------------------------------


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show what is due now; write nothing.")
@click.option("--forecast", "days", type=click.IntRange(min=1, max=366), metavar="DAYS",
              help="List what will fire in the coming DAYS days; write nothing.")
@json_option
@pass_ctx
def escalate(ctx: Context, dry_run: bool, days: int | None, as_json: bool) -> None:
    """Run one escalation sweep: fire every due rung, breach and timeout, exactly once."""
    from engine.app.sweep import forecast, sweep
    from engine.core.views import local, table

    loket = ctx.open()
    if days is not None:
        items = forecast(loket, days)
        if as_json:
            emit_json({"horizon_days": days, "fired": items})
            return
        if not items:
            click.echo(f"nothing will fire in the next {days} days")
            return
        import datetime as dt

        tz = loket.organisation().timezone
        click.echo(table(["due", "ref", "state", "rung", "to"],
                         [(local(dt.datetime.fromisoformat(i["due_at"]), tz), i["ref"], i["state"], i["rung"], i["to"])
                          for i in items]))
        return
    result = sweep(loket, dry_run=dry_run)
    if as_json:
        emit_json(result.as_json())
        return
    verb = "would fire" if dry_run else "fired"
    click.echo(f"{result.checked} due case(s) checked, {len(result.fired)} {verb}")
    if result.fired:
        click.echo(table(["ref", "state", "rung", "to", "email"],
                         [(f["ref"], f["state"], f["rung"], f["to"], f["email"]) for f in result.fired]))


def _interval(text: str, option: str) -> Any:
    from engine.core.durations import parse_interval

    try:
        return parse_interval(text)
    except ValueError as exc:
        raise InvalidValue(f"{option}: {exc}") from None


@cli.command()
@click.option("--sweep-every", default="1m", show_default=True, metavar="DURATION",
              help="How often to sweep (30s, 5m, 1h...).")
@click.option("--deliver-every", default="30s", show_default=True, metavar="DURATION",
              help="How often to deliver the outbox.")
@click.option("--maintain-every", default="1h", show_default=True, metavar="DURATION",
              help="How often to look after the database files (rewrites after a redaction).")
@click.option("--retention-every", metavar="DURATION",
              help="Also carry out the retention terms this often (off unless given; needs --retention-reason).")
@click.option("--retention-reason", metavar="TEXT", help="The reason recorded on what the worker's retention runs do.")
@pass_ctx
def worker(ctx: Context, sweep_every: str, deliver_every: str, maintain_every: str, retention_every: str | None,
           retention_reason: str | None) -> None:
    """Sweep and deliver on a schedule until stopped (SIGTERM/SIGINT stop it within seconds)."""
    import threading

    from engine.app.worker import run_worker
    from notifications.delivery import MailSettings

    every_sweep = _interval(sweep_every, "--sweep-every")
    every_deliver = _interval(deliver_every, "--deliver-every")
    every_maintain = _interval(maintain_every, "--maintain-every")
    retention_run: tuple[dt.timedelta, str, Any] | None = None
    if retention_every is None and retention_reason is not None:
        raise InvalidValue("--retention-reason needs --retention-every DURATION (retention runs are off by default)")
    if retention_every is not None:
        from engine.app.retention import check_reason

        every_retention = _interval(retention_every, "--retention-every")
        if retention_reason is None:
            raise InvalidValue("--retention-every needs --retention-reason TEXT: it is recorded on every tombstone")
        retention_run = (every_retention, check_reason(retention_reason), None)
    loket = ctx.open()
    from engine.core.identity import require_service

    require_service(ctx.identity(), "the worker")
    if retention_run is not None:
        retention_run = (retention_run[0], retention_run[1], ctx.identity())
    settings = MailSettings.from_env()
    stop = threading.Event()

    def echo(line: str) -> None:
        click.echo(line, err=True)

    jobs = worker_jobs(loket, settings, every_sweep, every_deliver, echo, stop, maintain_every=every_maintain,
                       retention=retention_run)
    run_worker(jobs, echo=echo, stop=stop)


def worker_jobs(loket: Loket, settings: MailSettings, sweep_every: dt.timedelta, deliver_every: dt.timedelta,
                echo: Callable[[str], None], stop: Any = None,
                maintain_every: dt.timedelta | None = None,
                retention: tuple[dt.timedelta, str, Any] | None = None) -> list[Job]:
    """The worker's jobs: the engine's sweep, the outbox delivery through `settings`, and the
    maintenance of the database files (the table rewrites a redaction left pending); with
    `retention` (how often, the reason, who runs the worker), retention runs too.

    Each job runs in a thread of its own, so each gets a Loket of its own (their caches are
    not shared between threads); `stop` is the worker's stop event, for jobs that can take long.
    """
    import datetime

    from engine.app.maintenance import maintain_job
    from engine.app.service import Loket
    from engine.app.worker import Job, sweep_job
    from notifications.delivery import deliver_job

    def own() -> Loket:
        return Loket(loket.engine, loket.clock)

    jobs = [Job("sweep", "sweeping", sweep_every, sweep_job, (loket, echo)),
            Job("deliver", "delivering", deliver_every, deliver_job, (own(), settings, echo, stop)),
            Job("maintain", "maintaining", maintain_every or datetime.timedelta(hours=1), maintain_job, (own(), echo))]
    if retention is not None:
        from engine.app.retention import retention_job

        every, reason, by = retention
        jobs.append(Job("retention", "carrying out retention terms", every, retention_job,
                        (own(), reason, by, echo, stop)))
    return jobs


@cli.group()
def outbox() -> None:
    """The email outbox: list, send, retry."""


@outbox.command("list")
@click.option("--failed", is_flag=True, help="Only messages that failed for good.")
@click.option("--limit", type=click.IntRange(min=1, max=MAX_INT), help="At most this many messages.")
@json_option
@pass_ctx
def outbox_list(ctx: Context, failed: bool, limit: int | None, as_json: bool) -> None:
    """List the messages in the outbox."""
    from engine.core.views import iso, table
    from notifications.requeue import list_outbox

    rows = list_outbox(ctx.open(), failed=failed, limit=limit)
    if as_json:
        emit_json([{"id": r["id"], "key": r["key"], "to": r["to_email"], "recipient": r["recipient"],
                    "subject": r["subject"], "kind": r["kind"], "status": r["status"],
                    "attempts": r["attempts"], "next_attempt_at": iso(r["next_attempt_at"]),
                    "last_error": r["last_error"], "created_at": iso(r["created_at"]),
                    "sent_at": iso(r["sent_at"])} for r in rows])
        return
    if not rows:
        click.echo("no failed messages" if failed else "the outbox is empty")
        return
    click.echo(table(["id", "key", "status", "tries", "to", "subject"],
                     [(r["id"], r["key"], r["status"], r["attempts"], r["to_email"], r["subject"]) for r in rows]))


@outbox.command("retry")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--failed", is_flag=True, help="Queue every failed message again.")
@json_option
@pass_ctx
def outbox_retry(ctx: Context, keys: tuple[str, ...], failed: bool, as_json: bool) -> None:
    """Queue failed messages again (all with --failed, or by KEY), e.g. after the mail server
    was fixed; the next `outbox send` or worker delivers them, with the same Message-ID."""
    from notifications.requeue import retry

    loket = ctx.open()
    report = retry(loket, keys=keys, failed=failed, now=loket.clock.now())
    if as_json:
        emit_json({"requeued": list(report.requeued), "waiting": list(report.waiting),
                   "sending": list(report.sending)})
        return
    click.echo(report.summary())


@outbox.command("send")
@json_option
@pass_ctx
def outbox_send(ctx: Context, as_json: bool) -> None:
    """Deliver every due message through the configured transport (LOKET_SMTP_URL or LOKET_MAIL_DIR)."""
    from notifications.delivery import MailSettings, deliver

    settings = MailSettings.from_env()
    report = deliver(ctx.open(), settings)
    if as_json:
        emit_json({"sent": report.sent, "retrying": report.retrying, "failed": report.failed,
                   "errors": report.errors, "operators_told": report.told})
    else:
        click.echo(f"{report.sent} sent, {report.retrying} to retry, {report.failed} failed"
                   f" (transport: {settings.transport!r})")
        for error in report.errors:
            click.echo(f"  failed: {error}")
    # Failing for good, or retrying, is what delivery is for, so neither is an error (exit 0);
    # but cron mails what a job writes on stderr, and these need someone's attention.
    if report.failed:
        told = (f"operators told by email: {', '.join(report.told)}" if report.told
                else "no operator in the organisation file to tell by email")
        click.echo(f"Warning: {report.failed} message(s) failed for good ({told});"
                   " 'loket outbox list --failed' shows them, 'loket outbox retry' queues them again", err=True)
    if report.retry_errors and not report.sent:
        # A run that delivered nothing at all usually means the mail server or folder is unreachable.
        click.echo(f"Warning: nothing could be delivered; {report.retrying} message(s) will be tried again."
                   f" First error: {report.retry_errors[0]}", err=True)
    elif report.stopped:
        click.echo(f"Warning: the run ended early ({report.stopped}); the next run takes up the rest", err=True)


# -- audit --------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database: maintain, repair-stays, grants."""


@db.command("maintain")
@pass_ctx
def db_maintain(ctx: Context) -> None:
    """Do pending work on the database files now (what the worker does on its schedule).

    Today that is removing erased personal values from the files; exit 3 when it could not
    be finished yet (another session still needs the old data) — run it again later. On
    PostgreSQL it is a task for the installation's owner role.
    """
    from engine.app.grants import require_owner
    from engine.app.maintenance import run

    loket = ctx.open()
    require_owner(loket, "db maintain")
    result = run(loket)
    if result is None:
        click.echo("nothing to do: no erased values wait to leave the database files")
        return
    click.echo(result.message)
    if not result.clean:
        sys.exit(3)


@db.command("repair-stays")
@click.option("--check", is_flag=True,
              help="Only list the cases whose stay rows differ; change nothing (exit 1 if any).")
@json_option
@pass_ctx
def db_repair_stays(ctx: Context, check: bool, as_json: bool) -> None:
    """Rebuild the stay rows (case_stay) that differ from the history, case by case.

    The rows are derived from the history, which is not touched: per case whose rows differ,
    its rows are deleted and the ones its history gives written, recorded in the
    configuration history. An operator's task; on PostgreSQL, the tables' owner role's.
    """
    from engine.app.repair import SHOWN, repair_stays, stays_to_repair

    loket = ctx.open()
    result = stays_to_repair(loket) if check else repair_stays(loket, ctx.identity())
    if as_json:
        emit_json(result.as_json())
    elif not result.found:
        click.echo("nothing to repair: every stay row (case_stay) is what the history gives, and the stay counts"
                   " (stay_tally) are what the rows give")
    elif not result.cases and check:
        click.echo("the stay counts (stay_tally) differ from the stay rows (case_stay); 'loket db repair-stays'"
                   " counts them again")
    elif not result.cases:
        click.echo("counted the stay counts (stay_tally) again from the stay rows; recorded in the configuration"
                   f" history (event {', '.join(map(str, result.events))})")
    else:
        refs = ", ".join(result.refs) + (f", … ({result.cases} in all)" if result.cases > SHOWN else "")
        if check:
            click.echo(f"{result.cases} case(s) whose stay rows differ from their history ({result.removed} row(s)"
                       f" stored to remove, {result.written} to write): {refs}"
                       f"{'; the stay counts (stay_tally) differ too' if result.tally else ''}; 'loket db repair-stays'"
                       " rebuilds them")
        else:
            events = ", ".join(str(seq) for seq in result.events)
            counted = "; the stay counts (stay_tally) counted again" if result.tally else ""
            click.echo(f"repaired the stay rows of {result.cases} case(s) from their history: {result.removed}"
                       f" row(s) removed, {result.written} written: {refs}{counted}; recorded in the configuration"
                       f" history (event {events})")
    if check and result.found:
        sys.exit(1)


@db.command("grants")
@click.option("--apply", "apply_", is_flag=True, help="Run the SQL (one transaction) instead of printing it.")
@pass_ctx
def db_grants(ctx: Context, apply_: bool) -> None:
    """PostgreSQL: the role loket_users for people's logins, which may add to history, not change it.

    Without --apply, print the SQL; with it, run that SQL in one transaction as the tables'
    owner role (running it again changes nothing) and record it in the configuration history.
    """
    from engine.app.grants import GROUP, apply, grants

    loket = ctx.open()
    if not apply_:
        click.echo(grants(loket).script, nl=False)
        return
    done = apply(loket, ctx.identity())
    click.echo(f"applied {len(done.statements)} statements: role {GROUP} may read and add to the history, not"
               f" change it; redaction and retention run through functions owned by '{done.owner}'")


@cli.group()
def audit() -> None:
    """History and integrity: history, verify, seal, config, export, access."""


@audit.command("history")
@click.argument("ref")
@json_option
@pass_ctx
def audit_history(ctx: Context, ref: str, as_json: bool) -> None:
    """The complete timeline of case REF."""
    from engine.app.access import LOG_UNAVAILABLE
    from engine.core.access import hide, require, shows_personal
    from engine.core.views import event_detail, event_json, local, table

    loket = ctx.open()
    ctx.viewer(loket)  # an --as that names nobody: exit 2, as for case show
    reading = ctx.reading(loket)
    c, events = loket.history(ref)
    allowed = require(reading.access(c))
    # A partner sees the history from the hand-over to it on (SPEC §13.2).
    events = [e for e in events if e["seq"] >= allowed.since_seq]
    personal = loket.type_of(c).personal_fields()
    shown = allowed.personal
    if shown and any(shows_personal(e["data"], personal) for e in events) and not reading.log([c]):
        shown = False
        _warn(LOG_UNAVAILABLE)
    if not shown:
        events = [{**e, "data": hide(e["data"], personal)} for e in events]
    if as_json:
        emit_json([event_json(e) for e in events])
        return
    tz = loket.organisation().timezone
    click.echo(f"{c.ref}: {len(events)} events" + (f" (from #{allowed.since_seq}, the hand-over to your unit)"
                                                   if allowed.since_seq else ""))
    labels = {name: state.label for name, state in loket.type_of(c).states.items()}
    hidden = frozenset() if shown else personal
    rows = [(e["seq"], local(e["at"], tz), e["actor"], e["action"], event_detail(e, labels=labels, hide=hidden),
             e["hash"][:12]) for e in events]
    click.echo(table(["#", "at", "actor", "action", "what", "hash"], rows))


@audit.command("verify")
@click.option("--against", "against", metavar="DIGEST", multiple=True,
              help="Also check against this seal digest, kept outside the database (repeatable).")
@click.option("--against-file", "against_file", metavar="FILE",
              help="Also check against every seal digest in FILE (one per line).")
@json_option
@pass_ctx
def audit_verify(ctx: Context, against: tuple[str, ...], against_file: str | None, as_json: bool) -> None:
    """Recompute every hash chain; exit 1 naming the first case and event that do not match."""
    from engine.app.verify import kept_digests, verify

    digests = kept_digests(against, against_file)
    result = verify(ctx.open(), against=digests)
    if as_json:
        emit_json(result.as_json())
    elif result.ok:
        kept = f"; {len(digests)} seal(s) kept outside still hold" if digests else ""
        click.echo(f"ok: {result.cases} cases, {result.events} events, every chain intact;"
                   f" {result.config_events} configuration changes, their history intact{kept}")
        if result.destroyed:
            click.echo(f"destroyed when their retention ended (tombstones account for them): {result.destroyed_told()}")
    if not result.ok:
        click.echo(f"Error: {result.failure}", err=True)
        sys.exit(1)


@audit.command("seal")
@json_option
@pass_ctx
def audit_seal(ctx: Context, as_json: bool) -> None:
    """Record a checkpoint over all chains: later deletions of cases or events are detected."""
    from engine.app.seal import seal

    result = seal(ctx.open(), by=ctx.identity())
    if as_json:
        emit_json(result.as_json())
        return
    click.echo(f"seal {result.id}: {result.cases} cases, {result.events} events, digest {result.digest}")
    if result.mailed:
        click.echo(f"the digest is mailed to the auditors ({', '.join(result.mailed)}) with the next delivery;"
                   " keep it outside the database and check with 'loket audit verify --against DIGEST'")
    else:
        click.echo("no auditor in the organisation: keep the digest outside the database yourself and"
                   " check with 'loket audit verify --against DIGEST'")


@audit.command("config")
@json_option
@pass_ctx
def audit_config(ctx: Context, as_json: bool) -> None:
    """The configuration history: who changed what in the installation, and when."""
    from engine.core.confighistory import describe
    from engine.core.views import iso, local, table

    loket = ctx.open()
    events = loket.config_history()
    if as_json:
        emit_json([{"seq": e["seq"], "at": iso(e["at"]), "recorded_at": iso(e["recorded_at"]), "actor": e["actor"],
                    "login": e["login"], "action": e["action"], "detail": e["detail"], "prev_hash": e["prev_hash"],
                    "hash": e["hash"]} for e in events])
        return
    if not events:
        click.echo("no configuration changes recorded")
        return
    tz = _timezone_of(loket)
    rows = [(e["seq"], local(e["at"], tz), e["actor"] + (f" ({e['login']})" if e["login"] not in (None, e["actor"])
                                                          else ""),
             e["action"], describe(e["action"], e["detail"] or {}), e["hash"][:12]) for e in events]
    click.echo(table(["#", "at", "who", "action", "what", "hash"], rows))


def _day_or_time(text: str | None, option: str, tz: str) -> Any:
    if text is None:
        return None
    from engine.app.clock import parse_now

    try:
        return parse_now(text, tz)
    except InvalidValue:
        raise InvalidValue(f"{option} expects a date (YYYY-MM-DD) or an ISO-8601 time, got {text!r}") from None


@audit.command("export")
@click.option("--since", metavar="DATE", help="Events at or after this date/time (local).")
@click.option("--until", metavar="DATE", help="Events before this date/time (local).")
@click.option("--type", "type_key", metavar="TYPE", help="Only cases of this request type.")
@click.option("--unit", metavar="UNIT", help="Only events while the case was held by this unit.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--output", "-o", metavar="FILE", help="Write to FILE (default, or '-': standard output).")
@click.option("--pseudonymise", is_flag=True,
              help="Replace people, personal values and free texts by pseudonyms of this export only.")
@pass_ctx
def audit_export(ctx: Context, since: str | None, until: str | None, type_key: str | None, unit: str | None,
                 fmt: str, output: str | None, pseudonymise: bool) -> None:
    """Export events as CSV or JSON Lines, streamed (constant memory)."""
    from engine.app.export import export

    loket = ctx.open()
    tz = _timezone_of(loket)
    start, end = _day_or_time(since, "--since", tz), _day_or_time(until, "--until", tz)
    if start is not None and end is not None and end <= start:
        raise InvalidValue("--until must be later than --since")
    log_export = _export_access(ctx, loket, since=since, until=until, type_key=type_key, unit=unit,
                                pseudonymise=pseudonymise)
    if output is None:
        log_export()
        export(loket, sys.stdout.write, fmt=fmt, since=start, until=end, type_key=type_key, unit=unit,
               pseudonymise=pseudonymise)
        sys.stdout.flush()
        return
    from engine.store.outfile import output_file

    with output_file(output, database=ctx.url) as handle:
        log_export()
        count = export(loket, handle.write, fmt=fmt, since=start, until=end, type_key=type_key, unit=unit,
                       pseudonymise=pseudonymise)
    if output != "-":  # on standard output (`-o -`) the events speak for themselves, as without -o
        click.echo(f"{count} events written to {output}", err=True)


def _export_access(ctx: Context, loket: Loket, *, since: str | None, until: str | None, type_key: str | None,
                   unit: str | None, pseudonymise: bool) -> Callable[[], None]:
    """`audit export` reads other units' cases: for auditors (SPEC §13.2), exit 1 otherwise.
    Returns what logs the export once its output is accepted: an export with personal values
    is one read of many cases, and waits for a busy database as long as a writer would; unlike a
    look at one case, nothing is exported unlogged (exit 1, before anything is written, if the
    log cannot be written)."""
    from engine.errors import Refused
    from engine.store.db import busy_timeout_ms

    reading = ctx.reading(loket, "audit export")
    if not reading.is_auditor():
        auditors = [p.id for p in loket.organisation().people.values() if "auditor" in p.roles.values()]
        raise Refused(f"audit export reads every unit's cases: it is for auditors ({', '.join(auditors) or 'none'});"
                      f" you act as '{reading.reader.id}'")
    filters = " ".join(f"{name} {value}" for name, value in (("--since", since), ("--until", until),
                                                              ("--type", type_key), ("--unit", unit)) if value)

    def log() -> None:
        if pseudonymise:
            return  # no personal values leave
        if not reading.log([], detail=filters or "all cases", whole=True, wait_ms=busy_timeout_ms()):
            raise Refused("the access log could not be written (the database is busy): nothing was exported;"
                          " try again")
    return log


@audit.command("access")
@click.argument("ref", required=False)
@click.option("--since", metavar="DATE", help="Reads at or after this date/time (local).")
@json_option
@pass_ctx
def audit_access(ctx: Context, ref: str | None, since: str | None, as_json: bool) -> None:
    """Who read personal values of cases (of case REF), when, with which command: for auditors."""
    from engine.core.views import iso, local, table
    from engine.errors import Refused
    from engine.store.access import entries

    loket = ctx.open()
    reading = ctx.reading(loket)
    if not reading.is_auditor():
        auditors = [p.id for p in loket.organisation().people.values() if "auditor" in p.roles.values()]
        raise Refused(f"audit access is for auditors ({', '.join(auditors) or 'none'});"
                      f" you act as '{reading.reader.id}'")
    tz = _timezone_of(loket)
    start = _day_or_time(since, "--since", tz)
    with loket.read() as conn:
        found = entries(conn, ref=ref, since=start)
    if ref is not None and not found:
        loket.get_case(ref)  # an unknown case: exit 4; a known one nobody read: an empty log
    if as_json:
        emit_json([{**row, "at": iso(row["at"])} for row in found])
        return
    if not found:
        click.echo("no reads of personal values" + (f" of {ref}" if ref else ""))
        return
    rows = [(local(row["at"], tz), row["reader"], row["login"], row["ref"] or f"({row['detail']})", row["command"])
            for row in found]
    click.echo(table(["at", "reader", "login", "case", "command"], rows))


# -- report -------------------------------------------------------------------------------


@cli.command()
@click.option("--html", "html", metavar="FILE",
              help="Write the report as one self-contained HTML page with charts, instead of text"
                   " ('-': to standard output).")
@click.option("--public", "public", metavar="FILE",
              help="Write the public results page (Dutch, no personal data, no names, no references) to FILE"
                   " ('-': to standard output).")
@click.option("--since", metavar="DATE", help="Count what happened at or after this date/time (local).")
@click.option("--until", metavar="DATE", help="Count what happened before this date/time (local; exclusive).")
@click.option("--type", "type_key", metavar="TYPE", help="Only cases of this request type.")
@click.option("--unit", metavar="UNIT", help="Only cases this unit held, and only its own time and stays.")
@json_option
@pass_ctx
def report(ctx: Context, html: str | None, public: str | None, since: str | None, until: str | None,
           type_key: str | None, unit: str | None, as_json: bool) -> None:
    """Figures per request type, area and unit: results, each clock, time held, bestuurlijke dekking."""
    from engine.reporting.figures import Filters

    loket = ctx.open()
    tz = _timezone_of(loket)
    filters = Filters(since=_day_or_time(since, "--since", tz), until=_day_or_time(until, "--until", tz),
                      type_key=type_key, unit=unit)
    run_report(loket, html, as_json, click.echo, filters=filters, public=public)


if TYPE_CHECKING:
    from engine.reporting.figures import Filters, Report


def run_report(loket: Loket, html: str | None, as_json: bool, echo: Callable[[str], None], *,
               filters: Filters | None = None, public: str | None = None) -> Report:
    """The body of `loket report [--html FILE] [--public FILE] [--json] [filters]`, apart so
    that a test or a benchmark can run it on a loket of its own.

    With --html or --public the page is written and one line says where; with --json the
    figures are printed as JSON (the pages, if asked for, are still written); otherwise the
    text report. Only --html imports the page's module; both pages draw their charts as SVG
    (engine/reporting/svg.py).
    """
    from engine.app.report import check_filters, gather

    database = loket.engine.url.render_as_string(hide_password=False)
    if filters is not None:
        check_filters(loket, filters)  # before any file is touched
    from engine.store.outfile import STDOUT, refuse_database, refuse_two_on_stdout

    # `-` is standard output, for one output only (before the figures are gathered, not after).
    refuse_two_on_stdout([(option, path) for option, path in (("--html", html), ("--public", public))
                          if path is not None] + ([("--json", None)] if as_json else []))
    for path in (html, public):
        if path is not None:
            refuse_database(path, database)
    result = gather(loket, filters)
    pages: list[tuple[str, str, bytes]] = []  # both pages are written, or neither
    if html is not None:
        from engine.reporting.html import page_bytes

        units = {key: unit.name for key, unit in loket.organisation().units.items()}
        pages.append(("--html", html, page_bytes(result, loket.latest_types(), units)))
    if public is not None:
        from engine.reporting import public as public_page

        pages.append(("--public", public, public_page.page_bytes(result, loket.latest_types())))
    if pages:
        from engine.store.outfile import write_all

        write_all(pages, database=database)
    written = bool(pages)
    if STDOUT in (html, public):  # a page on standard output: what was written is told on stderr
        from functools import partial

        echo = partial(click.echo, err=True)
    for option, path, page in [] if as_json else pages:
        if path == STDOUT:
            continue  # the page itself is the output
        if option == "--html":
            echo(f"report page written to {path} ({len(page) // 1024} KiB, {result.total.open} open and"
                 f" {result.total.closed} closed cases)")
        else:
            echo(f"public results page written to {path} ({len(page) // 1024} KiB, {result.total.closed}"
                 " closed cases)")
    if as_json:
        echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    elif not written:
        from engine.reporting.text import render_text

        echo(render_text(result))
    return result


# -- demo ---------------------------------------------------------------------------------


@cli.command()
@click.option("--days", type=click.IntRange(min=1, max=3650), default=42, show_default=True,
              help="How many days to simulate.")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_INT), default=1, show_default=True,
              help="Same seed, same run.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder for the database and the emails.")
@pass_ctx
def demo(ctx: Context, days: int, seed: int, folder: str) -> None:
    """Simulate weeks of neighbourhood work in Gemeente Voorbeeld."""
    from pathlib import Path

    from engine.app.demo import check_folder, run_demo

    check_folder(Path(folder))
    lines: list[str] = []
    # The bar goes to stderr while the simulation runs; its story is told once the bar is done.
    with click.progressbar(length=days, label="Gemeente Voorbeeld", file=sys.stderr, show_eta=False) as bar:
        run_demo(folder, days=days, seed=seed, deliver=_demo_mail, echo=lines.append, progress=bar.update)
    for line in lines:
        click.echo(line)


def _demo_mail(loket: Loket, folder: Path) -> int:
    """The demo's delivery: the real one, into `folder` as .eml files; how many it sent."""
    from engine.app.demo import SENDER
    from notifications.delivery import MailSettings, deliver
    from notifications.transports import DirectoryTransport

    settings = MailSettings(sender=SENDER, transport=DirectoryTransport(folder), template_dir=None)
    return deliver(loket, settings).sent


# -- entry point --------------------------------------------------------------------------


def fail(message: str, code: int) -> NoReturn:
    try:
        click.echo(f"Error: {message}", err=True)
    except OSError:
        _to_devnull(sys.stderr)  # nobody reads the errors (`2>&1 | head`): the exit code tells
    sys.exit(code)


#: The exit code of a command whose reader went away: what a shell shows for a process that
#: SIGPIPE ended (128 + 13), as `yes | head` does.
EXIT_READER_GONE = 141


def _quiet_exit() -> NoReturn:
    """End a command whose reader closed its end early: no message (the reader chose to stop
    reading), exit 141 and not 0, because the output is incomplete (`set -o pipefail` notices).
    Python's documentation on SIGPIPE: standard output is pointed at devnull, so that the
    interpreter's last flush of what is still buffered does not fail again on the way out."""
    _to_devnull(sys.stdout)
    sys.exit(EXIT_READER_GONE)


def _to_devnull(stream: Any) -> None:
    import io

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # a stream with no file (a test's capture)
        pass


def main(argv: list[str] | None = None) -> None:
    run(cli, argv)


def _check_encoding(argv: list[str] | None) -> None:
    """An argument that is not valid UTF-8 reaches Python as lone surrogates ('\\udcff'); it
    would fail much later, when written. Refuse it up front."""
    for number, arg in enumerate(sys.argv[1:] if argv is None else argv, start=1):
        if any("\udc80" <= ch <= "\udcff" for ch in arg):
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            fail(f"argument {number} ({shown!r}) is not valid UTF-8", 2)


def run(command: Callable[..., Any], argv: list[str] | None) -> None:
    _check_encoding(argv)
    try:
        result = command.main(args=argv, prog_name="loket", standalone_mode=False)  # type: ignore[attr-defined]
        sys.stdout.flush()  # here, not in the interpreter's exit, where a closed pipe cannot be handled
    except ReaderGone:
        _quiet_exit()
    except LoketError as exc:
        fail(exc.message, exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        try:
            click.echo(exc.ctx.get_help())
        except OSError as error:
            if _reader_went_away(error):
                _quiet_exit()
            raise
        sys.exit(0)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        fail(exc.format_message() + hint, 2)
    except click.Abort:
        fail("aborted", 1)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        if _reader_went_away(exc):  # the flush above, after the command
            _quiet_exit()
        _unexpected(exc)
    if isinstance(result, int) and result:
        sys.exit(result)


def _unexpected(exc: Exception) -> NoReturn:
    """Database outages and the like: one line, and the details only on request."""
    import sqlite3

    import sqlalchemy.exc as sa_exc

    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    if isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
        # Another process held SQLite's write lock for longer than the busy timeout.
        from engine.store.db import busy_timeout_ms

        fail(f"the database is busy: another process kept it locked for {busy_timeout_ms() / 1000:g}"
             " seconds; nothing was written, try again", 3)
    if getattr(cause, "sqlstate", None) == "42501":
        # PostgreSQL refused the login (`db grants --apply`): a table it may not change, or a
        # row in someone else's name. Nothing was written.
        fail(f"refused by the database: {first_line(cause)}", 1)
    if isinstance(exc, sa_exc.DBAPIError):
        # The server is down, the file is no database, a value the database cannot hold...
        fail(f"database error: {first_line(exc.orig or exc)}", 2)
    if isinstance(exc, OSError):
        # A file the command was asked to read or write: a missing folder, a full disk, ...
        where = f" {exc.filename}" if exc.filename else ""
        fail(f"cannot use{where}: {exc.strerror or first_line(exc)}", 2)
    if os.environ.get("LOKET_DEBUG"):
        raise exc
    fail(f"unexpected {type(exc).__name__}: {first_line(exc)} (set LOKET_DEBUG=1 for details)", 70)


if __name__ == "__main__":
    main()
