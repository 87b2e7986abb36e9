"""The report as one self-contained HTML page: tables, Plotly charts, request-type diagrams.

Everything the page needs is inside it — plotly.js once, inline, and the diagrams as inline
SVG — so it opens offline and can be mailed or archived as one file. Plotly was chosen over
drawing charts by hand: it is well kept, draws from plain lists (no numpy or pandas), ships
its JavaScript inside the Python package, and escapes `<`, `>` and `/` in the figure JSON so
no label can close the script it sits in.

Text from data (titles, labels, unit names, email subjects and errors) reaches the page
three ways, each escaped: through the Jinja2 template with autoescaping; inside chart labels,
HTML-escaped before Plotly sees them, because Plotly reads a few tags (`<b>`, `<a href>`)
in labels; and in diagrams, where Graphviz escapes it as XML and a drawing holding anything
but drawing elements is not inlined.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from engine.core import diagram, words
from engine.core.definition import RequestType
from engine.core.results import OUTCOMES
from engine.core.vocabulary import Rung
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
from engine.store.outfile import output_file

TEMPLATES = Path(__file__).parent / "templates"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
PALETTE = ["#1d5b8f", "#e07b39", "#2f9e77", "#8a5cb8", "#c9a227", "#d1495b", "#4f8fa8", "#7d7d7d"]
TYPE_COLOURS = ["#2f9e77", "#8a5cb8", "#17a2b8", "#d1495b", "#c9a227", "#7d7d7d"]
RUNG_COLOURS: dict[str, str] = {Rung.SERVICE_NORM: "#8a5cb8", Rung.LEAD_TIME: "#b8323f", Rung.TIMEOUT: "#7d7d7d"}
LADDER_COLOURS = ["#9cc3e4", "#4f8fc0", "#1d5b8f", "#0d3556", "#06223a"]
RUNG_NAMES_NL: dict[str, str] = {
    Rung.SERVICE_NORM: "servicenorm", Rung.LEAD_TIME: "beslistermijn", Rung.TIMEOUT: "time-out",
}
CLOCK_NAMES_NL = {"state_deadlines": "Termijnen toestanden", "service_norm": "Servicenorm",
                  "legal_term": "Beslistermijn"}
OUTCOME_NAMES_NL = {"granted": "toegekend", "rejected": "afgewezen", "withdrawn": "ingetrokken",
                    "done": "afgerond", "none": "geen uitkomst"}
CHART_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}
DOT_TIMEOUT = 30
SVG = "{http://www.w3.org/2000/svg}"
SVG_SHAPES = frozenset(SVG + tag for tag in (
    "svg", "g", "title", "text", "path", "polygon", "polyline", "ellipse", "circle", "line",
    "rect", "defs", "style", "tspan",
))


# -- formatting --------------------------------------------------------------------------------


def number(value: float | None, decimals: int = 1) -> str:
    """Dutch notation: 1.234,5."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


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


def local_time(report: Report, value: Any, pattern: str = "%d-%m-%Y %H:%M") -> str:
    if value is None:
        return "–"
    return str(value.astimezone(ZoneInfo(report.timezone)).strftime(pattern))


def _plain(text: str | None) -> str:
    """A label as Plotly should show it: literally, with no tag of it read as markup."""
    return html.escape(text or "–", quote=False)


# -- charts ------------------------------------------------------------------------------------


def _chart(fig: Any, name: str, height: int) -> Markup:
    fig.update_layout(
        template="plotly_white", height=height,
        font={"family": FONT, "size": 13, "color": "#1f2933"},
        margin={"l": 10, "r": 20, "t": 10, "b": 10}, separators=",.", bargap=0.25,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hoverlabel={"font": {"family": FONT}},
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    # The div id is fixed so that the same figures make the same page.
    return Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}",
                              config=CHART_CONFIG))


def lead_time_chart(report: Report) -> Markup | None:
    import plotly.graph_objects as go

    groups = [g for g in report.types if g.closed]
    if not groups:
        return None
    names = [_plain(g.name) for g in groups]
    fig = go.Figure()
    for label, values, colour in (
        ("mediaan", [g.lead_days.median for g in groups], PALETTE[0]),
        ("90e percentiel", [g.lead_days.p90 for g in groups], PALETTE[1]),
    ):
        fig.add_bar(
            name=label, y=names, x=values, orientation="h", marker_color=colour,
            customdata=[g.closed for g in groups],
            hovertemplate=(f"%{{y}}<br>{label}: %{{x:.1f}} dagen<br>"
                           "%{customdata} afgesloten zaken<extra></extra>"),
            text=[number(v) for v in values], textposition="outside", cliponaxis=False,
        )
    fig.update_layout(barmode="group", xaxis_title="kalenderdagen", yaxis_autorange="reversed")
    return _chart(fig, "doorlooptijd", 110 + 70 * len(groups))


def states_by_type(report: Report) -> list[tuple[str, list[StateFigures]]]:
    """(type title, its states in definition order), in the report's type order."""
    by_type: dict[str, list[StateFigures]] = defaultdict(list)
    for s in report.states:
        by_type[s.type_key].append(s)
    return [(report.type_titles.get(key, key), states) for key, states in by_type.items()]


def waiting_charts(report: Report) -> list[tuple[str, Markup]]:
    """Per request type, median and mean days per stay in each state, in definition order."""
    import plotly.graph_objects as go

    out = []
    for n, (title, states) in enumerate(states_by_type(report)):
        labels = [_plain(f"{s.label} · {s.unit_name}" if s.unit else s.label) for s in states]
        extra = [[s.stays, s.open_stays, number(s.total_days)] for s in states]
        fig = go.Figure()
        for label, values, colour in (
            ("mediaan per verblijf", [s.median_days for s in states], PALETTE[0]),
            ("gemiddeld per verblijf", [s.mean_days for s in states], PALETTE[4]),
        ):
            fig.add_bar(
                name=label, y=labels, x=values, orientation="h", marker_color=colour,
                customdata=extra,
                hovertemplate=(f"%{{y}}<br>{label}: %{{x:.1f}} dagen<br>"
                               "%{customdata[0]} verblijven, %{customdata[1]} nog open<br>"
                               "totaal %{customdata[2]} dagen<extra></extra>"),
            )
        fig.update_layout(barmode="group", xaxis_title="kalenderdagen", yaxis_autorange="reversed")
        out.append((title, _chart(fig, f"wachten-{n}", 100 + 46 * len(states))))
    return out


def type_colour(report: Report, key: str) -> str:
    """One colour per request type, the same in every chart."""
    keys = list(report.type_titles)
    return TYPE_COLOURS[(keys.index(key) if key in keys else len(keys)) % len(TYPE_COLOURS)]


def overdue_chart(report: Report) -> Markup | None:
    import plotly.graph_objects as go

    if not report.overdue:
        return None
    units = [g for g in report.units if g.key is not None or g.open]
    counts: dict[str, dict[str | None, int]] = defaultdict(dict)
    for unit, key, count in report.overdue:
        counts[key][unit] = count
    fig = go.Figure()
    for key in (k for k in report.type_titles if k in counts):
        fig.add_bar(
            name=_plain(report.type_titles[key]), y=[_plain(g.name) for g in units],
            x=[counts[key].get(g.key, 0) for g in units], orientation="h",
            marker_color=type_colour(report, key),
            hovertemplate="%{y}<br>%{fullData.name}: %{x} over de termijn<extra></extra>",
        )
    fig.update_layout(barmode="stack", xaxis_title="open zaken over de termijn",
                      yaxis_autorange="reversed", legend_traceorder="normal")
    if max(g.overdue for g in units) <= 10:
        fig.update_xaxes(dtick=1)
    return _chart(fig, "te-laat", 110 + 40 * len(units))


def escalation_chart(report: Report) -> Markup | None:
    import plotly.graph_objects as go

    if not report.escalations_by_day:
        return None
    days = sorted({d for d, _, _ in report.escalations_by_day})
    counts = {(d, r): n for d, r, n in report.escalations_by_day}
    fig = go.Figure()
    for rung in sorted({r for _, r, _ in report.escalations_by_day}, key=rung_order):
        fig.add_bar(
            name=rung_label(rung), x=[d.isoformat() for d in days],
            y=[counts.get((d, rung), 0) for d in days], marker_color=rung_colour(rung),
            hovertemplate=f"%{{x|%d-%m-%Y}}<br>{rung_label(rung)}: %{{y}}<extra></extra>",
        )
    fig.update_layout(barmode="stack", yaxis_title="escalaties per dag", legend_traceorder="normal")
    fig.update_xaxes(type="date", tickformat="%d-%m")
    return _chart(fig, "escalaties", 380)


def trend_chart(report: Report) -> Markup | None:
    """Received, closed and overdue (state deadlines missed) per ISO week."""
    import plotly.graph_objects as go

    if not report.weeks:
        return None
    weeks = [w.label for w in report.weeks]
    fig = go.Figure()
    for label, values, colour in (
        ("ontvangen", [w.received for w in report.weeks], PALETTE[0]),
        ("afgesloten", [w.closed for w in report.weeks], PALETTE[2]),
        ("te laat", [w.overdue for w in report.weeks], RUNG_COLOURS[Rung.LEAD_TIME]),
    ):
        fig.add_scatter(name=label, x=weeks, y=values, mode="lines+markers", line={"color": colour, "width": 2},
                        hovertemplate=f"%{{x}}<br>{label}: %{{y}}<extra></extra>")
    fig.update_layout(yaxis_title="zaken per week", xaxis_type="category")
    return _chart(fig, "per-week", 360)


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


def diagram_html(rt: RequestType, dot_binary: str | None) -> tuple[str, Markup]:
    """("svg", inline SVG) drawn by Graphviz, or ("mermaid", the Mermaid text) without it.

    Graphviz draws it both left-to-right and top-to-bottom, and the narrower drawing is kept:
    the page scales a drawing down to its width, and the narrower one keeps its text legible.
    """
    if dot_binary is not None:
        source = diagram.dot(rt)
        drawings = (_dot_svg(dot_binary, source, rankdir) for rankdir in ("LR", "TB"))
        drawn = [d for d in drawings if d is not None]
        if drawn:
            return "svg", Markup(min(drawn, key=lambda d: d[0])[1])
    return "mermaid", Markup("{}").format(diagram.mermaid(rt))


# -- the page ----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(number=number, percent=percent, rung=rung_label, amount=amount)
    return env


def render_page(
    report: Report, types: Sequence[RequestType], *, dot_binary: str | None = None
) -> str:
    """The page as text; `dot_binary` None draws no SVG (Mermaid text instead)."""
    from plotly.offline import get_plotlyjs

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
        plotly_js=Markup(get_plotlyjs()),
        lead_chart=lead_time_chart(report),
        waiting=waiting_charts(report),
        state_groups=states_by_type(report),
        overdue_chart=overdue_chart(report),
        escalation_chart=escalation_chart(report),
        diagrams=[(rt, *diagram_html(rt, dot_binary)) for rt in types],
        trend_chart=trend_chart(report),
        clocks=CLOCKS,
        clock_names=CLOCK_NAMES_NL,
        outcomes=[o for o in (*OUTCOMES, "none") if any(o in a.results.outcomes for a in report.areas)],
        outcome_names=OUTCOME_NAMES_NL,
        period=period_text(report),
        longest_shown=LONGEST,
        failed_shown=FAILED_SHOWN,
    )


def write_page(report: Report, types: Sequence[RequestType], path: str | os.PathLike[str], *,
               database: str | None) -> int:
    """Write the page (see :func:`engine.store.outfile.output_file`: never over the database
    at `database`, a half-written page never replaces a good one, a link or device is written
    through); its size."""
    page = render_page(report, types, dot_binary=shutil.which("dot")).encode("utf-8")
    with output_file(str(path), database=database, binary=True) as out:
        out.write(page)
    return len(page)
