"""The report as one self-contained HTML page: tables, SVG charts, request-type diagrams.

Everything the page needs is inside it — the charts drawn here as inline SVG
(engine/reporting/svg.py, shared with the public page) and the diagrams as inline SVG by
Graphviz — so it opens offline, without script, and can be mailed or archived as one file of
a few hundred KiB at most (it used to inline plotly.js: 4.8 MB a page).

Text from data (titles, labels, unit names, email subjects and errors) reaches the page
three ways, each escaped: through the Jinja2 template with autoescaping; in the charts, by
`html.escape` in engine/reporting/svg.py; and in diagrams, where Graphviz escapes it as XML
and a drawing holding anything but drawing elements is not inlined.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from engine.core import diagram, words
from engine.core.definition import RequestType
from engine.core.results import OUTCOMES
from engine.core.views import formatted
from engine.core.vocabulary import Rung
from engine.reporting import svg
from engine.reporting.figures import (
    CLOCKS,
    FAILED_SHOWN,
    LONGEST,
    GroupFigures,
    Report,
    StateFigures,
    UnitFigures,
    rung_order,
)
from engine.reporting.svg import number
from engine.store.outfile import output_file

TEMPLATES = Path(__file__).parent / "templates"
# Chart colours: each at least 3:1 against white (WCAG 1.4.11; tests/test_report.py checks).
PALETTE = ["#1d5b8f", "#c25e00", "#1a7f5a", "#8a5cb8", "#8a6d00", "#d1495b", "#0f7c8c", "#6f7f8f"]
TYPE_COLOURS = ["#1a7f5a", "#8a5cb8", "#0f7c8c", "#d1495b", "#8a6d00", "#6f7f8f"]
RUNG_COLOURS: dict[str, str] = {Rung.SERVICE_NORM: "#8a5cb8", Rung.LEAD_TIME: "#b8323f", Rung.TIMEOUT: "#6f7f8f",
                                Rung.DIRECTIVE: "#0f7c8c"}
LADDER_COLOURS = ["#6b8fb3", "#3d7ab0", "#1d5b8f", "#0d3556", "#06223a"]
RUNG_NAMES_NL: dict[str, str] = {
    Rung.SERVICE_NORM: "servicenorm", Rung.LEAD_TIME: "beslistermijn", Rung.TIMEOUT: "time-out",
    Rung.DIRECTIVE: "bestuurlijke opdracht",
}
CLOCK_NAMES_NL = {"state_deadlines": "Termijnen toestanden", "service_norm": "Servicenorm",
                  "legal_term": "Beslistermijn"}
OUTCOME_NAMES_NL = {"granted": "toegekend", "rejected": "afgewezen", "withdrawn": "ingetrokken",
                    "done": "afgerond", "none": "geen uitkomst"}
DOT_TIMEOUT = 30
DAYS_DRAWN = 366
"""The escalations chart has a column per day up to a year, one per week beyond."""
SVG = "{http://www.w3.org/2000/svg}"
SVG_SHAPES = frozenset(SVG + tag for tag in (
    "svg", "g", "title", "text", "path", "polygon", "polyline", "ellipse", "circle", "line",
    "rect", "defs", "style", "tspan",
))


# -- formatting --------------------------------------------------------------------------------


def amount(value: Any) -> str:
    """A measure's total: whole numbers without decimals, others with two (Dutch notation)."""
    return number(float(value), 0 if value == int(value) else 2)


def period_text(report: Report) -> str:
    """The filters in words, or "" when there are none."""
    f = report.filters
    parts = []
    if f.since is not None:
        parts.append(f"vanaf {local_time(report, f.since, '%d-%m-%Y')}")
    if f.until is not None:
        parts.append(f"tot {local_time(report, f.until, '%d-%m-%Y')}")
    if f.type_key is not None:
        parts.append(f"soort {report.type_titles.get(f.type_key, f.type_key)}")
    if f.unit is not None:
        unit = next((u.name for u in report.units if u.key == f.unit), f.unit)
        parts.append(f"eenheid {unit}")
    return ", ".join(parts)


def percent(value: float | None) -> str:
    return "–" if value is None else number(value * 100, 0) + "%"


def rung_label(rung: str) -> str:
    if rung.isdigit():
        return f"sport {rung}"
    return RUNG_NAMES_NL.get(rung, rung)


def rung_colour(rung: str) -> str:
    """Ladder places darken as they climb; the case-wide clocks and timeouts stand apart."""
    if rung in RUNG_COLOURS:
        return RUNG_COLOURS[rung]
    if rung.isdigit():
        return LADDER_COLOURS[min(max(int(rung), 1), len(LADDER_COLOURS)) - 1]
    return PALETTE[-1]


def long_date(report: Report) -> str:
    return words.long_date(report.date)


def day(value: dt.date) -> str:
    """A date as the pages write it: 02-01-0001, the year always in four digits."""
    return formatted(value, "%d-%m-%Y")


def local_time(report: Report, value: Any, pattern: str = "%d-%m-%Y %H:%M") -> str:
    if value is None:
        return "–"
    return formatted(value.astimezone(ZoneInfo(report.timezone)), pattern)


# -- charts ------------------------------------------------------------------------------------
# Drawn here as SVG (engine/reporting/svg.py); each is the chart alone where a table on the page
# already holds its numbers, else the chart and a table of them.


def lead_time_chart(report: Report) -> Markup | None:
    """Median and P90 lead time per request type (the table above it has the same numbers)."""
    groups = [g for g in report.types if g.closed]
    if not groups:
        return None
    return svg.bar_chart(
        "chart-doorlooptijd", "Doorlooptijd per soort verzoek (kalenderdagen)", [g.name for g in groups],
        [svg.Series("mediaan", [g.lead_days.median for g in groups], PALETTE[0]),
         svg.Series("90e percentiel", [g.lead_days.p90 for g in groups], PALETTE[1])],
        axis="kalenderdagen", unit="dagen", values_shown=True,
        tip=lambda i, _: f"{groups[i].closed} afgesloten zaken")


def states_by_type(report: Report) -> list[tuple[str, list[StateFigures]]]:
    """(type title, its states in definition order), in the report's type order."""
    by_type: dict[str, list[StateFigures]] = defaultdict(list)
    for s in report.states:
        by_type[s.type_key].append(s)
    return [(report.type_titles.get(key, key), states) for key, states in by_type.items()]


def waiting_charts(report: Report) -> list[tuple[str, Markup]]:
    """Per request type, median and mean days per stay in each state, in definition order (the
    table "In cijfers" has the same numbers)."""
    out = []
    for n, (title, states) in enumerate(states_by_type(report)):
        def tip(i: int, _: svg.Series, states: list[StateFigures] = states) -> str:
            s = states[i]
            return f"{s.stays} verblijven, {s.open_stays} nog open\ntotaal {number(s.total_days)} dagen"

        out.append((title, svg.bar_chart(
            f"chart-wachten-{n}", f"{title}: dagen per verblijf in elke toestand",
            [f"{s.label} · {s.unit_name}" if s.unit else s.label for s in states],
            [svg.Series("mediaan per verblijf", [s.median_days for s in states], PALETTE[0]),
             svg.Series("gemiddeld per verblijf", [s.mean_days for s in states], PALETTE[4])],
            axis="kalenderdagen", unit="dagen", tip=tip)))
    return out


def type_colour(report: Report, key: str) -> str:
    """One colour per request type, the same in every chart."""
    keys = list(report.type_titles)
    return TYPE_COLOURS[(keys.index(key) if key in keys else len(keys)) % len(TYPE_COLOURS)]


def overdue_chart(report: Report) -> Markup | None:
    """Open cases overdue now per unit, stacked by request type, and a table of them."""
    if not report.overdue:
        return None
    units = [g for g in report.units if g.key is not None or g.open]
    counts: dict[str, dict[str | None, int]] = defaultdict(dict)
    for unit, key, count in report.overdue:
        counts[key][unit] = count
    keys = [k for k in report.type_titles if k in counts]
    series = [svg.Series(report.type_titles[k], [counts[k].get(g.key, 0) for g in units], type_colour(report, k))
              for k in keys]
    chart = svg.bar_chart("chart-te-laat", "Open zaken over de termijn per eenheid en soort verzoek",
                          [g.name for g in units], series, axis="open zaken over de termijn",
                          unit="over de termijn", stacked=True, whole=True, decimals=0)
    table = svg.data_table(
        "Open zaken over de termijn per eenheid en soort verzoek",
        ["Eenheid", *(s.name for s in series), "Totaal"],
        [[g.name, *(int(s.values[i] or 0) for s in series), g.overdue] for i, g in enumerate(units)])
    return chart + table


def escalation_chart(report: Report) -> Markup | None:
    """Escalations per day (per week over more than :data:`DAYS_DRAWN` days, so the page stays
    small however long the period), stacked by rung, and a table of them."""
    if not report.escalations_by_day:
        return None
    first = min(d for d, _, _ in report.escalations_by_day)
    last = max(d for d, _, _ in report.escalations_by_day)
    weekly = (last - first).days >= DAYS_DRAWN
    counts: dict[tuple[dt.date, str], int] = defaultdict(int)
    for d, r, n in report.escalations_by_day:
        counts[(d - dt.timedelta(days=d.weekday()) if weekly else d, r)] += n
    days = sorted({d for d, _ in counts})
    rungs = sorted({r for _, r, _ in report.escalations_by_day}, key=rung_order)
    series = [svg.Series(rung_label(r), [counts.get((d, r), 0) for d in days], rung_colour(r)) for r in rungs]
    per = "week" if weekly else "dag"
    chart = svg.day_columns("chart-escalaties", f"Escalaties per {per}, per sport", days, series,
                            axis=f"escalaties per {per}", period=7 if weekly else 1)
    table = svg.data_table(
        f"Escalaties per {per}, per sport", ["Week van" if weekly else "Dag", *(s.name for s in series), "Totaal"],
        [[formatted(d, "%d-%m-%Y"), *(counts.get((d, r), 0) for r in rungs), sum(counts.get((d, r), 0) for r in rungs)]
         for d in days])
    return chart + table


def trend_chart(report: Report) -> Markup | None:
    """Received, closed and overdue (state deadlines missed) per ISO week (the table below it has
    the same numbers)."""
    if not report.weeks:
        return None
    return svg.line_chart(
        "chart-per-week", "Zaken per week: ontvangen, afgesloten en te laat", [w.label for w in report.weeks],
        [svg.Series("ontvangen", [w.received for w in report.weeks], PALETTE[0]),
         svg.Series("afgesloten", [w.closed for w in report.weeks], PALETTE[2]),
         svg.Series("te laat", [w.overdue for w in report.weeks], RUNG_COLOURS[Rung.LEAD_TIME])],
        axis="zaken per week")


# -- diagrams ----------------------------------------------------------------------------------


def _plain_drawing(root: ET.Element) -> bool:
    """Whether an SVG holds only drawing: no script, no foreign content, no handlers or links."""
    for element in root.iter():
        if element.tag not in SVG_SHAPES:
            return False
        if any(name.lower().startswith("on") or name.endswith("href") for name in element.attrib):
            return False
    return True


DOT_STYLE = (
    "-Gfontname=Helvetica", "-Nfontname=Helvetica", "-Efontname=Helvetica", "-Gfontsize=12",
    "-Gfontcolor=#5f6b7a", "-Nfontsize=12", "-Efontsize=10", "-Gnodesep=0.3", "-Granksep=0.4",
    "-Nstyle=rounded,filled", "-Nfillcolor=#eef4fa", "-Ncolor=#1d5b8f", "-Ecolor=#6b7785",
    "-Efontcolor=#3a4654",
)


def _dot_svg(dot_binary: str, source: str, rankdir: str) -> tuple[float, str] | None:
    """(width in points, SVG) as Graphviz draws `source` in this direction, if it can."""
    try:
        done = subprocess.run([dot_binary, "-Tsvg", f"-Grankdir={rankdir}", *DOT_STYLE],
                              input=source, capture_output=True, text=True, timeout=DOT_TIMEOUT,
                              check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    start = done.stdout.find("<svg")
    if start < 0:
        return None
    svg = done.stdout[start:]
    try:
        root = ET.fromstring(svg)
    except ET.ParseError:
        return None
    if not _plain_drawing(root):
        return None
    try:
        width = float(root.get("width", "").removesuffix("pt"))
    except ValueError:
        width = float("inf")
    return width, svg


_TITLED = re.compile(r'(<g id="([^"]*)" class="(?:graph|node|edge)"[^>]*>\s*<title>)([^<]*)(</title>)')
_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)


def _retitle(svg_text: str, titles: Mapping[str, str]) -> str:
    """The drawing with each element's `<title>` (hover text, accessible name) replaced by the
    Dutch one for its id: Graphviz titles nodes and edges by their keys (`ingediend`,
    `ingediend->beoordeling`), whatever their labels say."""
    def replace(match: re.Match[str]) -> str:
        title = titles.get(html.unescape(match.group(2)))
        if title is None:
            return match.group(0)
        return match.group(1) + html.escape(title, quote=False) + match.group(4)

    # Graphviz also puts each key in a comment before its element: not shown, but not needed.
    return _TITLED.sub(replace, _COMMENT.sub("", svg_text))


def diagram_html(rt: RequestType, dot_binary: str | None,
                 unit_names: Mapping[str, str] | None = None) -> tuple[str, Markup]:
    """("svg", inline SVG) drawn by Graphviz, or ("mermaid", the Mermaid text) without it.

    Graphviz draws it both left-to-right and top-to-bottom, and the narrower drawing is kept:
    the page scales a drawing down to its width, and the narrower one keeps its text legible.
    The drawing says what the page says: units by name, roles in Dutch, and titles made of
    labels, with ids made of keys (stable, unique on the page). `unit_names` maps unit keys to
    names (a unit it lacks is shown by its key).
    """
    if dot_binary is not None:
        names = dict(unit_names or {})
        source = diagram.dot(rt, names)
        drawings = (_dot_svg(dot_binary, source, rankdir) for rankdir in ("LR", "TB"))
        drawn = [d for d in drawings if d is not None]
        if drawn:
            return "svg", Markup(_retitle(min(drawn, key=lambda d: d[0])[1], diagram.titles(rt, names)))
    return "mermaid", Markup("{}").format(diagram.mermaid(rt))


# -- the page ----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(number=number, percent=percent, rung=rung_label, amount=amount, day=day)
    return env


def unit_names_of(report: Report) -> dict[str, str]:
    """The names of the units the report's figures name (a page written without the
    organisation at hand names at least those by name in its diagrams)."""
    names = {u.key: u.name for u in report.units if u.key is not None}
    names.update((s.unit, s.unit_name) for s in report.states if s.unit is not None)
    return names


def render_page(
    report: Report, types: Sequence[RequestType], *, dot_binary: str | None = None,
    unit_names: Mapping[str, str] | None = None,
) -> str:
    """The page as text; `dot_binary` None draws no SVG (Mermaid text instead). `unit_names`
    (unit key → name, the organisation's) names the units in the diagrams; without it, the
    units the report's figures name."""
    names = dict(unit_names) if unit_names is not None else unit_names_of(report)
    rungs = report.rungs()

    def escalation_total(group: GroupFigures | UnitFigures) -> int:
        return sum(group.escalations.values())

    return _environment().get_template("report.html.j2").render(
        report=report,
        total=report.total,
        rungs=rungs,
        escalation_total=escalation_total,
        long_date=long_date(report),
        generated=local_time(report, report.now, "%d-%m-%Y %H:%M"),
        when=lambda value: local_time(report, value),
        lead_chart=lead_time_chart(report),
        waiting=waiting_charts(report),
        state_groups=states_by_type(report),
        overdue_chart=overdue_chart(report),
        escalation_chart=escalation_chart(report),
        diagrams=[(rt, *diagram_html(rt, dot_binary, names)) for rt in types],
        trend_chart=trend_chart(report),
        clocks=CLOCKS,
        clock_names=CLOCK_NAMES_NL,
        outcomes=[o for o in (*OUTCOMES, "none") if any(o in a.results.outcomes for a in report.areas)],
        outcome_names=OUTCOME_NAMES_NL,
        period=period_text(report),
        longest_shown=LONGEST,
        failed_shown=FAILED_SHOWN,
    )


def page_bytes(report: Report, types: Sequence[RequestType], unit_names: Mapping[str, str] | None = None) -> bytes:
    """The page as written, UTF-8 (the diagrams by Graphviz's `dot` when it is installed)."""
    return render_page(report, types, dot_binary=shutil.which("dot"), unit_names=unit_names).encode("utf-8")


def write_page(report: Report, types: Sequence[RequestType], path: str | os.PathLike[str], *,
               database: str | None, unit_names: Mapping[str, str] | None = None) -> int:
    """Write the page (see :func:`engine.store.outfile.output_file`: never over the database
    at `database`, a half-written page never replaces a good one, a link or device is written
    through); its size."""
    page = page_bytes(report, types, unit_names)
    with output_file(str(path), database=database, binary=True) as out:
        out.write(page)
    return len(page)
