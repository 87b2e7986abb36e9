"""The public results page (`loket report --public FILE`): one light, self-contained HTML page in
Dutch for the municipality's website.

What it shows, per request type and per area (the value of the type's `area` field): the cases
closed in the period per outcome, the totals of the type's measures for what was realised
(outcome granted or done; the internal report has them for every outcome), the median lead time and
the share decided within the legal term; and the most recently realised cases (outcome granted
or done) by their `summary` fields.

What it never shows: personal values (the builder reads only the area, the measures and the
summary fields, which the definition refuses to be personal), names or ids of people, comments,
references, escalations. The charts are SVG drawn on the server (engine/reporting/svg.py, as
the report page's), each with a text alternative (`<title>`/`<desc>`, and the table beside it
holds the same numbers): no script, no external file. Text from data is escaped by the template
(autoescaping) and, in the SVG, by `html.escape`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from engine.core import words
from engine.core.definition import RequestType
from engine.core.results import OUTCOMES, REALISED
from engine.reporting import svg
from engine.reporting.figures import AreaFigures, Report
from engine.reporting.html import OUTCOME_NAMES_NL, amount, local_time, number, percent
from engine.store.outfile import output_file

TEMPLATES = Path(__file__).parent / "templates"
OUTCOME_COLOURS = {"granted": "#1a6e48", "done": "#1d5b8f", "rejected": "#a3313d",
                   "withdrawn": "#5f6b7a", "none": "#5f6b7a"}
"""Each at least 4.5:1 against white, so a bar's colour is not all that tells it apart."""


def outcome_chart(title: str, counts: Sequence[tuple[str, int]], ident: str) -> Markup:
    """Horizontal bars, one per outcome, as inline SVG with its own text alternative."""
    return svg.labelled_bars(ident, title, [(OUTCOME_NAMES_NL[o], n, OUTCOME_COLOURS[o]) for o, n in counts])


def _outcomes(areas: Sequence[AreaFigures]) -> list[str]:
    present = {o for a in areas for o in a.results.outcomes}
    return [o for o in (*OUTCOMES, "none") if o in present]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(number=number, percent=percent, amount=amount)
    return env


def type_sections(report: Report) -> list[dict[str, Any]]:
    """Per request type with anything closed in the period: its areas, totals and chart."""
    out = []
    for n, group in enumerate(report.types):
        if not group.key or not group.closed:
            continue
        areas = [a for a in report.areas if a.type_key == group.key]
        outcomes = _outcomes(areas)
        counts = [(o, group.results.outcomes.get(o, 0)) for o in outcomes]
        measures = report.measure_labels.get(group.key, {})
        out.append({
            "key": group.key, "title": group.name, "group": group, "areas": areas, "outcomes": outcomes,
            # The measures of what was realised (granted, done): what a resident wants to know.
            "measures": [(name, label, [o for o in outcomes if o in REALISED
                                        and o in group.results.measures.get(name, {})])
                         for name, label in measures.items()],
            "area_label": report.area_labels.get(group.key),
            "chart": outcome_chart(f"{group.name}: afgesloten zaken per uitkomst", counts, f"grafiek-{n}"),
            "legal": group.clocks["legal_term"],
        })
    return out


def render_public(report: Report, types: Sequence[RequestType]) -> str:
    titles = {rt.key: rt.title for rt in types}
    f = report.filters
    period = []
    if f.since is not None:
        period.append(f"vanaf {words.long_date(_day(report, f.since))}")
    if f.until is not None:
        period.append(f"tot {words.long_date(_day(report, f.until))}")
    return _environment().get_template("public.html.j2").render(
        report=report,
        sections=type_sections(report),
        realised=report.realised,
        titles=titles,
        outcome_names=OUTCOME_NAMES_NL,
        long_date=words.long_date(report.date),
        period=" ".join(period),
        day=words.long_date,
        generated=local_time(report, report.now, "%d-%m-%Y %H:%M"),
    )


def _day(report: Report, moment: dt.datetime) -> dt.date:
    return moment.astimezone(ZoneInfo(report.timezone)).date()


def write_public(report: Report, types: Sequence[RequestType], path: str | os.PathLike[str], *,
                 database: str | None) -> int:
    """Write the page through :func:`engine.store.outfile.output_file` (never over the database,
    never half a page); its size."""
    page = render_public(report, types).encode("utf-8")
    with output_file(str(path), database=database, binary=True) as out:
        out.write(page)
    return len(page)
