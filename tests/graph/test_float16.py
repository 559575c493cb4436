"""Float16 graphs: the rewrite runs where the forward runs, and its scatters are exact.

onnxruntime's CPU ScatterElements has no float16 kernel for ``reduction="add"``; the MaxPool and
Gather backwards scatter in a float32 island. On inputs whose every value and sum is exact in
float16 (multiples of 1/8, small), the float16 gradient must equal the float32 gradient of the same
graph bit for bit; and a float16 export of a residual net with max pooling runs end to end.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

import onnx_xai
from onnx_xai.graph.assemble import vjp_model

from ..conformance.nets import build


def _pool_and_gather(dtype: int) -> onnx.ModelProto:
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Gather", ["p", "idx"], ["y"], axis=3),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", dtype, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", dtype, [2, 3, 4, 5])],
        [numpy_helper.from_array(np.array([0, 2, 2, 3, 0], np.int64), "idx")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _gradient(model: onnx.ModelProto, x: np.ndarray, seed: np.ndarray) -> np.ndarray:
    rewritten = vjp_model(model, "y", ["x"])
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["xai_grad/x"], {"x": x, "xai_seed": seed})[0]


def test_float16_scatters_equal_float32():
    rng = np.random.default_rng(0)
    x = (rng.permutation(2 * 3 * 8 * 8) - 192).reshape(2, 3, 8, 8) / 8.0  # distinct, exact in float16
    seed = rng.integers(-4, 5, size=(2, 3, 4, 5)).astype(np.float64)
    half = _gradient(_pool_and_gather(TensorProto.FLOAT16), x.astype(np.float16), seed.astype(np.float16))
    full = _gradient(_pool_and_gather(TensorProto.FLOAT), x.astype(np.float32), seed.astype(np.float32))
    assert half.dtype == np.float16 and np.count_nonzero(full) > 0
    np.testing.assert_array_equal(half.astype(np.float32), full)


def test_float16_export_with_max_pooling_runs_end_to_end(tmp_path):
    net = copy.deepcopy(build("resnet")).half()
    path = tmp_path / "resnet16.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 32, 32, dtype=torch.float16),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            dynamic_axes={"x": {0: "N"}},
        )
    ex = onnx_xai.Explainer(path)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    results = ex.explain_many(x, ["gradient", "gradcam", "cam"])
    assert ex.input_dtype == np.float16
    for result in results.values():
        assert result.raw.dtype == np.float32 and np.isfinite(result.raw).all() and result.raw.any()
