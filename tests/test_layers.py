"""The package's layers hold: import-linter's contracts (pyproject.toml) are kept, and no module of
``onnx_xai`` imports itself back through others (imports inside functions included)."""

from __future__ import annotations

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(module: str) -> None:
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module) & modules:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles():
    graph = grimp.build_graph("onnx_xai")
    modules = {m for m in graph.modules if m != "onnx_xai"}
    assert cycles(graph, modules) == []


def test_a_planted_cycle_is_found():
    graph = grimp.build_graph("onnx_xai")
    graph.add_import(importer="onnx_xai.support.errors", imported="onnx_xai.cli.explain")
    modules = {m for m in graph.modules if m != "onnx_xai"}
    assert any("onnx_xai.support.errors" in group for group in cycles(graph, modules))


def test_import_linter_contracts_are_kept():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
