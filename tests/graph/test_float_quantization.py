"""Activation round trips rewritten into float ops compute their ONNX definition exactly.

The hand-built QDQ model of the quantized-forms tests (uint8 input with a zero point, per-channel int8
weights, an int8 activation) is rewritten; onnxruntime's run of it is compared bit for bit with the
definition written in numpy float32, ``(min(max(round(x / s) + z, low), high) - z) s``; weights
stay behind their DequantizeLinear; a quantized tensor that is also a graph output is left alone; a
rewritten model's gradients are unchanged.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import onnx_xai
from onnx_xai.graph.float_quantization import activations_in_float

from ..forms.reference import rel
from ..forms.test_quantized import A_QUANT, X_QUANT, hand_built_qdq


def run(model: onnx.ModelProto, x: np.ndarray, names: list[str], **feeds) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(names, {"x": x, **feeds})


def definition(x: np.ndarray, scale, zero, low: int, high: int) -> np.ndarray:
    codes = np.minimum(np.maximum(np.round(x / scale) + np.float32(zero), np.float32(low)), np.float32(high))
    return (codes - np.float32(zero)) * scale


def with_outputs(model: onnx.ModelProto, **shapes: list) -> onnx.ModelProto:
    model.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()
    )
    return model


def test_round_trips_become_their_definition_in_float():
    x = np.random.default_rng(1).uniform(-3, 3, size=(2, 3, 8, 8)).astype(np.float32)
    rewritten = activations_in_float(
        with_outputs(hand_built_qdq(), x_d=["N", 3, 8, 8], r=["N", 4, 8, 8], a=["N", 4, 8, 8])
    )
    ops = [n.op_type for n in rewritten.graph.node]
    assert "QuantizeLinear" not in ops and ops.count("DequantizeLinear") == 1  # the weights' only
    onnx.checker.check_model(rewritten, full_check=True)
    x_d, r, a, y = run(rewritten, x, ["x_d", "r", "a", "y"])
    assert np.array_equal(x_d, definition(x, *X_QUANT, 0, 255))
    assert np.array_equal(a, definition(r, *A_QUANT, -128, 127))
    (want_y,) = run(hand_built_qdq(), x, ["y"])
    assert np.abs(y - want_y).max() <= 1e-6 * np.abs(want_y).max()


def test_a_quantized_tensor_read_elsewhere_is_left_alone():
    model = hand_built_qdq()
    model.graph.output.append(helper.make_tensor_value_info("r_q", TensorProto.INT8, ["N", 4, 8, 8]))
    ops = [n.op_type for n in activations_in_float(model).graph.node]
    assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 2  # x's pair went


def test_gradients_of_a_rewritten_model_are_unchanged():
    x = np.random.default_rng(2).uniform(-3, 3, size=(2, 3, 8, 8)).astype(np.float32)
    augmented = onnx_xai.augment(hand_built_qdq())
    names = ["xai_input_grad", "xai_gradcam"]
    target = {"xai_target": np.array([0, 2], np.int64)}
    want = run(augmented, x, names, **target)
    got = run(activations_in_float(augmented), x, names, **target)
    for name, a, b in zip(names, got, want):
        assert rel(a, b) < 1e-6, name
