"""Freeing the batch dimension of models exported with a static batch of 1.

The rewritten graph explains a whole batch in one run (SmoothGrad sends its noisy copies as one
batch), so the batch dimension must be symbolic. For a model exported with batch 1, the input and
output batch dimensions become ``"N"``, stale ``value_info`` is dropped, and constant Reshape targets
that hard-code the 1 get a 0 (copy the input's batch) or -1 in its place. If shape inference still
pins the score's batch to 1 afterwards, the model is refused with a clear error.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError
from .emitter import all_names
from .info import GraphInfo, attr

BATCH = "N"


def has_static_batch_of_one(info: GraphInfo, image: str) -> bool:
    shape = info.shape(image)
    return shape is not None and len(shape) > 0 and shape[0] == 1


def free_batch(model: onnx.ModelProto, info: GraphInfo) -> onnx.ModelProto:
    """Make the batch dimension of ``model`` (already a private copy) symbolic, in place.

    ``info`` describes the model before the change; only its literal constants are read (values
    folded from shapes were computed with the batch pinned to 1 and may depend on it).
    """
    graph = model.graph
    for vi in list(graph.input) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.name in {t.name for t in graph.initializer} or not dims:
            continue
        if dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = BATCH
    del graph.value_info[:]
    taken = all_names(graph)
    for node in graph.node:
        if node.op_type == "Reshape":
            _free_reshape_target(info, graph, node, taken)
    return model


def _free_reshape_target(info: GraphInfo, graph: onnx.GraphProto, node: onnx.NodeProto,
                         taken: set[str]) -> None:
    shape = info.const_value(node.input[1], folded=False)
    if shape is None or shape.size == 0 or shape.reshape(-1)[0] != 1:
        return
    freed = shape.reshape(-1).copy()
    if attr(node, "allowzero", 0) == 0:
        freed[0] = 0
    elif -1 not in freed:
        freed[0] = -1
    else:
        return
    name = _unique(f"{node.input[1]}_batch_free", taken)
    graph.initializer.append(numpy_helper.from_array(freed.astype(np.int64), name))
    node.input[1] = name


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def check_batch_free(info: GraphInfo, score: str) -> None:
    shape = info.shape(score)
    if shape is not None and shape[0] == 1:
        raise ModelError("the model was exported with a static batch of 1 and hard-codes it beyond "
                         "Reshape targets; re-export it with a dynamic batch dimension")
