"""A float64 reference of LSTM, GRU and RNN as onnxruntime 1.32's CPU kernels compute them, for the
finite differences of ``test_recurrent.py``; its own tests hold it to ONNX's reference
implementation wherever that one follows the spec.

onnxruntime's kernels take float32 only and ``layout = 0`` only; the ONNX reference evaluator's
LSTM, GRU and RNN ignore ``sequence_lens``, ``clip``, the activations (and LSTM's ``input_forget``),
and its Scan runs axis 0 forward only. So the recurrent ops run here in float64 as the kernels do
(read from their source and checked against them by ``test_recurrent.py``'s check (a)): a row's steps
past its length keep the state and give zeros in Y, a reverse row runs its own first ``L`` steps
from ``L - 1`` down, ``Y_h`` / ``Y_c`` is the state after the row's last step (0 when ``L = 0``);
``activation_alpha`` / ``activation_beta`` are read one value per activation that takes one, in
order, with LeakyRelu's, HardSigmoid's and Elu's defaults (0 otherwise); clip bounds each gate's
input (not LSTM's ``h(c)``). :class:`Scan` runs reversed
inputs and outputs by flipping them around the reference's forward Scan.

Each activation also reports which side of its kinks (and of the clip bounds) every input falls on:
finite differences are valid only on a segment where that pattern does not change.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_scan import Scan as _ReferenceScan
from scipy import special

TAKES = {"affine": (1, 1), "leakyrelu": (1, 0), "thresholdedrelu": (1, 0), "scaledtanh": (1, 1)}
TAKES |= {"hardsigmoid": (1, 1), "elu": (1, 0)}
DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def activate(name: str, alpha: float, beta: float, x: np.ndarray, sides: list) -> np.ndarray:
    """The activation, appending the side of its kinks each input falls on to ``sides``."""
    n = name.lower()
    kinks = {"relu": [0.0], "leakyrelu": [0.0], "elu": [0.0], "thresholdedrelu": [alpha]}
    if n == "hardsigmoid":
        sides.append(np.digitize(alpha * x + beta, [0.0, 1.0]))
    elif n in kinks:
        sides.append(np.digitize(x, kinks[n], right=n == "thresholdedrelu"))
    values = {
        "relu": lambda: np.maximum(x, 0.0),
        "tanh": lambda: np.tanh(x),
        "sigmoid": lambda: special.expit(x),
        "affine": lambda: alpha * x + beta,
        "leakyrelu": lambda: np.where(x >= 0, x, alpha * x),
        "thresholdedrelu": lambda: np.where(x > alpha, x, 0.0),
        "scaledtanh": lambda: alpha * np.tanh(beta * x),
        "hardsigmoid": lambda: np.clip(alpha * x + beta, 0.0, 1.0),
        "elu": lambda: np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
        "softsign": lambda: x / (1 + np.abs(x)),
        "softplus": lambda: np.logaddexp(0.0, x),
    }
    return values[n]()


def resolve(op: str, attrs: dict, directions: int) -> list[list[tuple[str, float, float]]]:
    """(name, alpha, beta) of each activation of each direction, as onnxruntime reads them."""
    names = list(attrs.get("activations") or DEFAULT_ACTS[op] * directions)
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    names = names[:directions] if op == "RNN" else names  # RNN's schema default lists two
    found = []
    for n in names:
        takes_alpha, takes_beta = TAKES.get(n.lower(), (0, 0))
        alpha, beta = DEFAULTS.get(n.lower(), (0.0, 0.0))
        alpha = alphas.pop(0) if takes_alpha and alphas else alpha
        beta = betas.pop(0) if takes_beta and betas else beta
        found.append((n, alpha, beta))
    per = len(DEFAULT_ACTS[op])
    return [found[d * per : (d + 1) * per] for d in range(directions)]


class _Cell:
    """One direction's step function: ``step(x_t, states) -> states`` (the hidden state first)."""

    def __init__(self, op, attrs, acts, w, r, b, p, sides):
        self.op, self.attrs, self.acts, self.sides = op, attrs, acts, sides
        self.w, self.r, self.h = w, r, r.shape[1]
        self.b = b if b is not None else np.zeros(2 * GATES[op] * self.h)
        self.p = p
        self.clip = attrs.get("clip")

    def act(self, k: int, x: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            self.sides.append(np.digitize(x, [-self.clip, self.clip]))
            x = np.clip(x, -self.clip, self.clip)
        return self.unclipped(k, x)

    def unclipped(self, k: int, x: np.ndarray) -> np.ndarray:
        return activate(*self.acts[k], x, self.sides)

    def split(self, v: np.ndarray, n: int) -> list[np.ndarray]:
        return np.split(v, n, axis=-1)

    def step(self, x: np.ndarray, states: tuple) -> tuple:
        return getattr(self, self.op.lower())(x, *states)

    def lstm(self, x, h, c):
        g = self.split(x @ self.w.T + h @ self.r.T + self.b[: 4 * self.h] + self.b[4 * self.h :], 4)
        p_i, p_o, p_f = self.split(self.p, 3) if self.p is not None else (0.0, 0.0, 0.0)
        i = self.act(0, g[0] + p_i * c)
        f = 1 - i if self.attrs.get("input_forget") else self.act(0, g[2] + p_f * c)
        c_new = f * c + i * self.act(1, g[3])
        o = self.act(0, g[1] + p_o * c_new)
        return o * self.unclipped(2, c_new), c_new

    def gru(self, x, h):
        wb, rb = self.split(self.b, 2)
        (wz, wr, wh), (rz, rr, rh) = self.split(wb, 3), self.split(rb, 3)
        gx, (r_z, r_r, r_h) = self.split(x @ self.w.T, 3), np.split(self.r, 3, axis=0)
        z = self.act(0, gx[0] + h @ r_z.T + wz + rz)
        r = self.act(0, gx[1] + h @ r_r.T + wr + rr)
        if self.attrs.get("linear_before_reset"):
            n = self.act(1, gx[2] + r * (h @ r_h.T + rh) + wh)
        else:
            n = self.act(1, gx[2] + (r * h) @ r_h.T + rh + wh)
        return ((1 - z) * n + z * h,)

    def rnn(self, x, h):
        return (self.act(0, x @ self.w.T + h @ self.r.T + self.b[: self.h] + self.b[self.h :]),)


def run(op: str, attrs: dict, inputs: list, sides: list | None = None) -> list[np.ndarray]:
    """Y, Y_h (and Y_c) of the op on the inputs in the op's input order (None where absent)."""
    sides = [] if sides is None else sides
    x, w, r, b, lengths, h0, *rest = list(inputs) + [None] * (8 - len(inputs))
    layout, directions = attrs.get("layout", 0), w.shape[0]
    if layout:
        x = x.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        rest[0] = None if rest[0] is None else rest[0].transpose(1, 0, 2)
    steps, batch, hidden = x.shape[0], x.shape[1], r.shape[2]
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    acts = resolve(op, attrs, directions)
    ys, finals = [], []
    for d in range(directions):
        start = [
            np.zeros((batch, hidden)) if s is None else s[d] for s in [h0, rest[0]][: 1 + (op == "LSTM")]
        ]
        p = rest[1][d] if op == "LSTM" and rest[1] is not None else None
        cell = _Cell(op, attrs, acts[d], w[d], r[d], None if b is None else b[d], p, sides)
        reverse = attrs.get("direction") == "reverse" or d == 1
        y, final = _direction(cell, x, tuple(start), lengths, reverse)
        ys.append(y)
        finals.append(final)
    y = np.stack(ys, axis=1)
    states = [np.stack([f[k] for f in finals]) for k in range(len(finals[0]))]
    if layout:
        return [y.transpose(2, 0, 1, 3)] + [s.transpose(1, 0, 2) for s in states]
    return [y, *states]


def _direction(cell: _Cell, x, states: tuple, lengths, reverse: bool):
    y = np.zeros(x.shape[:2] + (cell.h,))
    for t in range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0]):
        valid = (t < lengths)[:, None]
        new = cell.step(x[t], states)
        states = tuple(np.where(valid, n, s) for n, s in zip(new, states))
        y[t] = np.where(valid, states[0], 0.0)
    return y, tuple(np.where((lengths > 0)[:, None], s, 0.0) for s in states)


def node_attrs(node: onnx.NodeProto) -> dict:
    """A node's attributes as :func:`run` takes them (floats as the node stores them: float32)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: ([s.decode() for s in v] if k == "activations" else v) for k, v in attrs.items()}
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}


class _Recurrent(OpRun):
    op_domain = ""

    def _run(self, *inputs, **_):
        outputs = run(self.onnx_node.op_type, node_attrs(self.onnx_node), list(inputs))
        return tuple(o.astype(inputs[0].dtype) for o in outputs[: len(self.onnx_node.output)])


class LSTM(_Recurrent):
    pass


class GRU(_Recurrent):
    pass


class RNN(_Recurrent):
    pass


class Scan(_ReferenceScan):
    """The reference Scan with ``scan_input_directions`` and ``scan_output_directions`` (all
    equal, as the rules emit them): reversed inputs are flipped before, reversed outputs after."""

    def __init__(self, onnx_node, run_params):
        node = onnx.NodeProto()
        node.CopyFrom(onnx_node)
        self.flips = {a.name: list(a.ints) for a in node.attribute if a.name.endswith("_directions")}
        kept = [a for a in node.attribute if not a.name.endswith("_directions")]
        del node.attribute[:]
        node.attribute.extend(kept)
        super().__init__(node, run_params)

    def _run(self, *args, context=None, **kwargs):
        n = self.num_scan_inputs
        states, xs = list(args[: len(args) - n]), args[len(args) - n :]
        ins = self.flips.get("scan_input_directions", [0] * n)
        xs = [np.flip(x, 0) if d else x for x, d in zip(xs, ins)]
        out = list(super()._run(*states, *xs, context=context, **kwargs))
        outs = self.flips.get("scan_output_directions", [])
        for k, d in enumerate(outs):
            if d:
                out[len(states) + k] = np.flip(out[len(states) + k], 0)
        return tuple(out)


OPS = [LSTM, GRU, RNN, Scan]


def evaluator(model: onnx.ModelProto) -> ReferenceEvaluator:
    from ...reference_runtime import Erf

    return ReferenceEvaluator(model, new_ops=[Erf, *OPS])


# -- the reference held to ONNX's own where that follows the spec -----------------------------------
SPEC_CASES = [
    ("LSTM", {"direction": "forward"}, True),
    ("LSTM", {"direction": "bidirectional", "layout": 1}, True),
    ("GRU", {"direction": "reverse"}, False),
    ("GRU", {"direction": "bidirectional", "linear_before_reset": 1, "layout": 1}, False),
    ("RNN", {"direction": "bidirectional", "layout": 1}, False),
    ("RNN", {"activations": ["Affine"], "activation_alpha": [0.5], "activation_beta": [0.1]}, False),
]


@pytest.mark.parametrize("op, attrs, peepholes", SPEC_CASES)
def test_reference_follows_onnx_reference_where_it_follows_the_spec(op, attrs, peepholes):
    """ONNX's reference (float64) on what it implements: directions, layout, linear_before_reset,
    peepholes, initial states; no lengths, default activations (and RNN's Affine), no clip."""
    rng = np.random.default_rng(3)
    d = 2 if attrs.get("direction") == "bidirectional" else 1
    g, (t, b, i, h) = GATES[op], (4, 3, 2, 3)
    x = rng.normal(size=(b, t, i) if attrs.get("layout") else (t, b, i))
    states = [rng.normal(size=(b, d, h) if attrs.get("layout") else (d, b, h)) for _ in range(2)]
    weights = [rng.normal(size=s) * 0.5 for s in [(d, g * h, i), (d, g * h, h), (d, 2 * g * h)]]
    inputs = [x, *weights, None, states[0]] + ([states[1], rng.normal(size=(d, 3 * h))] if peepholes else [])
    names = ["x", "w", "r", "b", "", "h0", "c0", "p"][: len(inputs)]
    outputs = ["y", "y_h"] + (["y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outputs, hidden_size=h, **attrs)
    feeds = [helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, None) for n in names if n]
    graph = helper.make_graph(
        [node], "g", feeds, [helper.make_tensor_value_info(o, onnx.TensorProto.DOUBLE, None) for o in outputs]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    theirs = ReferenceEvaluator(model).run(None, {n: v for n, v in zip(names, inputs) if n})
    ours = run(op, node_attrs(node), inputs)
    for a, b_ in zip(theirs, ours):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_reversed_scan_flips_around_the_forward_one():
    body = helper.make_graph(
        [helper.make_node("Add", ["c", "x"], ["c2"]), helper.make_node("Identity", ["c2"], ["o"])],
        "b",
        [helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, [None]) for n in ("c", "x")],
        [helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, [None]) for n in ("c2", "o")],
    )
    scan = helper.make_node(
        "Scan", ["c0", "xs"], ["cT", "ys"], body=body, num_scan_inputs=1,
        scan_input_directions=[1], scan_output_directions=[1],
    )  # fmt: skip
    graph = helper.make_graph(
        [scan],
        "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, None) for n in ("c0", "xs")],
        [helper.make_tensor_value_info(n, onnx.TensorProto.DOUBLE, None) for n in ("cT", "ys")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    final, ys = evaluator(model).run(None, {"c0": np.zeros(1), "xs": np.arange(4.0).reshape(4, 1)})
    np.testing.assert_array_equal(ys[:, 0], [6.0, 6.0, 5.0, 3.0])
    assert final[0] == 6.0
