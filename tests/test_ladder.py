"""The escalation ladder (SPEC §4.2, §6), fired by real sweeps on SQLite and PostgreSQL.

The clock is a FixedClock moved by hand and handed to `sweep(loket, now)`. Every instant
expected below is counted by hand on the Atw calendar in the comment beside it. Amsterdam is
UTC+1 until Sunday 2026-03-29 and UTC+2 from then on, so a deadline at 23:59:59 local is
22:59:59Z in March up to the 28th and 21:59:59Z after. Easter 2026 is 5 April: Goede Vrijdag
is Fri 04-03 and tweede Paasdag Mon 04-06.

Two organisations: the sample one (workflows/, through the `loket` fixture) for the shipped
request types, and tests/data/ladder/ (the `proef` type) to place vacancies precisely.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import cli
from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import SweepResult, forecast, sweep
from engine.app.verify import verify
from engine.core.vocabulary import FiringKind
from engine.store.db import open_engine
from engine.store.tables import cases_t, escalations_t, events_t, outbox_t

DATA = Path(__file__).resolve().parent / "data" / "ladder"
BI, BD = "bewonersinitiatief", "bijdrage"
STAFF, LEAD, HEAD = "c.devries", "b.bakker", "a.jansen"  # wijkteam in the sample organisation
SECOND = dt.timedelta(seconds=1)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


# The `proef` type's ladder for a state entered on Mon 2026-03-02 (deadline 5 working days):
#   deadline  Tue 3, Wed 4, Thu 5, Fri 6, (Sat 7, Sun 8 skipped) Mon 9 → Mon 03-09 23:59:59 CET
#   rung 1    2 working days before: Fri 6, Thu 5                   → Thu 03-05
#   rung 2    0 after: the deadline itself                          → Mon 03-09
#   rung 3    5 working days after Mon 9: 10, 11, 12, 13, 16         → Mon 03-16
#   rung 4    10 working days after Mon 9: 10-13, 16-20, 23          → Mon 03-23
# The `ingediend` state of bewonersinitiatief has the same deadline and ladder.
R1, R2, R3, R4 = (utc(f"2026-03-{day}T22:59:59") for day in ("05", "09", "16", "23"))


@pytest.fixture
def proef(db_url: str, clock: FixedClock) -> Iterator[Loket]:
    """A Loket with tests/data/ladder/: the `proef` type and its organisation."""
    engine = open_engine(db_url)
    app = Loket(engine, clock)
    app.load_organisation(DATA / "organisation.yaml")
    app.load_request_types([DATA / "proef.yaml"])
    yield app
    engine.dispose()


def sweep_at(loket: Loket, clock: FixedClock, at: dt.datetime) -> SweepResult:
    clock.set(at)
    return sweep(loket, clock.now())


def fired(result: SweepResult) -> list[tuple[Any, str | None]]:
    return [(f["rung"], f["to"]) for f in result.fired]


def escalated(loket: Loket, ref: str) -> list[tuple[str, str, str, str]]:
    """(rung, kind, asked, to) of every `escalated` event, in the order of the history."""
    out = []
    for e in loket.history(ref)[1]:
        if e["action"] == "escalated":
            assert e["actor"] == "system"
            out.append((e["data"]["rung"], e["data"]["kind"], e["data"]["asked"], e["data"]["to"]))
    return out


def rows(loket: Loket, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    with loket.read() as conn:
        query = sa.select(*(table.c[name] for name in columns)).order_by(table.c.id)
        return [tuple(r) for r in conn.execute(query)]


def counts(loket: Loket) -> tuple[int, int, int]:
    """Rows in escalation, the firings' rows in outbox (not those about a case's events, such
    as an assignment), and `escalated` events in case_event."""
    with loket.read() as conn:
        count = sa.select(sa.func.count())
        return (
            conn.execute(count.select_from(escalations_t)).scalar_one(),
            conn.execute(count.select_from(outbox_t).where(outbox_t.c.kind.in_(FiringKind))).scalar_one(),
            conn.execute(
                count.select_from(events_t).where(events_t.c.action == "escalated")
            ).scalar_one(),
        )


def case_row(loket: Loket, ref: str) -> dict[str, Any]:
    with loket.read() as conn:
        return dict(conn.execute(sa.select(cases_t).where(cases_t.c.ref == ref)).mappings().one())


def new_proef(loket: Loket, state: str = "balie", assign: str | None = None) -> str:
    ref = loket.new_case("proef", ["title=Proef"], actor="s.staf", assign=assign).ref
    moves = {"zonder_lead": "naar_zonder_lead", "kaal": "naar_kaal",
             "bij_genoemde": "naar_genoemde"}
    if state in moves:
        loket.advance(ref, moves[state], actor="s.staf")
    return ref


# -- one rung at a time -------------------------------------------------------------------------


def test_each_rung_fires_once_at_its_time_to_its_person(proef: Loket, clock: FixedClock) -> None:
    ref = new_proef(proef, assign="s.staf")
    ladder = [
        (R1, 1, "reminder", "s.staf", "s.staf@ladder.example"),  # before 2 wd → the assignee
        (R2, 2, "escalation", "l.lead", "l.lead@ladder.example"),  # after 0 → balie's lead
        (R3, 3, "escalation", "h.head", "h.head@ladder.example"),  # after 5 wd → balie's head
        # after 10 wd → the administrator of portfolio proef
        (R4, 4, "escalation", "wethouder.proef", "wethouder.proef@ladder.example"),
    ]
    for at, place, kind, to, email in ladder:
        assert sweep_at(proef, clock, at - SECOND).fired == [], f"rung {place} fired early"
        result = sweep_at(proef, clock, at)
        assert [(f["rung"], f["to"], f["email"], f["kind"]) for f in result.fired] == [
            (place, to, email, kind)
        ]
        assert case_row(proef, ref)["escalation_level"] == place
        assert sweep_at(proef, clock, at).fired == [], f"rung {place} fired twice"
    assert escalated(proef, ref) == [
        ("1", "reminder", "assignee", "s.staf"),
        ("2", "escalation", "lead", "l.lead"),
        ("3", "escalation", "head", "h.head"),
        ("4", "escalation", "administrator", "wethouder.proef"),
    ]
    # The ladder is spent: nothing is left to fire in this stay, however late.
    assert case_row(proef, ref)["next_fire_at"] is None
    assert sweep_at(proef, clock, utc("2026-12-31T12:00:00")).fired == []
    assert counts(proef) == (4, 4, 4)


def test_next_fire_at_is_the_next_unfired_rung(proef: Loket, clock: FixedClock) -> None:
    ref = new_proef(proef)
    assert case_row(proef, ref)["next_fire_at"] == R1
    for at, following in ((R1, R2), (R2, R3), (R3, R4)):
        sweep_at(proef, clock, at)
        assert case_row(proef, ref)["next_fire_at"] == following


def test_a_late_sweep_fires_every_due_rung_in_ladder_order(loket: Loket, clock: FixedClock) -> None:
    # bewonersinitiatief in `ingediend` (wijkteam): the same ladder times R1..R4 as above.
    ref = loket.new_case(BI, ["title=Straatfeest"], actor=STAFF, assign="l.mulder").ref
    result = sweep_at(loket, clock, R3)  # nobody swept for two weeks
    assert fired(result) == [(1, "l.mulder"), (2, LEAD), (3, HEAD)]
    assert [f["due_at"] for f in result.fired] == [
        "2026-03-05T22:59:59.000000Z", "2026-03-09T22:59:59.000000Z", "2026-03-16T22:59:59.000000Z",
    ]
    assert escalated(loket, ref) == [
        ("1", "reminder", "assignee", "l.mulder"),
        ("2", "escalation", "lead", LEAD),
        ("3", "escalation", "head", HEAD),
    ]
    seqs = [e["seq"] for e in loket.history(ref)[1] if e["action"] == "escalated"]
    assert seqs == [3, 4, 5]  # after `created` and `assigned`, one event per rung, in order
    assert case_row(loket, ref)["escalation_level"] == 3
    again = sweep_at(loket, clock, R3)
    assert (again.checked, again.fired) == (0, [])  # not even looked at: next_fire_at is R4
    assert fired(sweep_at(loket, clock, R4)) == [(4, "wethouder.wijken")]
    assert counts(loket) == (4, 4, 4)


# -- vacancies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "recipients"),
    [
        # balie has a lead and a head; without an assignee the reminder goes to the lead.
        ("balie", ["l.lead", "l.lead", "h.head", "wethouder.proef"]),
        # zonderlead has only a head: assignee → lead → head, and lead → head.
        ("zonder_lead", ["z.head", "z.head", "z.head", "wethouder.proef"]),
        # kaal is a partner with staff only: every rung ends with the administrator.
        ("kaal", ["wethouder.proef"] * 4),
    ],
)
def test_a_vacancy_moves_the_rung_up(
    proef: Loket, clock: FixedClock, state: str, recipients: list[str]
) -> None:
    ref = new_proef(proef, state)  # entered at the start, so R1..R4 hold
    result = sweep_at(proef, clock, R4)
    assert fired(result) == list(zip([1, 2, 3, 4], recipients, strict=True))
    asked = ["assignee", "lead", "head", "administrator"]
    assert [(rung, ask, to) for rung, _kind, ask, to in escalated(proef, ref)] == list(
        zip(["1", "2", "3", "4"], asked, recipients, strict=True)
    )
    assert rows(proef, outbox_t, "recipient") == [(r,) for r in recipients]


@pytest.mark.parametrize(
    ("trigger", "lead"),
    [("vraag_politie", "b.vandenberg"), ("vraag_welzijnsorganisatie", "a.vos")],
)
def test_a_partner_without_a_head_escalates_to_the_administrator(
    loket: Loket, clock: FixedClock, trigger: str, lead: str
) -> None:
    # bij_politie and bij_welzijnsorganisatie (bijdrage): deadline 10 working days from
    # Mon 03-02: 3-6, 9-13, 16 → Mon 03-16; their own ladder's rung 3 is "head" 3 working
    # days after: 17, 18, 19 → Thu 03-19 23:59:59 CET. Neither partner has a head, so the
    # rung goes to the administrator of portfolio wijken.
    data = ["title=Buurtpreventie", "requested=Extra surveillance"]
    ref = loket.new_case(BD, data, actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, trigger, actor=STAFF)
    assert sweep_at(loket, clock, utc("2026-03-19T22:59:58")).fired[-1]["rung"] == 2
    result = sweep_at(loket, clock, utc("2026-03-19T22:59:59"))
    assert fired(result) == [(3, "wethouder.wijken")]
    assert escalated(loket, ref) == [
        ("1", "reminder", "assignee", lead),  # no assignee → the partner's lead
        ("2", "escalation", "lead", lead),
        ("3", "escalation", "head", "wethouder.wijken"),
    ]


# -- the recipient is looked up when the rung fires ---------------------------------------------


def test_reassigning_before_a_rung_fires_reaches_the_new_assignee(
    proef: Loket, clock: FixedClock
) -> None:
    ref = new_proef(proef, assign="s.staf")
    clock.set(utc("2026-03-04T09:00:00"))
    proef.assign(ref, "t.staf", actor="l.lead")
    assert fired(sweep_at(proef, clock, R1)) == [(1, "t.staf")]
    assert rows(proef, escalations_t, "recipient") == [("t.staf",)]


def test_a_new_organisation_before_a_rung_fires_reaches_the_new_lead(
    proef: Loket, clock: FixedClock
) -> None:
    ref = new_proef(proef)
    assert fired(sweep_at(proef, clock, R1)) == [(1, "l.lead")]  # no assignee → today's lead
    clock.set(utc("2026-03-06T09:00:00"))
    proef.load_organisation(DATA / "organisation_new_lead.yaml")  # m.nieuw leads the balie now
    assert fired(sweep_at(proef, clock, R2)) == [(2, "m.nieuw")]
    assert [to for *_, to in escalated(proef, ref)] == ["l.lead", "m.nieuw"]
    assert rows(proef, outbox_t, "recipient", "to_email") == [
        ("l.lead", "l.lead@ladder.example"), ("m.nieuw", "m.nieuw@ladder.example"),
    ]


def test_a_named_person_who_has_left_is_a_vacancy(
    proef: Loket, clock: FixedClock, tmp_path: Path
) -> None:
    # Both cases keep version 1 of `proef`, whose bij_genoemde ladder names n.genoemd.
    # First: entered Mon 03-02 → due Mon 03-09 (see R2).
    first = new_proef(proef, "bij_genoemde")
    assert fired(sweep_at(proef, clock, R2)) == [(1, "n.genoemd")]
    # Second: entered Tue 03-10 → 5 working days: 11, 12, 13, 16, 17 → Tue 03-17 23:59:59 CET.
    clock.set(utc("2026-03-10T09:00:00"))
    second = new_proef(proef, "bij_genoemde")
    # n.genoemd leaves: the type is changed first (version 2 names the lead), then the
    # organisation, which load_organisation checks only against each type's newest version.
    v2 = tmp_path / "proef.yaml"
    v2.write_text((DATA / "proef.yaml").read_text().replace("to: n.genoemd", "to: lead"))
    proef.load_request_types([v2])
    org = tmp_path / "organisation.yaml"
    lines = (DATA / "organisation.yaml").read_text().splitlines()
    org.write_text("\n".join(line for line in lines if "n.genoemd" not in line))
    proef.load_organisation(org)
    assert proef.get_case(second).type_version == 1
    result = sweep_at(proef, clock, utc("2026-03-17T22:59:59"))
    assert fired(result) == [(1, "wethouder.proef")]
    assert escalated(proef, first) == [("1", "escalation", "n.genoemd", "n.genoemd")]
    assert escalated(proef, second) == [("1", "escalation", "n.genoemd", "wethouder.proef")]


# -- ladders of states, stays ---------------------------------------------------------------------


def test_a_states_own_ladder_replaces_the_types(loket: Loket, clock: FixedClock) -> None:
    # bij_woningcorporatie (bijdrage), entered Mon 03-02: deadline 15 working days:
    # 3-6, 9-13, 16-20, 23 → Mon 03-23. Its own five rungs, counted from Mon 03-23:
    #   1 before 3 wd: Fri 20, Thu 19, Wed 18      → Wed 03-18 22:59:59Z (CET)
    #   2 after 0                                  → Mon 03-23 22:59:59Z
    #   3 after 3 wd: 24, 25, 26                   → Thu 03-26 22:59:59Z
    #   4 after 5 wd: 24-27, 30                    → Mon 03-30 21:59:59Z (CEST)
    #   5 after 8 wd: 24-27, 30, 31, 04-01, 04-02  → Thu 04-02 21:59:59Z
    # The type's own ladder would send "head" at +5 wd and nothing at +8.
    ref = loket.new_case(BD, ["title=Achterpad", "requested=Verlichting"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_woningcorporatie", actor=STAFF)
    steps = [
        ("2026-03-18T22:59:59", [(1, "y.vermeulen")]),  # no assignee → the corporation's lead
        ("2026-03-23T22:59:59", [(2, "y.vermeulen")]),
        ("2026-03-26T22:59:59", [(3, "g.kuipers")]),
        ("2026-03-30T21:59:59", [(4, HEAD)]),  # the wijkteam's head, named: a.jansen
        ("2026-04-02T21:59:59", [(5, "wethouder.wijken")]),
    ]
    for at, expected in steps:
        assert sweep_at(loket, clock, utc(at) - SECOND).fired == []
        assert fired(sweep_at(loket, clock, utc(at))) == expected
    assert case_row(loket, ref)["escalation_level"] == 5


def test_re_entering_a_state_starts_a_new_stay(proef: Loket, clock: FixedClock) -> None:
    ref = new_proef(proef)
    assert fired(sweep_at(proef, clock, R2)) == [(1, "l.lead"), (2, "l.lead")]
    assert case_row(proef, ref)["stay"] == 1
    clock.set(utc("2026-03-10T09:00:00"))
    proef.advance(ref, "naar_kaal", actor="s.staf")  # stay 2
    proef.advance(ref, "terug", actor="s.staf")  # stay 3, back in balie
    row = case_row(proef, ref)
    assert (row["state"], row["stay"], row["escalation_level"]) == ("balie", 3, 0)
    # Entered Tue 03-10: 5 working days 11, 12, 13, 16, 17 → Tue 03-17 23:59:59 CET;
    # rung 1 two working days before: Mon 16, Fri 13 → Fri 03-13.
    assert row["state_due"] == utc("2026-03-17T22:59:59")
    assert fired(sweep_at(proef, clock, utc("2026-03-13T22:59:59"))) == [(1, "l.lead")]
    assert fired(sweep_at(proef, clock, utc("2026-03-17T22:59:59"))) == [(2, "l.lead")]
    assert rows(proef, escalations_t, "stay", "rung", "state") == [
        (1, "1", "balie"), (1, "2", "balie"), (3, "1", "balie"), (3, "2", "balie"),
    ]
    assert [key for (key,) in rows(proef, outbox_t, "key")] == [
        "PR-2026-00001/1/1", "PR-2026-00001/1/2", "PR-2026-00001/3/1", "PR-2026-00001/3/2",
    ]


# -- timeouts and the case-wide clocks ------------------------------------------------------------


def test_a_timeout_fires_its_trigger_as_system(loket: Loket, clock: FixedClock) -> None:
    # bewonersinitiatief in `bijdrage` (openbare_ruimte) from Mon 03-02: deadline 10 wd:
    # 3-6, 9-13, 16 → Mon 03-16. The type's ladder from there: rung 1 Thu 03-12, rung 2
    # Mon 03-16, rung 3 (+5 wd: 17-20, 23) Mon 03-23, rung 4 (+10 wd: 17-20, 23-27, 30)
    # Mon 03-30 21:59:59Z. The timeout, 12 wd after: ..., 30, 31, 04-01 → Wed 04-01 23:59:59
    # CEST = 21:59:59Z. The service norm (4 weeks: Mon 03-30) also falls due meanwhile.
    ref = loket.new_case(BI, ["title=Moestuin", "amount=800"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_bijdrage", actor=STAFF)
    timeout = utc("2026-04-01T21:59:59")
    assert sweep_at(loket, clock, timeout - SECOND).fired[-1]["rung"] == "service_norm"
    assert case_row(loket, ref)["state"] == "bijdrage"
    result = sweep_at(loket, clock, timeout)
    assert result.as_json()["fired"] == [{
        "ref": ref, "state": "bijdrage", "rung": "timeout", "to": "system", "email": None,
        "kind": "timeout", "due_at": "2026-04-01T21:59:59.000000Z",
    }]
    last = loket.history(ref)[1][-1]
    assert {k: last[k] for k in ("actor", "action", "trigger", "from_state", "to_state")} == {
        "actor": "system", "action": "transition", "trigger": "geen_reactie_openbare_ruimte",
        "from_state": "bijdrage", "to_state": "beoordeling",
    }
    assert last["at"] == timeout
    assert last["comment"] == "termijn verlopen: geen antwoord binnen 12 werkdagen na de termijn"
    row = case_row(loket, ref)
    assert (row["state"], row["owner"], row["stay"], row["escalation_level"]) == (
        "beoordeling", "wijkteam", 4, 0,
    )
    # beoordeling from Wed 04-01: 10 wd: Thu 2, (Fri 3 Goede Vrijdag, weekend, Mon 6 tweede
    # Paasdag skipped) 7, 8, 9, 10, 13, 14, 15, 16, 17 → Fri 04-17 23:59:59 CEST.
    assert row["state_due"] == utc("2026-04-17T21:59:59")
    assert rows(loket, escalations_t, "stay", "rung", "recipient") == [
        (3, "1", "e.vanleeuwen"), (3, "2", "e.vanleeuwen"), (3, "3", "h.smits"),
        (3, "4", "wethouder.wijken"), (0, "service_norm", "h.smits"), (3, "timeout", "system"),
    ]
    # The timeout's mail tells whoever holds the case now: no assignee → the wijkteam's lead;
    # the wijkteam's mailbox hears of the hand-over (the type's rule), as of any other.
    assert rows(loket, outbox_t, "key", "recipient")[-2:] == [
        (f"{ref}/3/timeout", LEAD), (f"{ref}/e9/unit:wijkteam", "unit:wijkteam")]
    # It names the state's deadline, Mon 03-16, and counts from there: 17-20, 23-27, 30, 31,
    # 04-01 = 12 working days (not from the timeout's own moment, which would be 0).
    context = rows(loket, outbox_t, "context")[-2][0]
    assert (context["due_at"], context["days_overdue"]) == ("2026-03-16T22:59:59.000000Z", 12)
    assert sweep_at(loket, clock, timeout).fired == []


def test_a_late_sweep_stops_the_ladder_at_a_timeout_and_fires_later_breaches_after_it(
    db_url: str, clock: FixedClock
) -> None:
    # `termijn` (tests/data/ladder/termijn.yaml), created Mon 03-02 in `balie`: the deadline,
    # rungs 1-4 are R1..R4 as for `proef`; the timeout, 3 wd after Mon 03-09: 10, 11, 12 →
    # Thu 03-12. The service norm, 10 wd from Mon 03-02: 3-6, 9-13, 16 → Mon 03-16 = R3.
    # Nobody sweeps until R3: rungs 3 and 4 belong to a stay the timeout ended on 03-12, so
    # they never fire; the service norm fires after the timeout, in `herstart`.
    engine = open_engine(db_url)
    loket = Loket(engine, clock)
    loket.load_organisation(DATA / "organisation.yaml")
    loket.load_request_types([DATA / "termijn.yaml"])
    ref = loket.new_case("termijn", ["title=Laat"], actor="s.staf").ref
    clock.set(R3)
    predicted = sweep(loket, R3, dry_run=True).as_json()
    assert forecast(loket, 0) == sorted(predicted["fired"], key=lambda f: (f["due_at"], f["ref"]))

    result = sweep(loket, R3)

    assert result.as_json() == predicted
    assert [(f["rung"], f["to"], f["state"], f["due_at"]) for f in result.fired] == [
        (1, "l.lead", "balie", "2026-03-05T22:59:59.000000Z"),  # no assignee: the lead
        (2, "l.lead", "balie", "2026-03-09T22:59:59.000000Z"),
        ("timeout", "system", "balie", "2026-03-12T22:59:59.000000Z"),
        ("service_norm", "h.head", "herstart", "2026-03-16T22:59:59.000000Z"),
    ]
    history = [(e["action"], e["from_state"], e["to_state"], (e["data"] or {}).get("rung"))
               for e in loket.history(ref)[1]]
    assert history == [
        ("created", None, "balie", None),
        ("escalated", "balie", None, "1"),
        ("escalated", "balie", None, "2"),
        ("transition", "balie", "herstart", None),
        ("escalated", "herstart", None, "service_norm"),
    ]
    assert rows(loket, escalations_t, "stay", "rung", "state") == [
        (1, "1", "balie"), (1, "2", "balie"), (1, "timeout", "balie"), (0, "service_norm", "herstart"),
    ]
    row = case_row(loket, ref)
    assert (row["state"], row["escalation_level"], row["service_fired"]) == ("herstart", 0, True)
    # herstart from Mon 03-16 (entered at 23:59:59 local): 17-20, 23 → Mon 03-23; its rung 1
    # is 2 wd before: Thu 03-19. Nothing else is due now, and the old stay never comes back.
    assert row["next_fire_at"] == utc("2026-03-19T22:59:59")
    assert sweep(loket, R3).fired == []
    assert [f["rung"] for f in sweep(loket, R4).fired] == [1, 2]
    assert verify(loket).ok
    engine.dispose()


def test_a_timeout_through_the_cli_reports_rung_timeout_to_system(
    loket: Loket, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same case as above, swept once by `loket --now ... escalate --json` on a simulation
    # database; --now without a zone is Amsterdam time: 04-01 23:59:59 local is the timeout.
    monkeypatch.delenv("LOKET_NOW", raising=False)
    ref = loket.new_case(BI, ["title=Moestuin", "amount=800"], actor=STAFF).ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_bijdrage", actor=STAFF)
    with loket.engine.begin() as conn:
        loket.mark_simulation(conn)
    url = loket.engine.url.render_as_string(hide_password=False)
    cli.main(["--db", url, "--now", "2026-04-01T23:59:59", "escalate", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 1
    assert [(f["rung"], f["to"]) for f in report["fired"]] == [
        (1, "e.vanleeuwen"), (2, "e.vanleeuwen"), (3, "h.smits"), (4, "wethouder.wijken"),
        ("service_norm", "h.smits"), ("timeout", "system"),
    ]
    assert loket.get_case(ref).state == "beoordeling"


def test_the_service_norm_and_the_lead_time_fire_once_each(loket: Loket, clock: FixedClock) -> None:
    # Created Mon 03-02 in `ingediend` (wijkteam). Service norm 4 weeks: Mon 03-30, a working
    # day → 23:59:59 CEST = 21:59:59Z. Lead time 8 weeks: Mon 04-27 is Koningsdag → Tue 04-28.
    ref = loket.new_case(BI, ["title=Speelplek"], actor=STAFF).ref
    service, lead = utc("2026-03-30T21:59:59"), utc("2026-04-28T21:59:59")
    assert {f["rung"] for f in sweep_at(loket, clock, service - SECOND).fired} == {1, 2, 3, 4}
    assert fired(sweep_at(loket, clock, service)) == [("service_norm", HEAD)]  # wijkteam's head
    assert sweep_at(loket, clock, lead - SECOND).fired == []
    # The administrator, and the head of the unit that answers for the term (`responsible`).
    assert fired(sweep_at(loket, clock, lead)) == [("lead_time", "wethouder.wijken"), ("lead_time", HEAD)]
    # A new stay starts a new ladder, but the case-wide clocks never fire again.
    clock.set(utc("2026-04-29T09:00:00"))
    loket.advance(ref, "in_behandeling", actor=STAFF)
    later = sweep_at(loket, clock, utc("2026-07-31T12:00:00"))
    assert [f["rung"] for f in later.fired] == [1, 2, 3, 4]
    assert rows(loket, escalations_t, "stay", "rung", "recipient", "unit")[4:6] == [
        (0, "service_norm", HEAD, "wijkteam"), (0, "lead_time", "wethouder.wijken", "wijkteam"),
    ]
    row = case_row(loket, ref)
    assert (row["service_fired"], row["lead_fired"]) == (True, True)


# -- what a firing writes -------------------------------------------------------------------------


def test_each_firing_writes_an_event_an_escalation_and_an_outbox_row(
    loket: Loket, clock: FixedClock
) -> None:
    refs = [loket.new_case(BI, [f"title=Initiatief {n}"], actor=STAFF).ref for n in (1, 2)]
    before = counts(loket)
    assert before == (0, 0, 0)
    result = sweep_at(loket, clock, R3)  # rungs 1-3 of both cases (stay 1)
    assert len(result.fired) == 6
    assert counts(loket) == (6, 6, 6)
    keys = [key for (key,) in rows(loket, outbox_t, "key")]
    assert sorted(keys) == sorted(f"{ref}/1/{rung}" for ref in refs for rung in (1, 2, 3))
    # Outbox, escalation and event agree on who was told.
    assert [r for (r,) in rows(loket, outbox_t, "recipient")] == [
        r for (r,) in rows(loket, escalations_t, "recipient")
    ] == [to for ref in refs for *_, to in escalated(loket, ref)] == [LEAD, LEAD, HEAD] * 2
    assert sweep_at(loket, clock, R3).fired == []
    assert counts(loket) == (6, 6, 6)


def test_a_case_that_moves_to_a_unit_its_assignee_has_no_role_in_is_released(
    loket: Loket, clock: FixedClock
) -> None:
    # bijdrage, assigned to t.visser (wijkteam), asked of the police; a police officer takes
    # it; the timeout sends it back to the wijkteam, where d.kok has no role.
    ref = loket.new_case(BD, ["title=Buurtpreventie", "requested=surveillance"], actor=STAFF,
                         assign="t.visser").ref
    loket.advance(ref, "in_behandeling", actor=STAFF)
    loket.advance(ref, "vraag_politie", actor=STAFF)
    row = case_row(loket, ref)
    assert (row["owner"], row["assignee"]) == ("politie", None)  # t.visser: no role at the police
    loket.assign(ref, "d.kok", actor="m.schouten")
    # bij_politie from Mon 03-02: 10 wd → Mon 03-16; the timeout 10 wd later → Mon 03-30.
    result = sweep_at(loket, clock, utc("2026-03-30T21:59:59"))
    assert result.fired[-1]["rung"] == "timeout"
    row = case_row(loket, ref)
    assert (row["state"], row["owner"], row["assignee"]) == ("voorbereiding", "wijkteam", None)
    released = [(e["actor"], e["data"]) for e in loket.history(ref)[1] if e["action"] == "assigned"]
    assert released == [
        (STAFF, {"assignee": "t.visser"}),
        (STAFF, {"assignee": None, "released": "t.visser", "reason": "no role in unit 'politie'"}),
        ("m.schouten", {"assignee": "d.kok"}),
        ("system", {"assignee": None, "released": "d.kok", "reason": "no role in unit 'wijkteam'"}),
    ]
    # The vacancy rule now reaches the wijkteam's lead, not the police officer.
    assert {f["to"] for f in forecast(loket, 30)} <= {LEAD, HEAD, "wethouder.wijken"}
    assert verify(loket).ok


def test_an_assignee_with_a_role_in_the_next_unit_keeps_the_case(loket: Loket) -> None:
    ref = loket.new_case(BI, ["title=Speeltuin"], actor=STAFF, assign="l.mulder").ref
    loket.advance(ref, "in_behandeling", actor=STAFF)  # ingediend → beoordeling: both wijkteam
    assert case_row(loket, ref)["assignee"] == "l.mulder"
    assert [e["action"] for e in loket.history(ref)[1]] == ["created", "assigned", "transition"]
