"""DeepLIFT's Rescale rule (Shrikumar et al. 2017) as a rule table: the sweep carries multipliers.

The graph runs on a batch that holds the inputs and, after them, their references (``[x; x_ref]``,
2N samples); the sweep is seeded on the first half only. Linear ops keep their gradient rules (the
multiplier of a linear map is its gradient). Each elementwise nonlinearity ``y = f(x)`` passes its
cotangent times ``(f(x) - f(x_ref)) / (x - x_ref)`` instead of ``f'(x)``, the gradient where
``|x - x_ref| < 1e-10``, as Captum's ``DeepLift`` does for ReLU, ELU, Sigmoid, Tanh and Softplus
modules (here for every elementwise activation op: ReLU6 and HardSwish too); the reference half
gets no cotangent. Max pooling, Softmax inside the graph and products of activations keep their
gradient rules (Captum's own MaxPool and Softmax rules are not reproduced). The input's multipliers
times ``x - x_ref`` are DeepLIFT's attributions; they add up to ``f(x) - f(x_ref)`` where every
nonlinearity on the way is elementwise.
"""

from __future__ import annotations

from ..emitter import Emitter
from ..registry import RULES, Rule

RESCALED = (
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Clip", "Gelu", "Mish",
)  # fmt: skip
EPS = 1e-10  # Captum's: below it, the change of the input is taken as none


def halves(e: Emitter, name: str) -> tuple[str, str]:
    """The first and second halves of a batch ``[x; x_ref]`` along axis 0."""
    count = e.op("Slice", [e.op("Shape", [name]), e.ints([0]), e.ints([1]), e.ints([0])])
    half = e.op("Div", [count, e.ints([2])])
    first = e.op("Slice", [name, e.ints([0]), half, e.ints([0])])
    second = e.op("Slice", [name, half, count, e.ints([0])])
    return first, second


def rescale(e: Emitter, node, g_out):
    """``dx = dy * Δy / Δx`` on the inputs' half (the gradient where Δx is below EPS), 0 on the
    references' half."""
    x, y = node.input[0], node.output[0]
    gradient = RULES[node.op_type](e, node, g_out)[0]
    (x_in, x_ref), (y_in, y_ref), (g_in, _) = halves(e, x), halves(e, y), halves(e, gradient)
    (dy_in, _) = halves(e, g_out[0])
    delta_x, delta_y = e.op("Sub", [x_in, x_ref]), e.op("Sub", [y_in, y_ref])
    small = e.op("Less", [e.op("Abs", [delta_x]), e.scalar(EPS, like=x)])
    safe = e.op("Where", [small, e.scalar(1.0, like=x), delta_x])
    multiplier = e.op("Where", [small, g_in, e.op("Mul", [dy_in, e.op("Div", [delta_y, safe])])])
    zeros = e.op("Mul", [x_ref, e.scalar(0.0, like=x)])
    return (e.op("Concat", [multiplier, zeros], axis=0),) + (None,) * (len(node.input) - 1)


def deeplift_table() -> dict[str, Rule]:
    """The gradient's rules with every elementwise activation rescaled."""
    return dict(RULES) | {op: rescale for op in RESCALED}
