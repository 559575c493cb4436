"""Forward-graph simplifications applied to the private copy before differentiating.

Exporters often spell "same" padding as an explicit zero ``Pad`` before a ``Conv`` (EfficientNet's
TF-style padding, TensorFlow exports). onnxruntime folds such a Pad into the Conv for inference, but
once the gradient graph also needs the Pad's own backward (a crop of the cotangent) the fusion no
longer pays for itself. Folding the Pad into the Conv's ``pads`` here, as onnxruntime's PadFusion
does, gives the same forward values and a backward that needs no crop at all.
"""

from __future__ import annotations

import numpy as np
import onnx

from .info import GraphInfo, attr


def fold_zero_pads(model: onnx.ModelProto, info: GraphInfo) -> int:
    """Fold zero-valued constant Pads that feed only Convs into those Convs; returns how many."""
    outputs = {o.name for o in model.graph.output}
    folded = []
    for node in model.graph.node:
        spatial = _spatial_pads(info, node)
        consumers = info.consumers.get(node.output[0], []) if node.output else []
        if (
            spatial is None
            or node.output[0] in outputs
            or not consumers
            or not all(
                c.op_type == "Conv"
                and c.input[0] == node.output[0]
                and attr(c, "auto_pad", "NOTSET") == "NOTSET"
                for c in consumers
            )
        ):
            continue
        for conv in consumers:
            _widen_conv_pads(conv, spatial)
            conv.input[0] = node.input[0]
        folded.append(node)
    for node in folded:
        model.graph.node.remove(node)
    if folded:
        remove_dead_nodes(model)
    return len(folded)


def remove_dead_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers that no graph output depends on (the pads' shape arithmetic)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [t for t in graph.initializer if t.name not in needed]
    for t in unused:
        graph.initializer.remove(t)


def _spatial_pads(info: GraphInfo, node: onnx.NodeProto) -> list[int] | None:
    """The [begin..., end...] spatial pads of a zero constant Pad on N, C, spatial... else None."""
    if node.op_type != "Pad" or attr(node, "mode", "constant") != "constant":
        return None
    value = info.const_value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if value is not None and np.any(value != 0):
        return None
    pads = attr(node, "pads")
    pads = np.asarray(pads) if pads is not None else info.const_value(node.input[1])
    rank = info.rank(node.input[0])
    if pads is None or rank is None or rank < 3 or np.any(pads < 0):
        return None
    full = np.zeros(2 * rank, np.int64)
    axes = info.const_value(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if axes is None and len(node.input) > 3 and node.input[3]:
        return None
    axis_list = [a % rank for a in (axes.tolist() if axes is not None else range(rank))]
    for i, a in enumerate(axis_list):
        full[a], full[a + rank] = pads[i], pads[i + len(axis_list)]
    if full[0] or full[1] or full[rank] or full[rank + 1]:
        return None
    return full[2:rank].tolist() + full[rank + 2 :].tolist()


def _widen_conv_pads(conv: onnx.NodeProto, spatial: list[int]) -> None:
    nd = len(spatial) // 2
    old = attr(conv, "pads") or [0] * (2 * nd)
    new = [a + b for a, b in zip(old, spatial)]
    for a in list(conv.attribute):
        if a.name == "pads":
            conv.attribute.remove(a)
    conv.attribute.append(onnx.helper.make_attribute("pads", new))
