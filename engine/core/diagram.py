"""Request types drawn as diagrams: Mermaid (no Graphviz needed) and DOT.

Both are written from the definition directly, so a diagram shows exactly what the engine
enforces: owners and deadlines on states, roles and conditions on transitions.
"""

from __future__ import annotations

from engine.core.definition import RequestType, TransitionSpec
from engine.errors import InvalidValue


def _edge_label(t: TransitionSpec) -> str:
    parts = [t.trigger]
    if t.roles != ("staff",):
        parts.append("[" + "/".join(t.roles) + "]")
    parts.extend(str(c) for c in t.when)
    return " ".join(parts)


def _state_label(rt: RequestType, name: str) -> str:
    spec = rt.states[name]
    extra = []
    if spec.owner:
        extra.append(spec.owner)
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


def dot(rt: RequestType) -> str:
    lines = [f"digraph {rt.key} {{", "    rankdir=LR;", f"    label={_dot_quote(rt.title)};",
             "    node [shape=box, style=rounded];"]
    for name, spec in rt.states.items():
        shape = ", peripheries=2" if spec.final else ""
        lines.append(f"    {name} [label={_dot_quote(_state_label(rt, name))}{shape}];")
    # State names start with a letter, so the entry point's `_start` can never clash with one.
    lines.append('    _start [shape=point, label=""];')
    lines.append(f"    _start -> {rt.initial};")
    for t in rt.transitions:
        for source in t.sources:
            lines.append(f"    {source} -> {t.dest} [label={_dot_quote(_edge_label(t))}];")
    lines.append("}")
    return "\n".join(lines)


def render(rt: RequestType, fmt: str) -> str:
    if fmt == "mermaid":
        return mermaid(rt)
    if fmt == "dot":
        return dot(rt)
    raise InvalidValue(f"unknown diagram format {fmt!r} (mermaid or dot)")
