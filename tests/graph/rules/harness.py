"""Check one VJP rule on one small graph: finite differences in float64, and onnxruntime in float32.

A case is a few nodes from named inputs to the output ``y``. Inputs named in ``wrt`` are random graph
inputs (differentiated); the others are initializers. The check is JAX's one-direction test:
<ybar, (f(x + eps t) - f(x - eps t)) / 2 eps> == sum_i <vjp_i(ybar), t_i>, with f run by the ONNX
reference evaluator in float64; then the same rewritten graph, in float32, must pass the full checker
and give the same gradients on onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.emitter import AXES_AS_INPUT

from ...reference_runtime import float64_runner, reference

OPSETS = (11, 13, 18, 21)
ML = "ai.onnx.ml"


@dataclass
class Case:
    """One rule test: ``nodes`` from ``wrt`` inputs (random, shapes given) and constants to ``y``."""

    name: str
    nodes: list
    wrt: dict  # input name -> shape
    consts: dict = field(default_factory=dict)  # name -> numpy array (float arrays follow the dtype)
    min_opset: int = 11
    max_opset: int = 21
    low: float = -2.0  # range of the random inputs
    high: float = 2.0
    dynamic: bool = False  # declare the height and width of 4-D inputs as unknown (dynamic size)

    def opsets(self) -> list[int]:
        chosen = [o for o in OPSETS if self.min_opset <= o <= self.max_opset]
        return chosen or [self.min_opset]


def node(op_type: str, inputs, outputs="y", axes=None, **attrs):
    """A node spec; ``axes`` becomes an attribute or an input depending on the opset."""
    outs = [outputs] if isinstance(outputs, str) else list(outputs)
    return (op_type, list(inputs), outs, axes, attrs)


def build(case: Case, opset: int, dtype) -> onnx.ModelProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits, nodes = [], []
    for name, value in case.consts.items():
        arr = np.asarray(value)
        # float64 constants follow the case dtype; float32 ones (Resize scales) stay as they are
        inits.append(numpy_helper.from_array(arr.astype(dtype) if arr.dtype == np.float64 else arr, name))
    for i, (op_type, inputs, outs, axes, attrs) in enumerate(case.nodes):
        inputs = list(inputs)
        attrs = {k: (elem if v == "dtype" else v) for k, v in attrs.items()}  # Cast(to=the case dtype)
        if axes is not None:
            if opset >= AXES_AS_INPUT.get(op_type, 10**6):
                inits.append(numpy_helper.from_array(np.array(axes, np.int64), f"axes_{i}"))
                inputs.append(f"axes_{i}")
            else:
                attrs["axes"] = axes
        nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{i}", **attrs))
    graph = helper.make_graph(
        nodes,
        case.name,
        [helper.make_tensor_value_info(n, elem, _declared(s, case.dynamic)) for n, s in case.wrt.items()],
        [helper.make_tensor_value_info("y", elem, None)],
        inits,
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(ML, 1)] if _uses_ml(case) else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = min(model.ir_version, 10)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=not _uses_ml(case))
    y_info = next(v for v in list(inferred.graph.output) + list(inferred.graph.value_info) if v.name == "y")
    if not y_info.type.tensor_type.HasField("shape"):  # inference gave up: declare the real shape
        feeds = {n: np.zeros(s, dtype) for n, s in case.wrt.items()}
        y_info = helper.make_tensor_value_info("y", elem, reference(model).run(["y"], feeds)[0].shape)
    model.graph.output[0].CopyFrom(y_info)
    if _uses_ml(case):
        model.graph.output[0].type.tensor_type.elem_type = elem
    return model


def _uses_ml(case: Case) -> bool:
    """Whether the case has ai.onnx.ml ops (test_ml): ONNX infers few of their shapes, and the float64
    build declares their outputs in float64, which the reference evaluator runs but the spec does not
    allow (its outputs are float): the float32 build is the one checked."""
    return any(spec[4].get("domain") == ML for spec in case.nodes)


def _declared(shape, dynamic: bool) -> list:
    return list(shape[:2]) + ["H", "W"] if dynamic and len(shape) == 4 else list(shape)


def check(case: Case, opset: int, seed: int = 0, rules=None) -> None:
    """Float64 finite differences and onnxruntime float32 against the rules (default: the registry's)."""
    rng = np.random.default_rng(seed)
    m64 = build(case, opset, np.float64)
    g64 = vjp_model(m64, "y", list(case.wrt), rules=rules)
    if not _uses_ml(case):
        onnx.checker.check_model(g64, full_check=True)
    xs = {n: rng.uniform(case.low, case.high, size=s) for n, s in case.wrt.items()}
    forward = float64_runner(m64)
    y = forward.run(["y"], xs)[0]
    ybar = rng.standard_normal(y.shape)
    grads = float64_runner(g64).run([f"xai_grad/{n}" for n in case.wrt], {**xs, "xai_seed": ybar})
    for n, g in zip(case.wrt, grads):
        assert g.shape == xs[n].shape, f"{case.name}: gradient of {n} has shape {g.shape}"
    t = {n: rng.standard_normal(x.shape) for n, x in xs.items()}
    eps = 1e-6
    plus = forward.run(["y"], {n: xs[n] + eps * t[n] for n in xs})[0]
    minus = forward.run(["y"], {n: xs[n] - eps * t[n] for n in xs})[0]
    numeric = float(np.sum(ybar * (plus - minus)) / (2 * eps))
    analytic = float(sum(np.sum(g * t[n]) for n, g in zip(case.wrt, grads)))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (
        f"{case.name} @ opset {opset}: finite differences {numeric:.9g} vs VJP {analytic:.9g}"
    )
    _check_onnxruntime(case, opset, xs, ybar, grads, rules)


def _check_onnxruntime(case: Case, opset: int, xs, ybar, grads64, rules=None) -> None:
    g32 = vjp_model(build(case, opset, np.float32), "y", list(case.wrt), rules=rules)
    onnx.checker.check_model(g32, full_check=True)
    session = ort.InferenceSession(g32.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: x.astype(np.float32) for n, x in xs.items()}
    feeds["xai_seed"] = ybar.astype(np.float32)
    got = session.run([f"xai_grad/{n}" for n in case.wrt], feeds)
    for n, g32_, g64 in zip(case.wrt, got, grads64):
        scale = max(float(np.abs(g64).max()), 1e-6)
        err = float(np.abs(g32_ - g64).max()) / scale
        assert err < 2e-4, f"{case.name} @ opset {opset}: onnxruntime float32 off by {err:.2e} on {n}"
