"""Statically quantized (QDQ int8) models: the straight-through estimator, and how close its
explanations stay to the float model's.

- A QDQ model written by hand (quantized input, per-channel int8 weights, quantized activation)
  against the same model in torch float64 with fake quantization whose backward is the
  straight-through estimator written out: input gradient, Grad-CAM and CAM.
- onnxruntime's ``quantize_static`` output of the RegNet-Y form against the float form: Grad-CAM,
  CAM and input gradients correlate per image (the quantized model is explained on its own
  dequantized activations, an approximation of the float model's explanation).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

import onnx_xai

from .exports import FORMS, example_input, export
from .reference import rel

RNG = np.random.default_rng(0)
W_INT = RNG.integers(-100, 100, size=(4, 3, 3, 3)).astype(np.int8)
W_SCALE = np.array([0.004, 0.006, 0.005, 0.003], np.float32)
BIAS = RNG.normal(size=4).astype(np.float32) * 0.1
FC = RNG.normal(size=(3, 4)).astype(np.float32)
X_QUANT = (np.float32(0.02), np.uint8(128))  # input: uint8 around zero
A_QUANT = (np.float32(0.01), np.int8(-128))  # activation: int8, non-negative range [0, 2.55]


def hand_built_qdq() -> onnx.ModelProto:
    c = numpy_helper.from_array
    inits = [
        c(W_INT, "w_q"),
        c(W_SCALE, "w_s"),
        c(np.zeros(4, np.int8), "w_z"),
        c(BIAS, "b"),
        c(FC, "fc"),
        c(X_QUANT[0], "x_s"),
        c(np.array(X_QUANT[1]), "x_z"),
        c(A_QUANT[0], "a_s"),
        c(np.array(A_QUANT[1]), "a_z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_d"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
        helper.make_node("Conv", ["x_d", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "a_s", "a_z"], ["r_q"]),
        helper.make_node("DequantizeLinear", ["r_q", "a_s", "a_z"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def fake_quant(t: torch.Tensor, scale, zero, low: int, high: int) -> torch.Tensor:
    """Quantize-dequantize whose backward is the straight-through estimator: the identity where
    round(t / s) + z lies in [low, high], zero where it saturates."""
    grid = torch.round(t / float(scale)) + float(zero)
    dequantized = (torch.clamp(grid, low, high) - float(zero)) * float(scale)
    inside = (grid >= low) & (grid <= high)
    return torch.where(inside, t + (dequantized - t).detach(), dequantized.detach())


def torch_twin(x: np.ndarray, targets) -> dict:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    w = (
        torch.tensor(W_INT, dtype=torch.float64)
        * torch.tensor(W_SCALE, dtype=torch.float64)[:, None, None, None]
    )
    conv = F.conv2d(fake_quant(xt, *X_QUANT, 0, 255), w, torch.tensor(BIAS, dtype=torch.float64), padding=1)
    a = fake_quant(F.relu(conv), *A_QUANT, -128, 127)
    a.retain_grad()
    logits = a.mean((2, 3)) @ torch.tensor(FC, dtype=torch.float64).T
    logits[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    alpha = a.grad.mean((2, 3), keepdim=True)
    return {
        "input_grad": xt.grad.numpy(),
        "gradcam": F.relu((alpha * a).sum(1)).detach().numpy(),
        "cam": np.einsum("nk,nkhw->nhw", FC[np.asarray(targets)], a.detach().numpy()),
    }


def test_straight_through_estimator_matches_fake_quantization():
    model = onnx_xai.augment(hand_built_qdq())
    x = RNG.uniform(-3, 3, size=(2, 3, 8, 8)).astype(np.float32)  # past the input's range [-2.56, 2.54]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"x": x, "xai_target": np.array([0, 2])})))
    want = torch_twin(x, [0, 2])
    assert 0 < np.count_nonzero(want["input_grad"] == 0) < want["input_grad"].size  # some saturate
    assert rel(got["xai_input_grad"], want["input_grad"]) < 1e-5
    assert rel(got["xai_gradcam"], want["gradcam"]) < 1e-5
    assert rel(got["xai_cam"], want["cam"]) < 1e-5


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.array([np.corrcoef(u, v)[0, 1] for u, v in zip(a, b)])


def test_quantized_model_explains_like_its_float_original():
    quantized = onnx_xai.Explainer(export("qdq_int8"))
    original = onnx_xai.Explainer(export("regnety"))
    x = example_input(FORMS["regnety"].build(), 8, seed=21)
    targets = original.explain(x, "gradcam").targets
    methods = ["gradcam", "cam", "gradient"]
    q, f = (
        quantized.explain_many(x, methods, objective=targets),
        original.explain_many(x, methods, objective=targets),
    )
    report = {m: correlations(q[m].raw, f[m].raw) for m in methods}
    print({m: f"min {c.min():.3f} median {np.median(c):.3f}" for m, c in report.items()})
    assert report["gradcam"].min() > 0.95 and report["cam"].min() > 0.95
    assert report["gradient"].min() > 0.9
