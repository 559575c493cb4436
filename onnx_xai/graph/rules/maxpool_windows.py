"""MaxPool's backward without ScatterElements or MaxPool's Indices: window masks and a ConvTranspose.

An alternative to the registered MaxPool rule (``augment(..., maxpool="windows")``) for runtimes that
lack ``ScatterElements(reduction="add")`` (TensorRT before version 10) or run a MaxPool with Indices
slowly (OpenVINO's CPU plugin falls back to a reference kernel for it). The input, padded with the
type's lowest value (what padding never wins), is unfolded into its ``k`` window taps by a grouped
Conv with one-hot kernels (``[N, C k, h, w]``); a tap takes the output's cotangent where it equals the
window's maximum and no earlier tap does (``CumSum`` keeps the first, as the Indices of onnxruntime
and torch do); the grouped ConvTranspose of those one-hot kernels lays every tap back on the input.
Padding given as ``auto_pad`` SAME with a size known only at run time keeps the registered rule.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ..emitter import Emitter
from ..info import attr
from ._shared import geometry, transpose_to_input
from .pool import max_pool

FLOAT = TensorProto.FLOAT


def max_pool_by_windows(e: Emitter, node, g_out):
    """MaxPool: dx = sum over window taps of dy * [first tap equal to the maximum], by Conv/ConvTranspose."""
    x, y = node.input[0], node.output[0]
    kernel = attr(node, "kernel_shape")
    geo, shape = geometry(e.info, node, kernel), e.info.shape(x)
    if not geo.static_pads or shape is None or not isinstance(shape[1], int):
        return max_pool(e, node, g_out)
    channels, taps = shape[1], int(np.prod(kernel))
    one_hot = np.tile(
        np.eye(taps, dtype=e.np_dtype(x)).reshape([taps, 1] + kernel), [channels, 1] + [1] * len(kernel)
    )
    weights = e.const(one_hot)  # [C * taps, 1, *kernel]: tap t of channel c is output channel c * taps + t
    windows = _unfold(e, node, x, y, weights, geo, channels)
    grouped = e.ints([0, channels, taps, -1])
    hits = e.op(
        "Equal", [e.op("Reshape", [windows, grouped]), e.op("Reshape", [y, e.ints([0, channels, 1, -1])])]
    )
    count = e.op(
        "CumSum", [e.op("Cast", [hits], to=FLOAT), e.const(np.array(2, np.int64))]
    )  # float32: no fp16 kernel
    first = e.op("And", [hits, e.op("Equal", [count, e.const(np.array(1.0, np.float32))])])
    routed = e.op("Mul", [e.cast_like(first, x), e.op("Reshape", [g_out[0], e.ints([0, channels, 1, -1])])])
    spread = e.op("Reshape", [routed, e.op("Shape", [windows])])
    return (transpose_to_input(e, spread, weights, geo, channels, x, y),)


def _unfold(e: Emitter, node, x: str, y: str, weights: str, geo, channels: int) -> str:
    """``[N, C * taps, *out]``: each window's taps, from the input padded with the lowest value (and,
    for ceil_mode, s - 1 more at the end, the extra windows sliced away to the output's size)."""
    nd = len(geo.kernel)
    extra = [s - 1 for s in geo.strides] if attr(node, "ceil_mode", 0) else [0] * nd
    pads = [0, 0] + geo.pads_begin + [0, 0] + [p + m for p, m in zip(geo.pads_end, extra)]
    lowest = e.scalar(float(np.finfo(e.np_dtype(x)).min), like=x)
    padded = e.op("Pad", [x, e.ints(pads), lowest]) if any(pads) else x
    windows = e.op(
        "Conv",
        [padded, weights],
        group=channels,
        strides=geo.strides,
        dilations=geo.dilations,
        kernel_shape=geo.kernel,
    )
    if not any(extra):
        return windows
    size = e.op("Slice", [e.op("Shape", [y]), e.ints([2]), e.ints([2 + nd])])
    return e.op("Slice", [windows, e.ints([0] * nd), size, e.ints(range(2, 2 + nd))])
