"""The state diagrams of `report --html` speak the page's language: the `<title>` of every
graph, node and edge (hover text, the accessible name a screen reader reads) is made of the
Dutch labels the page shows — the type's title, state labels, unit names — never of the keys
Graphviz titles them by; their ids are made of keys, stable and unique on the page."""

from __future__ import annotations

import html
import re
import shutil

import pytest

from engine.app.report import gather
from engine.app.service import Loket
from engine.core.organisation import RANKS
from engine.reporting.html import render_page

DOT = shutil.which("dot")
pytestmark = pytest.mark.skipif(DOT is None, reason="Graphviz `dot` is not installed")


def _page(loket: Loket) -> str:
    units = {key: unit.name for key, unit in loket.organisation().units.items()}
    return render_page(gather(loket), loket.latest_types(), dot_binary=DOT, unit_names=units)


def _drawn(page: str) -> str:
    return page.split('id="diagrammen"')[1]


def _titles(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", _drawn(page))]


def test_no_title_carries_a_key_where_a_label_exists(loket: Loket) -> None:
    types = loket.latest_types()
    org = loket.organisation()
    labels = [rt.title for rt in types] + [s.label for rt in types for s in rt.states.values()] + [
        u.name for u in org.units.values()]
    keys = {rt.key for rt in types if rt.key != rt.title}
    keys |= {name for rt in types for name, s in rt.states.items() if name != s.label}
    keys |= {key for key, u in org.units.items() if key != u.name}
    keys |= set(RANKS) | {"_start"}
    # A key that is also a word of some label (none in the sample) could not be told apart.
    keys = {k for k in keys if not any(re.search(rf"\b{re.escape(k)}\b", label) for label in labels)}
    titles = _titles(_page(loket))
    assert len(titles) > 3 * len(types)
    for title in titles:
        found = [k for k in keys if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", title)]
        assert not found, f"title {title!r} carries {found}"
        assert "->" not in title


def test_titles_are_the_labels_the_page_shows(loket: Loket) -> None:
    titles = _titles(_page(loket))
    assert "Bewonersinitiatief (wijkbudget)" in titles  # the type's title, not `bewonersinitiatief`
    assert "Wacht op bewoner (Wijkteam Noord, klok stil)" in titles  # the unit by name
    assert "Begin" in titles
    assert any(t.startswith("Ingediend (Wijkteam Noord") for t in titles)
    assert "Wacht op bewoner → In beoordeling" in titles  # a step, from one label to the next


def test_roles_on_the_steps_are_dutch(loket: Loket) -> None:
    drawn = _drawn(_page(loket))
    assert "[teamleider]" in drawn
    assert not re.search(r"\[(?:[a-z/]*/)?(?:staff|lead|head)\b", drawn)


def test_ids_are_made_of_keys_stable_and_unique_on_the_page(loket: Loket) -> None:
    first, second = _page(loket), _page(loket)
    ids = re.findall(r'<g id="([^"]*)" class="(?:graph|node|edge)"', _drawn(first))
    assert ids == re.findall(r'<g id="([^"]*)" class="(?:graph|node|edge)"', _drawn(second))
    assert len(ids) == len(set(ids))
    for rt in loket.latest_types():
        assert rt.key in ids
        assert {f"{rt.key}.{name}" for name in rt.states} <= set(ids)
        assert {f"{rt.key}.{source}.{t.trigger}" for t in rt.transitions for source in t.sources} <= set(ids)
