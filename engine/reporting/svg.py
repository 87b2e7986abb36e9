"""Charts drawn on the server as inline SVG, for the report page and the public page.

Why by hand: the report page used to inline plotly.js (about 4.8 MB) for a few bar and line
charts; such a chart is a few KiB of SVG, draws without script, prints, and opens offline.
What a chart gives up is plotly's zoom; its hover text remains, as a `<title>` on each mark
(the browser shows it as a tooltip).

Every chart carries its own text alternative: `role="img"` with a `<title>` and a `<desc>`
(read out by screen readers), and :func:`data_table` draws the same numbers as a table to put
beside it (the public page's tables already hold them). Colours are picked at 3:1 or more
against white (WCAG 1.4.11, see :func:`contrast`), and series never differ by colour alone:
bars carry a legend, a tooltip and a table of their numbers, lines their own marker and dash.

Text from data (labels, series names) is escaped here with `html.escape`; the result is
`Markup`, so the page's template inserts it as is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import math
from collections.abc import Callable, Sequence

from markupsafe import Markup

from engine.core.views import formatted

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK = "#1f2933"
MUTED = "#5f6b7a"
GRID = "#dde3ea"
WIDTH = 1080
"""The drawing's own width; the page scales it to the column (`width: 100%`)."""
CHAR = 7.8
"""About how wide a character of 13px text is: enough to leave room for labels."""
MARKERS = ("circle", "square", "diamond", "triangle")
DASHES = ("", "6 4", "2 3", "8 3 2 3")
NUM = ' class="num"'


# -- numbers and text ----------------------------------------------------------------------


def number(value: float | None, decimals: int = 1) -> str:
    """Dutch notation: 1.234,5."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def _fmt(value: float) -> str:
    """A coordinate: short, no trailing zeros."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _clip(text: str, room: float) -> str:
    """`text` shortened with an ellipsis to fit about `room` pixels."""
    most = max(int(room / CHAR), 4)
    return text if len(text) <= most else text[: most - 1] + "…"


def nice_ticks(top: float, *, whole: bool = True, most: int = 6) -> list[float]:
    """0, step, 2·step ... covering `top`, with a step of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(step, 1)
    count = math.ceil(top / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _tick_text(value: float, step: float) -> str:
    return number(value, 0 if step >= 1 else max(0, -math.floor(math.log10(step))))


def luminance(colour: str) -> float:
    """Relative luminance of `#rrggbb` (WCAG 2)."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str = "#ffffff") -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# -- the pieces ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Series:
    """One series of a chart: its name in the legend, a value per category (None: no mark)."""

    name: str
    values: Sequence[float | None]
    colour: str


def _open(ident: str, width: float, height: float, title: str, desc: str) -> list[str]:
    return [
        f'<svg class="chart-svg" role="img" viewBox="0 0 {_fmt(width)} {_fmt(height)}"'
        f' width="{_fmt(width)}" height="{_fmt(height)}" aria-labelledby="{ident}-t {ident}-d"'
        f' font-family="{FONT}" font-size="13" fill="{INK}">',
        f'<title id="{ident}-t">{_e(title)}</title>',
        f'<desc id="{ident}-d">{_e(desc)}</desc>',
    ]


def _legend(series: Sequence[Series], x: float, y: float, *, lines: bool = False) -> list[str]:
    """The series' names in a row from (x, y), each after a swatch (or a line with its marker)."""
    parts = ['<g aria-hidden="true">']
    for i, s in enumerate(series):
        if lines:
            dash = f' stroke-dasharray="{DASHES[i % len(DASHES)]}"' if DASHES[i % len(DASHES)] else ""
            parts.append(f'<line x1="{_fmt(x)}" y1="{_fmt(y - 4)}" x2="{_fmt(x + 22)}" y2="{_fmt(y - 4)}"'
                         f' stroke="{s.colour}" stroke-width="2"{dash}/>')
            parts.append(_marker(MARKERS[i % len(MARKERS)], x + 11, y - 4, s.colour))
            x += 28
        else:
            parts.append(f'<rect x="{_fmt(x)}" y="{_fmt(y - 10)}" width="12" height="12" fill="{s.colour}"/>')
            x += 17
        parts.append(f'<text x="{_fmt(x)}" y="{_fmt(y)}">{_e(s.name)}</text>')
        x += len(s.name) * CHAR + 22
    parts.append("</g>")
    return parts


def _marker(shape: str, x: float, y: float, colour: str, tip: str | None = None) -> str:
    r = 4.5
    if shape == "circle":
        mark = f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="{_fmt(r)}" fill="{colour}"'
    elif shape == "square":
        mark = (f'<rect x="{_fmt(x - r)}" y="{_fmt(y - r)}" width="{_fmt(2 * r)}" height="{_fmt(2 * r)}"'
                f' fill="{colour}"')
    elif shape == "diamond":
        d = r * 1.3
        mark = (f'<path d="M{_fmt(x)} {_fmt(y - d)}L{_fmt(x + d)} {_fmt(y)}L{_fmt(x)} {_fmt(y + d)}'
                f'L{_fmt(x - d)} {_fmt(y)}Z" fill="{colour}"')
    else:
        d = r * 1.25
        mark = (f'<path d="M{_fmt(x)} {_fmt(y - d)}L{_fmt(x + d)} {_fmt(y + d * 0.8)}'
                f'L{_fmt(x - d)} {_fmt(y + d * 0.8)}Z" fill="{colour}"')
    return mark + (f"><title>{_e(tip)}</title></{mark[1:mark.index(' ')]}>" if tip else "/>")


# -- chart kinds ---------------------------------------------------------------------------


def labelled_bars(ident: str, title: str, rows: Sequence[tuple[str, int, str]], *,
                  label_width: int = 170, bar_width: int = 360, row: int = 30) -> Markup:
    """Plain horizontal bars, one per (label, count, colour), the count after each bar: no axis,
    no legend (the public page's chart, large type)."""
    most = max((n for _, n, _ in rows), default=0) or 1
    height = row * len(rows) + 10
    width = label_width + bar_width + 70
    described = "; ".join(f"{label}: {n}" for label, n, _ in rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-labelledby="{ident}-t {ident}-d">',
        f'<title id="{ident}-t">{html.escape(title)}</title>',
        f'<desc id="{ident}-d">{html.escape(described)}</desc>',
    ]
    for i, (label, n, colour) in enumerate(rows):
        y = 5 + i * row
        bar = round(bar_width * n / most) if n else 0
        parts.append(f'<text x="{label_width - 8}" y="{y + 19}" text-anchor="end" font-size="15"'
                     f' fill="#1f2933">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 4}" width="{max(bar, 2)}" height="{row - 8}"'
                     f' fill="{colour}"/>')
        parts.append(f'<text x="{label_width + max(bar, 2) + 8}" y="{y + 19}" font-size="15"'
                     f' fill="#1f2933">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(ident: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
              axis: str, unit: str, stacked: bool = False, values_shown: bool = False,
              whole: bool = False, decimals: int = 1,
              tip: Callable[[int, Series], str] | None = None) -> Markup:
    """Horizontal bars, a band per category (top to bottom in the given order), the series side
    by side in it (or `stacked` end to end); `axis` names the value axis, `unit` follows each
    number in the tooltips and the description. `tip(category index, series)` adds to a bar's
    tooltip."""
    shown = [s for s in series if any(v for v in s.values)] if stacked else list(series)
    longest = max((len(c) for c in categories), default=4)
    label_width = min(max(longest * CHAR + 16, 80), 360)
    left, right = label_width, WIDTH - (70 if values_shown else 24)
    bar = 18
    band = (bar if stacked else bar * len(shown)) + 14
    top = 34
    height = top + band * len(categories) + 44
    totals = [sum(s.values[i] or 0 for s in shown) if stacked else
              max((s.values[i] or 0 for s in shown), default=0) for i in range(len(categories))]
    ticks = nice_ticks(max(totals, default=0), whole=whole)
    scale = (right - left) / ticks[-1]
    desc = "; ".join(
        f"{c}: " + ", ".join(f"{s.name} {number(s.values[i], decimals)}" for s in shown if s.values[i] is not None)
        for i, c in enumerate(categories))
    parts = _open(ident, WIDTH, height, title, desc)
    parts += _legend(shown, left, 18)
    step = ticks[1] - ticks[0]
    bottom = top + band * len(categories)
    parts.append(f'<g aria-hidden="true" fill="{MUTED}" font-size="12" text-anchor="middle">')
    for t in ticks:
        x = left + t * scale
        parts.append(f'<line x1="{_fmt(x)}" y1="{top}" x2="{_fmt(x)}" y2="{_fmt(bottom)}" stroke="{GRID}"/>'
                     f'<text x="{_fmt(x)}" y="{_fmt(bottom + 16)}">{_tick_text(t, step)}</text>')
    parts.append(f'<text x="{_fmt((left + right) / 2)}" y="{_fmt(bottom + 36)}" fill="{INK}"'
                 f' font-size="13">{_e(axis)}</text></g>')
    for i, category in enumerate(categories):
        y0 = top + band * i + 7
        parts.append(f'<text x="{_fmt(left - 8)}" y="{_fmt(y0 + (band - 14) / 2 + 4.5)}" text-anchor="end">'
                     f'{_e(_clip(category, label_width - 14))}</text>')
        x = float(left)
        for j, s in enumerate(shown):
            value = s.values[i]
            if value is None or (stacked and not value):
                continue
            y = y0 if stacked else y0 + j * bar
            w = value * scale
            text = f"{category}\n{s.name}: {number(value, decimals)} {unit}"
            if tip is not None:
                text += "\n" + tip(i, s)
            parts.append(f'<rect class="bar" x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(max(w, 1))}"'
                         f' height="{bar - 2}" fill="{s.colour}"><title>{_e(text)}</title></rect>')
            if values_shown:
                parts.append(f'<text x="{_fmt(x + w + 5)}" y="{_fmt(y + bar / 2 + 3.5)}" font-size="12">'
                             f'{number(value, decimals)}</text>')
            if stacked:
                x += w
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{_fmt(bottom)}" stroke="{MUTED}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _axis_y(ticks: list[float], left: float, right: float, top: float, bottom: float,
            axis: str) -> list[str]:
    scale = (bottom - top) / ticks[-1]
    step = ticks[1] - ticks[0]
    parts = [f'<g aria-hidden="true" fill="{MUTED}" font-size="12" text-anchor="end">']
    for t in ticks:
        y = bottom - t * scale
        parts.append(f'<line x1="{_fmt(left)}" y1="{_fmt(y)}" x2="{_fmt(right)}" y2="{_fmt(y)}" stroke="{GRID}"/>'
                     f'<text x="{_fmt(left - 6)}" y="{_fmt(y + 4)}">{_tick_text(t, step)}</text>')
    middle = (top + bottom) / 2
    parts.append(f'<text transform="translate(14 {_fmt(middle)}) rotate(-90)" text-anchor="middle"'
                 f' fill="{INK}" font-size="13">{_e(axis)}</text></g>')
    return parts


def _x_labels(labels: Sequence[tuple[float, str]], bottom: float) -> list[str]:
    parts = [f'<g aria-hidden="true" fill="{MUTED}" font-size="12" text-anchor="middle">']
    for x, label in labels:
        parts.append(f'<text x="{_fmt(x)}" y="{_fmt(bottom + 17)}">{_e(label)}</text>')
    parts.append("</g>")
    return parts


def _every(count: int, room: float, label_chars: int) -> int:
    """Label every n-th of `count` evenly spread places so the labels do not overlap."""
    fits = max(int(room / (label_chars * CHAR + 12)), 1)
    return max(math.ceil(count / fits), 1)


def day_columns(ident: str, title: str, days: Sequence[dt.date], series: Sequence[Series], *,
                axis: str, period: int = 1) -> Markup:
    """Stacked columns per period of `period` days (1: per day, 7: per week, `days` then being
    Mondays) on a time axis from the first to the last (periods without any drawn as gaps); one
    tooltip per column lists its series."""
    left, right, top, height = 64.0, WIDTH - 16.0, 34.0, 330.0
    bottom = height - 30
    first, last = days[0], days[-1]
    span = (last - first).days // period + 1
    slot = (right - left) / span
    width = max(min(slot * 0.8, 40), 1)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(days))]
    ticks = nice_ticks(max(totals, default=0))
    scale = (bottom - top) / ticks[-1]
    one, periods = ("week", "weken") if period == 7 else ("dag", "dagen")
    desc = (f"{sum(totals)} in totaal in {len(days)} {periods} van {formatted(first, '%d-%m-%Y')} tot en met "
            f"{formatted(last, '%d-%m-%Y')}; meeste in één {one}: {max(totals, default=0)}. "
            + "; ".join(f"{s.name}: {sum(v or 0 for v in s.values)}" for s in series))
    parts = _open(ident, WIDTH, height, title, desc)
    parts += _legend(series, left, 18)
    parts += _axis_y(ticks, left, right, top, bottom, axis)
    for i, day in enumerate(days):
        x = left + (day - first).days // period * slot + (slot - width) / 2
        y = bottom
        label = ("week van " if period == 7 else "") + formatted(day, "%d-%m-%Y") + "".join(
            f"\n{s.name}: {s.values[i]}" for s in series if s.values[i])
        parts.append(f"<g><title>{_e(label)}</title>")
        for s in series:
            value = s.values[i] or 0
            if not value:
                continue
            h = value * scale
            y -= h
            parts.append(f'<rect class="bar" x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(width)}"'
                         f' height="{_fmt(h)}" fill="{s.colour}"/>')
        parts.append("</g>")
    step = _every(span, right - left, 5)
    if period == 1 and 1 < step < 7:
        step = 7  # a week apart reads better than every third day
    labels = [(left + k * slot + slot / 2, (first + dt.timedelta(days=k * period)).strftime("%d-%m"))
              for k in range(0, span, step)]
    parts += _x_labels(labels, bottom)
    parts.append(f'<line x1="{_fmt(left)}" y1="{_fmt(bottom)}" x2="{_fmt(right)}" y2="{_fmt(bottom)}"'
                 f' stroke="{MUTED}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(ident: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
               axis: str) -> Markup:
    """One line per series over evenly spaced categories, each point a marker with a tooltip;
    series differ by colour, marker shape and dash."""
    left, right, top, height = 64.0, WIDTH - 40.0, 34.0, 340.0
    bottom = height - 30
    count = len(categories)
    slot = (right - left) / max(count, 1)
    ticks = nice_ticks(max((v or 0 for s in series for v in s.values), default=0))
    scale = (bottom - top) / ticks[-1]
    desc = "; ".join(
        f"{s.name}: " + ", ".join(f"{c} {v}" for c, v in zip(categories, s.values, strict=True) if v is not None)
        for s in series)
    parts = _open(ident, WIDTH, height, title, desc)
    parts += _legend(series, left, 18, lines=True)
    parts += _axis_y(ticks, left, right, top, bottom, axis)
    for n, s in enumerate(series):
        points = [(left + slot * (i + 0.5), bottom - v * scale, categories[i], v)
                  for i, v in enumerate(s.values) if v is not None]
        dash = DASHES[n % len(DASHES)]
        path = "".join(f"{'M' if k == 0 else 'L'}{_fmt(x)} {_fmt(y)}" for k, (x, y, _, _) in enumerate(points))
        parts.append(f'<g class="series"><path d="{path}" fill="none" stroke="{s.colour}" stroke-width="2"'
                     + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        for x, y, category, v in points:
            parts.append(_marker(MARKERS[n % len(MARKERS)], x, y, s.colour, f"{category}\n{s.name}: {v}"))
        parts.append("</g>")
    every = _every(count, right - left, max((len(c) for c in categories), default=1))
    parts += _x_labels([(left + slot * (i + 0.5), c) for i, c in enumerate(categories) if i % every == 0], bottom)
    parts.append(f'<line x1="{_fmt(left)}" y1="{_fmt(bottom)}" x2="{_fmt(right)}" y2="{_fmt(bottom)}"'
                 f' stroke="{MUTED}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def data_table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str | int]]) -> Markup:
    """The chart's numbers as a table, folded away under "De cijfers bij de grafiek"; the first
    column is the row's name, the others are numbers."""
    # A region that can scroll sideways takes the keyboard focus, so it can be scrolled without a mouse.
    parts = [f'<details class="cijfers"><summary>De cijfers bij de grafiek</summary>'
             f'<div class="scroll" tabindex="0" role="region" aria-label="{_e(caption)}">'
             f'<table class="data"><caption>{_e(caption)}</caption><thead><tr>']
    parts += [f'<th scope="col"{NUM if i else ""}>{_e(h)}</th>' for i, h in enumerate(head)]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        parts.append(f'<tr><th scope="row">{_e(str(row[0]))}</th>'
                     + "".join(f'<td class="num">{_e(str(v))}</td>' for v in row[1:]) + "</tr>")
    parts.append("</tbody></table></div></details>")
    return Markup("".join(parts))
