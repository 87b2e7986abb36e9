"""The need-to-know rules (SPEC §13.2) as a pure module: who may read a case, who sees its
personal values, from which event a partner sees the history."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core import access
from engine.core.access import Access, Reader
from engine.core.identity import AS_GIVEN, ESTABLISHED, Identity
from engine.core.organisation import parse_organisation
from engine.core.yamlfile import load_file
from engine.errors import Refused
from tests.conftest import ORG_FILE

ORG = parse_organisation(load_file(ORG_FILE)[0])
OWNERS = {"ontvangen": "wijkteam", "voorbereiding": "wijkteam", "bij_woningcorporatie": "woningcorporatie",
          "bij_openbare_ruimte": "openbare_ruimte", "terugkoppeling": "wijkteam", "afgerond": None}


def owner_of(_version: int, state: str) -> str | None:
    return OWNERS.get(state)


def event(seq: int, action: str, to_state: str | None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"seq": seq, "action": action, "to_state": to_state, "data": data}


# A case opened by the wijkteam, to the housing corporation at #3, back at #4, to Openbare
# Ruimte at #5, back at #6 and closed at #7.
PATH = [event(1, "created", "ontvangen"), event(2, "transition", "voorbereiding"),
        event(3, "transition", "bij_woningcorporatie"), event(4, "transition", "voorbereiding"),
        event(5, "transition", "bij_openbare_ruimte"), event(6, "transition", "terugkoppeling"),
        event(7, "transition", "afgerond")]


def held(upto: int) -> list[tuple[int, str | None]]:
    return access.holdings(PATH[:upto], 1, owner_of)


def decide(reader: str, owner: str | None, upto: int, portfolio: str | None = "wijken") -> Access:
    return access.decide(ORG, Reader(reader, reader), ref="BD-2026-00001", owner=owner, portfolio=portfolio,
                         held=held(upto))


def test_holdings_list_each_change_of_unit_once() -> None:
    assert held(7) == [(1, "wijkteam"), (3, "woningcorporatie"), (4, "wijkteam"), (5, "openbare_ruimte"),
                       (6, "wijkteam"), (7, None)]
    assert access.closing_unit(held(7)) == "wijkteam"


def test_holdings_follow_a_migration_to_the_new_versions_owners() -> None:
    def by_version(version: int, state: str) -> str | None:
        return {1: {"a": "wijkteam"}, 2: {"a": "welzijn"}}[version].get(state)
    events = [event(1, "created", "a"), event(2, "migrated", "a", {"from_version": 1, "to_version": 2})]
    assert access.first_version(events, 2) == 1
    assert access.holdings(events, 1, by_version) == [(1, "wijkteam"), (2, "welzijn")]


def test_the_holding_unit_reads_everything() -> None:
    assert decide("l.mulder", "wijkteam", 2) == Access(True, True)


def test_a_department_that_held_the_case_reads_it_without_personal_values() -> None:
    assert decide("h.smits", "wijkteam", 6) == Access(True, False)
    assert decide("c.devries", "wijkteam", 6).personal  # also in the wijkteam, which holds it


def test_a_department_that_never_held_it_reads_nothing_and_is_told_why() -> None:
    got = decide("p.dejong", "wijkteam", 6)
    assert not got.case and not got.personal
    assert got.reason.startswith("p.dejong may not read BD-2026-00001: it was never held by a unit p.dejong")
    assert "wethouder.wijken" in got.reason
    with pytest.raises(Refused, match="may not read"):
        access.require(got)


def test_a_partner_reads_only_while_holding_and_from_the_hand_over_on() -> None:
    holding = decide("r.dijkstra", "woningcorporatie", 3)
    assert holding == Access(True, True, since_seq=3)
    later = decide("r.dijkstra", "wijkteam", 4)
    assert not later.case and "no longer held by woningcorporatie" in later.reason
    assert not decide("m.schouten", "woningcorporatie", 3).case  # the police never held it


def test_a_second_hand_over_to_the_partner_shows_history_from_the_latest() -> None:
    path = [*PATH[:4], event(5, "transition", "bij_woningcorporatie")]
    got = access.decide(ORG, Reader("g.kuipers", "x"), ref="R", owner="woningcorporatie", portfolio=None,
                        held=access.holdings(path, 1, owner_of))
    assert got.since_seq == 5


def test_the_head_of_the_closing_unit_sees_personal_values_others_of_it_do_not() -> None:
    assert decide("a.jansen", None, 7) == Access(True, True)
    assert decide("l.mulder", None, 7) == Access(True, False)
    assert decide("h.smits", None, 7) == Access(True, False)
    assert not decide("r.dijkstra", None, 7).case


def test_administrators_and_their_assistants_read_their_portfolio_without_personal_values() -> None:
    for who in ("wethouder.wijken", "j.wolters"):
        assert decide(who, "wijkteam", 2) == Access(True, False)
        assert access.quick(ORG, Reader(who, who), owner="wijkteam", portfolio="wijken") == Access(True, False)
    assert not decide("wethouder.zorg", "wijkteam", 2).case
    assert not decide("s.koster", "wijkteam", 2).case  # assists another portfolio


def test_auditors_read_everything_and_nobody_reads_nothing() -> None:
    assert decide("d.smit", "woningcorporatie", 3) == Access(True, True)
    nobody = decide("nobody", "wijkteam", 2)
    assert not nobody.case and "'nobody' is nobody in the organisation" in nobody.reason


def test_who_reads_follows_the_identity_mode() -> None:
    given = access.reader_of(Identity("root", "root", None, AS_GIVEN))
    assert given.everything
    assert access.decide(ORG, given, ref="R", owner="politie", portfolio=None, held=[]) == Access(True, True)
    declared = access.reader_of(Identity("h.smits", "root", None, AS_GIVEN, declared=True))
    assert not declared.everything and declared.id == "h.smits"
    assert not access.reader_of(Identity("l.mulder", "lm", "l.mulder", ESTABLISHED)).everything
    with pytest.raises(Refused, match=r"your login 'stranger' maps to nobody.*reads nothing"):
        access.reader_of(Identity("stranger", "stranger", None, ESTABLISHED))


def test_hiding_replaces_present_personal_values_only() -> None:
    data = {"resident_name": "Piet", "resident_email": None, "title": "Bankje"}
    personal = frozenset({"resident_name", "resident_email", "resident_phone"})
    assert access.hide(data, personal) == {"resident_name": "(hidden)", "resident_email": None, "title": "Bankje"}
    assert (access.hide(data, personal, access.HIDDEN_TEXT["nl"]) or {})["resident_name"] == "(afgeschermd)"
    assert access.hide(None, personal) is None
    assert access.shows_personal(data, personal)
    assert not access.shows_personal({"resident_email": None, "title": "x"}, personal)
    assert not access.shows_personal(None, personal)
