"""Freeing the batch dimension of models exported with a static batch (1, 4, any size).

The rewritten graph explains a whole batch in one run (SmoothGrad sends its noisy copies as one
batch), so the batch dimension must be symbolic. For a model exported with a fixed batch B, the
input and output batch dimensions equal to B become ``"N"``, stale ``value_info`` is dropped, and
constant Reshape targets that hard-code B as the first dimension of a tensor whose first dimension
is the batch get a 0 (copy the input's batch) or -1 in its place. If shape inference still pins the
score's batch afterwards, the model is refused with an error that says how to re-export it, unless
the score's shape is unknown because a node on its way is no standard ONNX op (a custom domain's, or a
converter's leftover such as tf2onnx's ``TFL_*``): then that node is named, since shape inference and
the gradient both stop there.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..support.errors import ModelError
from .emitter import all_names
from .info import GraphInfo, attr
from .paths import ancestors

BATCH = "N"


def static_batch(info: GraphInfo, image: str) -> int | None:
    """The image input's batch size when the model fixes it, else None."""
    shape = info.shape(image)
    return shape[0] if shape is not None and len(shape) > 0 and isinstance(shape[0], int) else None


def free_batch(model: onnx.ModelProto, info: GraphInfo, batch: int) -> onnx.ModelProto:
    """Make the fixed batch ``batch`` of ``model`` (already a private copy) symbolic, in place.

    ``info`` describes the model before the change; only its literal constants are read (values
    folded from shapes were computed with the batch pinned and may depend on it).
    """
    graph = model.graph
    for vi in list(graph.input) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.name in {t.name for t in graph.initializer} or not dims:
            continue
        if dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_param = BATCH
    del graph.value_info[:]
    taken = all_names(graph)
    for node in graph.node:
        if node.op_type == "Reshape":
            _free_reshape_target(info, graph, node, taken, batch)
    return model


def _free_reshape_target(
    info: GraphInfo, graph: onnx.GraphProto, node: onnx.NodeProto, taken: set[str], batch: int
) -> None:
    shape = info.const_value(node.input[1], folded=False)
    data = info.shape(node.input[0])
    if (
        shape is None
        or shape.size == 0
        or shape.reshape(-1)[0] != batch
        or (batch != 1 and (not data or data[0] != batch))
    ):
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


def check_batch_free(info: GraphInfo, score: str, batch: int | None) -> None:
    """After freeing, the score's first dimension must follow the batch (shape inference gives it
    the batch symbol); a fixed size or an unknown one means the batch is baked in elsewhere."""
    shape = info.shape(score)
    if batch is not None and (shape is None or not isinstance(shape[0], str)):
        foreign = nonstandard_nodes(info, score)
        if foreign:
            raise ModelError(
                f"{len(foreign)} node{'s' if len(foreign) > 1 else ''} on the way to the score "
                f"{'are' if len(foreign) > 1 else 'is'} no standard ONNX op: {', '.join(foreign)}; "
                "shape inference and the gradient stop there (export them as standard ops)"
            )
        raise ModelError(
            f"the model was exported with a static batch of {batch} and hard-codes it "
            "beyond Reshape targets; re-export it with a dynamic batch axis (torch: "
            "dynamic_axes={'input': {0: 'N'}}; tf2onnx: a None batch dimension)"
        )


def nonstandard_nodes(info: GraphInfo, score: str) -> list[str]:
    """The nodes the score depends on whose op is not in the ONNX standard (``'name' (Op, domain)``)."""
    needed = ancestors(info, score)
    return [
        f"'{n.name}' ({n.op_type}{f', domain {n.domain}' if n.domain else ''})"
        for n in info.nodes()
        if not needed.isdisjoint(n.output) and not onnx.defs.has(n.op_type, n.domain or "")
    ]
