"""onnxruntime's fused transformer ops (com.microsoft): each rule against the op's own kernel.

onnxruntime's contrib kernels are float32 only, so each case is checked three ways at two opsets (11:
axes as attributes, 18: as inputs):

(a) a float64 numpy reference of the op (below) equals onnxruntime 1.32's float32 kernel within
    ``FORWARD_ULPS`` float32 epsilons of the output's scale;
(b) the rule's gradient, run in float64 on the ONNX reference evaluator with that reference standing in
    for the kernel, matches central differences of the reference (step 1e-6, relative 1e-6: the
    harness's test), and the same rewrite in float32 on onnxruntime matches it (relative 2e-4);
(c) that float32 gradient matches central differences of onnxruntime's own float32 kernel. With
    float32 epsilon ``eps``, the step ``h = eps^(1/3)`` balances truncation (``~h^2``) against
    rounding (``~eps / h``), both ``~eps^(2/3)`` (2.4e-5); the directional derivative is compared
    with ``<grad, x+ - x->/2h`` over the float32 points actually fed, so the inputs' own rounding
    cancels, and the tolerance is ``FD_FACTOR eps^(2/3) sum|ybar| max(1, |y|)``.

The backward graph must hold standard ai.onnx ops only, valid at the model's opset. A form a rule
does not handle is refused in one line naming the node, the op and the problem.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from scipy import special

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.rules.contrib import ms
from onnx_xai.support.errors import UnsupportedModelError

from ...reference_runtime import Erf

MS = "com.microsoft"
OPSETS = (11, 18)
EPS32 = float(np.finfo(np.float32).eps)
FORWARD_ULPS = 16  # measured: at most 1.6
FD_FACTOR = 4  # measured: at most 0.36
SKIP_EPS = float(np.float32(1e-12))


@dataclass
class Case:
    """One test: ``nodes`` (from :func:`op`) from the random inputs ``wrt`` (name -> shape) and the
    constants ``consts`` to ``y``; float64 constants follow the model's float type."""

    name: str
    nodes: list
    wrt: dict
    consts: dict = field(default_factory=dict)
    opsets: tuple = OPSETS


def op(op_type: str, inputs, outputs="y", domain=MS, **attrs):
    outs = [outputs] if isinstance(outputs, str) else list(outputs)
    return (op_type, list(inputs), outs, domain, attrs)


def covered(cases) -> set[str]:
    """The registry keys the cases exercise."""
    return {ms(spec[0]) if spec[3] == MS else spec[0] for case in cases for spec in case.nodes}


def build(case: Case, opset: int, dtype, declared: dict | None = None) -> onnx.ModelProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [
        numpy_helper.from_array(v.astype(dtype) if v.dtype == np.float64 else v, k)
        for k, v in case.consts.items()
    ]
    nodes = [
        helper.make_node(t, ins, outs, name=f"{t}_{i}", domain=d, **a)
        for i, (t, ins, outs, d, a) in enumerate(case.nodes)
    ]
    inputs = [helper.make_tensor_value_info(n, elem, s) for n, s in case.wrt.items()]
    inputs += [helper.make_tensor_value_info(n, t, None) for n, t in (declared or {}).items()]
    graph = helper.make_graph(
        nodes, case.name, inputs, [helper.make_tensor_value_info("y", elem, None)], inits
    )
    imports = [helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    return helper.make_model(graph, opset_imports=imports, ir_version=10)


# -- float64 references of the kernels, as measured against onnxruntime 1.32 --------------------------
class _Reference(OpRun):
    op_domain = MS

    def _outputs(self, *values):
        return tuple(values[: len(self.onnx_node.output)])


def _normalized(s, axes, eps, centered):
    c = s - s.mean(axis=axes, keepdims=True) if centered else s
    inv = 1 / np.sqrt((c * c).mean(axis=axes, keepdims=True) + eps)
    return c * inv, inv


class SkipLayerNormalization(_Reference):
    def _run(self, x, skip, gamma, beta=None, bias=None, epsilon=SKIP_EPS):
        s = x + skip + (0 if bias is None else bias)
        x_hat, inv = _normalized(s, -1, epsilon, True)
        return self._outputs(x_hat * gamma + (0 if beta is None else beta), s.mean(-1, keepdims=True), inv, s)


class SkipSimplifiedLayerNormalization(_Reference):
    def _run(self, x, skip, gamma, bias=None, epsilon=SKIP_EPS):
        s = x + skip + (0 if bias is None else bias)
        x_hat, inv = _normalized(s, -1, epsilon, False)
        return self._outputs(x_hat * gamma, np.zeros_like(inv), inv, s)  # the kernel's mean: zeros


class LayerNormalization(_Reference):
    """onnxruntime's own default-domain op below opset 17 (its math is the standard op's)."""

    op_domain = ""

    def _run(self, x, scale, bias=None, axis=-1, epsilon=1e-5, stash_type=1):
        axes = tuple(range(axis % x.ndim, x.ndim))
        x_hat, inv = _normalized(x, axes, epsilon, True)
        return self._outputs(x_hat * scale + (0 if bias is None else bias), x.mean(axes, keepdims=True), inv)


class SimplifiedLayerNormalization(_Reference):
    op_domain = ""

    def _run(self, x, scale, axis=-1, epsilon=1e-5, stash_type=1):
        x_hat, inv = _normalized(x, tuple(range(axis % x.ndim, x.ndim)), epsilon, False)
        return self._outputs(x_hat * scale, inv)


def _gelu(x):
    return 0.5 * x * (1 + special.erf(x / np.sqrt(2)))


class Gelu(_Reference):
    def _run(self, x, approximate="none"):  # the evaluator reads ai.onnx Gelu's default too
        return (_gelu(x),)


class BiasGelu(_Reference):
    def _run(self, a, b):
        return (_gelu(a + b),)


class FastGelu(_Reference):
    def _run(self, x, bias=None):
        x = x + (0 if bias is None else bias)
        return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),)


class QuickGelu(_Reference):
    def _run(self, x, alpha=float(np.float32(1.702))):
        return (x * special.expit(alpha * x),)


class BiasAdd(_Reference):
    def _run(self, x, bias, skip):
        return (x + bias + skip,)


NORMS = [
    SkipLayerNormalization,
    SkipSimplifiedLayerNormalization,
    SimplifiedLayerNormalization,
    LayerNormalization,
]
REFERENCES = [*NORMS, Gelu, BiasGelu, FastGelu, QuickGelu, BiasAdd]


# -- the checks ----------------------------------------------------------------------------------------
def evaluator(model: onnx.ModelProto, references) -> ReferenceEvaluator:
    return ReferenceEvaluator(model, new_ops=[Erf, *references])


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # not its warnings on unused weights and its contrib ops' shapes
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _standard_backward(model: onnx.ModelProto, opset: int) -> None:
    for node in model.graph.node:
        if node.name.startswith("xai/"):
            assert node.domain in ("", "ai.onnx"), f"the backward uses {node.domain} {node.op_type}"
            onnx.defs.get_schema(node.op_type, opset, "")  # raises when not an op at this opset


@dataclass
class Point:
    """Where a case is checked: inputs ``xs`` (float32 values, held in float64), the reference's
    output ``y``, its cotangent ``ybar`` and the direction ``t`` of the finite differences."""

    xs: dict
    y: np.ndarray
    ybar: np.ndarray
    t: dict


def _directional(ybar, plus, minus, step) -> float:
    return float(np.sum(ybar * (plus.astype(np.float64) - minus.astype(np.float64))) / (2 * step))


def _grad_names(case: Case) -> list[str]:
    return [f"xai_grad/{n}" for n in case.wrt]


def _reference_checks(case: Case, opset: int, references) -> tuple[Point, list, dict]:
    """Check (b): the rule in float64 against central differences of the float64 reference."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    xs = {n: rng.uniform(-2, 2, size=s).astype(np.float32).astype(np.float64) for n, s in case.wrt.items()}
    m64 = build(case, opset, np.float64)
    reference = evaluator(m64, references)
    y = reference.run(["y"], xs)[0]
    ybar = rng.standard_normal(y.shape)
    at = Point(xs, y, ybar, {n: rng.standard_normal(x.shape) for n, x in xs.items()})
    g64 = vjp_model(m64, "y", list(case.wrt))
    _standard_backward(g64, opset)
    grads = evaluator(g64, references).run(_grad_names(case), {**xs, "xai_seed": ybar})
    for n, g in zip(case.wrt, grads):
        assert g.shape == xs[n].shape, f"{case.name}: the gradient of {n} has shape {g.shape}"
    step = 1e-6
    plus, minus = (
        reference.run(["y"], {n: x + sign * step * at.t[n] for n, x in xs.items()})[0] for sign in (1, -1)
    )
    numeric = _directional(ybar, plus, minus, step)
    analytic = sum(float(np.sum(g * at.t[n])) for n, g in zip(case.wrt, grads))
    error = abs(numeric - analytic) / max(1.0, abs(numeric))
    assert error <= 1e-6, f"{case.name} @ {opset}: reference differences {numeric:.9g}, rule {analytic:.9g}"
    return at, grads, {"fd64": error}


def _kernel_checks(case: Case, opset: int, at: Point, grads64: list) -> dict:
    """Checks (a), (c) and the float32 rewrite against the float64 one, on onnxruntime's kernel."""
    m32 = build(case, opset, np.float32)
    kernel, x32 = session(m32), {n: x.astype(np.float32) for n, x in at.xs.items()}
    y = at.y
    forward = float(np.abs(kernel.run(["y"], x32)[0] - y).max()) / max(1.0, float(np.abs(y).max())) / EPS32
    assert forward <= FORWARD_ULPS, f"{case.name}: the reference is off the kernel by {forward:.1f} eps"
    feeds = {**x32, "xai_seed": at.ybar.astype(np.float32)}
    grads = session(vjp_model(m32, "y", list(case.wrt))).run(_grad_names(case), feeds)
    vs64 = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-6) for a, b in zip(grads, grads64))
    assert vs64 < 2e-4, f"{case.name} @ {opset}: float32 gradient off by {vs64:.2e}"
    h = EPS32 ** (1 / 3)
    plus, minus = (
        {n: (x + sign * h * at.t[n]).astype(np.float32) for n, x in at.xs.items()} for sign in (1, -1)
    )
    numeric = _directional(at.ybar, kernel.run(["y"], plus)[0], kernel.run(["y"], minus)[0], h)
    analytic = sum(_directional(g, plus[n], minus[n], h) for n, g in zip(case.wrt, grads))
    scale = EPS32 ** (2 / 3) * float(np.sum(np.abs(at.ybar))) * max(1.0, float(np.abs(y).max()))
    fd32 = abs(numeric - analytic) / scale
    assert fd32 <= FD_FACTOR, f"{case.name} @ {opset}: kernel differences {numeric:.7g}, rule {analytic:.7g}"
    return {"forward": forward, "vs64": vs64, "fd32": fd32}


def check(case: Case, opset: int, references=REFERENCES, kernel_ops=True) -> dict:
    """Checks (a), (b), (c) of the module docstring; returns the errors measured, each relative to
    its tolerance's scale. ``kernel_ops``: onnxruntime has CPU kernels for the case's ops."""
    at, grads, measured = _reference_checks(case, opset, references)
    return measured | (_kernel_checks(case, opset, at, grads) if kernel_ops else {})


def refusal(case: Case, declared: dict | None = None) -> str:
    """The message of the error refusing ``case`` (which must be refused)."""
    with pytest.raises(UnsupportedModelError) as raised:
        vjp_model(build(case, 18, np.float32, declared), "y", list(case.wrt))
    return str(raised.value)


# -- the cases ----------------------------------------------------------------------------------------
R = np.random.default_rng(7)
X = {"x": (2, 3, 8)}
XS = {"x": (2, 3, 8), "skip": (2, 3, 8)}
W8 = {"gamma": R.uniform(0.5, 1.5, 8), "beta": R.normal(size=8), "bias": R.normal(size=8)}
SKIP_LN = ["x", "skip", "gamma", "beta", "bias"]
SKIP_OUTPUTS = ["o", "mean", "inv", "sum"]
CASES = [
    Case("skip_ln", [op("SkipLayerNormalization", SKIP_LN, epsilon=1e-5)], XS, W8),
    Case("skip_ln_no_beta_bias", [op("SkipLayerNormalization", ["x", "skip", "gamma"])], XS, W8),
    Case("skip_ln_2d", [op("SkipLayerNormalization", SKIP_LN[:4])], {"x": (5, 8), "skip": (5, 8)}, W8),
    Case(
        "skip_ln_skip_1sh", [op("SkipLayerNormalization", SKIP_LN)], {"x": (2, 3, 8), "skip": (1, 3, 8)}, W8
    ),
    Case("skip_ln_skip_sh", [op("SkipLayerNormalization", SKIP_LN)], {"x": (2, 3, 8), "skip": (3, 8)}, W8),
    *[
        Case(f"skip_ln_{name}", [op("SkipLayerNormalization", SKIP_LN, [*SKIP_OUTPUTS[:i], "y"])], XS, W8)
        for i, name in ((1, "mean"), (2, "inv_std_var"), (3, "sum"))
    ],
    Case(
        "skip_ln_chained_through_sum",  # cotangents of the output and of input + skip + bias add up
        [
            op("SkipLayerNormalization", SKIP_LN, ["o", "", "", "sum"]),
            op("SkipLayerNormalization", ["o", "sum", "gamma", "beta"]),
        ],
        XS,
        W8,
    ),
    Case("skip_simplified", [op("SkipSimplifiedLayerNormalization", ["x", "skip", "gamma", "bias"])], XS, W8),
    Case(
        "skip_simplified_inv_std_var",
        [op("SkipSimplifiedLayerNormalization", ["x", "skip", "gamma"], ["o", "m", "y"], epsilon=1e-3)],
        {"x": (2, 3, 8), "skip": (3, 8)},
        W8,
    ),
    Case(
        "simplified_ln", [op("SimplifiedLayerNormalization", ["x", "gamma"], domain="", epsilon=1e-4)], X, W8
    ),
    Case(
        "simplified_ln_axis_1",
        [op("SimplifiedLayerNormalization", ["x", "scale"], ["o", "y"], domain="", axis=1)],
        X,
        {"scale": R.uniform(0.5, 1.5, (3, 8))},
    ),
    Case(  # onnxruntime has no com.microsoft LayerNormalization: norm.py's rule meets its kernel
        "layer_norm_below_opset_17",
        [op("LayerNormalization", ["x", "gamma", "beta"], domain="", epsilon=1e-3)],
        X,
        W8,
        opsets=(11, 13),
    ),
    Case("gelu", [op("Gelu", ["x"])], X),
    Case("bias_gelu", [op("BiasGelu", ["x", "bias"])], X, W8),
    Case("fast_gelu", [op("FastGelu", ["x"])], X),
    Case("fast_gelu_bias", [op("FastGelu", ["x", "bias"])], X, W8),
    Case("quick_gelu", [op("QuickGelu", ["x"])], X),
    Case("quick_gelu_alpha", [op("QuickGelu", ["x"], alpha=1.0)], X),
]
BIAS_ADD = Case("bias_add", [op("BiasAdd", ["x", "bias", "skip"])], XS, W8)


def test_keys_are_the_registrys():
    """A com.microsoft rule sits under the registry's key of its domain, apart from ai.onnx's op."""
    from onnx_xai.graph.registry import RULES, rule_key

    assert ms("Gelu") == rule_key("Gelu", MS) != rule_key("Gelu", "")
    assert RULES[ms("Gelu")] is not RULES["Gelu"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets:
        check(case, opset)


def test_bias_add_has_no_cpu_kernel_and_follows_its_definition():
    """onnxruntime 1.32 has BiasAdd's schema but no CPU kernel: check (b) only."""
    with pytest.raises(Exception, match="BiasAdd"):
        session(build(BIAS_ADD, 18, np.float32))
    for opset in OPSETS:
        check(BIAS_ADD, opset, kernel_ops=False)


def _refused(case: Case, problem: str):
    return pytest.param(case, problem, id=case.name)


REFUSED = [
    _refused(
        Case("skip_ln_gamma", [op("SkipLayerNormalization", ["x", "skip", "gamma"])], {**XS, "gamma": (8,)}),
        "input 'gamma' (a weight) depends on the input",
    ),
    _refused(
        Case(
            "skip_simplified_bias",
            [op("SkipSimplifiedLayerNormalization", ["x", "skip", "g", "b"])],
            {**XS, "b": (8,)},
            {"g": W8["gamma"]},
        ),
        "input 'b' (a weight) depends on the input",
    ),
    _refused(
        Case("bias_gelu_bias", [op("BiasGelu", ["x", "b"])], {"x": (2, 8), "b": (8,)}),
        "input 'b' (a weight) depends on the input",
    ),
    _refused(
        Case("fast_gelu_bias", [op("FastGelu", ["x", "b"])], {"x": (2, 8), "b": (8,)}),
        "input 'b' (a weight) depends on the input",
    ),
    _refused(
        Case("bias_add_bias", [op("BiasAdd", ["x", "b", "skip"])], {**XS, "b": (8,)}),
        "input 'b' (a weight) depends on the input",
    ),
    _refused(
        Case(
            "simplified_ln_rank",
            [op("SimplifiedLayerNormalization", ["x", "gamma"], domain="", axis=1)],
            {"x": None},
            W8,
        ),
        "unknown input rank",
    ),
]


@pytest.mark.parametrize("case, problem", REFUSED)
def test_refused(case, problem):
    message, (op_type, *_) = refusal(case), case.nodes[0]
    assert f"'{op_type}_0' ({op_type}): {problem}" in message and "\n" not in message
