"""VJP rules of activation functions, Softmax and LogSoftmax.

Masks are lowered as ``Mul(dy, Cast(Greater(...)))``: measured 8.5x faster on onnxruntime CPU than
``Where`` on a 256x56x56 tensor (docs/architecture.md, "Lowerings chosen by measurement").
"""

from __future__ import annotations

import math

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import norm_axes


def _mask(e: Emitter, cmp: str, a: str, b: str, like: str) -> str:
    """``Cast(cmp(a, b))`` in the element type of ``like``."""
    return e.cast_like(e.op(cmp, [a, b]), like)


def _scaled(e: Emitter, node, g_out, factor: str) -> tuple:
    return (e.op("Mul", [g_out[0], factor]),) + (None,) * (len(node.input) - 1)


@vjp("Relu")
def relu(e: Emitter, node, g_out):
    """Relu: dx = dy * [y > 0]."""
    y = node.output[0]
    return _scaled(e, node, g_out, _mask(e, "Greater", y, e.scalar(0.0, like=y), y))


@vjp("LeakyRelu")
def leaky_relu(e: Emitter, node, g_out):
    """LeakyRelu: dx = dy * (alpha + (1 - alpha) [x > 0])."""
    x, alpha = node.input[0], attr(node, "alpha", 0.01)
    pos = _mask(e, "Greater", x, e.scalar(0.0, like=x), x)
    slope = e.op("Add", [e.op("Mul", [pos, e.scalar(1.0 - alpha, like=x)]), e.scalar(alpha, like=x)])
    return _scaled(e, node, g_out, slope)


def _p_relu_check(info, node, wants) -> list[str]:
    """What keeps a PRelu node from being differentiated."""
    return ["slope depends on the input"] if wants(node.input[1]) else []


@vjp("PRelu", check=_p_relu_check)
def prelu(e: Emitter, node, g_out):
    """PRelu: dx = dy * (slope + (1 - slope) [x > 0]); the slope is a weight and gets none."""
    x, slope = node.input
    pos = _mask(e, "Greater", x, e.scalar(0.0, like=x), x)
    one_minus = e.op("Sub", [e.scalar(1.0, like=x), slope])
    return _scaled(e, node, g_out, e.op("Add", [slope, e.op("Mul", [pos, one_minus])]))


def _exp_linear(e: Emitter, node, g_out, gain: float, neg_offset: float) -> tuple:
    """dx = dy * (gain [x > 0] + (y + neg_offset) [x <= 0]) for Elu-like functions."""
    x, y = node.input[0], node.output[0]
    pos = _mask(e, "Greater", x, e.scalar(0.0, like=x), x)
    neg = e.op("Sub", [e.scalar(1.0, like=x), pos])
    slope = e.op(
        "Add",
        [
            e.op("Mul", [pos, e.scalar(gain, like=x)]),
            e.op("Mul", [neg, e.op("Add", [y, e.scalar(neg_offset, like=x)])]),
        ],
    )
    return _scaled(e, node, g_out, slope)


@vjp("Elu")
def elu(e: Emitter, node, g_out):
    """Elu: dx = dy for x > 0, dy * (y + alpha) otherwise."""
    return _exp_linear(e, node, g_out, 1.0, attr(node, "alpha", 1.0))


@vjp("Selu")
def selu(e: Emitter, node, g_out):
    """Selu: dx = dy * gamma for x > 0, dy * (y + gamma * alpha) otherwise."""
    alpha = attr(node, "alpha", 1.67326319217681884765625)
    gamma = attr(node, "gamma", 1.05070102214813232421875)
    return _exp_linear(e, node, g_out, gamma, gamma * alpha)


def _clip_bounds(e: Emitter, node) -> tuple[str | None, str | None]:
    x = node.input[0]
    if e.opset < 11:
        lo, hi = attr(node, "min"), attr(node, "max")
        return (
            e.scalar(lo, like=x) if lo is not None else None,
            e.scalar(hi, like=x) if hi is not None else None,
        )
    names = list(node.input[1:3]) + [""] * 2
    return (names[0] or None, names[1] or None)


def _clip_check(info, node, wants) -> list[str]:
    """What keeps a Clip node from being differentiated."""
    return ["bound depends on the input" for b in node.input[1:] if b and wants(b)]


@vjp("Clip", check=_clip_check)
def clip(e: Emitter, node, g_out):
    """Clip: dx = dy * [min < y < max] (open interval, as torch's hardtanh/ReLU6).

    The mask reads the output, which equals the input exactly inside the interval; reading the
    input would keep onnxruntime from fusing the Clip into the Conv before it.
    """
    y = node.output[0]
    lo, hi = _clip_bounds(e, node)
    masks = [e.op("Greater", [y, lo])] if lo else []
    masks += [e.op("Less", [y, hi])] if hi else []
    if not masks:
        return _scaled(e, node, g_out, e.scalar(1.0, like=y))
    inside = masks[0] if len(masks) == 1 else e.op("And", masks)
    return _scaled(e, node, g_out, e.cast_like(inside, y))


@vjp("Sigmoid")
def sigmoid(e: Emitter, node, g_out):
    """Sigmoid: dx = dy * y * (1 - y)."""
    y = e.t(node.output[0])
    return _scaled(e, node, g_out, (y * (1 - y)).name)


@vjp("HardSigmoid")
def hard_sigmoid(e: Emitter, node, g_out):
    """HardSigmoid: dx = dy * alpha * [0 < y < 1]."""
    y, alpha = node.output[0], attr(node, "alpha", 0.2)
    inside = e.op(
        "And", [e.op("Greater", [y, e.scalar(0.0, like=y)]), e.op("Less", [y, e.scalar(1.0, like=y)])]
    )
    return _scaled(e, node, g_out, e.op("Mul", [e.cast_like(inside, y), e.scalar(alpha, like=y)]))


@vjp("HardSwish")
def hard_swish(e: Emitter, node, g_out):
    """HardSwish: dx = dy * ([x > 3] + [|x| <= 3] (x/3 + 1/2)), as torch's hardswish_backward."""
    x = node.input[0]
    three = e.scalar(3.0, like=x)
    above = _mask(e, "Greater", x, three, x)
    middle = e.cast_like(e.op("Not", [e.op("Greater", [e.op("Abs", [x]), three])]), x)
    ramp = e.op("Add", [e.op("Div", [x, three]), e.scalar(0.5, like=x)])
    return _scaled(e, node, g_out, e.op("Add", [above, e.op("Mul", [middle, ramp])]))


@vjp("Tanh")
def tanh(e: Emitter, node, g_out):
    """Tanh: dx = dy * (1 - y^2)."""
    y = e.t(node.output[0])
    return _scaled(e, node, g_out, (1 - y * y).name)


@vjp("Softplus")
def softplus(e: Emitter, node, g_out):
    """Softplus: dx = dy * sigmoid(x)."""
    return _scaled(e, node, g_out, e.op("Sigmoid", [node.input[0]]))


@vjp("Mish")
def mish(e: Emitter, node, g_out):
    """Mish: dx = dy * (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x))."""
    x = node.input[0]
    t = e.op("Tanh", [e.op("Softplus", [x])])
    one_minus_t2 = e.op("Sub", [e.scalar(1.0, like=x), e.op("Mul", [t, t])])
    rest = e.op("Mul", [e.op("Mul", [x, e.op("Sigmoid", [x])]), one_minus_t2])
    return _scaled(e, node, g_out, e.op("Add", [t, rest]))


def _gelu_check(info, node, wants) -> list[str]:
    """What keeps a Gelu node from being differentiated."""
    return (
        []
        if attr(node, "approximate", "none") in ("none", "tanh")
        else [f"approximate={attr(node, 'approximate')!r}"]
    )


@vjp("Gelu", check=_gelu_check)
def gelu(e: Emitter, node, g_out):
    """Gelu: dx = dy * (Phi(x) + x phi(x)); the tanh approximation differentiated exactly."""
    x = node.input[0]
    if attr(node, "approximate", "none") == "tanh":
        return _scaled(e, node, g_out, _gelu_tanh_slope(e, x))
    half = e.scalar(0.5, like=x)
    cdf = e.op(
        "Mul",
        [
            half,
            e.op(
                "Add",
                [e.scalar(1.0, like=x), e.op("Erf", [e.op("Mul", [x, e.scalar(math.sqrt(0.5), like=x)])])],
            ),
        ],
    )
    pdf = e.op(
        "Mul",
        [
            e.op("Exp", [e.op("Mul", [e.op("Mul", [x, x]), e.scalar(-0.5, like=x)])]),
            e.scalar(1.0 / math.sqrt(2.0 * math.pi), like=x),
        ],
    )
    return _scaled(e, node, g_out, e.op("Add", [cdf, e.op("Mul", [x, pdf])]))


def _gelu_tanh_slope(e: Emitter, x: str) -> str:
    """d/dx of 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)."""
    c, k = math.sqrt(2.0 / math.pi), 0.044715
    x2 = e.op("Mul", [x, x])
    u = e.op(
        "Mul",
        [e.scalar(c, like=x), e.op("Add", [x, e.op("Mul", [e.scalar(k, like=x), e.op("Mul", [x2, x])])])],
    )
    t = e.op("Tanh", [u])
    du = e.op(
        "Mul",
        [
            e.scalar(c, like=x),
            e.op("Add", [e.scalar(1.0, like=x), e.op("Mul", [e.scalar(3 * k, like=x), x2])]),
        ],
    )
    sech2 = e.op("Sub", [e.scalar(1.0, like=x), e.op("Mul", [t, t])])
    half = e.scalar(0.5, like=x)
    return e.op(
        "Add",
        [
            e.op("Mul", [half, e.op("Add", [e.scalar(1.0, like=x), t])]),
            e.op("Mul", [e.op("Mul", [half, x]), e.op("Mul", [sech2, du])]),
        ],
    )


def _softmax_axes(e: Emitter, node) -> list[int]:
    """The axes a (Log)Softmax normalizes over: one axis from opset 13, a flattened tail before."""
    rank = e.info.known_rank(node.input[0])
    if e.opset >= 13:
        return norm_axes([attr(node, "axis", -1)], rank)
    start = norm_axes([attr(node, "axis", 1)], rank)[0]
    return list(range(start, rank))


def _softmax_check(info, node, wants) -> list[str]:
    return [] if info.rank(node.input[0]) is not None else ["unknown input rank"]


@vjp("Softmax", check=_softmax_check)
def softmax(e: Emitter, node, g_out):
    """Softmax: dx = y * (dy - sum(dy * y))."""
    (dy,), y = g_out, node.output[0]
    inner = e.reduce("ReduceSum", e.op("Mul", [dy, y]), _softmax_axes(e, node))
    return (e.op("Mul", [y, e.op("Sub", [dy, inner])]),)


@vjp("LogSoftmax", check=_softmax_check)
def log_softmax(e: Emitter, node, g_out):
    """LogSoftmax: dx = dy - exp(y) * sum(dy)."""
    (dy,), y = g_out, node.output[0]
    total = e.reduce("ReduceSum", dy, _softmax_axes(e, node))
    return (e.op("Sub", [dy, e.op("Mul", [e.op("Exp", [y]), total])]),)
