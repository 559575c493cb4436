"""Reading a classifier's structure: its image input, its score, its target layer and its head.

- Score: the model's first output (or a named one); when it is produced by Softmax or LogSoftmax the
  score is that op's input, the pre-softmax logits ``[N, K]``.
- Target layer: the last 4-D activation with spatial size > 1 that every path from the input to the
  score passes through (a dominator). For a CNN this is the input of the head's spatial collapse, after
  the BN/ReLU that follow the last Conv (ResNet ``layer4``, VGG ``features``).
- CAM head: target -> GlobalAveragePool or ReduceMean over the spatial axes -> optional
  Flatten/Reshape/Squeeze/Dropout/Identity -> Gemm, or MatMul (+ Add), producing the score, with
  constant weights; the weight matrix is identified so that CAM is ``sum_k w[c, k] A_k``.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..errors import ModelError
from .info import GraphInfo, attr
from .rules._shared import reduce_axes

PASS_THROUGH = ("Flatten", "Reshape", "Squeeze", "Dropout", "Identity")


@dataclass
class CamHead:
    """A GAP -> linear head: ``weight`` is an initializer of shape [K, C] (``transposed`` False) or
    [C, K] (``transposed`` True), scaled by ``alpha``."""
    weight: str
    transposed: bool
    alpha: float
    ops: list[str]


def image_input(info: GraphInfo, name: str | None = None) -> str:
    """The image input: the named one, or the first 4-D float graph input."""
    inputs = info.graph_input_names()
    if name is not None:
        if name not in inputs:
            raise ModelError(f"the model has no input {name!r}; inputs: {', '.join(inputs)}")
        return name
    for n in inputs:
        if info.is_float(n) and info.rank(n) == 4:
            return n
    raise ModelError(f"no 4-D float image input among the model's inputs: {', '.join(inputs)}")


def score_tensor(info: GraphInfo, output: str | None = None) -> str:
    """The pre-softmax score tensor [N, K] behind the named (or first) model output."""
    outputs = [o.name for o in info.graph.output]
    name = output if output is not None else outputs[0]
    if name not in outputs:
        raise ModelError(f"the model has no output {name!r}; outputs: {', '.join(outputs)}")
    while name in info.producer and info.producer[name].op_type in ("Softmax", "LogSoftmax", "Identity"):
        name = info.producer[name].input[0]
    if info.rank(name) not in (2, None):
        raise ModelError(f"the score {name!r} has shape {info.shape(name)}, expected [batch, classes]")
    return name


def layout_of(info: GraphInfo, image: str) -> str:
    """"NHWC" when the image input is channels-last (TensorFlow exports), else "NCHW".

    Channels-last when the input goes straight into a Transpose to channels-first, or when its last
    dimension looks like colour channels (1, 3, 4) and the two before it like an image (> 4).
    """
    if any(n.op_type == "Transpose" and attr(n, "perm") == [0, 3, 1, 2]
           for n in info.consumers.get(image, [])):
        return "NHWC"
    shape = info.shape(image)
    if shape is None or len(shape) != 4:
        return "NCHW"
    spatial = [d for d in shape[1:3] if isinstance(d, int)]
    channels_last = shape[-1] in (1, 3, 4) and len(spatial) == 2 and min(spatial) > 4
    return "NHWC" if channels_last else "NCHW"


def _reaches(info: GraphInfo, source: str, target: str, blocked: str) -> bool:
    """Whether ``target`` depends on ``source`` through data (not shape arithmetic, which carries no
    gradient) when ``blocked`` is cut out of the graph."""
    reached = {source}
    for node in info.nodes():
        if any(i in reached and i != blocked for i in node.input):
            reached.update(o for o in node.output if o != blocked and _carries_data(info, o))
    return target in reached


def _carries_data(info: GraphInfo, name: str) -> bool:
    return info.dtype(name) == 0 or info.is_float(name)


def _spatial_size_above_one(info: GraphInfo, name: str, layout: str) -> bool:
    dims = info.shape(name)
    spatial = dims[2:] if layout == "NCHW" else dims[1:3]
    known = [d for d in spatial if isinstance(d, int)]
    return len(known) < 2 or known[0] * known[1] > 1


def target_candidates(info: GraphInfo, image: str, score: str, layout: str, limit: int = 10
                      ) -> list[str]:
    """4-D float tensors with spatial size > 1 that every path from image to score crosses, last
    first (at most ``limit``)."""
    found = []
    for node in reversed(list(info.nodes())):
        for name in node.output:
            if name and info.is_float(name) and info.rank(name) == 4 and \
                    _spatial_size_above_one(info, name, layout) and \
                    not _reaches(info, image, score, blocked=name) and _reaches(info, image, name, ""):
                found.append(name)
                if len(found) == limit:
                    return found
    return found


def target_layer(info: GraphInfo, image: str, score: str, layout: str) -> str:
    """The last 4-D float tensor with spatial size > 1 that every path from image to score crosses."""
    found = target_candidates(info, image, score, layout, limit=1)
    if not found:
        raise ModelError("found no 4-D activation that every path from the input to the score passes "
                         "through; name one with target_layer")
    return found[0]


def check_target_layer(info: GraphInfo, name: str, image: str, score: str) -> None:
    if name not in info.producer:
        raise ModelError(f"the model has no tensor named {name!r} produced by a node")
    if info.rank(name) != 4 or not info.is_float(name):
        raise ModelError(f"target layer {name!r} must be a 4-D float tensor, it has shape "
                         f"{info.shape(name)}")
    if not _reaches(info, image, name, "") or not _reaches(info, name, score, ""):
        raise ModelError(f"target layer {name!r} does not lie between the input and the score")


def _only_consumer(info: GraphInfo, name: str) -> onnx.NodeProto | None:
    consumers = info.consumers.get(name, [])
    return consumers[0] if len(consumers) == 1 else None


def _is_spatial_pool(info: GraphInfo, node: onnx.NodeProto, layout: str) -> bool:
    if node.op_type == "GlobalAveragePool":
        return layout == "NCHW"
    if node.op_type == "ReduceMean":
        return reduce_axes(info, node) == ([2, 3] if layout == "NCHW" else [1, 2])
    return False


def cam_head(info: GraphInfo, target: str, score: str, layout: str) -> CamHead | str:
    """The CAM head after ``target``, or a sentence saying why the head is not GAP -> linear."""
    ops, name = [], target
    node = _only_consumer(info, name)
    if node is None or not _is_spatial_pool(info, node, layout):
        return _not_cam(info, target, score)
    ops.append(node.op_type)
    name = node.output[0]
    node = _only_consumer(info, name)
    while node is not None and node.op_type in PASS_THROUGH:
        ops.append(node.op_type)
        name, node = node.output[0], _only_consumer(info, node.output[0])
    if node is None or node.op_type not in ("Gemm", "MatMul") or node.input[0] != name:
        return _not_cam(info, target, score)
    ops.append(node.op_type)
    weight = node.input[1]
    if info.const_value(weight) is None or attr(node, "transA", 0):
        return _not_cam(info, target, score)
    end = node.output[0]
    if node.op_type == "MatMul" and end != score:
        bias = _only_consumer(info, end)
        if bias is None or bias.op_type != "Add" or not any(info.is_const(i) for i in bias.input):
            return _not_cam(info, target, score)
        ops.append("Add")
        end = bias.output[0]
    if end != score:
        return _not_cam(info, target, score)
    transposed = node.op_type == "MatMul" or not attr(node, "transB", 0)
    return CamHead(weight, transposed, float(attr(node, "alpha", 1.0)), ops)


def head_ops(info: GraphInfo, target: str, score: str) -> list[str]:
    """The op types on the paths from ``target`` to ``score``, in graph order."""
    between = []
    for node in info.nodes():
        if target in node.output:
            continue
        if _reaches(info, target, node.output[0], "") and _reaches(info, node.output[0], score, "") \
                or score in node.output:
            between.append(node.op_type)
    return between


def _not_cam(info: GraphInfo, target: str, score: str) -> str:
    ops = head_ops(info, target, score)
    return (f"the head after {target!r} is {' -> '.join(ops) or 'empty'}, not global average pooling "
            "followed by one linear layer; use method 'gradcam', which works on any head")
