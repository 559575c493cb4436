"""VJP rules of QuantizeLinear and DequantizeLinear: the straight-through estimator.

A statically quantized (QDQ) model rounds activations to an integer grid, ``q = saturate(round(x /
s) + z)``, and reads them back as ``(q - z) s``. That round trip is piecewise constant, so its true
derivative is zero almost everywhere. Explanations of quantized models use the straight-through
estimator (Bengio et al. 2013; PyTorch's fake quantization backward): the round trip passes the
cotangent where ``x`` lies inside the representable range and blocks it where it saturates. The
cotangent of a quantized tensor is carried in dequantized units: DequantizeLinear passes its
cotangent through, QuantizeLinear masks it to the range. Weights stored as integers behind a
DequantizeLinear are constants and get no gradient. This is an approximation of the quantized
model's sensitivity, documented as such.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..emitter import Emitter
from ..info import GraphInfo, attr
from ..registry import vjp

RANGES: dict[int, tuple[int, int]] = {
    onnx.TensorProto.UINT8: (0, 255),
    onnx.TensorProto.INT8: (-128, 127),
    onnx.TensorProto.UINT16: (0, 65535),
    onnx.TensorProto.INT16: (-32768, 32767),
    onnx.TensorProto.INT32: (-(2**31), 2**31 - 1),
}


def _optional(node, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _dequantize_linear_check(info, node, wants) -> list[str]:
    """What keeps a DequantizeLinear node from being differentiated."""
    return ["scale or zero point depends on the input" for n in node.input[1:] if n and wants(n)]


@vjp("DequantizeLinear", check=_dequantize_linear_check)
def dequantize_linear(e: Emitter, node, g_out):
    """DequantizeLinear: dq = dy (a quantized tensor's cotangent is kept in dequantized units)."""
    return (g_out[0],) + (None,) * (len(node.input) - 1)


def _quantize_check(info: GraphInfo, node, wants) -> list[str]:
    problems = ["scale or zero point depends on the input" for n in node.input[1:] if n and wants(n)]
    if info.dtype(node.output[0]) not in RANGES:
        problems.append("output type is not an integer type")
    if info.rank(node.input[0]) is None:
        problems.append("unknown input rank")
    return problems


def _along_axis(e: Emitter, node, value: str) -> str:
    """A per-axis scale or zero point reshaped to broadcast along the node's ``axis``."""
    shape = e.info.shape(value)
    if not shape or shape == (1,):
        return value
    rank = e.info.known_rank(node.input[0])
    axis = attr(node, "axis", 1) % rank
    return e.op("Reshape", [value, e.ints([-1] + [1] * (rank - axis - 1))])


@vjp("QuantizeLinear", check=_quantize_check)
def quantize_linear(e: Emitter, node, g_out):
    """QuantizeLinear: dx = dq * [qmin <= round(x / s) + z <= qmax] (straight-through estimator)."""
    x, scale, zero = node.input[0], node.input[1], _optional(node, 2)
    grid = e.op("Round", [e.op("Div", [x, e.cast_like(_along_axis(e, node, scale), x)])])
    if zero is not None:
        grid = e.op("Add", [grid, e.cast_like(_along_axis(e, node, zero), x)])
    low, high = RANGES[e.info.dtype(node.output[0])]
    dtype = e.np_dtype(x)
    inside = e.op(
        "And",
        [
            e.op("Not", [e.op("Less", [grid, e.const(np.array(low, dtype))])]),
            e.op("Not", [e.op("Greater", [grid, e.const(np.array(high, dtype))])]),
        ],
    )
    return (e.op("Mul", [g_out[0], e.cast_like(inside, x)]),) + (None,) * (len(node.input) - 1)
