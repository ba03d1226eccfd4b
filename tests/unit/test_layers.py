"""Imports run downwards: the package import graph, read from the source, has no cycle.

Every ``import`` and ``from ... import`` of sitemail's own modules counts,
wherever it stands (inside a function, under ``TYPE_CHECKING``): a lazy import
is still a dependency, it only moves the moment it fails.  The nodes are the
top-level packages and modules of ``sitemail`` (``transport``, ``mailbox``,
``clock``, ``cli``...); ``cli.py`` and the composition root ``serve.py`` are
the top, the only modules that may know the lab harness.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import sitemail

ROOT = Path(sitemail.__file__).resolve().parent
#: The top of the graph: the command line and the composition root.
TOP = frozenset({"cli", "serve", "__main__"})

Edge = tuple[str, str]  # (importing module, imported module), dotted


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path, module: str) -> Iterator[str]:
    """The sitemail modules (or names in them) ``path`` imports, absolute and dotted."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # `from sitemail import clock` imports the module sitemail.clock.
            yield from (f"{source}.{a.name}" for a in node.names)


def module_edges() -> list[Edge]:
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        for target in _imported(path, module):
            if target == "sitemail" or target.startswith("sitemail."):
                edges.append((module, target))
    return edges


def node(module: str) -> str:
    """The top-level package or module of sitemail that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_graph(edges: list[Edge]) -> dict[str, dict[str, list[Edge]]]:
    """node -> node it imports -> the module imports that make the edge."""
    graph: dict[str, dict[str, list[Edge]]] = defaultdict(lambda: defaultdict(list))
    for source, target in edges:
        a, b = node(source), node(target)
        if a and b and a != b:
            graph[a][b].append((source, target))
    return graph


def find_cycle(graph: dict[str, dict[str, list[Edge]]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(n: str, path: list[str]) -> list[str] | None:
        if n in path:
            return [*path[path.index(n) :], n]
        if n in done:
            return None
        for m in sorted(graph.get(n, {})):
            cycle = visit(m, [*path, n])
            if cycle:
                return cycle
        done.add(n)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def _explain(graph: dict[str, dict[str, list[Edge]]], a: str, b: str) -> str:
    return "; ".join(f"{s} imports {t}" for s, t in graph[a][b][:3])


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    edges = set(module_edges())
    # Lazy, inside a function of the command line.
    assert ("sitemail.cli", "sitemail.serve.run") in edges
    # Relative, inside a package.
    assert any(
        s == "sitemail.transport.queue.store" and t.startswith("sitemail.transport.queue.")
        for s, t in edges
    )


def test_protocols_import_nothing_of_sitemails() -> None:
    graph = package_graph(module_edges())
    assert dict(graph.get("protocols", {})) == {}, {
        b: _explain(graph, "protocols", b) for b in graph.get("protocols", {})
    }


def test_no_cycle_between_packages() -> None:
    graph = package_graph(module_edges())
    cycle = find_cycle(graph)
    assert cycle is None, (
        "import cycle "
        + " -> ".join(cycle or [])
        + ": "
        + " | ".join(
            _explain(graph, a, b) for a, b in zip(cycle or [], (cycle or [])[1:], strict=False)
        )
    )


def test_find_cycle_finds_one() -> None:
    edge = [("sitemail.a.x", "sitemail.b.y")]
    graph: dict[str, dict[str, list[Edge]]] = {
        "a": {"b": edge},
        "b": {"c": edge},
        "c": {"a": edge},
        "d": {"a": edge},
    }
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": edge}, "b": {}}) is None


def test_only_the_top_imports_the_lab() -> None:
    graph = package_graph(module_edges())
    importers = {a for a, targets in graph.items() if "lab" in targets}
    assert importers <= TOP, {a: _explain(graph, a, "lab") for a in importers - TOP}


def test_nothing_imports_the_top() -> None:
    """The composition root and the command line are above everything else."""
    graph = package_graph(module_edges())
    importers = {a for a, targets in graph.items() if a not in TOP and set(targets) & TOP}
    assert not importers, {
        a: [_explain(graph, a, b) for b in set(graph[a]) & TOP] for a in importers
    }
