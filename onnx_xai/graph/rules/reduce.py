"""VJP rules of the Reduce* ops (axes as attribute or input, keepdims, noop_with_empty_axes).

Every rule first restores the reduced axes of the cotangent (``keepdims``), then broadcasts it back
over the input with the op's own local derivative.
"""

from __future__ import annotations

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import known_reduce_axes, reduce_axes, spread_extreme, spread_mean


def _reduce_check(info, node, wants) -> list[str]:
    return [] if reduce_axes(info, node) is not None else ["axes or input rank not known statically"]


def _kept(e: Emitter, node, t: str) -> str:
    """``t`` (shaped like the reduced output) with the reduced axes restored as size 1."""
    axes = reduce_axes(e.info, node)
    if attr(node, "keepdims", 1) or not axes:
        return t
    return e.unsqueeze(t, axes)


def _result(node, dx: str) -> tuple:
    return (dx,) + (None,) * (len(node.input) - 1)


def _identity_if_noop(e: Emitter, node, g_out):
    return _result(node, g_out[0]) if reduce_axes(e.info, node) == [] else None


@vjp("ReduceSum", check=_reduce_check)
def reduce_sum(e: Emitter, node, g_out):
    """ReduceSum: dx = broadcast(dy)."""
    x = node.input[0]
    return _identity_if_noop(e, node, g_out) or _result(
        node, e.op("Expand", [_kept(e, node, g_out[0]), e.op("Shape", [x])])
    )


@vjp("ReduceMean", check=_reduce_check)
def reduce_mean(e: Emitter, node, g_out):
    """ReduceMean: dx = broadcast(dy) / count."""
    return _identity_if_noop(e, node, g_out) or _result(
        node, spread_mean(e, _kept(e, node, g_out[0]), node.input[0], node.output[0])
    )


@vjp("ReduceMax", "ReduceMin", check=_reduce_check)
def reduce_extreme(e: Emitter, node, g_out):
    """ReduceMax/ReduceMin: dx = dy * [x == y] / #ties (ties share, as torch's amax)."""
    x, y = node.input[0], node.output[0]
    return _identity_if_noop(e, node, g_out) or _result(
        node,
        spread_extreme(e, _kept(e, node, g_out[0]), x, _kept(e, node, y), known_reduce_axes(e.info, node)),
    )


def _broadcast(e: Emitter, node, g_out) -> str:
    return e.op("Expand", [_kept(e, node, g_out[0]), e.op("Shape", [node.input[0]])])


@vjp("ReduceL2", check=_reduce_check)
def reduce_l2(e: Emitter, node, g_out):
    """ReduceL2: dx = dy * x / y (zero where y == 0)."""
    x = node.input[0]
    norm = e.op("Max", [_kept(e, node, node.output[0]), e.scalar(1e-30, like=x)])
    return _identity_if_noop(e, node, g_out) or _result(
        node, e.op("Mul", [_broadcast(e, node, g_out), e.op("Div", [x, norm])])
    )


@vjp("ReduceL1", check=_reduce_check)
def reduce_l1(e: Emitter, node, g_out):
    """ReduceL1: dx = dy * sign(x)."""
    return _identity_if_noop(e, node, g_out) or _result(
        node, e.op("Mul", [_broadcast(e, node, g_out), e.op("Sign", [node.input[0]])])
    )


@vjp("ReduceSumSquare", check=_reduce_check)
def reduce_sum_square(e: Emitter, node, g_out):
    """ReduceSumSquare: dx = 2 x dy."""
    x = node.input[0]
    twice = e.op("Mul", [x, e.scalar(2.0, like=x)])
    return _identity_if_noop(e, node, g_out) or _result(
        node, e.op("Mul", [_broadcast(e, node, g_out), twice])
    )


@vjp("ReduceLogSumExp", check=_reduce_check)
def reduce_log_sum_exp(e: Emitter, node, g_out):
    """ReduceLogSumExp: dx = dy * exp(x - y)."""
    x = node.input[0]
    weights = e.op("Exp", [e.op("Sub", [x, _kept(e, node, node.output[0])])])
    return _identity_if_noop(e, node, g_out) or _result(
        node, e.op("Mul", [_broadcast(e, node, g_out), weights])
    )
