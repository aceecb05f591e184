"""No circle of imports among stockflow's modules (and the benchmark's): each module is one
concept, and two that import each other are one concept split badly (or a shared one not given
its own module).

Every import counts, at the top, inside a function or under ``TYPE_CHECKING``: a late import
hides a circle from Python, not from the reader. The one circle allowed is deliberate:
:class:`~stockflow.settings.Settings` offers ``faust_kwargs()`` and ``table_options()`` (the
public, documented way to hand the settings to Faust), made by :mod:`stockflow.faust_arguments`,
which names ``Settings`` in its annotations only."""

from __future__ import annotations

import ast
from pathlib import Path

import stockflow

PACKAGES = (
    Path(stockflow.__file__).resolve().parent,
    Path(__file__).resolve().parents[2] / "bench",
)
"""The package (wherever it is imported from: the compiled tier's is a built wheel) and the
benchmark harness of this checkout."""
ALLOWED = [frozenset({"stockflow.faust_arguments", "stockflow.settings"})]


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Each module and the modules of :data:`PACKAGES` it imports (``from pkg import name``:
    the submodule ``pkg.name`` if there is one, else ``pkg``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in modules:
                        graph[name].add(target)
                    elif base in modules:
                        graph[name].add(base)
        graph[name].discard(name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_no_module_circle_but_the_allowed_one() -> None:
    assert sorted(map(sorted, circles(import_graph()))) == sorted(map(sorted, ALLOWED))


def test_the_graph_sees_late_and_type_only_imports() -> None:
    graph = import_graph()
    assert "bench.report" in graph["bench.goals"]  # TYPE_CHECKING only
    # settings imports faust_arguments inside its methods; faust_arguments names Settings
    # under TYPE_CHECKING only: both edges are seen, or the allowed circle would not be.
    assert "stockflow.faust_arguments" in graph["stockflow.settings"]
    assert "stockflow.settings" in graph["stockflow.faust_arguments"]


def test_circles_finds_a_circle_and_only_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert circles(graph) == [frozenset({"a", "b", "c"})]
