"""Which tensors lie between the input and the score, and which of them every path crosses.

Data flows along tensors that carry data (float tensors, quantized activations), not along shape
arithmetic: ``Reshape(x, Concat(Shape(x), ...))`` depends on ``x`` only through its first input. A
node's inputs include what its subgraphs read, so control flow sits on the paths it really is on.

A tensor *dominates* the path when every path from the source to the score passes through it (a
residual block's output does, the tensors inside its branches do not). In a graph sorted
topologically, that is a tensor which, at some point of the sweep, is the only path tensor still
waiting for a consumer: one linear pass finds them all.

Each walk visits every node once (200,000 nodes in well under a second) and is asked the same
question several times by the analysis: answers are kept on the :class:`GraphInfo` (``info.walks``),
which describes one graph that is never modified, and handed out as they are (frozen sets, never
copied: a copy per question made the CAM head's walk, which asks once per node, quadratic).
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from .info import GraphInfo


def dependents(info: GraphInfo, sources: Iterable[str]) -> frozenset[str]:
    """Tensors that carry data depending on any of ``sources`` (the sources included)."""
    sources = frozenset(sources)
    key = ("dependents", sources)
    if key not in info.walks:
        reached = set(sources)
        for _, inputs, data in info.data_flow():
            if data and not reached.isdisjoint(inputs):
                reached.update(data)
        info.walks[key] = frozenset(reached)
    return info.walks[key]


def ancestors(info: GraphInfo, target: str) -> frozenset[str]:
    """Tensors that ``target`` depends on (itself included)."""
    key = ("ancestors", target)
    if key not in info.walks:
        needed = {target}
        for node, inputs, _ in reversed(info.data_flow()):
            if not needed.isdisjoint(node.output):
                needed.update(inputs)
        info.walks[key] = frozenset(needed)
    return info.walks[key]


def reaches(info: GraphInfo, source: str, target: str) -> bool:
    """Whether ``target`` depends on ``source`` through data."""
    return target in dependents(info, [source])


def path_nodes(info: GraphInfo, sources: Iterable[str], score: str) -> list[onnx.NodeProto]:
    """The nodes between ``sources`` and ``score``, in topological order."""
    forward, backward = dependents(info, sources), ancestors(info, score)
    return [
        n
        for n, inputs, _ in info.data_flow()
        if not forward.isdisjoint(inputs) and not backward.isdisjoint(n.output)
    ]


def dominators(info: GraphInfo, source: str, score: str) -> list[str]:
    """The tensors every path from ``source`` to ``score`` passes through, in order (both ends
    included when the score depends on the source; just the source otherwise)."""
    on_path = dependents(info, [source]) & ancestors(info, score)
    nodes = path_nodes(info, [source], score)
    last_use: dict[str, int] = {}
    for k, node in enumerate(nodes):
        for name in info.inputs_of(node):
            if name in on_path:
                last_use[name] = k
    ending: dict[int, list[str]] = {}  # the tensors whose last use is each node (the score never ends)
    for name, k in last_use.items():
        if name != score:
            ending.setdefault(k, []).append(name)
    found, seen, live = [source], {source}, {source}
    for k, node in enumerate(nodes):
        for name in node.output:
            if name in on_path and (last_use.get(name, -1) > k or name == score):
                live.add(name)
        if k in ending:
            live.difference_update(ending[k])
        if len(live) == 1:
            (only,) = live
            if only not in seen:
                found.append(only)
                seen.add(only)
    return found
