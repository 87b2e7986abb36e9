"""The public results page (`loket report --public FILE`): one light, self-contained HTML page in
Dutch for the municipality's website.

What it shows, per request type and per area (the value of the type's `area` field): the cases
closed in the period per outcome, the totals of the type's measures for what was realised
(outcome granted or done; the internal report has them for every outcome), the median lead time and
the share decided within the legal term; and the most recently realised cases (outcome granted
or done) by those of their `summary` fields whose values the definition fixes.

What it never shows: any text a person typed into a case. Not personal values (the builder
reads only the area, the measures and the summary fields, which the definition refuses to be
personal), and not free text either: a summary field is shown only when it is a choice or a
yes/no field and its value is one the definition lists (a title, a location, an amount or a
date of one case is left out: a resident may have typed a name or an address there). The
breakdown per area is shown only when the type's `area` is a choice field and every area
value is one of its options; an area that is a text field gives one row for the whole type
instead. Nor names or ids of people, comments, references, escalations.

The charts are SVG drawn on the server (engine/reporting/svg.py, as the report page's), each
with a text alternative (`<title>`/`<desc>`, and the table beside it holds the same numbers):
no script, no external file. Text from definitions is escaped by the template (autoescaping)
and, in the SVG, by `html.escape`.
"""

from __future__ import annotations

import dataclasses
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
from engine.core.fields import FieldSpec
from engine.core.results import OUTCOMES, REALISED
from engine.reporting import svg
from engine.reporting.figures import AreaFigures, Realised, Report
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


_YES_NO = frozenset({"ja", "nee", "yes", "no"})
"""How :func:`engine.core.notices.summary_of` writes a yes/no field's value."""


def _fixed(spec: FieldSpec | None, value: str | None) -> bool:
    """Whether `value` is one the definition itself lists for this field (a choice's option, or
    yes/no): never text a person typed."""
    if spec is None or value is None:
        return False
    if spec.type == "choice":
        return value in spec.options
    return spec.type == "boolean" and value in _YES_NO


def _area_spec(rt: RequestType | None) -> FieldSpec | None:
    return rt.fields.get(rt.area) if rt is not None and rt.area is not None else None


def public_summary(rt: RequestType | None, summary: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The `(label, value)` pairs of a realised case that may be published: those of summary
    fields whose value the definition fixes (a label two summary fields share counts only when
    both are fixed)."""
    if rt is None:
        return []
    by_label: dict[str, list[FieldSpec]] = {}
    for name in rt.summary:
        spec = rt.fields[name]
        by_label.setdefault(spec.label or name, []).append(spec)
    return [(label, value) for label, value in summary
            if (specs := by_label.get(label)) and all(_fixed(spec, value) for spec in specs)]


def public_realised(report: Report, types: Sequence[RequestType]) -> list[Realised]:
    """The recently realised cases as the public page shows them: only their type, outcome,
    day, an area that is a choice the definition lists, and the fixed summary values."""
    by_key = {rt.key: rt for rt in types}
    out = []
    for r in report.realised:
        rt = by_key.get(r.type_key)
        if rt is None:
            continue
        area = r.area if _fixed(_area_spec(rt), r.area) else None
        out.append(dataclasses.replace(r, area=area, summary=tuple(public_summary(rt, r.summary))))
    return out


def type_sections(report: Report, types: Sequence[RequestType] = ()) -> list[dict[str, Any]]:
    """Per request type with anything closed in the period: its areas, totals and chart. The
    areas only when the type's area is a choice and every value is one of its options;
    otherwise one row with the type's own figures (free text is never published)."""
    by_key = {rt.key: rt for rt in types}
    out = []
    for n, group in enumerate(report.types):
        if not group.key or not group.closed:
            continue
        areas = [a for a in report.areas if a.type_key == group.key]
        spec = _area_spec(by_key.get(group.key))
        split = spec is not None and all(a.area is None or _fixed(spec, a.area) for a in areas)
        if not split:
            areas = [AreaFigures(type_key=group.key, area=None, results=group.results,
                                 lead_days=group.lead_days, legal_term=group.clocks["legal_term"])]
        outcomes = _outcomes(areas)
        counts = [(o, group.results.outcomes.get(o, 0)) for o in outcomes]
        measures = report.measure_labels.get(group.key, {})
        out.append({
            "key": group.key, "title": group.name, "group": group, "areas": areas, "outcomes": outcomes,
            # The measures of what was realised (granted, done): what a resident wants to know.
            "measures": [(name, label, [o for o in outcomes if o in REALISED
                                        and o in group.results.measures.get(name, {})])
                         for name, label in measures.items()],
            "area_label": report.area_labels.get(group.key) if split else None,
            "split": split,
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
        sections=type_sections(report, types),
        realised=public_realised(report, types),
        titles=titles,
        outcome_names=OUTCOME_NAMES_NL,
        long_date=words.long_date(report.date),
        period=" ".join(period),
        day=words.long_date,
        generated=local_time(report, report.now, "%d-%m-%Y %H:%M"),
    )


def _day(report: Report, moment: dt.datetime) -> dt.date:
    return moment.astimezone(ZoneInfo(report.timezone)).date()


def page_bytes(report: Report, types: Sequence[RequestType]) -> bytes:
    """The public page as written, UTF-8."""
    return render_public(report, types).encode("utf-8")


def write_public(report: Report, types: Sequence[RequestType], path: str | os.PathLike[str], *,
                 database: str | None) -> int:
    """Write the page through :func:`engine.store.outfile.output_file` (never over the database,
    never half a page); its size."""
    page = page_bytes(report, types)
    with output_file(str(path), database=database, binary=True) as out:
        out.write(page)
    return len(page)
