"""Reading a classifier's two ends: its image input, where gradients start, and its score.

- Image input: the named input, or the first 4-D input of a float type, else the first 4-D input of
  an integer type (edge exports with the preprocessing baked in take uint8 pixels).
- Differentiable input: a float input itself; for an integer input, the first float tensor computed
  from it (the Cast of the pixels, after any Transpose/Reshape of the integers), so that gradients
  are d score / d pixel value. The moves before the Cast are undone on the gradient, which comes
  back in the input's own shape and layout.
- Score: the model's first output (or a named one): ``[N, K]`` for a classifier, any shape for the
  seeded objectives (segmentation maps, detector outputs, dense maps). When a Softmax or LogSoftmax
  produces it, the score is that op's input (pre-softmax); when a Sigmoid does (multi-label heads,
  probability maps), the pre-sigmoid logit, whose gradient does not vanish where the probability
  saturates; also when only shape moves (Transpose, Reshape, Squeeze, Unsqueeze, Flatten) stand
  between that op and the output, as detector heads write ``Sigmoid -> Transpose -> Reshape``: the
  score is then the logit laid out as the output (the moves replayed on it, ``Score.moves``). A QDQ
  model's quantized output is read before its quantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..errors import ModelError
from .info import GraphInfo

INTEGER_TYPES = frozenset(
    {
        onnx.TensorProto.UINT8,
        onnx.TensorProto.INT8,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT32,
    }
)
MOVES = frozenset({"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"})
SCORE_KINDS = {"Softmax": "pre-softmax", "LogSoftmax": "pre-softmax", "Sigmoid": "pre-sigmoid"}
SHAPE_ONLY = frozenset({"Shape", "Size"})
SCORE_MOVES = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})


@dataclass(frozen=True)
class Score:
    """The explained score tensor ``[N, K]`` and what it is: ``logit`` (the output itself),
    ``pre-softmax`` or ``pre-sigmoid``."""

    name: str
    kind: str
    moves: tuple = ()  # shape moves between the Sigmoid/Softmax and the output, replayed on the logit


def image_input(info: GraphInfo, name: str | None = None) -> str:
    """The image input: the named one, or the first 4-D float input, else the first 4-D integer one."""
    inputs = info.graph_input_names()
    if name is not None:
        if name not in inputs:
            raise ModelError(f"the model has no input {name!r}; inputs: {', '.join(inputs)}")
        return name
    four_d = [n for n in inputs if info.rank(n) == 4]
    for n in [n for n in four_d if info.is_float(n)] + [n for n in four_d if info.dtype(n) in INTEGER_TYPES]:
        return n
    described = ", ".join(f"{n} {list(info.shape(n) or [])}" for n in inputs)
    raise ModelError(f"no 4-D image input (float or integer pixels) among the model's inputs: {described}")


def data_consumers(info: GraphInfo, name: str) -> list[onnx.NodeProto]:
    """The consumers of a tensor that read its values (not just its shape)."""
    return [c for c in info.consumers.get(name, []) if c.op_type not in SHAPE_ONLY]


def differentiable_input(info: GraphInfo, image: str) -> tuple[str, list[onnx.NodeProto]]:
    """The float tensor gradients are taken for, and the moves that lead to it from the input."""
    if info.is_float(image):
        return image, []
    if info.dtype(image) not in INTEGER_TYPES:
        raise ModelError(f"the image input {image!r} is neither float nor integer pixels")
    current, chain = image, list[onnx.NodeProto]()
    while True:
        consumers = data_consumers(info, current)
        if len(consumers) != 1:
            ops = ", ".join(c.op_type for c in consumers) or "nothing"
            raise ModelError(
                f"the integer input {image!r} must be cast to float once before any "
                f"arithmetic; {current!r} feeds {ops}"
            )
        node = consumers[0]
        if node.op_type == "Cast" and info.is_float(node.output[0]):
            return node.output[0], chain
        if node.op_type not in MOVES:
            raise ModelError(
                f"the integer input {image!r} reaches {node.op_type} {node.name!r} before "
                "it is cast to float; gradients need float pixels"
            )
        chain.append(node)
        current = node.output[0]


def _quantized(info: GraphInfo, name: str) -> bool:
    """Whether ``name`` is DequantizeLinear(QuantizeLinear(x)): a QDQ model's quantized output."""
    node = info.producer.get(name)
    return (
        node is not None
        and node.op_type == "DequantizeLinear"
        and info.producer.get(node.input[0]) is not None
        and info.producer[node.input[0]].op_type == "QuantizeLinear"
    )


def score_tensor(info: GraphInfo, output: str | None = None) -> Score:
    """The score behind the named (or first) model output (see the module docstring)."""
    outputs = [o.name for o in info.graph.output]
    name = output if output is not None else outputs[0]
    if name not in outputs:
        raise ModelError(f"the model has no output {name!r}; outputs: {', '.join(outputs)}")
    moves = _moves_after_activation(info, name)
    if moves:
        name = moves[0].input[0]
    kind = "logit"
    while (
        name in info.producer
        and info.producer[name].op_type in ("Identity", *SCORE_KINDS)
        or _quantized(info, name)
    ):
        node = info.producer[name]
        if node.op_type in SCORE_KINDS:
            if kind != "logit":
                break
            kind = SCORE_KINDS[node.op_type]
        name = info.producer[node.input[0]].input[0] if _quantized(info, name) else node.input[0]
    return Score(name, kind, tuple(moves))


def _moves_after_activation(info: GraphInfo, output: str) -> list[onnx.NodeProto]:
    """The shape moves (forward order) between a Sigmoid/Softmax and ``output``; empty when none
    stand there or no such op precedes them."""
    moves: list[onnx.NodeProto] = []
    name = output
    while name in info.producer and info.producer[name].op_type in SCORE_MOVES:
        moves.insert(0, info.producer[name])
        name = info.producer[name].input[0]
    found = name in info.producer and info.producer[name].op_type in SCORE_KINDS
    return moves if found else []


def probability_outputs(info: GraphInfo) -> list[str]:
    """The outputs whose every value comes from a Sigmoid or Softmax through shape moves, picks
    (Gather, Slice) and Concat: probabilities in [0, 1], as DETR's normalized boxes and detector scores
    are."""
    picks = SCORE_MOVES | {"Gather", "Slice", "Identity"}

    def squashed(name: str) -> bool:
        while name in info.producer and info.producer[name].op_type in picks:
            name = info.producer[name].input[0]
        node = info.producer.get(name)
        if node is not None and node.op_type == "Concat":  # RT-DETR: Concat(Sigmoid(boxes), Sigmoid(scores))
            return all(squashed(i) for i in node.input)
        return node is not None and node.op_type in ("Sigmoid", "Softmax")

    return [o.name for o in info.graph.output if squashed(o.name)]
