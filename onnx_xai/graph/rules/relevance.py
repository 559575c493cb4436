"""Layer-wise relevance propagation (LRP) as a rule table: the sweep carries relevance, not gradients.

The cotangent that flows backward is the relevance ``R`` itself (Zennit's convention), seeded with
the explained score at the output. Each op gets one rule, chosen as Zennit's composites choose them
(:data:`COMPOSITES`):

- linear layers with constant weights (``Conv``, ``ConvTranspose``, ``Gemm``, ``MatMul``): the
  composite's rule for the first such layer after the input, for convolutions, for dense layers:
  ``epsilon`` (``R_in = x * W^T (R / stab(z))``), ``zplus`` (positive contributions: ``x+`` through
  ``W+``, ``x-`` through ``W-``), ``alpha2beta1``, ``gamma`` (0.25 by default), ``flat`` (all weights
  and inputs 1), ``wsquare`` (squared weights), ``zbox`` (the input's bounds ``low``/``high``); the
  weights modified at rewrite time, the backward through each modified layer taken by the layer's
  own VJP rule;
- activations (ReLU and its kin, Sigmoid, Tanh, GELU, Dropout, Identity) and BatchNormalization:
  ``pass`` (relevance unchanged: Zennit's rule for activations and for a BatchNorm left after
  canonization; Captum's composite gives BatchNorm ``epsilon``);
- sums of activations (``Add``, ``Sub``, ``Sum``, a residual connection; ``ReduceSum``), average pooling
  (``AveragePool``, ``GlobalAveragePool``, ``ReduceMean``): ``norm``, relevance split in proportion
  to each input's contribution, ``x * VJP(R / stab(z))``; a bias added as its own op passes;
- a product where one factor is a gate (the output of a Sigmoid, HardSigmoid or Softmax: a
  squeeze-excitation block, a SiLU): all relevance to the other factor; products and divisions by
  a constant: ``pass``;
- data moves and max pooling (Reshape, Transpose, Concat, Slice, MaxPool ...): their VJP applied to
  the relevance, as Zennit differentiates what no rule claims.

A product of two activations that is no gate (attention) has no relevance rule: the sweep stops
with the ops named. ``stab(z) = z + epsilon * sign(z)``, sign(0) = 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from ...support.errors import ModelError
from ..emitter import Emitter
from ..registry import RULES, Rule
from ._shared import const_input

LINEAR = ("Conv", "ConvTranspose", "Gemm", "MatMul")
CONVOLUTIONS = ("Conv", "ConvTranspose")
PASS = (
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Clip", "Gelu", "Mish", "Dropout", "Identity", "BatchNormalization",
)  # fmt: skip
NORM = ("Add", "Sub", "Sum", "ReduceSum", "AveragePool", "GlobalAveragePool", "ReduceMean")
GATES = ("Sigmoid", "HardSigmoid", "Softmax")
RULE_NAMES = ("epsilon", "zplus", "alpha2beta1", "gamma", "flat", "wsquare", "zbox")


@dataclass(frozen=True)
class Composite:
    """Which rule each kind of layer gets, and the rules' parameters."""

    name: str
    conv: str
    dense: str = "epsilon"
    first: str | None = None  # the first linear layer after the input; None: as the others
    batchnorm: str = "pass"
    epsilon: float = 1e-6  # the epsilon rule's
    stabilizer: float = 1e-6  # every other rule's
    gamma: float = 0.25
    low: float | tuple = 0.0  # zbox: the input's lowest and highest values (per channel or one)
    high: float | tuple = 1.0


COMPOSITES = {
    "epsilon_plus_flat": Composite("epsilon_plus_flat", conv="zplus", first="flat"),  # Zennit's
    "epsilon_plus": Composite("epsilon_plus", conv="zplus"),
    "epsilon_gamma_box": Composite("epsilon_gamma_box", conv="gamma", first="zbox"),
    "epsilon_alpha2_beta1_flat": Composite("epsilon_alpha2_beta1_flat", conv="alpha2beta1", first="flat"),
    "epsilon_alpha2_beta1": Composite("epsilon_alpha2_beta1", conv="alpha2beta1"),
    "epsilon": Composite(
        "epsilon", conv="epsilon", batchnorm="epsilon", epsilon=1e-9, stabilizer=1e-9
    ),  # Captum
}


def relevance_table(composite: Composite, first_layer: str | None) -> dict[str, Rule]:
    """The LRP rule table of ``composite``; ``first_layer``: the output name of the linear layer
    nearest the input (it takes ``composite.first``)."""
    table: dict[str, Rule] = dict(RULES)
    for op in PASS:
        table[op] = _pass
    for op in NORM:
        table[op] = _norm_or_pass(composite)
    for op in LINEAR:
        table[op] = _linear(composite, first_layer)
    table["BatchNormalization"] = _pass if composite.batchnorm == "pass" else _norm_or_pass(composite)
    for op in ("Mul", "Div"):
        table[op] = _product
    return table


def relevance_obstacles(e: Emitter, nodes: list[onnx.NodeProto]) -> list[str]:
    """The nodes of the path (``e.wants`` set for it) that LRP has no rule for: products of two
    activations that are no gate, linear layers whose weights the graph computes."""
    found = []
    for node in nodes:
        data = [name for name in node.input if name and e.wants(name)]
        if node.op_type in ("Mul", "Div") and len(data) > 1:
            gates = [
                n for n in data if e.info.producer.get(n) is not None and e.info.producer[n].op_type in GATES
            ]
            if node.op_type == "Div" or len(gates) != 1:
                found.append(f"{node.name or node.output[0]!r} ({node.op_type} of two activations)")
        elif node.op_type in LINEAR and (len(data) > 1 or const_input(e, node, 1) is None):
            what = "of two activations" if len(data) > 1 else "with weights computed in the graph"
            found.append(f"{node.name or node.output[0]!r} ({node.op_type} {what})")
    return found


def first_linear_layer(nodes: list[onnx.NodeProto]) -> str | None:
    """The output of the first linear layer among ``nodes`` (the path, in order)."""
    return next((n.output[0] for n in nodes if n.op_type in LINEAR), None)


def _pass(e: Emitter, node, g_out):
    return tuple(g_out[0] if i == 0 and e.wants(name) else None for i, name in enumerate(node.input))


def _stabilized(e: Emitter, z: str, epsilon: float, like: str = "") -> str:
    """``z + epsilon * sign(z)``, sign(0) = 1; ``like``: a forward tensor of z's type (z itself when
    it is one)."""
    like = like or z
    zero = e.scalar(0.0, like=like)
    sign = e.op("Add", [e.op("Sign", [z]), e.cast_like(e.op("Equal", [z, zero]), like)])
    return e.op("Add", [z, e.op("Mul", [sign, e.scalar(epsilon, like=like)])])


def _norm_or_pass(composite: Composite) -> Rule:
    def norm(e: Emitter, node, g_out):
        data = [name for name in node.input if name and e.wants(name)]
        if node.op_type in ("Add", "Sub", "Sum") and len(data) < 2:
            return _pass_to(e, node, g_out[0])  # a bias added as its own op
        epsilon = composite.epsilon if node.op_type == "BatchNormalization" else composite.stabilizer
        share = e.op("Div", [g_out[0], _stabilized(e, node.output[0], epsilon)])
        grads = RULES[node.op_type](e, node, [share] + [None] * (len(node.output) - 1))
        return tuple(e.op("Mul", [name, g]) if g is not None else None for name, g in zip(node.input, grads))

    return norm


def _pass_to(e: Emitter, node, relevance: str):
    return tuple(relevance if name and e.wants(name) else None for name in node.input)


def _product(e: Emitter, node, g_out):
    """Mul/Div: by a constant, pass; with a gate, all to the other factor; else no rule."""
    data = [i for i, name in enumerate(node.input) if name and e.wants(name)]
    if len(data) == 1:
        return _pass_to(e, node, g_out[0])
    gates = [i for i in data if e.info.producer.get(node.input[i]) is not None
             and e.info.producer[node.input[i]].op_type in GATES]  # fmt: skip
    if node.op_type == "Mul" and len(gates) == 1:
        return tuple(g_out[0] if i == 1 - gates[0] else None for i in range(2))
    raise ModelError(
        f"LRP has no rule for {node.op_type} {node.name or node.output[0]!r}, a product of two "
        "activations that is not a gate (attention): explain this model with a gradient method"
    )


# -- linear layers ------------------------------------------------------------------------------------
def _linear(composite: Composite, first_layer: str | None) -> Rule:
    def rule(e: Emitter, node, g_out):
        name = composite.first if node.output[0] == first_layer and composite.first else (
            composite.conv if node.op_type in CONVOLUTIONS else composite.dense
        )  # fmt: skip
        weight = const_input(e, node, 1)
        if weight is None:
            raise ModelError(f"LRP needs constant weights; {node.op_type} {node.name!r} computes its own")
        bias = const_input(e, node, 2) if node.op_type != "MatMul" else None
        layer = _Layer(e, node, weight, bias)
        relevance = LINEAR_RULES[name](layer, g_out[0], composite)
        return (relevance,) + (None,) * (len(node.input) - 1)

    return rule


@dataclass
class _Layer:
    """One linear node, re-run and back-propagated with changed weights and inputs."""

    e: Emitter
    node: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray | None

    def forward(self, x: str, weight: np.ndarray, bias: np.ndarray | None) -> str:
        e, node = self.e, self.node
        inputs = [x, e.weight(weight.astype(self.weight.dtype))]
        if bias is not None and node.op_type != "MatMul":
            inputs.append(e.weight(bias.astype(self.weight.dtype)))
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm" and bias is None:
            attrs.pop("beta", None)
        return e.op(node.op_type, inputs, **attrs)

    def back(self, share: str, weight: np.ndarray) -> str:
        """The layer's VJP with respect to its input, through ``weight``, applied to ``share``."""
        changed = onnx.NodeProto()
        changed.CopyFrom(self.node)
        changed.input[1] = self.e.weight(weight.astype(self.weight.dtype))
        return RULES[self.node.op_type](self.e, changed, [share])[0]

    def x(self) -> str:
        return self.node.input[0]

    def part(self, sign: int) -> str:
        """The input's positive (1) or negative (-1) part."""
        x = self.x()
        return (
            self.e.op("Relu", [x])
            if sign > 0
            else self.e.op("Neg", [self.e.op("Relu", [self.e.op("Neg", [x])])])
        )

    def share(self, relevance: str, z: str, epsilon: float) -> str:
        return self.e.op("Div", [relevance, _stabilized(self.e, z, epsilon, like=self.node.output[0])])

    def times(self, a: str, b: str) -> str:
        return self.e.op("Mul", [a, b])

    def add(self, *terms: str) -> str:
        total = terms[0]
        for term in terms[1:]:
            total = self.e.op("Add", [total, term])
        return total


def _positive(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


def _negative(a: np.ndarray) -> np.ndarray:
    return np.minimum(a, 0)


def _bias(part, b: np.ndarray | None) -> np.ndarray | None:
    return None if b is None else part(b)


def _epsilon(layer: _Layer, relevance: str, composite: Composite) -> str:
    share = layer.share(relevance, layer.node.output[0], composite.epsilon)
    return layer.times(layer.x(), layer.back(share, layer.weight))


def _zplus(layer: _Layer, relevance: str, composite: Composite) -> str:
    w, b = layer.weight, layer.bias
    plus, minus = layer.part(1), layer.part(-1)
    z = layer.add(
        layer.forward(plus, _positive(w), _bias(_positive, b)), layer.forward(minus, _negative(w), None)
    )
    share = layer.share(relevance, z, composite.stabilizer)
    return layer.add(
        layer.times(plus, layer.back(share, _positive(w))),
        layer.times(minus, layer.back(share, _negative(w))),
    )


def _alpha2beta1(layer: _Layer, relevance: str, composite: Composite, alpha=2.0, beta=1.0) -> str:
    w, b = layer.weight, layer.bias
    plus, minus = layer.part(1), layer.part(-1)
    pos = layer.add(
        layer.forward(plus, _positive(w), _bias(_positive, b)), layer.forward(minus, _negative(w), None)
    )
    neg = layer.add(
        layer.forward(plus, _negative(w), _bias(_negative, b)), layer.forward(minus, _positive(w), None)
    )
    s_pos = layer.share(relevance, pos, composite.stabilizer)
    s_neg = layer.share(relevance, neg, composite.stabilizer)
    e = layer.e
    kept = layer.add(
        layer.times(plus, layer.back(s_pos, _positive(w))),
        layer.times(minus, layer.back(s_pos, _negative(w))),
    )
    lost = layer.add(
        layer.times(plus, layer.back(s_neg, _negative(w))),
        layer.times(minus, layer.back(s_neg, _positive(w))),
    )
    z = layer.node.output[0]
    return e.op(
        "Sub", [e.op("Mul", [kept, e.scalar(alpha, like=z)]), e.op("Mul", [lost, e.scalar(beta, like=z)])]
    )


def _gamma(layer: _Layer, relevance: str, composite: Composite) -> str:
    e, w, b, g = layer.e, layer.weight, layer.bias, composite.gamma
    up_w, down_w = w + g * np.maximum(w, 0), w + g * np.minimum(w, 0)
    up_b = None if b is None else b + g * np.maximum(b, 0)
    down_b = None if b is None else b + g * np.minimum(b, 0)
    plus, minus, z = layer.part(1), layer.part(-1), layer.node.output[0]
    pos = layer.add(layer.forward(plus, up_w, up_b), layer.forward(minus, down_w, None))
    neg = layer.add(layer.forward(plus, down_w, down_b), layer.forward(minus, up_w, None))
    zero = e.scalar(0.0, like=z)
    s_pos = layer.times(
        layer.share(relevance, pos, composite.stabilizer), e.cast_like(e.op("Greater", [z, zero]), z)
    )
    s_neg = layer.times(
        layer.share(relevance, neg, composite.stabilizer), e.cast_like(e.op("Less", [z, zero]), z)
    )
    return layer.add(
        layer.times(plus, layer.back(s_pos, up_w)),
        layer.times(minus, layer.back(s_pos, down_w)),
        layer.times(plus, layer.back(s_neg, down_w)),
        layer.times(minus, layer.back(s_neg, up_w)),
    )


def _unit_input(layer: _Layer) -> str:
    x = layer.x()
    return layer.e.op("Add", [layer.e.zeros_like(x), layer.e.scalar(1.0, like=x)])


def _flat(layer: _Layer, relevance: str, composite: Composite) -> str:
    ones = np.ones_like(layer.weight)
    z = layer.forward(_unit_input(layer), ones, None)
    return layer.back(layer.share(relevance, z, composite.stabilizer), ones)


def _wsquare(layer: _Layer, relevance: str, composite: Composite) -> str:
    squared = layer.weight**2
    z = layer.forward(_unit_input(layer), squared, None if layer.bias is None else layer.bias**2)
    return layer.back(layer.share(relevance, z, composite.stabilizer), squared)


def _zbox(layer: _Layer, relevance: str, composite: Composite) -> str:
    e, w, b, x = layer.e, layer.weight, layer.bias, layer.x()
    rank = e.info.rank(x) or 4
    shape = [1, -1] + [1] * (rank - 2)  # one bound, or one per channel (axis 1)
    low = e.op(
        "Add", [e.zeros_like(x), e.const(np.reshape(np.asarray(composite.low, layer.weight.dtype), shape))]
    )
    high = e.op(
        "Add", [e.zeros_like(x), e.const(np.reshape(np.asarray(composite.high, layer.weight.dtype), shape))]
    )
    z = e.op(
        "Sub",
        [e.op("Sub", [layer.node.output[0], layer.forward(low, _positive(w), _bias(_positive, b))]),
         layer.forward(high, _negative(w), _bias(_negative, b))],
    )  # fmt: skip
    share = layer.share(relevance, z, composite.stabilizer)
    kept = layer.times(x, layer.back(share, w))
    below = layer.times(low, layer.back(share, _positive(w)))
    above = layer.times(high, layer.back(share, _negative(w)))
    return e.op("Sub", [e.op("Sub", [kept, below]), above])


LINEAR_RULES: dict[str, Callable[..., str]] = {
    "epsilon": _epsilon,
    "zplus": _zplus,
    "alpha2beta1": _alpha2beta1,
    "gamma": _gamma,
    "flat": _flat,
    "wsquare": _wsquare,
    "zbox": _zbox,
}
