"""LSTM, GRU and RNN: each rule against onnxruntime's own kernels, every attribute the spec allows.

onnxruntime 1.32's CPU kernels of the three ops take float32 only and ``layout = 0`` only, so each
case (one node, all its used outputs flattened and concatenated into ``y``) is checked as
``test_contrib.py`` checks the fused ops, with the float64 reference of ``test_recurrent_reference.py``
standing in for the kernel in float64:

(a) the reference equals the kernel within ``FORWARD_ULPS`` float32 epsilons of the output's scale;
(b) the rule's gradient, run in float64 on the ONNX reference evaluator (the reference for the op,
    a Scan with directions), matches central differences of the reference (step 1e-6, relative
    1e-6), and the backward holds standard ai.onnx ops of the model's opset only, subgraphs included;
(c) the same rewrite in float32 on onnxruntime matches it (relative 2e-4) and matches central
    differences of the kernel itself: step ``h = eps^(1/3)`` (truncation ``~h^2`` against rounding
    ``~eps / h``, both ``~eps^(2/3)``), the directional derivative taken over the float32 points
    actually fed, tolerance ``FD_FACTOR eps^(2/3) sum|ybar| max(1, |y|)``.

Finite differences hold only where the function is smooth along the segment ``x +- h t``: the point
(drawn from a seed per case) is drawn again until the reference finds every activation input on the
same side of its kinks (Relu, LeakyRelu, Elu, ThresholdedRelu's jump, HardSigmoid's corners) and of
the clip bounds all along the segment (at ``SAMPLES`` points); the choice reads the reference only,
never the rule. ``layout = 1`` has no kernel: (a) and (c) do not apply there, and the reference's
layout 1 is checked against the kernel's layout 0 on transposed data.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.support.errors import UnsupportedModelError

from . import harness
from . import test_recurrent_reference as ref
from .harness import Case
from .harness import node as spec_node

EPS32 = float(np.finfo(np.float32).eps)
FORWARD_ULPS = 16  # measured: at most 4.0
FD_FACTOR = 4  # measured: at most 2.4 (gru_activations_1: truncation, it falls as h^2 with the step)
SAMPLES = 17  # points along the finite differences' segment where the kinks' sides are compared
SIZES = {"B": 3, "I": 3, "H": 3}
NO_LAYOUT_1 = "onnxruntime 1.32's CPU kernels refuse layout=1 (batchwise recurrent operations)"
OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}


@dataclass
class Recurrent:
    """One node of ``op`` with weights (initializers) and ``x`` (and the initial states, when
    ``states``) as differentiated inputs; ``outputs``: the node's outputs ('' where absent), all
    flattened and concatenated into ``y``. :meth:`case` is the rule tests' common form of it."""

    name: str
    op: str
    attrs: dict = field(default_factory=dict)
    lengths: list | None = None
    bias: bool = True
    states: bool = True
    peepholes: bool = False
    outputs: tuple | None = None
    opset: int = 18
    steps: int = 4

    @property
    def directions(self) -> int:
        return 2 if self.attrs.get("direction") == "bidirectional" else 1

    @property
    def layout(self) -> int:
        return int(self.attrs.get("layout", 0))

    @property
    def used(self) -> tuple:
        return self.outputs if self.outputs is not None else OUTPUTS[self.op]

    def shapes(self) -> dict:
        t, b, i, h, d = self.steps, SIZES["B"], SIZES["I"], SIZES["H"], self.directions
        wrt = {"x": (b, t, i) if self.layout else (t, b, i)}
        if self.states:
            for s in ["h0", "c0"][: 1 + (self.op == "LSTM")]:
                wrt[s] = (b, d, h) if self.layout else (d, b, h)
        return wrt

    def case(self) -> Case:
        outs = [f"out_{o.lower()}" if o else "" for o in self.used]
        nodes = [spec_node(self.op, node_inputs(self), outs, hidden_size=SIZES["H"], **self.attrs)]
        nodes += [spec_node("Reshape", [o, "flat"], f"{o}_flat") for o in outs if o]
        nodes.append(spec_node("Concat", [f"{o}_flat" for o in outs if o], "y", axis=0))
        consts = weights(self) | {"flat": np.array([-1], np.int64)}
        return Case(self.name, nodes, self.shapes(), consts, min_opset=self.opset, max_opset=self.opset)


def weights(spec: Recurrent) -> dict:
    """The weights (float32 values held in float64) and lengths."""
    rng = np.random.default_rng(zlib.crc32(spec.op.encode()))
    g, d, i, h = ref.GATES[spec.op], spec.directions, SIZES["I"], SIZES["H"]
    found = {"W": rng.normal(0, 0.6, (d, g * h, i)), "R": rng.normal(0, 0.6, (d, g * h, h))}
    if spec.bias:
        found["B"] = rng.normal(0, 0.3, (d, 2 * g * h))
    if spec.peepholes:
        found["P"] = rng.normal(0, 0.6, (d, 3 * h))
    found = {k: v.astype(np.float32).astype(np.float64) for k, v in found.items()}
    if spec.lengths is not None:
        found["lens"] = np.array(spec.lengths, np.int32)
    return found


def node_inputs(spec: Recurrent) -> list[str]:
    consts, states = weights(spec), spec.shapes()
    names = ["x", "W", "R", "B" if "B" in consts else "", "lens" if "lens" in consts else ""]
    names += ["h0" if "h0" in states else ""]
    if spec.op == "LSTM":
        names += ["c0" if "c0" in states else "", "P" if "P" in consts else ""]
    while not names[-1]:
        names.pop()
    return names


def build(spec: Recurrent, dtype) -> onnx.ModelProto:
    return harness.build(spec.case(), spec.opset, dtype)


def reference_inputs(case: Recurrent, xs: dict) -> list:
    values = {**weights(case), **xs}
    return [values.get(n) if n else None for n in node_inputs(case)]


def node_attrs(case: Recurrent) -> dict:
    """The node's attributes as the reference reads them (floats rounded to float32)."""
    return ref.node_attrs(helper.make_node(case.op, [], [], hidden_size=SIZES["H"], **case.attrs))


def kinks(case: Recurrent, xs: dict) -> list[np.ndarray]:
    """Which side of its kinks each activation input (and clip bound) falls on at ``xs``."""
    sides: list[np.ndarray] = []
    ref.run(case.op, node_attrs(case), reference_inputs(case, xs), sides)
    return sides


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


@dataclass
class Point:
    """Where a case is checked: inputs ``xs`` (float32 values held in float64), the reference's
    output ``y``, its cotangent ``ybar`` and the direction ``t`` of the finite differences."""

    xs: dict
    y: np.ndarray
    ybar: np.ndarray
    t: dict


def point(case: Recurrent, reference) -> Point:
    """A point drawn from the case's seed, drawn again until no kink lies on ``x +- h t`` (the
    kinks' sides compared at ``SAMPLES`` points along the segment)."""
    rng, h = np.random.default_rng(zlib.crc32(case.name.encode())), EPS32 ** (1 / 3)
    for _ in range(20):
        xs = {
            n: rng.uniform(-2, 2, s).astype(np.float32).astype(np.float64) for n, s in case.shapes().items()
        }
        t = {n: rng.standard_normal(x.shape) for n, x in xs.items()}
        middle = kinks(case, xs)
        along = (
            kinks(case, {n: x + s * h * t[n] for n, x in xs.items()}) for s in np.linspace(-1, 1, SAMPLES)
        )
        if all(_same(sides, middle) for sides in along):
            y = reference.run(["y"], xs)[0]
            return Point(xs, y, rng.standard_normal(y.shape), t)
    raise AssertionError(f"{case.name}: no point without a kink in 20 draws")


def _grad_names(case: Recurrent) -> list[str]:
    return [f"xai_grad/{n}" for n in case.shapes()]


def _directional(ybar, plus, minus, step) -> float:
    return float(np.sum(ybar * (plus.astype(np.float64) - minus.astype(np.float64))) / (2 * step))


def standard_backward(model: onnx.ModelProto, opset: int) -> None:
    """The backward's nodes, subgraphs included, are ai.onnx ops of ``opset`` with unique names."""
    seen: set[str] = set()

    def visit(graph: onnx.GraphProto, inner: bool) -> None:
        for node in graph.node:
            if inner or node.name.startswith("xai/"):
                assert node.domain in ("", "ai.onnx"), f"the backward uses {node.domain} {node.op_type}"
                onnx.defs.get_schema(node.op_type, opset, "")
                assert node.name.startswith("xai/") and node.name not in seen, node.name
                seen.add(node.name)
            for a in node.attribute:
                if a.HasField("g"):
                    assert a.g.name.startswith("xai/") and a.g.name not in seen, a.g.name
                    seen.add(a.g.name)
                    visit(a.g, True)

    visit(model.graph, False)


def _reference_checks(case: Recurrent) -> tuple[Point, list, dict]:
    """Check (b)."""
    m64 = build(case, np.float64)
    reference = ref.evaluator(m64)
    at = point(case, reference)
    g64 = vjp_model(m64, "y", list(case.shapes()))
    standard_backward(g64, case.opset)
    grads = ref.evaluator(g64).run(_grad_names(case), {**at.xs, "xai_seed": at.ybar})
    step = 1e-6
    plus, minus = (
        reference.run(["y"], {n: x + sign * step * at.t[n] for n, x in at.xs.items()})[0] for sign in (1, -1)
    )
    numeric = _directional(at.ybar, plus, minus, step)
    analytic = sum(float(np.sum(g * at.t[n])) for n, g in zip(case.shapes(), grads))
    error = abs(numeric - analytic) / max(1.0, abs(numeric))
    assert error <= 1e-6, f"{case.name}: reference differences {numeric:.9g}, rule {analytic:.9g}"
    return at, grads, {"fd64": error}


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _kernel_checks(case: Recurrent, at: Point, grads64: list) -> dict:
    """Checks (a) and (c)."""
    m32 = build(case, np.float32)
    kernel, x32 = session(m32), {n: x.astype(np.float32) for n, x in at.xs.items()}
    scale = max(1.0, float(np.abs(at.y).max()))
    forward = float(np.abs(kernel.run(["y"], x32)[0] - at.y).max()) / scale / EPS32
    assert forward <= FORWARD_ULPS, f"{case.name}: the reference is off the kernel by {forward:.1f} eps"
    feeds = {**x32, "xai_seed": at.ybar.astype(np.float32)}
    grads = session(vjp_model(m32, "y", list(case.shapes()))).run(_grad_names(case), feeds)
    vs64 = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-6) for a, b in zip(grads, grads64))
    assert vs64 < 2e-4, f"{case.name}: float32 gradient off by {vs64:.2e}"
    h = EPS32 ** (1 / 3)
    plus, minus = (
        {n: (x + sign * h * at.t[n]).astype(np.float32) for n, x in at.xs.items()} for sign in (1, -1)
    )
    numeric = _directional(at.ybar, kernel.run(["y"], plus)[0], kernel.run(["y"], minus)[0], h)
    analytic = sum(_directional(g, plus[n], minus[n], h) for n, g in zip(case.shapes(), grads))
    fd32 = abs(numeric - analytic) / (EPS32 ** (2 / 3) * float(np.sum(np.abs(at.ybar))) * scale)
    assert fd32 <= FD_FACTOR, f"{case.name}: kernel differences {numeric:.7g}, rule {analytic:.7g}"
    return {"forward": forward, "vs64": vs64, "fd32": fd32}


def check(case: Recurrent) -> dict:
    """Checks (a), (b), (c) of the module docstring (only (b) for layout 1); returns the errors
    measured, each relative to its tolerance's scale."""
    at, grads, measured = _reference_checks(case)
    return measured | ({} if case.layout else _kernel_checks(case, at, grads))


# -- the cases -------------------------------------------------------------------------------------
BI = {"direction": "bidirectional"}
REV = {"direction": "reverse"}
LENGTHS = [4, 2, 0]  # a full row, a short one, an empty one
ALL = [
    ("Relu", None, None),
    ("Tanh", None, None),
    ("Sigmoid", None, None),
    ("Affine", 0.7, 0.2),
    ("LeakyRelu", 0.1, None),
    ("ThresholdedRelu", 0.3, None),
    ("ScaledTanh", 1.3, 0.6),
    ("HardSigmoid", 0.3, 0.4),
    ("Elu", 0.8, None),
    ("Softsign", None, None),
    ("Softplus", None, None),
]


def acts(names: list[tuple]) -> dict:
    """activations, activation_alpha and activation_beta (values in order, one per activation that
    takes one)."""
    alphas = [a for _, a, _ in names if a is not None]
    betas = [b for _, _, b in names if b is not None]
    found: dict = {"activations": [n for n, _, _ in names]}
    return (
        found
        | ({"activation_alpha": alphas} if alphas else {})
        | ({"activation_beta": betas} if betas else {})
    )


SPECS = [
    Recurrent("lstm", "LSTM", opset=11),
    Recurrent("lstm_reverse_no_bias_no_states", "LSTM", REV, bias=False, states=False, opset=13),
    Recurrent("lstm_bidirectional_lengths", "LSTM", BI, LENGTHS, opset=21),
    Recurrent("lstm_reverse_lengths", "LSTM", REV, [1, 4, 3], opset=14),
    Recurrent("lstm_peepholes", "LSTM", {}, [3, 4, 1], peepholes=True),
    Recurrent(
        "lstm_peepholes_input_forget", "LSTM", BI | {"input_forget": 1}, LENGTHS, peepholes=True, opset=21
    ),
    Recurrent("lstm_input_forget", "LSTM", {"input_forget": 1}, opset=11),
    Recurrent("lstm_clip", "LSTM", BI | {"clip": 0.6}, [4, 3, 1], peepholes=True),
    Recurrent("lstm_layout_1", "LSTM", BI | {"layout": 1}, LENGTHS, peepholes=True, opset=14),
    Recurrent("lstm_states_only", "LSTM", BI, LENGTHS, outputs=("", "Y_h", "Y_c")),
    Recurrent("lstm_y_only", "LSTM", REV, outputs=("Y",), opset=13),
    Recurrent("lstm_y_c_only", "LSTM", {}, [2, 4, 3], outputs=("", "", "Y_c")),
    Recurrent("lstm_activations_a", "LSTM", BI | acts(ALL[:6]), [4, 3, 2]),
    Recurrent("lstm_activations_b", "LSTM", BI | acts(ALL[6:] + ALL[:1]) | {"clip": 1.5}, opset=21),
    Recurrent(
        "lstm_default_alphas",
        "LSTM",
        acts([("LeakyRelu", None, None), ("HardSigmoid", None, None), ("Elu", None, None)]),
    ),
    Recurrent("gru", "GRU", opset=11),
    Recurrent("gru_linear_before_reset", "GRU", {"linear_before_reset": 1}, opset=13),
    Recurrent("gru_reverse_lengths", "GRU", REV, [1, 4, 3], opset=14),
    Recurrent("gru_bidirectional_lengths", "GRU", BI, LENGTHS, bias=False, opset=21),
    Recurrent("gru_bidirectional_linear_lengths", "GRU", BI | {"linear_before_reset": 1}, LENGTHS),
    Recurrent("gru_no_states", "GRU", REV | {"linear_before_reset": 1}, states=False, opset=13),
    Recurrent("gru_clip", "GRU", BI | {"clip": 0.5}, [4, 3, 1]),
    Recurrent("gru_clip_linear", "GRU", BI | {"clip": 0.5, "linear_before_reset": 1}, [4, 3, 1]),
    Recurrent("gru_layout_1", "GRU", BI | {"layout": 1, "linear_before_reset": 1}, LENGTHS, opset=14),
    Recurrent("gru_layout_1_reset", "GRU", {"layout": 1}, [2, 4, 3], opset=21),
    Recurrent("gru_states_only", "GRU", BI, LENGTHS, outputs=("", "Y_h")),
    Recurrent("gru_y_only", "GRU", {"linear_before_reset": 1}, outputs=("Y",)),
    *[
        Recurrent(f"gru_activations_{k}", "GRU", BI | acts((ALL + ALL)[4 * k : 4 * k + 4]), [4, 3, 2])
        for k in range(3)
    ],
    Recurrent("rnn", "RNN", opset=11),
    Recurrent("rnn_reverse_lengths", "RNN", REV, [1, 4, 3], opset=13),
    Recurrent("rnn_bidirectional_lengths", "RNN", BI, LENGTHS, bias=False, opset=21),
    Recurrent("rnn_no_states", "RNN", BI, states=False, opset=14),
    Recurrent("rnn_clip", "RNN", BI | {"clip": 0.5}, [4, 3, 1]),
    Recurrent("rnn_layout_1", "RNN", BI | {"layout": 1}, LENGTHS, opset=14),
    Recurrent("rnn_states_only", "RNN", BI, LENGTHS, outputs=("", "Y_h")),
    Recurrent("rnn_y_only", "RNN", REV, outputs=("Y",)),
    *[
        Recurrent(f"rnn_{a[0].lower()}_{b[0].lower()}", "RNN", BI | acts([a, b]), [4, 3, 2])
        for a, b in zip(ALL[::2], ALL[1::2] + ALL[:1])
    ],
]


CASES = [spec.case() for spec in SPECS]  # the common form, for test_coverage and tools/backward_ops.py


@pytest.mark.parametrize("case", SPECS, ids=lambda c: c.name)
def test_rule(case):
    check(case)  # layout 1: (b) only, onnxruntime's kernels refusing the layout (NO_LAYOUT_1)


def test_every_activation_on_every_op():
    for op in ("LSTM", "GRU", "RNN"):
        used = {n for case in SPECS if case.op == op for n in case.attrs.get("activations", [])}
        assert used == {n for n, _, _ in ALL}, f"{op} lacks {sorted({n for n, _, _ in ALL} - used)}"


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout_1_is_the_kernels_layout_0_transposed(op):
    """The reference's layout 1 against the kernel's layout 0 on the same data transposed."""
    case = Recurrent(f"{op.lower()}_layout", op, BI | {"layout": 1}, [4, 2, 1])
    rng = np.random.default_rng(5)
    xs = {n: rng.uniform(-2, 2, s) for n, s in case.shapes().items()}
    ours = ref.run(op, node_attrs(case), reference_inputs(case, xs))
    flat = Recurrent(case.name, op, BI, case.lengths)
    feeds = {n: x.transpose(1, 0, 2).astype(np.float32) for n, x in xs.items()}
    kernel = session(build(flat, np.float32)).run(["y"], feeds)[0]
    order = [o.transpose(1, 2, 0, 3) if o.ndim == 4 else o.transpose(1, 0, 2) for o in ours]
    expected = np.concatenate([o.reshape(-1) for o in order])
    assert np.abs(kernel - expected).max() / max(1.0, np.abs(expected).max()) / EPS32 <= FORWARD_ULPS


# -- what the rules refuse, and the shape of what they emit ------------------------------------------
def _as_input(model: onnx.ModelProto, name: str, shape) -> onnx.ModelProto:
    """The model with initializer ``name`` made a graph input (of the given shape)."""
    kept = [t for t in model.graph.initializer if t.name != name]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape))
    return model


def refusal(model: onnx.ModelProto, wrt: list[str]) -> str:
    with pytest.raises(UnsupportedModelError) as raised:
        vjp_model(model, "y", wrt)
    return str(raised.value)


REFUSED = [
    (
        Recurrent("lstm_activation_count", "LSTM", {"activations": ["Sigmoid", "Tanh"]}),
        "2 activations for 1 direction(s)",
    ),
    (Recurrent("gru_unknown_activation", "GRU", {"activations": ["Sigmoid", "Gelu"]}), "activation 'Gelu'"),
    (Recurrent("rnn_activation_case", "RNN", {"activations": ["tanh"]}), "activation 'tanh'"),
    (Recurrent("rnn_clip_zero", "RNN", {"clip": 0.0}), "clip=0.0 (not positive)"),
]


@pytest.mark.parametrize("case, problem", REFUSED, ids=[case.name for case, _ in REFUSED])
def test_refused(case, problem):
    message = refusal(build(case, np.float32), list(case.shapes()))
    assert f"'{case.op}_0' ({case.op}): {problem}" in message and "\n" not in message


@pytest.mark.parametrize("weight", ["W", "R", "B"])
def test_a_weight_that_depends_on_the_input_is_refused(weight):
    case = Recurrent("gru", "GRU")
    model = _as_input(build(case, np.float32), weight, list(weights(case)[weight].shape))
    message = refusal(model, ["x", weight])
    assert f"input '{weight}' ({weight}, a weight) depends on the input" in message


def test_peepholes_that_depend_on_the_input_are_refused():
    case = Recurrent("lstm", "LSTM", peepholes=True)
    model = _as_input(build(case, np.float32), "P", [1, 3 * SIZES["H"]])
    assert "input 'P' (P, a weight) depends on the input" in refusal(model, ["x", "P"])


def test_an_unknown_hidden_size_is_refused():
    case = Recurrent("rnn", "RNN")
    model = build(case, np.float32)
    for a in list(model.graph.node[0].attribute):
        model.graph.node[0].attribute.remove(a)
    model = _as_input(model, "R", None)
    assert "no hidden_size attribute and R of unknown shape" in refusal(model, ["x"])


def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    found = list(graph.node)
    for node in graph.node:
        found += [n for a in node.attribute if a.HasField("g") for n in _all_nodes(a.g)]
    return found


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_the_backward_does_not_grow_with_the_sequence(op):
    """The same nodes for T = 5 and T = 1000 (Scans, no unrolling); the weights are read, never
    copied: every constant the rewrite adds holds at most a handful of values."""
    counts = []
    for steps in (5, 1000):
        case = Recurrent(f"{op.lower()}_long", op, BI, [steps, 2, 1], peepholes=op == "LSTM", steps=steps)
        rewritten = vjp_model(build(case, np.float32), "y", list(case.shapes()))
        counts.append(len(_all_nodes(rewritten.graph)))
        added = [t for t in rewritten.graph.initializer if t.name.startswith("xai/")]
        assert all(int(np.prod(t.dims)) <= 4 for t in added), [list(t.dims) for t in added]
    assert counts[0] == counts[1] < 500
