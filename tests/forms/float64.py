"""Float64 finite differences of an ONNX model itself, for exported models with no torch twin.

``to_float64`` turns a float32 model into the same function in float64 (weights, constants, casts,
declared types); ``directional_check`` compares ``<g, t>`` for a gradient ``g`` computed by the
rewritten graph on onnxruntime in float32 with the central difference of the float64 model along
random directions ``t`` (JAX's ``check_vjp``), which needs no reference implementation of the model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..reference_runtime import float64_runner


def _tensor64(t: onnx.TensorProto) -> onnx.TensorProto:
    if t.data_type != TensorProto.FLOAT:
        return t
    return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name)


def to_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model computing in float64."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for i, t in enumerate(graph.initializer):
        graph.initializer[i].CopyFrom(_tensor64(t))
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                a.t.CopyFrom(_tensor64(a.t))
            elif node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
    return out


def directional_check(
    model: onnx.ModelProto,
    x: np.ndarray,
    score,
    grad: np.ndarray,
    directions: int = 3,
    eps: float = 1e-4,
    seed: int = 0,
) -> float:
    """The largest relative gap between ``<grad, t>`` and the float64 central difference of
    ``score(outputs)`` along ``directions`` random unit directions ``t``."""
    runner = float64_runner(to_float64(model))
    name = model.graph.input[0].name
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(directions):
        t = rng.standard_normal(x.shape)
        t /= np.linalg.norm(t)
        plus = score(runner.run(None, {name: x.astype(np.float64) + eps * t}))
        minus = score(runner.run(None, {name: x.astype(np.float64) - eps * t}))
        numeric = (plus - minus) / (2 * eps)
        analytic = float(np.sum(grad.astype(np.float64) * t))
        worst = max(worst, abs(numeric - analytic) / max(abs(numeric), 1e-12))
    return worst
