"""Shapes of onnxruntime's fused ops' outputs (:mod:`onnx_xai.graph.contrib_shapes`): without them the
standard ops after a fused one have no rank and their rules refuse them. A small fused chain
(SkipLayerNormalization, MatMul, Add, FastGelu, Attention, MatMul) is differentiated end to end and
checked against central differences of onnxruntime's own kernels (float32: step eps^(1/3))."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.info import GraphInfo

MS = "com.microsoft"


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    weights = {"g": rng.uniform(0.5, 1.5, 8), "b": rng.normal(size=8), "w1": 0.5 * rng.normal(size=(8, 8))}
    weights |= {"c": rng.normal(size=8), "qkv": 0.5 * rng.normal(size=(8, 24)), "w2": rng.normal(size=(8, 3))}
    nodes = [
        helper.make_node("SkipLayerNormalization", ["x", "s", "g", "b"], ["h", "", "", "sum"], domain=MS),
        helper.make_node("MatMul", ["h", "w1"], ["m"]),
        helper.make_node("Add", ["m", "sum"], ["a"]),
        helper.make_node("FastGelu", ["a", "c"], ["f"], domain=MS),
        helper.make_node("Attention", ["f", "qkv", "", "mask"], ["att"], domain=MS, num_heads=2),
        helper.make_node("MatMul", ["att", "w2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([3, 5], np.int32), "mask"))
    inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["N", 5, 8]) for n in ("x", "s")]
    output = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "fused", inputs, [output], inits)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=10
    )


def test_fused_outputs_have_shapes():
    info = GraphInfo(_model())
    assert info.shape("h") == ("N", 5, 8) and info.shape("sum") == ("N", 5, 8)
    assert info.shape("f") == ("N", 5, 8) and info.shape("att") == ("N", 5, 8)
    assert info.shape("y") == ("N", 5, 3)


def test_a_fused_chain_is_differentiated_end_to_end():
    model = _model()
    rng = np.random.default_rng(4)
    x, s = (rng.uniform(-2, 2, (2, 5, 8)).astype(np.float32) for _ in range(2))
    ybar, t = rng.standard_normal((2, 5, 3)), rng.standard_normal(x.shape)
    grads = ort.InferenceSession(vjp_model(model, "y", ["x"]).SerializeToString())
    (grad,) = grads.run(["xai_grad/x"], {"x": x, "s": s, "xai_seed": ybar.astype(np.float32)})
    forward = ort.InferenceSession(model.SerializeToString())
    h = np.finfo(np.float32).eps ** (1 / 3)
    plus, minus = ((x + sign * h * t).astype(np.float32) for sign in (1, -1))
    ys = [forward.run(["y"], {"x": p, "s": s})[0].astype(np.float64) for p in (plus, minus)]
    numeric = float(np.sum(ybar * (ys[0] - ys[1]))) / (2 * h)
    analytic = float(np.sum(grad * (plus.astype(np.float64) - minus))) / (2 * h)
    assert abs(numeric - analytic) <= 1e-3 * abs(numeric)
