"""Types and shapes of the ``ai.onnx.ml`` outputs that ONNX's own inference leaves unknown.

ONNX defines no inference for Scaler, Normalizer, Imputer, LinearRegressor and FeatureVectorizer (nor
for ArrayFeatureExtractor on a 1-D input, which onnxruntime reads as one row), so
without this everything after a converter's StandardScaler (the MLP of a scikit-learn pipeline) would
have no shape and no rule could run there. Their outputs follow from their inputs and attributes, as
the ONNX-ML spec and onnxruntime define them: Scaler and Normalizer keep the input's shape in float,
Imputer keeps its shape and type, LinearRegressor gives ``[N, targets]`` and FeatureVectorizer
``[N, sum(inputdimensions)]`` in float (``N`` 1 for a 1-D input), ArrayFeatureExtractor of a 1-D input
``[1, indices]``. :func:`declare` writes them into a
model as ``value_info`` (or on its declared outputs), which ONNX's inference then reads as known.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

ML_DOMAIN = "ai.onnx.ml"
FLOAT = onnx.TensorProto.FLOAT


def _dims(tp: onnx.TypeProto | None) -> list | None:
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tp.tensor_type.shape.dim
    ]


def _ints(node: onnx.NodeProto, name: str) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), [])


def _int(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def output_type(node: onnx.NodeProto, types: dict[str, onnx.TypeProto]) -> onnx.TypeProto | None:
    """The type of the node's (first) output from its inputs' types, or None when it does not
    follow (another op, or an input whose shape is unknown)."""
    if node.domain != ML_DOMAIN or not node.input:
        return None
    first = types.get(node.input[0])
    dims = _dims(first)
    if dims is None or first is None:
        return None
    rows = dims[0] if len(dims) > 1 else 1
    if node.op_type in ("Scaler", "Normalizer"):
        return helper.make_tensor_type_proto(FLOAT, dims)
    if node.op_type == "Imputer":
        return helper.make_tensor_type_proto(first.tensor_type.elem_type, dims)
    if node.op_type == "LinearRegressor":
        return helper.make_tensor_type_proto(FLOAT, [rows, _int(node, "targets", 1)])
    if node.op_type == "FeatureVectorizer":
        return helper.make_tensor_type_proto(FLOAT, [rows, sum(_ints(node, "inputdimensions"))])
    indices = _dims(types.get(node.input[-1]))
    if node.op_type == "ArrayFeatureExtractor" and len(dims) == 1 and indices and None not in indices:
        return helper.make_tensor_type_proto(first.tensor_type.elem_type, [1, int(np.prod(indices))])
    return None


def declare(model: onnx.ModelProto, types: dict[str, onnx.TypeProto]) -> bool:
    """Declare in ``model`` (modified in place) the types :func:`output_type` derives for outputs
    whose shape ``types`` lacks; a declared output keeps its element type. True when any was added."""
    graph = model.graph
    nodes = [n for n in graph.node if n.domain == ML_DOMAIN and n.output]
    if not nodes:
        return False
    outputs = {o.name: o for o in graph.output}
    declared_before = {v.name for v in graph.value_info} | {o.name for o in graph.output if _dims(o.type)}
    added = False
    for node in nodes:
        out = node.output[0]
        if not out or out in declared_before or _dims(types.get(out)) is not None:
            continue
        found = output_type(node, types)
        if found is None:
            continue
        declared = outputs.get(out)
        if declared is not None:
            elem = declared.type.tensor_type.elem_type or found.tensor_type.elem_type
            declared.type.CopyFrom(helper.make_tensor_type_proto(elem, _dims(found)))
        else:
            graph.value_info.append(helper.make_value_info(out, found))
        added = True
    return added
