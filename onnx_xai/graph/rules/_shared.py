"""Shape work shared by the VJP rules: undoing broadcasts, normalizing axes, reading constants, and
the geometry of convolutions and pooling windows.

JAX keeps one ``_unbroadcast``; so do we. Rules stay short by calling these instead of repeating
shape logic inline. The transposed convolution that takes a cotangent back to a strided window op's
input is worked out here once for Conv, AveragePool and friends: with exact pads when the spatial
sizes are static, and otherwise sized at run time from the forward tensor (``Slice`` to
``Shape(x)``), so one rewritten file serves every input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ...support.errors import ModelError
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


def known_reduce_axes(info: GraphInfo, node: onnx.NodeProto) -> list[int]:
    """:func:`reduce_axes` where a rule needs them (its check has made sure they are known)."""
    axes = reduce_axes(info, node)
    if axes is None:
        raise ModelError(f"the axes of {node.op_type} {node.name!r} are not known before run time")
    return axes


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
        count = e.scalar(float(np.prod(xs)) / max(float(np.prod(ys)), 1.0), like=x)
    else:
        count = e.cast_like(e.op("Div", [e.op("Size", [x]), e.op("Size", [y])]), x)
    return e.op("Div", [full, count])


def spread_extreme(e: Emitter, dy_kept: str, x: str, y_kept: str, axes: Sequence[int]) -> str:
    """The cotangent of a max/min reduction: shared equally by the elements that attain it."""
    hit = e.cast_like(e.op("Equal", [x, y_kept]), x)
    ties = e.reduce("ReduceSum", hit, axes, keepdims=True)
    return e.op("Mul", [hit, e.op("Div", [dy_kept, ties])])


@dataclass
class Geometry:
    """A convolution's or pooling window's spatial parameters; a begin/end pad is None when it
    depends on an input size not known before run time (``auto_pad`` SAME with stride > 1)."""

    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads_begin: list[int | None]
    pads_end: list[int | None]
    auto_pad: str = "NOTSET"

    @property
    def effective_kernel(self) -> list[int]:
        return [d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilations)]

    @property
    def static_pads(self) -> bool:
        return None not in self.pads_begin and None not in self.pads_end

    def known_pads(self) -> tuple[list[int], list[int]]:
        """The begin and end pads, where the caller has checked :attr:`static_pads`."""
        if not self.static_pads:
            raise ValueError("the pads depend on the input size")
        return [int(p or 0) for p in self.pads_begin], [int(p or 0) for p in self.pads_end]


def geometry(info: GraphInfo, node: onnx.NodeProto, kernel: list[int]) -> Geometry:
    """Resolve strides, dilations and pads (``auto_pad`` included) of a Conv or pooling node."""
    nd = len(kernel)
    strides = attr(node, "strides") or [1] * nd
    dilations = attr(node, "dilations") or [1] * nd
    pads = attr(node, "pads") or [0] * (2 * nd)
    auto_pad = attr(node, "auto_pad", "NOTSET")
    geo = Geometry(list(kernel), list(strides), list(dilations), list(pads[:nd]), list(pads[nd:]), auto_pad)
    if auto_pad == "VALID":
        geo.pads_begin, geo.pads_end = [0] * nd, [0] * nd
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        size = list((info.shape(node.input[0]) or [None] * (nd + 2))[2:])
        for i, (n, s, k) in enumerate(zip(size, geo.strides, geo.effective_kernel)):
            total = (
                k - 1 if s == 1 else (max(0, (-(-n // s) - 1) * s + k - n) if isinstance(n, int) else None)
            )
            small, big = (total // 2, total - total // 2) if total is not None else (None, None)
            geo.pads_begin[i], geo.pads_end[i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    return geo


def transpose_pads(in_size: list[int], out_size: list[int], geo: Geometry) -> tuple[list[int], list[int]]:
    """End pads and output_padding that make ConvTranspose(dy) exactly the shape of the input.

    ConvTranspose yields ``(out - 1) s + k_eff - pb - pe + op`` per axis; solve for ``in`` with the
    smallest non-negative ``pe`` or ``op`` (``op < s`` always holds since ``out`` was floored).
    """
    ends, extra = [], []
    for n, o, s, k, pb in zip(in_size, out_size, geo.strides, geo.effective_kernel, geo.known_pads()[0]):
        surplus = (o - 1) * s + k - pb - n
        ends.append(max(surplus, 0))
        extra.append(max(-surplus, 0))
    return ends, extra


def transpose_to_input(e: Emitter, dy: str, w: str, geo: Geometry, group: int, x: str, y: str) -> str:
    """``ConvTranspose(dy, w)`` laid exactly over the window op's input ``x`` (output ``y``).

    Static sizes: exact end pads and output_padding. Otherwise the transposed convolution is made
    long enough whatever the input size (``output_padding = s - 1``, end pads 0), then sliced from the
    begin pads (computed at run time for SAME padding) to ``Shape(x)``.
    """
    nd = len(geo.kernel)
    common: dict[str, Any] = dict(
        group=group, strides=geo.strides, dilations=geo.dilations, kernel_shape=geo.kernel
    )
    in_size, out_size = _static_spatial(e, x), _static_spatial(e, y)
    if in_size and out_size and geo.static_pads:
        ends, extra = transpose_pads(in_size, out_size, geo)
        return e.op(
            "ConvTranspose",
            [dy, w],
            pads=geo.pads_begin + ends,
            output_padding=extra if any(extra) else None,
            **common,
        )
    known_begin = None not in geo.pads_begin
    full = e.op(
        "ConvTranspose",
        [dy, w],
        pads=(geo.pads_begin if known_begin else [0] * nd) + [0] * nd,
        output_padding=[s - 1 for s in geo.strides] if max(geo.strides) > 1 else None,
        **common,
    )
    starts = e.ints([0] * nd) if known_begin else _begin_pads(e, geo, x, y)
    size = e.op("Slice", [e.op("Shape", [x]), e.ints([2]), e.ints([2 + nd])])
    return e.op("Slice", [full, starts, e.op("Add", [starts, size]), e.ints(range(2, 2 + nd))])


def _static_spatial(e: Emitter, name: str) -> list[int] | None:
    shape = e.info.shape(name)
    return (
        [d for d in shape[2:] if isinstance(d, int)]
        if shape is not None and all(isinstance(d, int) for d in shape[2:])
        else None
    )


def _begin_pads(e: Emitter, geo: Geometry, x: str, y: str) -> str:
    """The begin pads of every spatial axis as an int64 tensor, SAME ones computed from the sizes:
    total = max(0, (out - 1) s + k_eff - in), begin = total // 2 (SAME_UPPER) or the rest."""
    parts = []
    for i, (pb, s, k) in enumerate(zip(geo.pads_begin, geo.strides, geo.effective_kernel)):
        if pb is not None:
            parts.append(e.ints([pb]))
            continue
        n, o = (e.op("Slice", [e.op("Shape", [t]), e.ints([2 + i]), e.ints([3 + i])]) for t in (x, y))
        span = e.op("Add", [e.op("Mul", [e.op("Sub", [o, e.ints([1])]), e.ints([s])]), e.ints([k])])
        excess = e.op("Sub", [span, n])
        total = e.op("Where", [e.op("Less", [excess, e.ints([0])]), e.ints([0]), excess])  # int Max: opset 12
        half = e.op("Div", [total, e.ints([2])])
        parts.append(half if geo.auto_pad == "SAME_UPPER" else e.op("Sub", [total, half]))
    return parts[0] if len(parts) == 1 else e.op("Concat", parts, axis=0)


def scatter_to(e: Emitter, x: str, idx: str, values: str, add: bool) -> str:
    """Zeros shaped like ``x`` with ``values`` scattered to the flat indices ``idx``: added when
    ``add`` (opset 16), else written (exact only when no index repeats). Float16 tensors scatter in a
    float32 island: onnxruntime's CPU ScatterElements has no float16 kernel."""
    flat = e.ints([-1])
    island = e.info.dtype(x) in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    updates = e.op("Reshape", [values, flat])
    if island:
        updates = e.op("Cast", [updates], to=onnx.TensorProto.FLOAT)
    fill = numpy_helper.from_array(np.zeros(1, np.float32)) if island else e.zero_fill(x)
    zeros = e.op("ConstantOfShape", [e.op("Reshape", [e.op("Size", [x]), e.ints([1])])], value=fill)
    dx = e.op(
        "ScatterElements",
        [zeros, e.op("Reshape", [idx, flat]), updates],
        axis=0,
        reduction="add" if add else None,
    )
    if island:
        dx = e.cast_like(dx, x)
    return e.op("Reshape", [dx, e.op("Shape", [x])])
