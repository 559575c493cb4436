"""CAM on heads beside other heads, and the refusal that says where the head stops being GAP -> linear.

A pooled vector that feeds a class head and a second head (a detector's regressor beside its
classifier) still gives CAM for the class head's score, checked against the activation and the class
head's weights by hand; a head with two linear layers is refused naming the node after the pooling.
"""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.support.errors import CamNotApplicableError

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3, 1, 1)).astype(np.float32)
FC = RNG.standard_normal((3, 4)).astype(np.float32)
OTHER = RNG.standard_normal((4, 4)).astype(np.float32)


def model(second_layer: bool):
    head = [helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="cls_head")]
    if second_layer:
        head = [
            helper.make_node("Gemm", ["f", "other"], ["h"], transB=1, name="hidden"),
            helper.make_node("Gemm", ["h", "fc"], ["y"], transB=1, name="cls_head"),
        ]
    else:
        head.append(helper.make_node("Gemm", ["f", "other"], ["z"], transB=1, name="box_head"))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]
    if not second_layer:
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4]))
    weights = [
        numpy_helper.from_array(W, "w"),
        numpy_helper.from_array(FC, "fc"),
        numpy_helper.from_array(OTHER, "other"),
    ]
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    graph = helper.make_graph(nodes + head, "heads", [image], outputs, weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cam_of_a_class_head_beside_another_head():
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    m = model(second_layer=False)
    m.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 4, 8, 8]))
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    activation = session.run(["r"], {"x": x})[0]
    result = onnx_xai.Explainer(model(second_layer=False)).explain(x, "cam", objective=[0, 2])
    want = np.einsum("nk,nkhw->nhw", FC[[0, 2]], activation)
    np.testing.assert_allclose(result.raw, want, rtol=1e-5, atol=1e-6)


def test_a_head_of_two_linear_layers_is_refused_where_it_stops():
    ex = onnx_xai.Explainer(model(second_layer=True))
    with pytest.raises(CamNotApplicableError) as refused:
        ex.explain(np.ones((1, 3, 8, 8), np.float32), "cam")
    assert str(refused.value) == (
        "CAM needs a global-average-pool -> linear head: after the global average pool, 'f' goes into "
        "Gemm 'hidden' (the head: "
        "GlobalAveragePool -> Flatten -> Gemm -> Gemm), where CAM needs one linear layer with constant "
        "weights (Gemm, or MatMul then a constant Add) that gives the score; use method 'gradcam', which "
        "works on any head"
    )
