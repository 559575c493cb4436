"""A merged decoder's cache branch fixed: the ``If`` that Optimum (``optimum::if``) and Olive write to
join a language model's first run and its cached runs, replaced by its no-cache branch.

Such a file takes a boolean ``use_cache_branch`` input: false runs the ``else_branch`` (the prompt's
first run, the past key values unread), true the ``then_branch`` (one more token on the cache). A
generation is attributed on its full prefix (no cache), so the private copy that is differentiated
keeps only the no-cache branch: :func:`without_cache_branch` inlines the ``else_branch`` of every
top-level ``If`` whose condition is that input, its values renamed where they would clash with the
main graph's (its outputs take the ``If``'s names), and drops the inputs nothing reads any more (the
flag, the past key values). The outputs stay: ``present.*`` of the no-cache branch are the keys and
values the attention computes anyway.
"""

from __future__ import annotations

import onnx
from onnx import helper

CACHE_FLAG = "use_cache_branch"
PAST_PREFIXES = ("past_key_values", "past.", "past_")  # a language model's cache inputs
PRESENT_PREFIX = "present"  # and its outputs


def has_cache_branch(model: onnx.ModelProto) -> bool:
    """Whether ``model``'s main graph has an ``If`` on :data:`CACHE_FLAG` (a merged decoder)."""
    return any(_on_flag(node) for node in model.graph.node)


def without_cache_branch(model: onnx.ModelProto) -> bool:
    """Inline, in place, the no-cache branch of each ``If`` on :data:`CACHE_FLAG` and drop the inputs
    read no more (module docstring); whether there was one."""
    graph = model.graph
    if not any(_on_flag(node) for node in graph.node):
        return False
    taken = _names(graph)
    nodes: list[onnx.NodeProto] = []
    for k, node in enumerate(graph.node):
        if not _on_flag(node):
            nodes.append(node)
            continue
        branch = next(a.g for a in node.attribute if a.name == "else_branch")
        nodes += _inlined(graph, branch, list(node.output), f"xai_branch{k}_", taken)
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in graph.node for name in _reads(node)} | {o.name for o in graph.output}
    kept = [i for i in graph.input if i.name in read]
    del graph.input[:]
    graph.input.extend(kept)
    return True


def _on_flag(node: onnx.NodeProto) -> bool:
    return node.op_type == "If" and node.domain in ("", "ai.onnx") and node.input[0] == CACHE_FLAG


def _inlined(graph, branch: onnx.GraphProto, outputs: list[str], prefix: str, taken: set[str]) -> list:
    """``branch``'s nodes, its initializers moved into ``graph``, its values renamed with ``prefix``
    where they clash with ``taken`` and its outputs renamed to ``outputs`` (Identity where a branch
    output is not produced by its own nodes, or is produced for two outputs)."""
    produced = [o for node in branch.node for o in node.output if o]
    owned = produced + [t.name for t in branch.initializer]
    renamed = {name: prefix + name if name in taken else name for name in owned}
    copies: list[onnx.NodeProto] = []
    bound: set[str] = set()
    for value, name in zip(branch.output, outputs):
        if value.name in produced and value.name not in bound and name:
            renamed[value.name] = name
            bound.add(value.name)
    for tensor in branch.initializer:
        moved = onnx.TensorProto()
        moved.CopyFrom(tensor)
        moved.name = renamed[tensor.name]
        graph.initializer.append(moved)
    for node in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [renamed.get(n, n) for n in node.input]
        copy.output[:] = [renamed.get(n, n) for n in node.output]
        _rename_reads(copy, renamed)
        copies.append(copy)
    for value, name in zip(branch.output, outputs):
        source = renamed.get(value.name, value.name)
        if name and source != name:
            copies.append(helper.make_node("Identity", [source], [name], name=f"{prefix}{name}"))
    taken.update(renamed.values())
    return copies


def _rename_reads(node: onnx.NodeProto, renamed: dict[str, str]) -> None:
    """Rename the outer names a node's own subgraphs read (a nested ``If`` or ``Loop``)."""
    for attribute in node.attribute:
        for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            local = {o for n in sub.node for o in n.output} | {i.name for i in sub.input}
            local |= {t.name for t in sub.initializer}
            outer = {k: v for k, v in renamed.items() if k not in local}
            for inner in sub.node:
                inner.input[:] = [outer.get(n, n) for n in inner.input]
                _rename_reads(inner, outer)


def _names(graph: onnx.GraphProto) -> set[str]:
    """Every name the main graph defines: inputs, initializers, node outputs."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    return names | {o for node in graph.node for o in node.output if o}


def _reads(node: onnx.NodeProto) -> set[str]:
    """The names a node reads, its subgraphs' outer reads included."""
    read = {n for n in node.input if n}
    for attribute in node.attribute:
        for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            local = {o for n in sub.node for o in n.output} | {i.name for i in sub.input}
            read |= {n for inner in sub.node for n in _reads(inner) if n not in local}
    return read
