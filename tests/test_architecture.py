"""The layering of docs/architecture.md, checked: who may import whom, and no cycles.

Every import counts, at module level or inside a function (a deferred import hides a cycle
from Python, not from the reader), and so do imports kept for type checking only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "notifications", "workflows")

#: What each layer may import, besides itself and the standard library and third parties.
ALLOWED: dict[str, tuple[str, ...]] = {
    "engine.errors": (),
    "engine.core": ("engine.errors",),
    "engine.store": ("engine.errors", "engine.core"),
    "engine.reporting": ("engine.errors", "engine.core", "engine.store"),
    "engine.app": ("engine.errors", "engine.core", "engine.store", "engine.reporting", "workflows"),
    "notifications": ("engine.errors", "engine.core", "engine.store", "engine.app"),
    "cli": ("engine", "notifications"),
}


def _modules() -> dict[str, Path]:
    found = {"cli": ROOT / "cli.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "versions" in parts:  # migration scripts are run by Alembic, not imported
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str, known: dict[str, Path]) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            # The longest known module the import names (`from engine.core import calendar`
            # names the module engine.core.calendar, `from engine.core.calendar import X` the
            # module engine.core.calendar).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: set(_imports(path, name, known)) for name, path in known.items()}


def _layer(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return module.split(".")[0]


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, targets in sorted(_graph().items()):
        layer = _layer(module)
        allowed = ALLOWED.get(layer)
        if allowed is None:
            continue
        for target in sorted(targets):
            other = _layer(target)
            if other != layer and not any(other == a or other.startswith(a + ".") or _layer(a) == other
                                          for a in allowed):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports across the layering:\n" + "\n".join(wrong)


def test_the_checker_sees_deferred_imports(tmp_path: Path) -> None:
    """The graph is built from every import statement, not only the top-level ones."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from engine.core import calendar\n")
    known = {"m": source, "engine.core.calendar": source}
    assert list(_imports(source, "m", known)) == ["engine.core.calendar"]


def test_only_the_migrations_and_the_mirror_read_the_sqlmodel_classes() -> None:
    """Statements use engine/store/tables.py; a module importing the SQLModel classes instead
    would bring SQLModel onto its path, and mix two declarations of one table in a query."""
    readers = sorted(module for module, targets in _graph().items() if "engine.store.schema" in targets)
    assert readers == ["engine.store.migrations.env", "engine.store.mirror"]
