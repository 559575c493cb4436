"""The CAM head: whether the score is a linear function of the target's spatial mean, and its weights.

CAM (Zhou et al. 2016) needs ``score = W · mean_hw(A) + b``. From the target the head is walked along
its one data consumer (``Shape``/``Size`` readers carry no data and are ignored), tracking the
layout through Transposes: one global average over the spatial axes (``GlobalAveragePool`` on a
channels-first tensor, or ``ReduceMean`` over the two spatial axes of the current layout), any
number of moves that keep a ``[N, C]`` vector (Flatten, Squeeze, Identity, Dropout, Transpose, a
quantized model's Quantize/DequantizeLinear, and Reshape proved to be a flatten from ranks and
element counts), then ``Gemm``, or ``MatMul`` with an optional constant ``Add``, with constant
(or dequantized constant) weights, producing the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from .analysis import data_consumers
from .contract import LayerView
from .info import GraphInfo, attr
from .layer import TOKENS
from .layout import permuted, spatial_axes
from .paths import ancestors, path_nodes
from .rules._shared import reduce_axes

MOVES = (
    "Flatten",
    "Reshape",
    "Squeeze",
    "Dropout",
    "Identity",
    "Transpose",
    "QuantizeLinear",
    "DequantizeLinear",
)


@dataclass
class CamHead:
    """A GAP -> linear head: ``weight`` is an initializer of shape [K, C] (``transposed`` False) or
    [C, K] (``transposed`` True), scaled by ``alpha``."""

    weight: str
    transposed: bool
    alpha: float
    ops: list[str]


def cam_head(info: GraphInfo, view: LayerView, score: str) -> CamHead | str:
    """The CAM head after the target, or a sentence saying why the head is not GAP -> linear."""
    if view.layout == TOKENS:
        return f"the target {view.name!r} is a token sequence, not a map that a global average pool collapses"
    ops, name, layout = [], view.name, view.layout
    node = _next(info, name, score)
    while node is not None and node.op_type == "Transpose" and len(attr(node, "perm") or []) == 4:
        ops.append("Transpose")
        layout, name = permuted(layout, attr(node, "perm")), node.output[0]
        node = _next(info, name, score)
    if node is None or not _is_spatial_mean(info, node, layout):
        where, expected = f"the target {view.name!r}", "a global average pool over its spatial axes"
        return _stopped(info, name, where, expected, view.name, score)
    ops.append(node.op_type)
    name, node = node.output[0], _next(info, node.output[0], score)
    while node is not None and node.op_type in MOVES and _keeps_vector(info, node):
        ops.append(node.op_type)
        name, node = node.output[0], _next(info, node.output[0], score)
    linear = _linear(info, node, name, score)
    if linear is None:
        return _stopped(
            info,
            name,
            f"after the global average pool, {name!r}",
            "one linear layer with constant weights "
            "(Gemm, or MatMul then a constant Add) that gives the score",
            view.name,
            score,
        )
    return CamHead(linear.weight, linear.transposed, linear.alpha, ops + linear.ops)


def _next(info: GraphInfo, name: str, score: str, first_input: bool = True) -> onnx.NodeProto | None:
    """The one node after ``name`` on the way to the score (a pooled vector may also feed other heads:
    a detector's box regressor beside its classifier), reading it as its first input when asked."""
    needed = ancestors(info, score)  # the score included; computed once, shared, never copied
    consumers = [n for n in data_consumers(info, name) if not needed.isdisjoint(n.output)]
    if len(consumers) != 1 or (first_input and consumers[0].input[0] != name):
        return None
    return consumers[0]


def _is_spatial_mean(info: GraphInfo, node: onnx.NodeProto, layout: str) -> bool:
    if node.op_type == "GlobalAveragePool":
        return layout.startswith("NC")
    if node.op_type == "ReduceMean":
        return reduce_axes(info, node) == sorted(spatial_axes(layout))
    return False


def _keeps_vector(info: GraphInfo, node: onnx.NodeProto) -> bool:
    """Whether a move after the pooling leaves the per-sample channel vector in order: a Flatten at
    axis 1, or a Reshape/Squeeze to rank 2 of a tensor whose dims besides batch and channels are 1
    (then, element counts being equal, the output can only be [N, C])."""
    if node.op_type in ("Dropout", "Identity", "QuantizeLinear", "DequantizeLinear"):
        return True
    shape = info.shape(node.input[0])
    if shape is None:
        return False
    if node.op_type == "Flatten":
        return attr(node, "axis", 1) == 1
    if node.op_type == "Transpose":
        perm = attr(node, "perm") or []
        return perm[:1] == [0] and [shape[p] for p in perm if shape[p] != 1] == [d for d in shape if d != 1]
    out = info.shape(node.output[0])
    channels = [d for d in shape[1:] if d != 1]
    return out is not None and len(out) == 2 and out[0] == shape[0] and len(channels) <= 1


@dataclass
class _Linear:
    weight: str
    transposed: bool
    alpha: float
    ops: list[str]


def _linear(info: GraphInfo, node, name: str, score: str) -> _Linear | None:
    if node is None or node.op_type not in ("Gemm", "MatMul") or info.rank(node.input[1]) != 2:
        return None
    weight = node.input[1]
    if not info.is_weight(weight) or attr(node, "transA", 0):
        return None
    ops, end = [node.op_type], node.output[0]
    if node.op_type == "MatMul" and end != score:
        bias = _next(info, end, score, first_input=False)
        if bias is None or bias.op_type != "Add" or not any(info.is_const(i) for i in bias.input):
            return None
        ops.append("Add")
        end = bias.output[0]
    if end != score:
        return None
    transposed = node.op_type == "MatMul" or not attr(node, "transB", 0)
    return _Linear(weight, transposed, float(attr(node, "alpha", 1.0)), ops)


def _stopped(info: GraphInfo, name: str, where: str, expected: str, target: str, score: str) -> str:
    """Why the walk from the target stopped at tensor ``name``: what reads it, the whole head, and what
    CAM needs there."""
    readers = data_consumers(info, name)
    shown = ", ".join(f"{n.op_type} {n.name or n.output[0]!r}" for n in readers[:4])
    if len(readers) > 1:
        found = f"feeds {len(readers)} nodes ({shown}{', ...' if len(readers) > 4 else ''})"
    elif readers:
        found = f"goes into {shown}"
    else:
        found = "is read by no node"
    ops = head_ops(info, target, score)
    head = " -> ".join(ops[:12]) + (f" -> ... ({len(ops)} ops)" if len(ops) > 12 else "")
    return (
        f"{where} {found} (the head: {head or 'empty'}), where CAM needs {expected}; "
        "use method 'gradcam', which works on any head"
    )


def head_ops(info: GraphInfo, target: str, score: str) -> list[str]:
    """The op types of the nodes after ``target`` that the score depends on, in graph order."""
    return [
        n.op_type
        for n in path_nodes(info, [target], score)
        if any(info.carries_data(o) for o in n.output if o)
    ]
