"""VJP rules of onnxruntime's fused transformer ops, as its transformer optimizer writes them for
BERT-family encoders, so that a fused graph is explained as it is served: SkipLayerNormalization,
SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization, Gelu, BiasGelu, FastGelu, QuickGelu
and BiasAdd here, Attention and MultiHeadAttention in :mod:`.contrib_attention`.

**Keys.** The com.microsoft ops are registered as ``com.microsoft.<op>`` (:func:`ms`, the registry's
key for a non-standard domain), so none collides with a standard op of the same name: com.microsoft
Gelu is not ai.onnx Gelu-20, com.microsoft Attention is not ai.onnx Attention-23. onnxruntime 1.32
registers SimplifiedLayerNormalization in the default domain, so it is keyed by its name; it has no
com.microsoft LayerNormalization, and its default-domain LayerNormalization below opset 17 computes the
standard op's math, which :mod:`.norm` differentiates (checked against that kernel too).

Every definition was checked against onnxruntime 1.32's CPU kernels (the tests of
``test_contrib.py``); BiasAdd has no CPU kernel there, and its rule follows the documented
``X + bias + skip``. The rules emit standard ops only and recompute what they need (the sum
``input + skip + bias``, its mean and ``1 / sigma``) from the forward tensors, with constants in the
element type of an input whose type is known (a weight: ONNX's inference does not see through
com.microsoft ops), in the forward's precision (``stash_type`` is not followed: for float16 graphs
onnxruntime keeps the statistics in float32). The skip norms' extra outputs (mean, inv_std_var,
input_skip_bias_sum) pass their true cotangents back. Gamma, beta and biases are weights: a path
through them is refused, as :mod:`.norm` refuses one through a scale.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence

import numpy as np

from ..emitter import Emitter, Tensor
from ..info import attr
from ..registry import Check, vjp

MS_DOMAIN = "com.microsoft"
QUICK_GELU_ALPHA = float(np.float32(1.702))  # the schema's default, as the float32 kernel reads it
SKIP_NORM_EPSILON = float(np.float32(1e-12))


def ms(op_type: str) -> str:
    """The registry key of a com.microsoft op (kept apart from an ai.onnx op of the same name)."""
    return f"{MS_DOMAIN}.{op_type}"


def weights_check(*indices: int) -> Check:
    """A check refusing a node whose inputs at ``indices`` (weights, biases) depend on the input."""

    def check(info, node, wants) -> list[str]:
        names = [node.input[i] for i in indices if i < len(node.input)]
        return [f"input {name!r} (a weight) depends on the input" for name in names if name and wants(name)]

    return check


def typed_input(e: Emitter, node) -> str:
    """The input whose element type the rule's constants take: the first whose type is known."""
    return next((name for name in node.input if name and e.info.dtype(name)), node.input[0])


def sum_to(e: Emitter, grad: str, target: str, full: str) -> str:
    """``grad`` (shaped like ``full``) summed over the leading axes along which ``target`` was
    broadcast (a skip [1, S, H] or [S, H] beside an input [B, S, H]). Read at run time, as
    ``Reshape(grad, [-1, Size(target)])`` summed over rows, unless both shapes are known equal."""
    shape = e.info.shape(target)
    if shape is not None and None not in shape and shape == e.info.shape(full):
        return grad
    rows = e.op("Concat", [e.ints([-1]), e.op("Reshape", [e.op("Size", [target]), e.ints([1])])], axis=0)
    summed = e.reduce("ReduceSum", e.op("Reshape", [grad, rows]), [0], keepdims=False)
    return e.op("Reshape", [summed, e.op("Shape", [target])])


def _total(parts: Sequence[Tensor]) -> str:
    return functools.reduce(operator.add, parts).name


def _moments(e: Emitter, s: str, axes: list[int], eps: float, like: str, centered: bool):
    """``(c, 1/sigma, mean(c^2))`` of ``s`` over ``axes`` with ``c = s - mean(s)``; with ``centered``
    False, ``c = s`` (RMS norm)."""
    x = e.t(s, like)
    c = x - e.reduce("ReduceMean", s, axes) if centered else x
    power = e.reduce("ReduceMean", (c * c).name, axes)
    inv = e.t(e.op("Reciprocal", [e.op("Sqrt", [(e.t(power, like) + eps).name])]), like)
    return c, inv, power


def _normalized_backward(e: Emitter, g: str, c: Tensor, inv: Tensor, axes: list[int], centered: bool):
    """d/ds of ``c / sigma`` applied to ``g``: ``(g - mean(g) - x_hat mean(g x_hat)) / sigma`` with
    ``x_hat = c / sigma`` (no ``mean(g)`` term for RMS norm)."""
    x_hat, gt = c * inv, e.t(g, c.like)
    inner = gt - e.reduce("ReduceMean", g, axes) if centered else gt
    return (inner - x_hat * e.reduce("ReduceMean", (gt * x_hat).name, axes)) * inv


def _statistics_backward(e: Emitter, s: str, moments, g_mean, g_inv, like: str) -> list[Tensor]:
    """Cotangents of ``s`` from a mean output (``1/n`` each) and an ``1/sigma`` output
    (``-c / (n sigma^3)``), ``n`` the number of normalized elements."""
    if not g_mean and not g_inv:
        return []
    c, inv, power = moments
    n = e.t(e.cast_like(e.op("Div", [e.op("Size", [s]), e.op("Size", [power])]), like), like)
    parts = [e.t(e.op("Expand", [e.t(g_mean, like) / n, e.op("Shape", [s])]), like)] if g_mean else []
    return parts + ([-(e.t(g_inv, like) * inv * inv * inv * c / n)] if g_inv else [])


def _norm_backward(e: Emitter, s: str, scale: str, g: list, axes: list[int], eps: float, centered: bool):
    """Cotangents of the normalized ``s`` from the outputs ``[y, mean, 1/sigma]`` (``None`` where no
    gradient reaches one), ``y = (s - mean) / sigma * scale (+ beta)``."""
    moments = c, inv, _ = _moments(e, s, axes, eps, scale, centered)
    parts = [_normalized_backward(e, e.op("Mul", [g[0], scale]), c, inv, axes, centered)] if g[0] else []
    return parts + _statistics_backward(e, s, moments, g[1], g[2], scale)


def _skip_sum(e: Emitter, node, bias_index: int) -> str:
    """``input + skip (+ bias)``: the node's own fourth output when the graph names it."""
    if len(node.output) > 3 and node.output[3]:
        return node.output[3]
    total = e.op("Add", node.input[:2])
    bias = node.input[bias_index] if len(node.input) > bias_index else ""
    return e.op("Add", [total, bias]) if bias else total


def _skip_norm(e: Emitter, node, g_out, bias_index: int, centered: bool) -> tuple:
    x, skip, gamma = node.input[:3]
    g = list(g_out) + [None] * (4 - len(g_out))
    s = _skip_sum(e, node, bias_index)
    eps = attr(node, "epsilon", SKIP_NORM_EPSILON)
    parts = _norm_backward(e, s, gamma, [g[0], g[1] if centered else None, g[2]], [-1], eps, centered)
    ds = _total(parts + ([e.t(g[3], gamma)] if g[3] else []))
    grads = (ds if e.wants(x) else None, sum_to(e, ds, skip, x) if e.wants(skip) else None)
    return grads + (None,) * (len(node.input) - 2)


@vjp(ms("SkipLayerNormalization"), check=weights_check(2, 3, 4))
def skip_layer_norm(e: Emitter, node, g_out):
    """SkipLayerNormalization: d input = d skip = LayerNorm's backward at s = input + skip + bias."""
    return _skip_norm(e, node, g_out, bias_index=4, centered=True)


@vjp(ms("SkipSimplifiedLayerNormalization"), check=weights_check(2, 3))
def skip_simplified_layer_norm(e: Emitter, node, g_out):
    """SkipSimplifiedLayerNormalization: d input = d skip = RMS norm's backward at s = input + skip + bias.

    Its mean output, zeros in onnxruntime's kernel, passes nothing back."""
    return _skip_norm(e, node, g_out, bias_index=3, centered=False)


def _simplified_check(info, node, wants) -> list[str]:
    known = attr(node, "axis", -1) < 0 or info.rank(node.input[0]) is not None
    return weights_check(1)(info, node, wants) + ([] if known else ["unknown input rank"])


@vjp("SimplifiedLayerNormalization", check=_simplified_check)
def simplified_layer_norm(e: Emitter, node, g_out):
    """SimplifiedLayerNormalization (RMS norm): dx = (g - x_hat mean(g x_hat)) / rms, g = dy * scale."""
    x, scale = node.input[:2]
    axis = attr(node, "axis", -1)
    axes = list(range(axis, 0)) if axis < 0 else list(range(axis, e.info.known_rank(x)))
    g = list(g_out) + [None] * (2 - len(g_out))
    parts = _norm_backward(e, x, scale, [g[0], None, g[1]], axes, attr(node, "epsilon", 1e-5), False)
    return (_total(parts),) + (None,) * (len(node.input) - 1)


def _gelu_slope(e: Emitter, x: Tensor, tanh: bool) -> Tensor:
    """Gelu'(x): ``Phi(x) + x phi(x)``, or the tanh approximation's exact derivative (``tanh``)."""
    x2 = x * x
    if not tanh:
        cdf = (e.t(e.op("Erf", [x * math.sqrt(0.5)]), x.like) + 1) * 0.5
        return cdf + x * e.t(e.op("Exp", [x2 * -0.5]), x.like) * (1 / math.sqrt(2 * math.pi))
    c, k = math.sqrt(2 / math.pi), 0.044715
    t = e.t(e.op("Tanh", [x * (x2 * k + 1) * c]), x.like)
    return (t + 1) * 0.5 + x * (1 - t * t) * (x2 * (3 * k) + 1) * (0.5 * c)


def _gelu_backward(e: Emitter, node, g_out, tanh: bool) -> tuple:
    """``dy * Gelu'(x + bias)`` for the input, nothing for the bias (second input, optional)."""
    like = typed_input(e, node)
    x = e.op("Add", node.input[:2]) if len(node.input) > 1 and node.input[1] else node.input[0]
    dx = e.op("Mul", [g_out[0], _gelu_slope(e, e.t(x, like), tanh)])
    return (dx,) + (None,) * (len(node.input) - 1)


@vjp(ms("Gelu"))
def ms_gelu(e: Emitter, node, g_out):
    """Gelu (com.microsoft): dx = dy * (Phi(x) + x phi(x)), as ai.onnx Gelu."""
    return _gelu_backward(e, node, g_out, tanh=False)


@vjp(ms("BiasGelu"), check=weights_check(1))
def bias_gelu(e: Emitter, node, g_out):
    """BiasGelu: dA = dy * Gelu'(A + B), Gelu's erf form."""
    return _gelu_backward(e, node, g_out, tanh=False)


@vjp(ms("FastGelu"), check=weights_check(1))
def fast_gelu(e: Emitter, node, g_out):
    """FastGelu: dX = dy * Gelu'(X + bias), Gelu's tanh approximation differentiated exactly."""
    return _gelu_backward(e, node, g_out, tanh=True)


@vjp(ms("QuickGelu"))
def quick_gelu(e: Emitter, node, g_out):
    """QuickGelu: dx = dy * s (1 + alpha x (1 - s)), s = sigmoid(alpha x)."""
    x = e.t(node.input[0], typed_input(e, node))
    ax = x * attr(node, "alpha", QUICK_GELU_ALPHA)
    s = e.t(e.op("Sigmoid", [ax]), x.like)
    return (e.op("Mul", [g_out[0], s * (ax * (1 - s) + 1)]),)


@vjp(ms("BiasAdd"), check=weights_check(1))
def bias_add(e: Emitter, node, g_out):
    """BiasAdd: Y = X + bias + skip, so dX = dskip = dy."""
    x, _, skip = node.input
    return (g_out[0] if e.wants(x) else None, None, g_out[0] if e.wants(skip) else None)
