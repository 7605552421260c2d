"""The layout's rules, checked on the real import graph (grimp, which import-linter is built on)."""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("app", "indexer", "devnet")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES)


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    nodes = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def test_cycle_finder_finds_a_planted_cycle():
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        g.add_module(m)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.a")
    g.add_import(importer="p.c", imported="p.a")
    assert _cycles(g) == [["p.a", "p.b"]]


def test_no_import_cycle_between_any_two_modules(graph):
    assert _cycles(graph) == []


def test_indexer_imports_nothing_of_app_or_devnet(graph):
    bad = [
        (m, imp)
        for m in graph.find_children("indexer") | {"indexer"}
        for imp in graph.find_modules_directly_imported_by(m)
        if imp.split(".")[0] in ("app", "devnet")
    ]
    assert bad == []


def test_app_library_code_does_not_import_devnet(graph):
    library = {m for m in graph.find_descendants("app") if not m.startswith("app.cli")}
    bad = [(m, imp) for m in library for imp in graph.find_modules_directly_imported_by(m) if imp.startswith("devnet")]
    assert bad == []
