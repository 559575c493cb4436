"""Tensor handles: a rule's formula written with operators emits the nodes it reads as, and numbers
become constants of the forward tensor's element type (a float16 graph stays float16)."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, checker, helper

from onnx_xai.graph.emitter import Emitter
from onnx_xai.graph.info import GraphInfo


def evaluate(dtype: int, formula, x: np.ndarray) -> np.ndarray:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", dtype, [2, 3])],
        [helper.make_tensor_value_info("y", dtype, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    e = Emitter(GraphInfo(model))
    out = formula(e, e.t("y"), e.t("x", like="y"))
    model.graph.node.extend(e.nodes)
    model.graph.initializer.extend(e.initializers)
    model.graph.output.append(helper.make_tensor_value_info(out.name, dtype, [2, 3]))
    checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([out.name], {"x": x})[0]


@pytest.mark.parametrize(
    "dtype,np_dtype", [(TensorProto.FLOAT, np.float32), (TensorProto.FLOAT16, np.float16)]
)
def test_formulas_emit_what_they_read(dtype, np_dtype):
    x = np.linspace(-2, 2, 6).reshape(2, 3).astype(np_dtype)
    y = 1 / (1 + np.exp(-x.astype(np.float64)))
    cases = {
        lambda e, y, x: y * (1 - y): y * (1 - y),
        lambda e, y, x: 1 - y * y: 1 - y * y,
        lambda e, y, x: -(x * 0.5 / y) + 2: -(x * 0.5 / y) + 2,
        lambda e, y, x: 3 * x - y / 4: 3 * x - y / 4,
    }
    for formula, want in cases.items():
        got = evaluate(dtype, formula, x)
        assert got.dtype == np_dtype
        np.testing.assert_allclose(
            got.astype(np.float64), want, rtol=2e-3 if np_dtype == np.float16 else 1e-6
        )
