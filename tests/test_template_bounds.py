"""Override templates are bounded in time and memory per render, and read only from inside
their folder: each attack below ends within a few seconds and without taking the memory, as a
configuration error naming the template, and the messages it was for stay in the outbox.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest

from engine.app.clock import FixedClock
from engine.app.service import Loket
from engine.app.sweep import sweep
from engine.errors import ConfigurationError
from engine.store.db import open_engine
from notifications.bounds import MAX_SECONDS, MAX_SIZE
from notifications.context import sample_contexts
from notifications.render import Renderer
from notifications.requeue import list_outbox
from tests.conftest import ORG_FILE, START, WORKFLOWS, run_cli

ATTACKS = {
    "center": '{{ "x"|center(1500000000) }}',  # before: MemoryError, exit 70
    "center method": '{{ "x".center(1500000000) }}',
    "format width": '{{ "%1500000000s"|format("x") }}',
    "format precision": '{{ "%.1500000000f"|format(1) }}',
    "percent": '{{ "%1500000000s" % "x" }}',
    "str.format": '{{ "{:>1500000000}".format("x") }}',
    "indent": '{{ ("x\n" * 499999)|indent(99999) }}',
    "repetition": '{{ "x" * 1500000000 }}',
    "repeated list": '{{ (["x" * 999999] * 999999)|join }}',
    "nested range": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",  # for ever
    "nested range, output": "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
    "captured loop": "{% set t %}{% for a in range(100000) %}{% for b in range(100000) %}{{ 'x' * 9999 }}"
                     "{% endfor %}{% endfor %}{% endset %}",
    "doubling ~": '{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}',
    "doubling +": '{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}',
    "doubling block": '{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set t %}{{ ns.s }}{{ ns.s }}'
                      "{% endset %}{% set ns.s = t %}{% endfor %}",
    "recursion": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "map": '{{ range(100000)|map("center", 999999)|list|length }}',
    "power": "{{ 2 ** 1000 ** 1000 }}",
    "squaring": "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "batch": "{{ [1]|batch(1500000000, 0)|list|length }}",
    "slice": "{{ [1]|slice(1500000000)|list|length }}",
    "wordwrap": '{{ ("x " * 400000)|wordwrap(1, wrapstring="y" * 99999) }}',
    "replace": '{{ ("x" * 99999)|replace("x", "y" * 99999) }}',
    "expandtabs": '{{ ("\t" * 99999).expandtabs(99999) }}',
    "join separator": '{{ range(100000)|join("x" * 99999) }}',
    "str.join": '{{ ("x" * 99999).join(range(100000)|map("string")) }}',
    "sum of lists": "{{ ([[1] * 100] * 100)|sum(start=[])|length }}",
    "to_bytes": '{{ (1).to_bytes(1500000000, "big")|length }}',
    "tojson indent": "{{ range(100000)|list|tojson(indent=99999) }}",
    "lorem ipsum": "{{ lipsum(100000, min=1000, max=1000) }}",
    "deep nesting": "{{ " + "(" * 20000 + "1" + ")" * 20000 + " }}",
    "list literal": '{% set a = "x" * 999999 %}{% set l = [' + "a," * 20000 + "a] %}{{ l|indent }}{{ l }}",
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def peak_memory_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_costly_template_ends_promptly_naming_itself(tmp_path: Path, source: str) -> None:
    override = write(tmp_path, "reminder.nl.txt.j2", source)
    memory, started = peak_memory_mb(), time.monotonic()
    with pytest.raises(ConfigurationError) as refused:
        Renderer("nl", override_dir=tmp_path).check()
    assert time.monotonic() - started < MAX_SECONDS + 3
    assert peak_memory_mb() - memory < 200
    assert f"template {override}" in refused.value.message
    assert "\n" not in refused.value.message


def test_the_refusal_says_which_bound(tmp_path: Path) -> None:
    override = write(tmp_path, "reminder.nl.txt.j2", "{{ ref }}\n{{ 'x'|center(1500000000) }}")
    with pytest.raises(ConfigurationError) as refused:
        Renderer("nl", override_dir=tmp_path).check()
    assert refused.value.message == (f"template {override}, line 2: the filter center would make 1500000000"
                                     f" characters or items; the limit is {MAX_SIZE}")
    write(tmp_path, "reminder.nl.txt.j2", ATTACKS["nested range"])
    with pytest.raises(ConfigurationError, match=f"line 1: rendering took longer than {MAX_SECONDS:g} seconds"):
        Renderer("nl", override_dir=tmp_path).check()


def test_a_template_that_stays_within_the_bounds_renders_as_before(tmp_path: Path) -> None:
    write(tmp_path, "reminder.nl.txt.j2", (
        "{{ ref }} {{ '%s/%d'|format(ref, days_left) }} {{ '{}: {}'.format(ref, unit_name) }}\n"
        "{{ unit_name|center(40)|trim }}|{{ unit_name|truncate(9, True, '…', 0) }}|{{ 'a b c'|replace(' ', '-') }}\n"
        "{{ events|map(attribute='actor')|join(', ') }}|{{ events|selectattr('actor')|list|length }}\n"
        "{% for row in range(7)|batch(3, 0) %}{{ row|sum }} {% endfor %}|{{ ('ab' * 3) ~ ('-' * 2) }}\n"
        "{{ 'x\ny'|indent(2, first=True) }}|{{ ('w ' * 10)|wordwrap(6) }}|{{ 2 ** 10 }} {{ 10 % 3 }}\n"
    ))
    text = Renderer("nl", override_dir=tmp_path).render("reminder", sample_contexts("reminder", "nl")[0]).text
    assert text == (
        "BI-2026-00042 BI-2026-00042/2 BI-2026-00042: Openbare Ruimte\n"
        "Openbare Ruimte|Openbare…|a-b-c\n"
        "Anna Jansen, Chris de Vries|2\n"
        "3 12 6 |ababab--\n"
        "  x\n  y|w w w\nw w w\nw w w\nw|1024 1\n"
    )


def test_bundled_templates_render_within_the_bounds() -> None:
    for kind in ("escalation", "reminder", "timeout"):
        for language in ("nl", "en"):
            renderer = Renderer(language)
            for sample in sample_contexts(kind, language):
                assert renderer.render(kind, sample).html


# -- partials outside the folder ---------------------------------------------------------------


def test_a_partial_linked_from_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    secret = write(tmp_path, "secret.txt", "wachtwoord=geheim\n")
    (folder / "_voet.txt.j2").symlink_to(secret)
    write(folder, "reminder.nl.txt.j2", "{{ ref }}\n{% include '_voet.txt.j2' %}")
    renderer = Renderer("nl", override_dir=folder)
    with pytest.raises(ConfigurationError) as refused:
        renderer.check()
    assert refused.value.message == (
        f"template {folder / '_voet.txt.j2'} leads outside the template folder (to {secret})")
    with pytest.raises(ConfigurationError, match="leads outside the template folder"):
        renderer.render("reminder", sample_contexts("reminder", "nl")[0])


@pytest.mark.parametrize("tag", ["{% include '_x.j2' %}", "{% extends '_x.j2' %}", "{% import '_x.j2' as x %}"])
def test_every_way_to_reach_a_partial_checks_where_it_leads(tmp_path: Path, tag: str) -> None:
    folder = tmp_path / "templates"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "elders"
    outside.mkdir()
    write(outside, "_x.j2", "buiten")
    (folder / "sub" / "weg").symlink_to(outside)  # a link to a folder outside
    (folder / "_x.j2").symlink_to(folder / "sub" / "weg" / "_x.j2")
    write(folder, "reminder.nl.txt.j2", "{{ ref }}" + tag)
    with pytest.raises(ConfigurationError, match="leads outside the template folder"):
        Renderer("nl", override_dir=folder).render("reminder", sample_contexts("reminder", "nl")[0])


def test_a_link_inside_the_folder_is_followed(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    (folder / "delen").mkdir(parents=True)
    write(folder / "delen", "_voet.j2", "Met vriendelijke groet")
    (folder / "_voet.txt.j2").symlink_to(folder / "delen" / "_voet.j2")
    (folder / "ook").symlink_to(folder)  # a link to its own folder is not walked for ever
    write(folder, "reminder.nl.txt.j2", "{{ ref }}\n{% include '_voet.txt.j2' %}")
    renderer = Renderer("nl", override_dir=folder)
    assert "_voet.txt.j2" in renderer.check()
    assert renderer.render("reminder", sample_contexts("reminder", "nl")[0]).text.endswith("Met vriendelijke groet")


def test_a_name_in_the_folder_that_is_no_file_is_refused_not_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "reminder.nl.txt.j2")  # reading it would wait for a writer for ever
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        Renderer("nl", override_dir=tmp_path).render("reminder", sample_contexts("reminder", "nl")[0])
    os.unlink(tmp_path / "reminder.nl.txt.j2")
    (tmp_path / "reminder.nl.txt.j2").symlink_to(tmp_path / "weg.j2")
    with pytest.raises(ConfigurationError, match="is a link to nothing"):
        Renderer("nl", override_dir=tmp_path).render("reminder", sample_contexts("reminder", "nl")[0])


# -- nothing lost --------------------------------------------------------------------------------


@pytest.fixture
def queued(sqlite_url: str) -> str:
    """A database whose outbox holds three pending escalations; its URL."""
    engine = open_engine(sqlite_url)
    clock = FixedClock(START)
    loket = Loket(engine, clock)
    loket.load_organisation(ORG_FILE)
    loket.load_request_types(sorted(str(p) for p in WORKFLOWS.glob("*.yaml") if p.name != "organisation.yaml"))
    for number in range(3):
        loket.new_case("melding", [f"omschrijving=Lantaarnpaal {number} kapot", "locatie=Lindelaan"],
                       actor="c.devries")
    clock.set(START + dt.timedelta(days=3))
    sweep(loket)
    engine.dispose()
    return sqlite_url


def outbox_of(url: str) -> list[dict[str, Any]]:
    engine = open_engine(url)
    try:
        return list_outbox(Loket(engine))
    finally:
        engine.dispose()


@pytest.mark.parametrize(("name", "source"), [
    ("escalation.nl.txt.j2", ATTACKS["center"]),
    ("escalation.nl.txt.j2", ATTACKS["nested range"]),
    # Harmless with the example data the start-up check uses; costly with the real cases (the
    # three escalations go to one reader, in one digest).
    ("digest.nl.txt.j2", '{% if escalations == 3 %}{{ "x"|center(1500000000) }}{% endif %}'),
])
def test_outbox_send_stops_with_exit_2_and_the_messages_wait(
    queued: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    name: str, source: str,
) -> None:
    before = outbox_of(queued)
    assert before and {row["status"] for row in before} == {"pending"}
    templates = tmp_path / "templates"
    templates.mkdir()
    override = write(templates, name, source)
    monkeypatch.setenv("LOKET_MAIL_DIR", str(tmp_path / "mail"))
    monkeypatch.delenv("LOKET_SMTP_URL", raising=False)
    monkeypatch.setenv("LOKET_TEMPLATE_DIR", str(templates))
    started = time.monotonic()
    code, _, err = run_cli(capsys, "--db", queued, "outbox", "send")
    assert code == 2
    assert err.startswith(f"Error: template {override}, line 1: ")
    assert time.monotonic() - started < MAX_SECONDS + 10
    after = outbox_of(queued)
    assert [(row["key"], row["status"], row["attempts"]) for row in after] == [
        (row["key"], "pending", row["attempts"]) for row in before]
    assert not list((tmp_path / "mail").glob("*.eml")) if (tmp_path / "mail").exists() else True
