"""How events read in listings and emails (engine.core.views.event_detail)."""

from __future__ import annotations

import pytest

from engine.core.views import event_detail, visible

EXTENDED = {"action": "extended", "comment": None,
            "data": {"by": "2 weeks", "unit": "weeks", "amount": 2, "reason": "Advies brandweer"}}


@pytest.mark.parametrize(("language", "expected"), [
    ("nl", "+2 weken: Advies brandweer"),  # a Dutch email reads Dutch terms
    ("en", "+2 weeks: Advies brandweer"),  # the command line and English emails
])
def test_an_extension_reads_in_the_language_asked(language: str, expected: str) -> None:
    assert event_detail(EXTENDED, language=language) == expected


def test_an_extension_whose_term_is_not_understood_is_shown_as_stored() -> None:
    odd = {**EXTENDED, "data": {"by": "2 fortnights", "unit": "fortnights", "amount": 2}}
    assert event_detail(odd, language="nl") == "+2 fortnights"


def test_a_release_names_who_was_released() -> None:
    event = {"action": "assigned", "comment": None,
             "data": {"assignee": None, "released": "d.kok", "reason": "no role in unit 'wijkteam'"}}
    assert event_detail(event) == "- (released: d.kok)"


def test_visible_escapes_what_a_terminal_would_obey() -> None:
    assert visible("a\x1b[2Jb\nc\u0085") == "a\\x1b[2Jb\\nc\\x85"
    assert visible("Zoë – ✓") == "Zoë – ✓"


def test_a_change_whose_values_a_redaction_erased_says_so() -> None:
    assert event_detail({"action": "data_changed", "comment": None, "data": {}}) == "(erased)"
    changed = {"action": "data_changed", "comment": None, "data": {"email": "a@b.nl", "title": "Feest"}}
    assert event_detail(changed, hide=frozenset({"email"})) == "email, title=Feest"
