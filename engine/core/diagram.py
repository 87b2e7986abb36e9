"""Request types drawn as diagrams: Mermaid (no Graphviz needed) and DOT.

Both are written from the definition directly, so a diagram shows exactly what the engine
enforces: owners and deadlines on states, roles and conditions on transitions.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.core.definition import RequestType, TransitionSpec
from engine.errors import InvalidValue

#: The roles as the Dutch report page names them.
ROLE_NAMES_NL = {"staff": "medewerker", "lead": "teamleider", "head": "afdelingshoofd"}
#: What the entry point of a drawing is called on the Dutch report page.
START_NL = "Begin"


def _edge_label(t: TransitionSpec, dutch: bool = False) -> str:
    parts = [t.trigger]
    if t.roles != ("staff",):
        parts.append("[" + "/".join(ROLE_NAMES_NL.get(r, r) if dutch else r for r in t.roles) + "]")
    parts.extend(str(c) for c in t.when)
    return " ".join(parts)


def _state_label(rt: RequestType, name: str, unit_names: Mapping[str, str] | None = None) -> str:
    spec = rt.states[name]
    extra = []
    if spec.owner:
        extra.append(unit_names.get(spec.owner, spec.owner) if unit_names is not None else spec.owner)
    if spec.paused:
        extra.append("klok stil")
    elif spec.deadline:
        extra.append(spec.deadline.label("nl"))
    return spec.label + (f" ({', '.join(extra)})" if extra else "")


def mermaid(rt: RequestType) -> str:
    lines = ["stateDiagram-v2", f"    %% {rt.title} ({rt.key})", f"    [*] --> {rt.initial}"]
    for name in rt.states:
        label = _state_label(rt, name).replace('"', "'")
        lines.append(f'    state "{label}" as {name}')
    for t in rt.transitions:
        for source in t.sources:
            label = _edge_label(t).replace(":", " ")
            lines.append(f"    {source} --> {t.dest}: {label}")
    for name, spec in rt.states.items():
        if spec.final:
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_id(rt: RequestType, state: str | None) -> str:
    """The id of a state's node in the SVG (`bewonersinitiatief.ingediend`; the entry point's is
    `bewonersinitiatief._start`): made of keys, so stable from one report to the next, and unique
    on a page that draws several types."""
    return f"{rt.key}.{state if state is not None else '_start'}"


def edge_id(rt: RequestType, source: str | None, t: TransitionSpec | None) -> str:
    """The id of a step's edge: its type, source state and trigger (unique: one trigger per
    source state), or the entry point's edge to the initial state."""
    return f"{rt.key}.{source}.{t.trigger}" if source is not None and t is not None else f"{rt.key}._start."


def dot(rt: RequestType, unit_names: Mapping[str, str] | None = None) -> str:
    """The DOT source. With `unit_names` (unit key → name) it is the drawing of the Dutch report
    page: units by name, roles in Dutch, and every node and edge given a stable id
    (:func:`node_id`, :func:`edge_id`) by which :func:`titles` names it."""
    dutch = unit_names is not None

    def ident(value: str) -> str:
        return f", id={_dot_quote(value)}" if dutch else ""

    lines = [f"digraph {rt.key} {{", "    rankdir=LR;", f"    label={_dot_quote(rt.title)};",
             "    node [shape=box, style=rounded];"]
    if dutch:
        lines.append(f"    id={_dot_quote(rt.key)};")
    for name, spec in rt.states.items():
        shape = ", peripheries=2" if spec.final else ""
        lines.append(f"    {name} [label={_dot_quote(_state_label(rt, name, unit_names))}{shape}"
                     f"{ident(node_id(rt, name))}];")
    # State names start with a letter, so the entry point's `_start` can never clash with one.
    lines.append(f'    _start [shape=point, label=""{ident(node_id(rt, None))}];')
    lines.append(f"    _start -> {rt.initial}{f' [id={_dot_quote(edge_id(rt, None, None))}]' if dutch else ''};")
    for t in rt.transitions:
        for source in t.sources:
            lines.append(f"    {source} -> {t.dest} [label={_dot_quote(_edge_label(t, dutch))}"
                         f"{ident(edge_id(rt, source, t))}];")
    lines.append("}")
    return "\n".join(lines)


def titles(rt: RequestType, unit_names: Mapping[str, str]) -> dict[str, str]:
    """The Dutch title (hover text, accessible name) of each element of :func:`dot`'s drawing
    with `unit_names`, by its id: the type's title, each state's label as its node shows it,
    each step from one state's label to the next. Graphviz itself titles them by their keys."""
    found = {rt.key: rt.title, node_id(rt, None): START_NL,
             edge_id(rt, None, None): f"{START_NL} → {rt.states[rt.initial].label}"}
    for name in rt.states:
        found[node_id(rt, name)] = _state_label(rt, name, unit_names)
    for t in rt.transitions:
        for source in t.sources:
            found[edge_id(rt, source, t)] = f"{rt.states[source].label} → {rt.states[t.dest].label}"
    return found


def render(rt: RequestType, fmt: str) -> str:
    if fmt == "mermaid":
        return mermaid(rt)
    if fmt == "dot":
        return dot(rt)
    raise InvalidValue(f"unknown diagram format {fmt!r} (mermaid or dot)")
