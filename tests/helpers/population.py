"""Realistic overdue cases made through the API, and what a sweep left behind in the tables.

`populate` opens cases of all three bundled request types with a FixedClock that walks
forward through forty days, and takes them to the states where every kind of firing
happens: ladder rungs (the reminder to an assignee, rungs moved up by a vacancy, a rung
addressed to a person), service-norm and lead-time breaches (the latter to two people), an
alderman's instruction not carried out (some replaced by the assistant's), and timeouts into
another state. One case in eight stands still (waiting on the resident) or is closed: it must not
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
from engine.core.durations import parse_term
from engine.core.vocabulary import FiringKind
from engine.store.db import open_engine
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t

STAFF, OTHER_STAFF, LEAD = "c.devries", "l.mulder", "b.bakker"
ALDERMAN, ASSISTANT = "wethouder.wijken", "j.wolters"
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
        if kind == 2 and i % 3 == 0:
            # The alderman's instruction, not carried out: missed, to the alderman and a.jansen;
            # one in two replaced by the assistant's.
            loket.direct(ref, parse_term("3wd"), "Binnen drie werkdagen verder", actor=ALDERMAN)
            if (i // 8) % 2:
                loket.direct(ref, parse_term("4wd"), "Toch vier werkdagen", actor=ASSISTANT)
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


def fired_keys(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(ref, rung, recipient) of every firing in an `escalate --json` result: a breach of the
    legal term and a missed instruction reach two people, each once."""
    return [(f["ref"], str(f["rung"]), f["to"]) for f in report["fired"]]


def escalations(loket: Loket) -> Counter[tuple[str, str, str | None]]:
    """(ref, rung, recipient) of every firing the sweeps wrote (their `escalated` events and
    timeouts' steps), counted: a count above one is a double firing. The escalation rows,
    unique per case, stay and rung, must each belong to one of them."""
    events = sa.select(cases_t.c.ref, events_t.c.action, events_t.c.data).join(
        cases_t, cases_t.c.id == events_t.c.case_id).where(events_t.c.actor == "system")
    rows = sa.select(cases_t.c.ref, escalations_t.c.rung, escalations_t.c.recipient).join(
        cases_t, cases_t.c.id == escalations_t.c.case_id)
    with loket.read() as conn:
        fired: Counter[tuple[str, str, str | None]] = Counter(
            (ref, str(data["rung"]), data["to"]) if action == "escalated" else (ref, "timeout", "system")
            for ref, action, data in conn.execute(events) if action in ("escalated", "transition"))
        recorded = Counter((ref, rung, recipient or None) for ref, rung, recipient in conn.execute(rows))
    assert not recorded - fired, recorded - fired
    return fired


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
        stay, directive = stays[f["ref"]]
        if f["rung"] in ("service_norm", "lead_time"):
            stay = 0
        elif f["rung"] == "directive":
            stay = directive or 0
        if f["rung"] == "timeout":
            out[f"{f['ref']}/{stay}/timeout"] = None
        elif f["email"] is not None:
            key = f"{f['ref']}/{stay}/{f['rung']}"
            # The second recipient of one firing (the head, after the administrator).
            out[key if key not in out else f"{key}/{f['to']}"] = f["email"]
    return out


def _stays(loket: Loket) -> dict[str, tuple[int, int | None]]:
    """Each case's stay and the event number of its instruction."""
    with loket.read() as conn:
        return {ref: (stay, seq) for ref, stay, seq in conn.execute(
            sa.select(cases_t.c.ref, cases_t.c.stay, cases_t.c.directive_seq))}
