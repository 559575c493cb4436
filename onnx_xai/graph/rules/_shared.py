"""Shape work shared by the VJP rules: undoing broadcasts, normalizing axes, reading constants.

JAX keeps one ``_unbroadcast``; so do we. Rules stay short by calling these instead of repeating
shape logic inline.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ..emitter import Emitter
from ..info import GraphInfo, attr


def unbroadcast(e: Emitter, grad: str, like: str, out: str) -> str:
    """Sum ``grad`` (shaped like the forward output ``out``) back to the shape of input ``like``.

    Leading axes that ``like`` lacks are summed away; axes where ``like`` has a static 1 are summed
    with keepdims. A symbolic dimension is taken to be the full extent (not broadcast).
    """
    shape = e.info.shape(like)
    if shape is None:
        raise ValueError(f"rank of {like!r} is unknown; cannot undo broadcasting")
    out_rank = e.info.rank(out)
    if out_rank is None:
        raise ValueError(f"rank of {out!r} is unknown; cannot undo broadcasting")
    lead = out_rank - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1]
    if not axes:
        return grad
    summed = e.reduce("ReduceSum", grad, axes, keepdims=True)
    if lead == 0:
        return summed
    return e.op("Reshape", [summed, e.op("Shape", [like])])


def broadcast_check(info: GraphInfo, node: onnx.NodeProto, wants) -> list[str]:
    """The broadcasting ops need the rank of every differentiated input."""
    names = [n for n in node.input if n and wants(n)] + list(node.output[:1])
    return [f"unknown rank of {name!r}" for name in names if info.rank(name) is None]


def norm_axes(axes: Sequence[int], rank: int) -> list[int]:
    return sorted(a + rank if a < 0 else a for a in axes)


def const_input(e_or_info, node: onnx.NodeProto, index: int) -> np.ndarray | None:
    """The constant value of input ``index`` of ``node`` (None when absent or not constant)."""
    info = e_or_info.info if isinstance(e_or_info, Emitter) else e_or_info
    if len(node.input) <= index or not node.input[index]:
        return None
    return info.const_value(node.input[index])


def reduce_axes(info: GraphInfo, node: onnx.NodeProto) -> list[int] | None:
    """The normalized axes a Reduce* node reduces over, or None when they are not known statically.

    Handles ``axes`` as attribute (any opset) or as the second input (ReduceSum from 13, the others
    from 18), and ``noop_with_empty_axes``.
    """
    rank = info.rank(node.input[0])
    if rank is None:
        return None
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = info.const_value(node.input[1])
        if value is None:
            return None
        axes = value.reshape(-1).tolist()
    if not axes:
        return [] if attr(node, "noop_with_empty_axes", 0) else list(range(rank))
    return norm_axes(axes, rank)


def spread_mean(e: Emitter, dy_kept: str, x: str, y: str) -> str:
    """Broadcast a reduced cotangent (reduced axes kept as 1) back over ``x``, divided by the count."""
    full = e.op("Expand", [dy_kept, e.op("Shape", [x])])
    xs, ys = e.info.static_shape(x), e.info.static_shape(y)
    if xs is not None and ys is not None:
        count = e.scalar(float(np.prod(xs)) / float(max(np.prod(ys), 1)), like=x)
    else:
        count = e.cast_like(e.op("Div", [e.op("Size", [x]), e.op("Size", [y])]), x)
    return e.op("Div", [full, count])


def spread_extreme(e: Emitter, dy_kept: str, x: str, y_kept: str, axes: Sequence[int]) -> str:
    """The cotangent of a max/min reduction: shared equally by the elements that attain it."""
    hit = e.cast_like(e.op("Equal", [x, y_kept]), x)
    ties = e.reduce("ReduceSum", hit, axes, keepdims=True)
    return e.op("Mul", [hit, e.op("Div", [dy_kept, ties])])
