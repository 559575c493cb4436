"""VJP rules of elementwise arithmetic and math ops (numpy broadcasting undone by ``unbroadcast``)."""

from __future__ import annotations

import math

from ..emitter import Emitter
from ..registry import vjp
from ._shared import broadcast_check, unbroadcast
from .integer import RAW_INTEGERS


def _each(e: Emitter, node, grads) -> tuple:
    """Per-input cotangents ``grads[i]``, unbroadcast to input i; None where not wanted."""
    return tuple(
        unbroadcast(e, g, x, node.output[0]) if g is not None and e.wants(x) else None
        for x, g in zip(node.input, grads)
    )


@vjp("Add", "Sum", check=broadcast_check)
def add(e: Emitter, node, g_out):
    """Add/Sum: dx_i = unbroadcast(dy)."""
    return _each(e, node, [g_out[0]] * len(node.input))


@vjp("Sub", check=broadcast_check)
def sub(e: Emitter, node, g_out):
    """Sub: da = dy, db = -dy."""
    (dy,) = g_out
    neg = e.op("Neg", [dy]) if e.wants(node.input[1]) else None
    return _each(e, node, [dy, neg])


@vjp("Mul", check=broadcast_check)
def mul(e: Emitter, node, g_out):
    """Mul: da = dy * b, db = dy * a."""
    (dy,), (a, b) = g_out, node.input
    return _each(
        e, node, [e.op("Mul", [dy, b]) if e.wants(a) else None, e.op("Mul", [dy, a]) if e.wants(b) else None]
    )


@vjp("Div", check=broadcast_check)
def div(e: Emitter, node, g_out):
    """Div: da = dy / b, db = -dy * y / b."""
    (a, b), y = node.input, e.t(node.output[0])
    dy = e.t(g_out[0], like=y.name)
    da = (dy / b).name if e.wants(a) else None
    db = (-(dy * y / b)).name if e.wants(b) else None
    return _each(e, node, [da, db])


@vjp("Mean", check=broadcast_check)
def mean(e: Emitter, node, g_out):
    """Mean: dx_i = unbroadcast(dy / n)."""
    share = e.op("Mul", [g_out[0], e.scalar(1.0 / len(node.input), like=node.output[0])])
    return _each(e, node, [share] * len(node.input))


@vjp("Max", "Min", check=broadcast_check)
def max_min(e: Emitter, node, g_out):
    """Max/Min: dx_i = dy * [x_i == y] / #ties, so ties share the gradient (as torch does)."""
    y = node.output[0]
    masks = [e.cast_like(e.op("Equal", [x, y]), y) for x in node.input]
    ties = masks[0] if len(masks) == 1 else e.op("Sum", masks)
    share = e.op("Div", [g_out[0], ties])
    return _each(
        e, node, [e.op("Mul", [share, m]) if e.wants(x) else None for x, m in zip(node.input, masks)]
    )


@vjp("Where", check=broadcast_check)
def where(e: Emitter, node, g_out):
    """Where: dx = dy where cond, dy_else = dy where not cond."""
    (dy,), (cond, a, b) = g_out, node.input
    zero = e.scalar(0.0, like=node.output[0])
    return _each(
        e,
        node,
        [
            None,
            e.op("Where", [cond, dy, zero]) if e.wants(a) else None,
            e.op("Where", [cond, zero, dy]) if e.wants(b) else None,
        ],
    )


def _pow_check(info, node, wants) -> list[str]:
    """What keeps a Pow node from being differentiated."""
    return broadcast_check(info, node, wants) + (
        ["exponent depends on the input"] if wants(node.input[1]) else []
    )


@vjp("Pow", check=_pow_check)
def pow_(e: Emitter, node, g_out):
    """Pow (constant exponent p): dx = dy * p * x^(p-1)."""
    (dy,), (x, p) = g_out, node.input
    p = e.cast_like(p, x)
    slope = e.op("Mul", [p, e.op("Pow", [x, e.op("Sub", [p, e.scalar(1.0, like=x)])])])
    return _each(e, node, [e.op("Mul", [dy, slope]), None])


def _unary(e: Emitter, node, g_out, factor: str) -> tuple:
    return (e.op("Mul", [g_out[0], factor]),) + (None,) * (len(node.input) - 1)


@vjp("Neg")
def neg(e: Emitter, node, g_out):
    """Neg: dx = -dy."""
    return (e.op("Neg", [g_out[0]]),)


@vjp("Abs")
def abs_(e: Emitter, node, g_out):
    """Abs: dx = dy * sign(x)."""
    return _unary(e, node, g_out, e.op("Sign", [node.input[0]]))


@vjp("Exp")
def exp(e: Emitter, node, g_out):
    """Exp: dx = dy * y."""
    return _unary(e, node, g_out, node.output[0])


@vjp("Log")
def log(e: Emitter, node, g_out):
    """Log: dx = dy / x."""
    return ((e.t(g_out[0], like=node.input[0]) / node.input[0]).name,)


@vjp("Sqrt")
def sqrt(e: Emitter, node, g_out):
    """Sqrt: dx = dy * 0.5 / y."""
    dy, y = e.t(g_out[0], like=node.output[0]), node.output[0]
    return ((dy * 0.5 / y).name,)


@vjp("Reciprocal")
def reciprocal(e: Emitter, node, g_out):
    """Reciprocal: dx = -dy * y^2."""
    y = e.t(node.output[0])
    return ((-(e.t(g_out[0], like=y.name) * (y * y))).name,)


@vjp("Erf")
def erf(e: Emitter, node, g_out):
    """Erf: dx = dy * 2/sqrt(pi) * exp(-x^2)."""
    x = node.input[0]
    gauss = e.op("Exp", [e.op("Neg", [e.op("Mul", [x, x])])])
    return _unary(e, node, g_out, e.op("Mul", [gauss, e.scalar(2.0 / math.sqrt(math.pi), like=x)]))


@vjp("Identity", "Dropout")
def identity(e: Emitter, node, g_out):
    """Identity/Dropout (inference): dx = dy; ratio, training_mode and the mask get none."""
    return (g_out[0],) + (None,) * (len(node.input) - 1)


@vjp("Cast")
def cast(e: Emitter, node, g_out):
    """Cast: dx = cast(dy) to the input's float type; from a quantized integer (.integer), dx = dy."""
    x = node.input[0]
    if e.info.is_float(x):
        return (e.cast_like(g_out[0], x),)
    producer = e.info.producer.get(x)
    return (g_out[0] if producer is not None and producer.op_type in RAW_INTEGERS else None,)


@vjp(
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Shape",
    "Size",
    "Constant",
    "ConstantOfShape",
    "Range",
    "ArgMax",
    "ArgMin",
    "Equal",
    "Greater",
    "Less",
    "GreaterOrEqual",
    "LessOrEqual",
    "Not",
    "And",
    "Or",
    "IsNaN",
    "IsInf",
)
def no_gradient(e: Emitter, node, g_out):
    """Piecewise-constant and shape-only ops: no gradient flows (zero almost everywhere)."""
    return (None,) * len(node.input)
