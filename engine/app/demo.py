"""`loket demo`: weeks of neighbourhood work in Gemeente Voorbeeld, simulated day by day.

Residents bring initiatives, requests for contributions and reports; civil servants pick them
up, some departments and partners answer late; every morning the sweep escalates what
stalled and the emails land in the outbox folder. The run uses the real engine on a
simulation database, so every step is checked and chained like real work, and the same seed
gives the same run.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.app.bundled import sample_paths
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.core.casework import Case, allowed_triggers
from engine.core.definition import RequestType
from engine.core.durations import Duration, parse_term
from engine.core.fields import FieldSpec
from engine.errors import ConfigurationError, LoketError
from engine.store.db import migrate, open_engine
from engine.store.outbox import kinds as outbox_kinds

START = dt.datetime(2026, 3, 2, 8, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))
SENDER = "Wijkloket Gemeente Voorbeeld <wijkloket@voorbeeld.example>"

# How likely a unit acts on a case it holds on a working day: partners and the public-space
# department are the slow ones, which is what the escalation ladder is for.
RESPONSIVENESS = {
    "wijkteam": 0.55,
    "welzijn": 0.45,
    "openbare_ruimte": 0.18,
    "woningcorporatie": 0.15,
    "politie": 0.12,
    "welzijnsorganisatie": 0.3,
}
ARRIVALS = {"bewonersinitiatief": 1.2, "bijdrage": 0.6, "melding": 1.6}
NEGATIVE = ("afgewezen", "ingetrokken", "niet_in_behandeling", "buiten_behandeling")

TITLES = {
    "bewonersinitiatief": [
        "Straatfeest Ridderstraat", "Moestuin achter de Zonnebloemschool", "Buurtbarbecue Vogelwijk",
        "Speeltoestel voor het Wilgenplein", "Bloembakken Kerkstraat", "Burendag De Hoven",
        "Jeu-de-boulesbaan Parkhof", "Kerstmarkt Oude Haven", "Buurtbibliotheek in een kast",
        "Zomerkamp voor kinderen uit Noord",
    ],
    "bijdrage": [
        "Groene binnentuin flat Lindelaan", "Buurtpreventie-app Molenwijk", "Ontmoetingsruimte in portiek",
        "Verlichting achterpad Esdoornstraat", "Huiswerkbegeleiding in het buurthuis",
        "Opknappen speelveld Beatrixlaan",
    ],
    "melding": [
        "Kapotte lantaarnpaal", "Zwerfvuil bij de glasbak", "Losliggende stoeptegel",
        "Overhangende takken", "Verstopte put", "Graffiti op het bushokje", "Kapot speeltoestel",
        "Overlast hangjongeren",
    ],
}
STREETS = ["Ridderstraat", "Lindelaan", "Molenweg", "Kerkstraat", "Wilgenplein", "Esdoornstraat",
           "Beatrixlaan", "Havenkade"]
NAMES = ["Sanne de Boer", "Mohamed Amrani", "Ans Verhoeven", "Kees Brouwer", "Fleur Willems",
         "Yusuf Demir", "Marieke Postma", "Jan-Willem Smit"]
EXTENSION_REASONS = ["Het advies van een andere afdeling is nog niet binnen.",
                     "De aanvraag vraagt meer onderzoek dan verwacht."]
# What the alderman (or the assistant, for them) answers to an escalation that reached them.
REACTIONS = ["Ik wil deze zaak deze week in beweging zien; graag een terugkoppeling aan mijn secretariaat.",
             "Dit verzoek heeft bestuurlijke prioriteit in de wijk. Wat is er nodig om verder te komen?",
             "Besproken met het afdelingshoofd; ik volg de zaak."]
INSTRUCTIONS = ["Neem binnen vijf werkdagen een besluit over de volgende stap en koppel dat terug aan de bewoners.",
                "Zorg dat de zaak binnen vijf werkdagen verder kan; schakel zo nodig de partner rechtstreeks in."]
MISSED = "De opdracht is niet uitgevoerd. Ik bespreek dit met het afdelingshoofd."
INSTRUCTION_TERM = "5wd"

COMMENTS = ["Graag aanvullende informatie over de begroting.", "Besproken in het teamoverleg.",
            "Niet passend binnen de regeling wijkbudget.", "De bewoner heeft het verzoek ingetrokken.",
            "Geen capaciteit deze periode; terug naar het wijkteam.", "Toelichting volgt per e-mail."]


def check_folder(folder: Path) -> Path:
    """The demo's database file in `folder` (made if missing); refused when a database there
    is not a demo's, or when the demo could not write there."""
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"cannot run the demo in {folder}: it is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigurationError(f"cannot run the demo in {folder}: {exc.strerror or exc}") from None
    db = folder / "loket.db"
    if db.exists():
        probe = Loket(open_engine(f"sqlite:///{db}"))
        try:
            is_demo = probe.meta("demo") == "true"
        except Exception:
            is_demo = False
        probe.engine.dispose()
        if not is_demo:
            raise ConfigurationError(
                f"{db} exists and is not a demo database: run the demo in an empty folder (--dir)"
            )
    return db


def prepare(folder: Path) -> Path:
    """The demo's database file; an earlier demo database there is replaced, real data never."""
    db = check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        for eml in (folder / "outbox").glob("*.eml"):
            eml.unlink()
    return db


class Simulation:
    def __init__(self, loket: Loket, clock: FixedClock, rng: random.Random) -> None:
        self.loket = loket
        self.clock = clock
        self.rng = rng
        self.places = random.Random(hash(rng.getstate()[1]))  # its state's ints: draws nothing from `rng`
        self.org = loket.organisation()
        self.people = sorted(self.org.people)
        self.stats: Counter[str] = Counter()
        self.open_refs: list[str] = []
        self.extended: set[str] = set()
        self.directed: list[str] = []
        """The cases an administrator gave an instruction (one each, in the order given)."""
        self.ignored: set[str] = set()
        """Cases whose unit lets an instruction pass: the demo's one missed instruction."""
        self.reactions: list[dict[str, Any]] = []
        """Escalations that reached an administrator, waiting for a working morning."""

    def members(self, unit: str | None) -> list[str]:
        return [p for p in self.people if self.org.rank(p, unit) > 0]

    def value(self, spec: FieldSpec) -> str:
        rng = self.rng
        if spec.type == "decimal":
            return str(rng.choice([250, 400, 750, 1200, 2500, 4800, 6500, 9000]))
        if spec.type == "integer":
            return str(rng.randint(5, 120))
        if spec.type == "choice":
            return rng.choice(spec.options)
        if spec.type == "boolean":
            return "ja" if rng.random() < 0.15 else "nee"
        if spec.type == "date":
            return (self.clock.now() + dt.timedelta(days=rng.randint(20, 90))).date().isoformat()
        if spec.type == "email":
            return f"bewoner{rng.randint(100, 999)}@example.org"
        if spec.name in ("name", "melder_naam", "resident_name"):
            return rng.choice(NAMES)
        if spec.name in ("locatie", "location", "address"):
            return f"{rng.choice(STREETS)} {rng.randint(1, 120)}"
        return rng.choice(["Afgestemd met de buurt.", "Zie bijgevoegde toelichting.",
                           "Toegezegd onder voorwaarden.", "Uitgevoerd en teruggemeld."])

    def new_case(self, key: str) -> None:
        rt = self.loket.request_type(key)
        data = []
        if rt.area is not None and self.places.random() < 0.8:
            # The area (buurt) comes from a random stream of its own, so that the rest of the
            # run is the same as before types named one.
            data.append(f"{rt.area}={self.places.choice(rt.fields[rt.area].options or STREETS)}")
        for name, spec in rt.fields.items():
            if name == rt.area:
                continue
            # Seven residents in ten leave their email address (the type's `contact`): they
            # are told the case's steps. The rest hear nothing, and nothing fails.
            if spec.required and spec.type == "text":
                data.append(f"{name}={self.rng.choice(TITLES[key])}")
            elif spec.required or self.rng.random() < 0.7:
                data.append(f"{name}={self.value(spec)}")
        owner = rt.states[rt.initial].owner
        clerk = self.rng.choice(self.members(owner))
        case = self.loket.new_case(key, data, actor=clerk)
        self.open_refs.append(case.ref)
        self.stats["opened"] += 1

    def act(self, case: Case) -> None:
        rt = self.loket.type_of(case)
        options: list[tuple[str, str]] = []
        for person in self.members(case.owner):
            for trigger in allowed_triggers(rt, self.org, case, person):
                options.append((person, trigger))
        if not options:
            return
        weights = [0.08 if _dest(rt, case.state, t) in NEGATIVE else 1.0 for _, t in options]
        person, trigger = self.rng.choices(options, weights=weights)[0]
        spec = rt.transition(case.state, trigger)
        assert spec is not None
        data = [f"{f}={self.value(rt.fields[f])}" for f in spec.requires if case.data.get(f) in (None, "")]
        comment = self.rng.choice(COMMENTS) if spec.comment_required or self.rng.random() < 0.2 else None
        try:
            self.loket.advance(case.ref, trigger, actor=person, comment=comment, assignments=data)
        except LoketError:
            self.stats["refused"] += 1
            return
        self.stats["steps"] += 1

    def day(self) -> None:
        """One working day: arrivals, then each open case perhaps moves."""
        for key, rate in ARRIVALS.items():
            for _ in range(self._poisson(rate)):
                self.clock.advance(dt.timedelta(minutes=self.rng.randint(5, 40)))
                self.new_case(key)
        for ref in list(self.open_refs):
            case = self.loket.get_case(ref)
            if case.closed_at is not None:
                self.open_refs.remove(ref)
                continue
            if case.assignee is None and self.rng.random() < 0.3:
                self._assign(case)
                case = self.loket.get_case(ref)
            if self._decision_near(case) and self.rng.random() < 0.15:
                self._extend(case)
                case = self.loket.get_case(ref)
            if self.rng.random() < self.responsiveness(case):
                self.clock.advance(dt.timedelta(minutes=self.rng.randint(1, 15)))
                self.act(case)

    def react(self) -> None:
        """The administrators answer the escalations that reached them (SPEC §12.1): the first
        time a case reaches them, an instruction with a term; a missed instruction, a comment
        (by the assistant where the administrator has one). The first instruction's unit lets
        it pass; after that, an instruction gets a unit moving."""
        waiting, self.reactions = self.reactions, []
        for item in waiting:
            case = self.loket.get_case(item["ref"])
            rt = self.loket.type_of(case)
            admin = self.org.administrator_for(rt.portfolio) if rt.portfolio else None
            if admin is None or item["to"] != admin.id or case.closed_at is not None:
                continue
            if item["rung"] != "directive" and self.directed and self.rng.random() < 0.5:
                continue  # not every escalation gets an answer
            # The alderman and the assistant take turns.
            voice = admin.assistants[0] if admin.assistants and self.stats["reactions"] % 2 else admin.id
            self.clock.advance(dt.timedelta(minutes=self.rng.randint(2, 20)))
            try:
                if item["rung"] == "directive":
                    self.loket.comment(case.ref, MISSED, actor=voice)
                    self.stats["admin_comments"] += 1
                elif case.ref not in self.directed and not case.directive_open():
                    self.loket.direct(case.ref, parse_term(INSTRUCTION_TERM), self.rng.choice(INSTRUCTIONS),
                                      actor=voice)
                    if not self.directed:
                        self.ignored.add(case.ref)
                    self.directed.append(case.ref)
                    self.stats["instructions"] += 1
                else:
                    self.loket.comment(case.ref, self.rng.choice(REACTIONS), actor=voice)
                    self.stats["admin_comments"] += 1
            except LoketError:
                self.stats["refused"] += 1
                continue
            self.stats["reactions"] += 1

    def responsiveness(self, case: Case) -> float:
        """How likely the unit holding the case acts on it today: an open instruction gets it
        moving, except at the unit that lets the demo's one instruction pass."""
        if case.directive_open():
            return 0.0 if case.ref in self.ignored else 0.6
        return RESPONSIVENESS.get(case.owner or "", 0.4)

    def instructions(self) -> dict[str, int]:
        """How the instructions given fared: met, missed, or still open."""
        out = {"given": len(self.directed), "met": 0, "missed": 0, "open": 0}
        for ref in self.directed:
            case = self.loket.get_case(ref)
            out["met" if case.directive_met_at else "missed" if case.directive_missed_at else "open"] += 1
        return out

    def _decision_near(self, case: Case) -> bool:
        """The legal term ends within five weeks and was not extended yet: a lead may see it
        will not be met and extend it (and the resident is told the new date and why)."""
        return (case.case_due is not None and case.ref not in self.extended and case.suspended_at is None
                and case.case_due - self.clock.now() < dt.timedelta(weeks=5))

    def _extend(self, case: Case) -> None:
        self.extended.add(case.ref)
        # The unit that answers for the legal term extends it, whoever holds the case (SPEC §12.3).
        unit = self.loket.type_of(case).answering_unit() or case.owner
        leads = [p for p in self.members(unit) if self.org.rank(p, unit) >= 2]
        if not leads:
            return
        try:
            self.loket.extend(case.ref, Duration("weeks", 2), self.rng.choice(EXTENSION_REASONS),
                              actor=self.rng.choice(leads))
            self.stats["extended"] += 1
        except LoketError:
            pass

    def _assign(self, case: Case) -> None:
        staff = [p for p in self.members(case.owner) if self.org.rank(p, case.owner) == 1]
        if staff:
            who = self.rng.choice(staff)
            try:
                self.loket.assign(case.ref, who, actor=who)
                self.stats["assigned"] += 1
            except LoketError:
                pass

    def _poisson(self, rate: float) -> int:
        count, threshold, product = 0, pow(2.718281828459045, -rate), self.rng.random()
        while product > threshold:
            count += 1
            product *= self.rng.random()
        return count


def _erase_free_text(loket: Loket, sim: Simulation) -> dict[str, Any] | None:
    """The head of its unit erases the free text of the first closed case that has some
    (`case redact --comments`, SPEC §15): a resident's phone number in a comment need not stay."""
    from engine.app.redact import redact
    from engine.store import cases as store

    with loket.read() as conn:
        closed = [(c.ref, loket.holding_unit(c, conn)) for c in store.listed(
            conn, type_key=None, state=None, unit=None, assignee=None, overdue_at=None, open_=False, limit=50)]
    for ref, unit in closed:
        heads = [p for p in sim.people if sim.org.rank(p, unit) >= 3]
        if not heads:
            continue
        try:
            done = redact(loket, ref, "demo: bewaartermijn vrije tekst verstreken", actor=heads[0], comments=True)
        except LoketError:
            continue
        return {"ref": ref, "texts": done.texts, "by": heads[0]}
    return None


def _dest(rt: RequestType, state: str, trigger: str) -> str:
    spec = rt.transition(state, trigger)
    return spec.dest if spec is not None else ""


def run_demo(
    folder: str,
    *,
    days: int,
    seed: int,
    deliver: Callable[[Loket, Path], int],
    echo: Callable[[str], None],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Simulate `days` days; `echo` gets a line per week, `progress` a tick per day.

    Every simulated morning `deliver(loket, folder)` delivers the due emails as files into
    that folder (sent by :data:`SENDER`) and says how many it sent: the command line passes
    the real outbox delivery, so the demo's emails are the ones a worker would send.
    """
    from engine.app.sweep import sweep

    root = Path(folder)
    db = prepare(root)
    engine = open_engine(f"sqlite:///{db}", create=True)
    migrate(engine)
    clock = FixedClock(START)
    loket = Loket(engine, clock)
    with engine.begin() as conn:
        loket.set_meta(conn, "simulation", "true")
        loket.set_meta(conn, "demo", "true")
        loket.record_init(conn, None, before=None, simulation=True)
    org_file, type_files = sample_paths()
    loket.load_organisation(org_file)
    loket.load_request_types(type_files)
    sim = Simulation(loket, clock, random.Random(seed))
    rungs: Counter[str] = Counter()
    week: Counter[str] = Counter()
    cal = loket.calendar()
    echo(f"Gemeente Voorbeeld: {days} days of neighbourhood work from {START.date().isoformat()} (seed {seed})")
    for n in range(days):
        local_day = START.date() + dt.timedelta(days=n)
        day = dt.datetime.combine(local_day, START.timetz())
        clock.set(day.replace(hour=7, minute=0))
        fired = sweep(loket)
        for item in fired.fired:
            rungs[str(item["rung"])] += 1
            if item["to"] in sim.org.administrators:
                sim.reactions.append(item)
        week["escalations"] += len(fired.fired)
        week["emails"] += deliver(loket, root / "outbox")
        if cal.is_working_day(local_day):
            clock.set(day)
            before = Counter(sim.stats)
            sim.react()
            sim.day()
            week.update(sim.stats - before)
        if progress is not None:
            progress(1)
        if local_day.weekday() == 6 or n == days - 1:
            monday = local_day - dt.timedelta(days=local_day.weekday())
            echo(f"week of {monday.isoformat()}: {week['opened']:3d} new requests, {week['steps']:3d} steps,"
                 f" {week['escalations']:3d} escalations, {week['emails']:3d} emails; {len(sim.open_refs)} open")
            week.clear()
    free_text = _erase_free_text(loket, sim)
    # The auditor seals the weeks' history; the digest goes out by mail, to be kept elsewhere.
    from engine.app.seal import seal

    sealed = seal(loket)
    deliver(loket, root / "outbox")
    with loket.read() as conn:
        messages = outbox_kinds(conn)
    summary: dict[str, Any] = {
        "cases": sim.stats["opened"], "steps": sim.stats["steps"], "open": len(sim.open_refs),
        "escalations": dict(sorted(rungs.items())), "messages": messages, "database": str(db.resolve()),
        "emails": str((root / "outbox").resolve()), "seal": sealed.as_json(),
        "administrators": {"comments": sim.stats["admin_comments"], "instructions": sim.instructions()},
        "free_text": free_text,
    }
    from engine.app.report import gather
    from engine.reporting.html import write_page
    from engine.reporting.text import render_text

    report = gather(loket)
    page = root / "rapport.html"
    write_page(report, loket.latest_types(), str(page),
               database=loket.engine.url.render_as_string(hide_password=False),
               unit_names={key: unit.name for key, unit in loket.organisation().units.items()})
    summary["report"] = str(page.resolve())
    # The public results page (SPEC §12.2), beside the report: what the municipality would
    # publish on its website.
    from engine.reporting.public import write_public

    public = root / "resultaten.html"
    write_public(report, loket.latest_types(), str(public),
                 database=loket.engine.url.render_as_string(hide_password=False))
    summary["public"] = str(public.resolve())
    echo("")
    echo(render_text(report))
    echo("")
    echo(f"{summary['cases']} requests, {summary['steps']} steps, {summary['open']} still open;"
         " escalations by rung: " + (", ".join(f"{k}: {v}" for k, v in summary["escalations"].items()) or "none"))
    told = summary["administrators"]
    given = told["instructions"]
    echo(f"administrators: {told['comments']} comment{'' if told['comments'] == 1 else 's'} and {given['given']}"
         f" instruction{'' if given['given'] == 1 else 's'} on escalations"
         f" ({given['met']} met, {given['missed']} missed, {given['open']} open)"
         + ("" if given["given"] else "; no escalation reached an administrator yet"))
    if free_text:
        echo(f"free text: {free_text['texts']} comment(s), instruction(s) and reason(s) of {free_text['ref']} erased"
             " by its unit's head (case redact --comments); the chain still verifies")
    echo("messages by kind: " + (", ".join(f"{k}: {v}" for k, v in messages.items()) or "none"))
    echo(f"database: {summary['database']}")
    files = [path.name for path in (root / "outbox").glob("*.eml")]
    digests = sum("_digest_" in name for name in files)
    echo(f"emails:   {summary['emails']} ({len(files)} messages, {digests} of them digests of several cases)")
    echo(f"report:   {summary['report']}")
    echo(f"public:   {summary['public']} (the results page for the municipality's website)")
    echo(f"seal:     {sealed.id}, digest {sealed.digest} (mailed to the auditor; check with"
         f" loket --db sqlite:///{db} audit verify --against {sealed.digest})")
    echo(f"try:      loket --db sqlite:///{db} case list --overdue")
    echo(f"config:   loket --db sqlite:///{db} audit config   (who set this municipality up, and when)")
    echo(f"retention: loket --db sqlite:///{db} retention list   (a reporter's data is erased a year after the"
         " melding closed)")
    auditor = next((p.id for p in loket.organisation().people.values() if "auditor" in p.roles.values()), None)
    if sim.open_refs and auditor is not None:
        ref = sorted(sim.open_refs)[0]
        echo(f"access:   loket --db sqlite:///{db} --as {auditor} audit access   (who was shown residents' personal"
             f" values: after 'loket --db sqlite:///{db} case show {ref}', that read is there)")
    engine.dispose()
    return summary
