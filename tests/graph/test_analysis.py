"""The analysis on small hand-built graphs: dominators, per-tensor layouts, integer inputs, scores.

Each graph is written with onnx.helper so the expected answer can be read off the graph itself.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.graph.analysis import differentiable_input, image_input, score_tensor
from onnx_xai.graph.info import GraphInfo
from onnx_xai.graph.layout import tensor_layouts
from onnx_xai.graph.paths import dominators
from onnx_xai.support.errors import ModelError

R = np.random.default_rng(0)


def model(nodes, inputs, inits=(), output="y", opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in dict(inits).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def weight(*shape) -> np.ndarray:
    return R.normal(size=shape).astype(np.float32)


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
HEAD = [
    helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
    helper.make_node("Flatten", ["gap"], ["f"]),
    helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
]


def test_dominators_of_a_residual_block():
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], pads=[1, 1, 1, 1]),  # the branch
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Add", ["r0", "r1"], ["s"]),
        helper.make_node("Relu", ["s"], ["a"]),
        *HEAD,
    ]
    m = model(nodes, [X], {"w0": weight(4, 3, 3, 3), "w1": weight(4, 4, 3, 3), "fc": weight(2, 4)})
    assert dominators(GraphInfo(m), "x", "y") == ["x", "c0", "r0", "s", "a", "gap", "f", "y"]
    assert onnx_xai.Explainer(m).target_layer == "a"


def test_layouts_follow_transposes_both_ways():
    nhwc = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 3])
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["m"]),  # before any evidence: layout from the Conv
        helper.make_node("Transpose", ["m"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["a"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["a"], ["p"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["p", "fc"], ["y"]),
    ]
    m = model(
        nodes,
        [nhwc],
        {"scale": np.array(2.0, np.float32), "w": weight(4, 3, 1, 1), "fc": weight(4, 2)},
        opset=13,
    )
    layouts = tensor_layouts(GraphInfo(m), "x")
    assert [layouts[n] for n in ("x", "m", "t", "c", "r", "a")] == [
        "NHWC",
        "NHWC",
        "NCHW",
        "NCHW",
        "NCHW",
        "NHWC",
    ]
    rewritten = onnx_xai.augment(m)
    meta = rewritten.metadata_props[-1].value
    assert '"target": {"name": "a", "layout": "NHWC"' in meta and '"cam": true' in meta


def test_integer_pixels_are_differentiated_at_their_cast_and_mapped_back():
    pixels = helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 8, 8, 3])
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),  # a move before the cast
        helper.make_node("Cast", ["t"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["f", "w"], ["a"]),
        *HEAD[:1],
        helper.make_node("Flatten", ["gap"], ["v"]),
        helper.make_node("Gemm", ["v", "fc"], ["y"], transB=1),
    ]
    m = model(nodes, [pixels], {"w": weight(4, 3, 1, 1), "fc": weight(2, 4)})
    info = GraphInfo(m)
    assert image_input(info) == "x" and differentiable_input(info, "x")[0] == "f"
    ex = onnx_xai.Explainer(m)
    x = R.integers(0, 256, size=(2, 8, 8, 3)).astype(np.uint8)
    grad = ex.input_gradient(x, objective=1)
    # y_1 = fc[1] . mean_hw(W x): d y_1 / d pixel(h, w, c) = sum_k fc[1, k] W[k, c] / 64, everywhere
    fc, w = numpy_helper.to_array(m.graph.initializer[1]), numpy_helper.to_array(m.graph.initializer[0])
    expected = np.broadcast_to(fc[1] @ w[:, :, 0, 0] / 64, (2, 8, 8, 3))
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_integer_input_with_arithmetic_before_its_cast_is_refused():
    pixels = helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 3, 8, 8])
    nodes = [
        helper.make_node("Add", ["x", "one"], ["p"]),
        helper.make_node("Cast", ["p"], ["a"], to=1),
        *HEAD,
    ]
    m = model(nodes, [pixels], {"one": np.array(1, np.uint8), "fc": weight(2, 3)})
    with pytest.raises(ModelError, match="reaches Add .* before it is cast to float"):
        onnx_xai.augment(m)


@pytest.mark.parametrize(
    "last,kind", [("Sigmoid", "pre-sigmoid"), ("Softmax", "pre-softmax"), ("Identity", "logit")]
)
def test_score_kinds(last, kind):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"]),
        *HEAD[:2],
        helper.make_node("Gemm", ["f", "fc"], ["z"], transB=1),
        helper.make_node(last, ["z"], ["y"]),
    ]
    m = model(nodes, [X], {"w": weight(4, 3, 1, 1), "fc": weight(2, 4)})
    score = score_tensor(GraphInfo(m))
    assert (score.name, score.kind) == ("z", kind)
