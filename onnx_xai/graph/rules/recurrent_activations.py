"""The activation functions of the recurrent ops (LSTM, GRU, RNN): which one each gate uses, with its
alpha and beta, and each emitted with its derivative.

The spec allows Relu, Tanh, Sigmoid, Affine ``a x + b``, LeakyRelu (``x`` for ``x >= 0``, else
``a x``), ThresholdedRelu (``x`` for ``x > a``, else 0), ScaledTanh ``a tanh(b x)``, HardSigmoid
``min(1, max(0, a x + b))``, Elu (``x`` for ``x >= 0``, else ``a (e^x - 1)``), Softsign
``x / (1 + |x|)`` and Softplus ``log(1 + e^x)``; the derivatives are the textbook ones (at a kink,
the side the function's own comparison picks). Alpha and beta are read as onnxruntime 1.32 reads them,
which the spec leaves open (measured): ``activation_alpha`` (and ``activation_beta``) are consumed
in order, one value per activation that takes one, an absent value taking LeakyRelu's 0.01,
HardSigmoid's 0.2 and 0.5, Elu's 1.0, or else 0 (ThresholdedRelu's alpha too, where its op's default
is 1); LSTM's and GRU's names match in any case, RNN's exactly. The pre-activation is first clipped
to ``[-clip, clip]`` when ``clip`` is set (the derivative is 0 where it clips).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..emitter import Emitter
from ..info import attr

NAMES = (
    "Relu",
    "Tanh",
    "Sigmoid",
    "Affine",
    "LeakyRelu",
    "ThresholdedRelu",
    "ScaledTanh",
    "HardSigmoid",
    "Elu",
    "Softsign",
    "Softplus",
)
TAKES = {  # whether an activation takes alpha, beta
    "Affine": (True, True),
    "LeakyRelu": (True, False),
    "ThresholdedRelu": (True, False),
    "ScaledTanh": (True, True),
    "HardSigmoid": (True, True),
    "Elu": (True, False),
}
DEFAULTS = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, 0.0)}
# The default activations of one direction, per op.
PER_DIRECTION = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}


@dataclass(frozen=True)
class Activation:
    """One gate's activation function with its parameters."""

    name: str
    alpha: float = 0.0
    beta: float = 0.0


def activations(node, directions: int) -> list[tuple[Activation, ...]] | str:
    """The activations of each direction (LSTM: f, g, h; GRU: f, g; RNN: f), or the problem."""
    per = len(PER_DIRECTION[node.op_type])
    names = list(attr(node, "activations") or PER_DIRECTION[node.op_type] * directions)
    if node.op_type == "RNN" and len(names) == 2 and directions == 1:
        names = names[:1]  # the schema's default lists two
    if len(names) != per * directions:
        return f"{len(names)} activations for {directions} direction(s)"
    canonical = {n.lower(): n for n in NAMES}
    found = [n if node.op_type == "RNN" else canonical.get(n.lower(), n) for n in names]
    unknown = [n for n in found if n not in NAMES]
    if unknown:
        return f"activation {unknown[0]!r}"
    alphas, betas = list(attr(node, "activation_alpha") or []), list(attr(node, "activation_beta") or [])
    resolved = [_consumed(n, alphas, betas) for n in found]
    return [tuple(resolved[d * per : (d + 1) * per]) for d in range(directions)]


def _consumed(name: str, alphas: list[float], betas: list[float]) -> Activation:
    """Each activation taking alpha (beta) takes the next value left, else its default."""
    takes_alpha, takes_beta = TAKES.get(name, (False, False))
    alpha, beta = DEFAULTS.get(name, (0.0, 0.0))
    alpha = alphas.pop(0) if takes_alpha and alphas else alpha
    beta = betas.pop(0) if takes_beta and betas else beta
    return Activation(name, alpha if takes_alpha else 0.0, beta if takes_beta else 0.0)


def clip_value(node) -> float | None:
    """The ``clip`` threshold, None when the attribute is absent."""
    value = attr(node, "clip")
    return None if value is None else float(value)


def clipped(e: Emitter, x: str, clip: float | None, like: str) -> tuple[str, str | None]:
    """``x`` clipped to ``[-clip, clip]`` and the 0/1 mask of where it was not (None: no clip)."""
    if clip is None:
        return x, None
    u = e.op("Clip", [x, e.scalar(-clip, like), e.scalar(clip, like)])
    return u, e.cast_like(e.op("Equal", [x, u]), like)


def apply(e: Emitter, act: Activation, x: str, like: str) -> str:
    """The activation of ``x``."""
    return apply_with_slope(e, act, x, like, slope=False)[0]


def apply_with_slope(e: Emitter, act: Activation, x: str, like: str, slope: bool = True) -> tuple[str, str]:
    """The activation of ``x`` and (when ``slope``) its derivative, shaped like ``x``."""
    t, n = e.t(x, like), act.name
    a, b = act.alpha, act.beta
    if n in ("Tanh", "Sigmoid", "Softsign", "Softplus", "Relu"):
        y = e.op(n, [x])
    elif n == "ScaledTanh":
        y = (e.t(e.op("Tanh", [t * b]), like) * a).name
    elif n == "Affine":
        y = (t * a + b).name
    elif n == "HardSigmoid":
        y = e.op(n, [x], alpha=a, beta=b)
    else:  # LeakyRelu, ThresholdedRelu, Elu
        y = e.op(n, [x], alpha=a)
    return y, (_slope(e, act, x, y, like) if slope else "")


def _slope(e: Emitter, act: Activation, x: str, y: str, like: str) -> str:
    t, yt, n, a = e.t(x, like), e.t(y, like), act.name, act.alpha
    if n == "Tanh":
        return (1.0 - yt * yt).name
    if n == "Sigmoid":
        return (yt * (1.0 - yt)).name
    if n == "ScaledTanh":
        th = e.t(e.op("Tanh", [t * act.beta]), like)
        return ((1.0 - th * th) * (a * act.beta)).name
    if n == "Softsign":
        root = e.t(e.op("Abs", [x]), like) + 1.0
        return e.op("Reciprocal", [(root * root).name])
    if n == "Softplus":
        return e.op("Sigmoid", [x])
    if n == "Affine":
        return e.op("Expand", [e.scalar(a, like), e.op("Shape", [x])])
    if n == "HardSigmoid":
        inside = e.op("And", [_cmp(e, "Greater", y, 0.0, like), _cmp(e, "Less", y, 1.0, like)])
        return (e.t(e.cast_like(inside, like), like) * a).name
    if n == "Relu":
        return e.cast_like(_cmp(e, "Greater", x, 0.0, like), like)
    if n == "ThresholdedRelu":
        return e.cast_like(_cmp(e, "Greater", x, a, like), like)
    negative = _cmp(e, "Less", x, 0.0, like)  # LeakyRelu, Elu
    low = e.scalar(a, like) if n == "LeakyRelu" else (e.t(e.op("Exp", [x]), like) * a).name
    return e.op("Where", [negative, low, e.scalar(1.0, like)])


def _cmp(e: Emitter, op: str, x: str, value: float, like: str) -> str:
    return e.op(op, [x, e.scalar(value, like)])


def gated(e: Emitter, act: Activation, x: str, clip: float | None, like: str) -> tuple[str, str]:
    """The activation of ``x`` clipped and its derivative with respect to ``x`` (0 where clipped)."""
    u, keep = clipped(e, x, clip, like)
    y, d = apply_with_slope(e, act, u, like)
    return y, (d if keep is None else e.op("Mul", [d, keep]))
