"""Realistic overdue cases made through the API, and what a sweep left behind in the tables.

`populate` opens cases of all three bundled request types with a FixedClock that walks
forward through forty days, and takes them to the states where every kind of firing
happens: ladder rungs (the reminder to an assignee, rungs moved up by a vacancy, a rung
addressed to a person), service-norm and lead-time breaches, and timeouts into another
state. One case in eight stands still (waiting on the resident) or is closed: it must not
fire at all.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from engine.app.bundled import sample_paths
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.core.vocabulary import FiringKind
from engine.store.db import open_engine
from engine.store.schema import cases_t, escalations_t, outbox_t

STAFF, OTHER_STAFF, LEAD = "c.devries", "l.mulder", "b.bakker"
POLITIE = ["requested=Extra surveillance"]
SPAN = dt.timedelta(days=40)


def make_loket(url: str, now: dt.datetime) -> Loket:
    """A Loket on a migrated database, with the bundled organisation and request types."""
    loket = Loket(open_engine(url), FixedClock(now))
    org, types = sample_paths()
    loket.load_organisation(org)
    loket.load_request_types(types)
    return loket


def _open(loket: Loket, kind: int, i: int) -> None:
    title = f"title=Initiatief {i}"
    if kind in (0, 1, 2, 3, 7):
        ref = loket.new_case("bewonersinitiatief", [title], actor=STAFF,
                             assign=OTHER_STAFF if kind == 1 else None).ref
        if kind >= 2:
            loket.advance(ref, "in_behandeling", actor=STAFF)
        if kind == 3:  # Openbare Ruimte does not answer: a timeout back to the wijkteam
            loket.advance(ref, "vraag_bijdrage", actor=STAFF, assignments=["amount=450"])
        if kind == 7 and i % 2:
            loket.advance(ref, "vraag_informatie", actor=STAFF, comment="Graag een begroting")
        elif kind == 7:
            loket.advance(ref, "afwijzen", actor=LEAD, comment="Valt buiten het wijkbudget")
    elif kind == 4:  # the police: its own ladder, no head (vacancy), a rung to a.jansen
        ref = loket.new_case("bijdrage", [title], actor=STAFF).ref
        loket.advance(ref, "in_behandeling", actor=STAFF)
        loket.advance(ref, "vraag_politie", actor=STAFF, assignments=POLITIE)
    else:  # to the police (overlast), or urgent: a deadline in hours
        fields = ["omschrijving=Losse stoeptegel", "locatie=Lindelaan 4",
                  "categorie=overlast" if kind == 5 else "categorie=bestrating",
                  "spoed=true" if kind == 6 else "spoed=false"]
        ref = loket.new_case("melding", fields, actor=STAFF).ref
        loket.advance(ref, "doorsturen_politie" if kind == 5 else "doorzetten_spoed", actor=STAFF)


def populate(loket: Loket, clock: FixedClock, count: int, *, simulation: bool = True) -> None:
    """`count` cases, opened evenly over forty days from the clock's time (which moves on)."""
    start = clock.now()
    for i in range(count):
        clock.set(start + i * SPAN / count)
        _open(loket, i % 8, i)
    if simulation:
        with loket.engine.begin() as conn:
            loket.mark_simulation(conn)


def fired_keys(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(ref, rung) of every firing in an `escalate --json` result."""
    return [(f["ref"], str(f["rung"])) for f in report["fired"]]


def escalations(loket: Loket) -> Counter[tuple[str, str]]:
    """(ref, rung) of every escalation row, counted: a count above one is a double firing."""
    query = sa.select(cases_t.c.ref, escalations_t.c.rung).join(
        cases_t, cases_t.c.id == escalations_t.c.case_id)
    with loket.read() as conn:
        return Counter((ref, rung) for ref, rung in conn.execute(query))


def mails(loket: Loket) -> dict[str, tuple[str, str]]:
    """Outbox key → (kind, address) of every firing's outbox row. The rows about a case's
    events (hand-overs, assignments: keys `REF/eSEQ/RECIPIENT`), written by the steps that
    made the population and by the timeouts' hand-overs, are left out; every key is unique."""
    with loket.read() as conn:
        rows = conn.execute(sa.select(outbox_t.c.key, outbox_t.c.kind, outbox_t.c.to_email)).all()
    assert len({key for key, _, _ in rows}) == len(rows)
    return {key: (kind, to) for key, kind, to in rows if kind in set(FiringKind)}


def expected_mails(loket: Loket, predicted: dict[str, Any]) -> dict[str, str | None]:
    """Outbox key → address each predicted firing must mail (None: a timeout's, found later).

    Call it before the sweep: the keys carry the stay, which a timeout ends. A rung mails
    its recipient; a timeout mails whoever holds the case in its next state, which the dry
    run does not know; a firing nobody could be found for mails no one.
    """
    stays = _stays(loket)
    out: dict[str, str | None] = {}
    for f in predicted["fired"]:
        stay = 0 if f["rung"] in ("service_norm", "lead_time") else stays[f["ref"]]
        if f["rung"] == "timeout":
            out[f"{f['ref']}/{stay}/timeout"] = None
        elif f["email"] is not None:
            out[f"{f['ref']}/{stay}/{f['rung']}"] = f["email"]
    return out


def _stays(loket: Loket) -> dict[str, int]:
    with loket.read() as conn:
        return dict(conn.execute(sa.select(cases_t.c.ref, cases_t.c.stay)).all())
