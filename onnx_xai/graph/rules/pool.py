"""VJP rules of pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

MaxPool routes each output's cotangent to the input element its window picked, using the Indices of
an identical MaxPool: from opset 16 by one ``ScatterElements(reduction="add")`` (exact with
overlapping windows, ties included); before opset 16, where scatter cannot add, by a plain
ScatterElements per group of windows that do not overlap, summed (a single MaxUnpool overwrites
instead of adding and loses 30-40 % of the gradient with 3x3/stride-2 windows; onnxruntime has no
CUDA MaxUnpool, while ScatterElements runs on CUDA).
AveragePool is a depthwise ConvTranspose of the cotangent scaled by each window's divisor, which is
read from the runtime's own AveragePool of ones so that count_include_pad and ceil_mode follow
whatever convention the runtime uses; with sizes known only at run time, the ones and the real
counts per window are computed in-graph from the input's shape.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from onnx import numpy_helper

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import Geometry, geometry, scatter_to, spread_extreme, spread_mean, transpose_to_input


def _pool_check(info, node, wants) -> list[str]:
    problems = ["storage_order=1"] if attr(node, "storage_order", 0) else []
    shape = info.shape(node.input[0])
    if shape is None:
        problems.append("input rank unknown")
    elif node.op_type == "AveragePool" and not isinstance(shape[1], int):
        problems.append("channel count unknown")
    return problems


def _maxpool_indices(e: Emitter, node) -> str:
    """Indices of the forward MaxPool, from a twin node (the forward node is left untouched)."""
    keep = {a.name: attr(node, a.name) for a in node.attribute if a.name != "storage_order"}
    return e.op_outputs("MaxPool", [node.input[0]], 2, **keep)[1]


@vjp("MaxPool", check=_pool_check)
def max_pool(e: Emitter, node, g_out):
    """MaxPool: dx[idx[j]] += dy[j], with idx the Indices of the same pooling."""
    dy, x = g_out[0], node.input[0]
    idx = _maxpool_indices(e, node)
    if e.opset >= 16:
        return (scatter_to(e, x, idx, dy, add=True),)
    parts = [
        scatter_to(e, x, part_idx, part_dy, add=False)
        for part_dy, part_idx in _window_groups(e, node, dy, idx)
    ]
    return (parts[0] if len(parts) == 1 else e.op("Sum", parts),)


def _window_groups(e: Emitter, node, dy: str, idx: str):
    """(dy, indices) of groups of output windows strided far enough apart that no two overlap, so
    that no input element is picked twice within a group."""
    kernel = attr(node, "kernel_shape")
    geo: Geometry = geometry(e.info, node, kernel)
    nd = len(kernel)
    groups = [-(-k // s) for k, s in zip(geo.effective_kernel, geo.strides)]
    if max(groups) == 1:
        return [(dy, idx)]
    out = []
    for offsets in itertools.product(*[range(g) for g in groups]):
        window = [e.ints(offsets), e.ints([2**62] * nd), e.ints(range(2, nd + 2)), e.ints(groups)]
        out.append((e.op("Slice", [dy] + window), e.op("Slice", [idx] + window)))
    return out


def _real_counts(in_size, out_size, geo: Geometry) -> np.ndarray:
    """Per output position, how many real (non-padding) input elements its window covers."""
    per_axis = []
    for n, o, s, k, d, pb in zip(in_size, out_size, geo.strides, geo.kernel, geo.dilations, geo.pads_begin):
        taps = np.arange(o)[:, None] * s - pb + np.arange(k)[None, :] * d
        per_axis.append(((taps >= 0) & (taps < n)).sum(axis=1))
    counts = per_axis[0]
    for c in per_axis[1:]:
        counts = np.multiply.outer(counts, c)
    return counts.astype(np.float64)


@vjp("AveragePool", check=_pool_check)
def average_pool(e: Emitter, node, g_out):
    """AveragePool: dx = ConvTranspose(dy / divisor, ones, group=C) with the runtime's divisors."""
    dy, x, y = g_out[0], node.input[0], node.output[0]
    kernel = attr(node, "kernel_shape")
    geo, channels = geometry(e.info, node, kernel), e.info.static_dim(x, 1)
    ones = e.const(np.ones([channels, 1] + kernel, dtype=e.np_dtype(x)))
    scaled = e.op("Mul", [dy, _inverse_divisors(e, node, geo, x, y)])
    return (transpose_to_input(e, scaled, ones, geo, channels, x, y),)


def _inverse_divisors(e: Emitter, node, geo: Geometry, x: str, y: str) -> str:
    """1 / divisor per output position, [1, 1, *out]: the runtime's AveragePool of ones (real count
    / divisor, whatever its count_include_pad and ceil_mode conventions) over the real count."""
    shape_x, shape_y = e.info.known_shape(x), e.info.shape(y)
    in_size, out_size = list(shape_x[2:]), list(shape_y[2:]) if shape_y is not None else None
    dtype = e.np_dtype(x)
    if all(isinstance(d, int) for d in in_size + (out_size or [None])) and geo.static_pads:
        ones_in = e.const(np.ones([1, 1] + in_size, dtype=dtype))
        counts = e.const(np.maximum(_real_counts(in_size, out_size, geo), 1).astype(dtype)[None, None])
    else:
        spatial = e.op("Slice", [e.op("Shape", [x]), e.ints([2]), e.ints([2 + len(in_size)])])
        ones_in = e.op(
            "ConstantOfShape",
            [e.op("Concat", [e.ints([1, 1]), spatial], axis=0)],
            value=numpy_helper.from_array(np.ones(1, dtype)),
        )
        counts = _counts_at_run_time(e, node, geo, ones_in, y)
    return e.op("Div", [e.op("AveragePool", [ones_in], **_attrs(node)), counts])


def _counts_at_run_time(e: Emitter, node, geo: Geometry, ones_in: str, y: str) -> str:
    """How many real input elements each window covers, from a Conv of ones with the same window
    (zero padding counts nothing); ceil_mode's extra windows come from s - 1 more end padding."""
    nd, dtype = len(geo.kernel), e.np_dtype(node.input[0])
    window: dict[str, Any] = dict(strides=geo.strides, dilations=geo.dilations, kernel_shape=geo.kernel)
    if geo.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        window["auto_pad"] = geo.auto_pad
    else:
        extra = [s - 1 for s in geo.strides] if attr(node, "ceil_mode", 0) else [0] * nd
        begin, end = geo.known_pads()
        window["pads"] = begin + [p + x for p, x in zip(end, extra)]
    counts = e.op("Conv", [ones_in, e.const(np.ones([1, 1] + geo.kernel, dtype))], **window)
    size = e.op("Slice", [e.op("Shape", [y]), e.ints([2]), e.ints([2 + nd])])
    sliced = e.op("Slice", [counts, e.ints([0] * nd), size, e.ints(range(2, 2 + nd))])
    return e.op("Max", [sliced, e.scalar(1.0, like=node.input[0])])


def _attrs(node) -> dict:
    return {a.name: attr(node, a.name) for a in node.attribute}


@vjp("GlobalAveragePool")
def global_average_pool(e: Emitter, node, g_out):
    """GlobalAveragePool: dx = broadcast(dy) / (H W)."""
    return (spread_mean(e, g_out[0], node.input[0], node.output[0]),)


def _global_max_pool_check(info, node, wants) -> list[str]:
    """What keeps a GlobalMaxPool node from being differentiated."""
    return [] if info.rank(node.input[0]) else ["unknown input rank"]


@vjp("GlobalMaxPool", check=_global_max_pool_check)
def global_max_pool(e: Emitter, node, g_out):
    """GlobalMaxPool: dx = dy * [x == max] / #ties."""
    x = node.input[0]
    axes = list(range(2, e.info.known_rank(x)))
    return (spread_extreme(e, g_out[0], x, node.output[0], axes),)
