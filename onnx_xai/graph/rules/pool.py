"""VJP rules of pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

MaxPool routes each output's cotangent to the input element its window picked, using the Indices of
an identical MaxPool: from opset 16 by one ``ScatterElements(reduction="add")`` (exact with
overlapping windows, ties included); before opset 16, where scatter cannot add, by a plain
ScatterElements per group of windows that do not overlap, summed (a single MaxUnpool overwrites
instead of adding and loses 30-40 % of the gradient with 3x3/stride-2 windows; onnxruntime has no
CUDA MaxUnpool, while ScatterElements runs on CUDA).
AveragePool is a depthwise ConvTranspose of the cotangent
scaled by each window's divisor, which is read from the runtime's own AveragePool of ones so that
count_include_pad and ceil_mode follow whatever convention the runtime uses.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import spread_extreme, spread_mean
from .conv import Geometry, geometry, transpose_pads


def _pool_check(info, node, wants) -> list[str]:
    problems = []
    if attr(node, "storage_order", 0):
        problems.append("storage_order=1")
    x, y = info.static_shape(node.input[0]), info.static_shape(node.output[0])
    if node.op_type == "AveragePool" and (x is None or y is None):
        shapes = [info.shape(node.input[0]), info.shape(node.output[0])]
        if any(s is None or not all(isinstance(d, int) for d in s[1:]) for s in shapes):
            problems.append("channels or spatial size unknown")
    if node.op_type == "MaxPool" and info.opset < 16 and attr(node, "auto_pad", "NOTSET") not in (
            "NOTSET", "VALID") and x is None:
        problems.append("auto_pad SAME with unknown input size")
    return problems


def _maxpool_indices(e: Emitter, node) -> str:
    """Indices of the forward MaxPool, from a twin node (the forward node is left untouched)."""
    keep = {a.name: attr(node, a.name) for a in node.attribute if a.name != "storage_order"}
    return e.op("MaxPool", [node.input[0]], n_out=2, **keep)[1]


@vjp("MaxPool", check=_pool_check)
def max_pool(e: Emitter, node, g_out):
    """MaxPool: dx[idx[j]] += dy[j], with idx the Indices of the same pooling."""
    dy, x = g_out[0], node.input[0]
    idx = _maxpool_indices(e, node)
    if e.opset >= 16:
        return (_scatter_flat(e, x, idx, dy, "add"),)
    parts = [_scatter_flat(e, x, part_idx, part_dy, None) for part_dy, part_idx in _window_groups(e, node, dy, idx)]
    return (parts[0] if len(parts) == 1 else e.op("Sum", parts),)


def _scatter_flat(e: Emitter, x: str, idx: str, values: str, reduction: str | None) -> str:
    """Zeros shaped like ``x`` with ``values`` scattered to the flat ``idx`` (added when reduction
    is "add"; written, which is exact only when no index repeats, otherwise)."""
    flat = e.ints([-1])
    zeros = e.op("ConstantOfShape", [e.op("Reshape", [e.op("Size", [x]), e.ints([1])])], value=e.zero_fill(x))
    dx = e.op("ScatterElements", [zeros, e.op("Reshape", [idx, flat]), e.op("Reshape", [values, flat])],
              axis=0, reduction=reduction)
    return e.op("Reshape", [dx, e.op("Shape", [x])])


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
    for n, o, s, k, d, pb in zip(in_size, out_size, geo.strides, geo.kernel, geo.dilations,
                                 geo.pads_begin):
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
    geo = geometry(e.info, node, kernel)
    channels, *in_size = e.info.shape(x)[1:]
    out_size = list(e.info.shape(y)[2:])
    dtype = e.np_dtype(x)
    ones_in = e.const(np.ones([1, 1] + in_size, dtype=dtype))
    inverse_divisor = e.op("Div", [e.op("AveragePool", [ones_in], **_attrs(node)),
                                   e.const(np.maximum(_real_counts(in_size, out_size, geo), 1)
                                           .astype(dtype)[None, None])])
    ends, extra = transpose_pads(in_size, out_size, geo)
    dx = e.op("ConvTranspose", [e.op("Mul", [dy, inverse_divisor]),
                                e.const(np.ones([channels, 1] + kernel, dtype=dtype))],
              group=channels, strides=geo.strides, dilations=geo.dilations,
              pads=geo.pads_begin + ends, kernel_shape=kernel,
              output_padding=extra if any(extra) else None)
    return (dx,)


def _attrs(node) -> dict:
    return {a.name: attr(node, a.name) for a in node.attribute}


@vjp("GlobalAveragePool")
def global_average_pool(e: Emitter, node, g_out):
    """GlobalAveragePool: dx = broadcast(dy) / (H W)."""
    return (spread_mean(e, g_out[0], node.input[0], node.output[0]),)


@vjp("GlobalMaxPool", check=lambda info, node, wants: [] if info.rank(node.input[0]) else
     ["unknown input rank"])
def global_max_pool(e: Emitter, node, g_out):
    """GlobalMaxPool: dx = dy * [x == max] / #ties."""
    x = node.input[0]
    axes = list(range(2, e.info.rank(x)))
    return (spread_extreme(e, g_out[0], x, node.output[0], axes),)
