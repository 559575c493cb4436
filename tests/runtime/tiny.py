"""A tiny fixed-weight classifier whose CAM, Grad-CAM and gradient can be written down by hand:
x [N, 2, 4, 4] -> 1x1 Conv (3 channels) -> ReLU = A -> GlobalAveragePool -> Flatten -> Gemm (2 classes)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

W_CONV = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.25]], np.float32)  # [3 out, 2 in]
W_FC = np.array([[2.0, -1.0, 0.5], [-0.5, 1.5, 1.0]], np.float32)  # [2 classes, 3 channels]
B_FC = np.array([0.1, -0.2], np.float32)
HW = 16


def model(opset: int = 17):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "b"], ["logits"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(W_CONV[:, :, None, None], "w"),
        numpy_helper.from_array(W_FC, "fc"),
        numpy_helper.from_array(B_FC, "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def by_hand(x: np.ndarray, c: np.ndarray) -> dict:
    """The activation, logits, CAM, Grad-CAM and input gradient for classes ``c``, in numpy."""
    a = np.maximum(np.einsum("kj,njhw->nkhw", W_CONV, x), 0)
    logits = a.mean((2, 3)) @ W_FC.T + B_FC
    w = W_FC[c]  # [N, 3]
    cam = np.einsum("nk,nkhw->nhw", w, a)
    gradcam = np.maximum(np.einsum("nk,nkhw->nhw", w / HW, a), 0)
    d_a = (w / HW)[:, :, None, None] * (a > 0)  # dS/dA through the mean
    grad = np.einsum("nkhw,kj->njhw", d_a, W_CONV)
    return {"a": a, "logits": logits, "cam": cam, "gradcam": gradcam, "grad": grad}
