"""VJP rules of normalization layers in inference: BatchNormalization, InstanceNormalization,
LayerNormalization.

BatchNormalization in inference is a per-channel affine map, so its input gradient is one Mul by
``scale / sqrt(var + eps)`` (computed from the initializers, folded by the runtime). Instance and
layer normalization normalize with statistics of the sample itself; their backward is the usual
``(g - mean(g) - x_hat mean(g x_hat)) / sigma`` with ``g = dy * scale``, written once below.
"""

from __future__ import annotations

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import norm_axes


def _weights_check(info, node, wants) -> list[str]:
    problems = [
        f"input {name!r} (a weight or statistic) depends on the input"
        for name in node.input[1:]
        if name and wants(name)
    ]
    if attr(node, "training_mode", 0):
        problems.append("training_mode=1")
    if info.rank(node.input[0]) is None:
        problems.append("unknown input rank")
    return problems


def _per_channel(e: Emitter, v: str, rank: int, axis: int = 1) -> str:
    """Reshape a [C] vector so it broadcasts along ``axis`` of a rank-``rank`` tensor."""
    return e.op("Reshape", [v, e.ints([-1] + [1] * (rank - axis - 1))])


@vjp("BatchNormalization", check=_weights_check)
def batch_norm(e: Emitter, node, g_out):
    """BatchNormalization (inference): dx = dy * scale / sqrt(var + eps)."""
    dy, (x, scale, _, _, var) = g_out[0], node.input[:5]
    eps = e.scalar(attr(node, "epsilon", 1e-5), like=x)
    gain = e.op("Div", [scale, e.op("Sqrt", [e.op("Add", [var, eps])])])
    return (e.op("Mul", [dy, _per_channel(e, gain, e.info.known_rank(x))]),) + (None,) * 4


def normalized_backward(e: Emitter, x: str, g: str, axes: list[int], eps: float) -> str:
    """d/dx of (x - mean) / sqrt(var + eps) over ``axes``, applied to the cotangent ``g``."""
    centered = e.op("Sub", [x, e.reduce("ReduceMean", x, axes)])
    variance = e.reduce("ReduceMean", e.op("Mul", [centered, centered]), axes)
    inv_sigma = e.op("Reciprocal", [e.op("Sqrt", [e.op("Add", [variance, e.scalar(eps, like=x)])])])
    x_hat = e.op("Mul", [centered, inv_sigma])
    g_mean = e.reduce("ReduceMean", g, axes)
    gx_mean = e.reduce("ReduceMean", e.op("Mul", [g, x_hat]), axes)
    inner = e.op("Sub", [e.op("Sub", [g, g_mean]), e.op("Mul", [x_hat, gx_mean])])
    return e.op("Mul", [inner, inv_sigma])


@vjp("InstanceNormalization", check=_weights_check)
def instance_norm(e: Emitter, node, g_out):
    """InstanceNormalization: dx = normalized_backward(dy * scale) over the spatial axes."""
    x, scale = node.input[:2]
    rank = e.info.known_rank(x)
    g = e.op("Mul", [g_out[0], _per_channel(e, scale, rank)])
    dx = normalized_backward(e, x, g, list(range(2, rank)), attr(node, "epsilon", 1e-5))
    return (dx, None, None)


@vjp("LayerNormalization", check=_weights_check)
def layer_norm(e: Emitter, node, g_out):
    """LayerNormalization: dx = normalized_backward(dy * scale) over axes [axis, rank)."""
    x, scale = node.input[:2]
    rank = e.info.known_rank(x)
    start = norm_axes([attr(node, "axis", -1)], rank)[0]
    g = e.op("Mul", [g_out[0], scale])
    dx = normalized_backward(e, x, g, list(range(start, rank)), attr(node, "epsilon", 1e-5))
    return (dx,) + (None,) * (len(node.input) - 1)
