"""Reading a model's two ends: the input it explains, where gradients start, and its score.

- Explained input: the named input; else the first 4-D input of a float type (a photo), else the
  first 4-D input of an integer type (edge exports with the preprocessing baked in take uint8
  pixels), else the first integer input that an embedding reads (token ids, beside their float
  masks), else the first float input of any rank (a table's rows, a signal); a language model's
  cache inputs (``past_key_values.*``) are never chosen. What kind of model
  that makes (:func:`input_kind`): ``image``, ``table``, ``signal``, ``tokens`` or ``tensor``.
- Differentiable point: a float input itself; for integer pixels, the first float tensor computed
  from them (the Cast, after any Transpose/Reshape of the integers), so that gradients are d score /
  d pixel value, the moves before the Cast undone on the gradient, which comes back in the input's
  own shape and layout; for integer ids, the output of the Gather that reads their rows from a float
  ``[V, D]`` table (the embedding; or a tensor named with ``embedding``), whose gradient is
  ``[..., D]`` per id, as Captum's layer methods on ``word_embeddings`` give it.
- Score: the model's first output (or a named one): ``[N, K]`` for a classifier, any shape for the
  seeded objectives (segmentation maps, detector outputs, dense maps). When a Softmax or LogSoftmax
  produces it, the score is that op's input (pre-softmax); when a Sigmoid does (multi-label heads,
  probability maps), the pre-sigmoid logit, whose gradient does not vanish where the probability
  saturates; also when only shape moves (Transpose, Reshape, Squeeze, Unsqueeze, Flatten) stand
  between that op and the output, as detector heads write ``Sigmoid -> Transpose -> Reshape``: the
  score is then the logit laid out as the output (the moves replayed on it, ``Score.moves``). A QDQ
  model's quantized output is read before its quantization; a ZipMap's (the sequence of maps that
  scikit-learn's converters write as probabilities) at ZipMap's input, so ZipMap is never on the
  gradient's path. A tree ensemble's output is explained in margin space, its scores before the
  post-transform (kind ``margin``; the runtime computes them from the trees' attributes).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..support.errors import ModelError
from .branches import PAST_PREFIXES
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
ID_TYPES = frozenset({onnx.TensorProto.INT32, onnx.TensorProto.INT64})  # token ids
KINDS = ("image", "table", "signal", "tokens", "tensor")
OBJECTIVES = ("logit", "probability")  # the score before the final squashing (or trees' margin), or as given
MOVES = frozenset({"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"})
SCORE_KINDS = {"Softmax": "pre-softmax", "LogSoftmax": "pre-softmax", "Sigmoid": "pre-sigmoid"}
SHAPE_ONLY = frozenset({"Shape", "Size"})
SCORE_MOVES = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})
TREE_ENSEMBLES = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})


@dataclass(frozen=True)
class Score:
    """The explained score tensor ``[N, K]`` and what it is: ``logit`` (the output itself),
    ``pre-softmax`` or ``pre-sigmoid``."""

    name: str
    kind: str
    moves: tuple = ()  # shape moves between the Sigmoid/Softmax and the output, replayed on the logit


def explained_input(info: GraphInfo, name: str | None = None) -> str:
    """The input explained (see the module docstring)."""
    inputs = info.graph_input_names()
    if name is not None:
        if name not in inputs:
            raise ModelError(f"the model has no input {name!r}; inputs: {', '.join(inputs)}")
        return name
    inputs = [n for n in inputs if not n.startswith(PAST_PREFIXES)]  # a language model's cache
    four_d = [n for n in inputs if info.rank(n) == 4]
    pixels = [n for n in four_d if info.is_float(n)] + [n for n in four_d if info.dtype(n) in INTEGER_TYPES]
    floats = [n for n in inputs if info.is_float(n) and (info.rank(n) or 0) >= 1]
    ids = [n for n in inputs if info.dtype(n) in ID_TYPES and embedding_of(info, n) is not None]
    for n in pixels + ids + floats:
        return n
    described = ", ".join(f"{n} {_type_name(info, n)} {list(info.shape(n) or [])}" for n in inputs)
    raise ModelError(
        f"no input to explain among the model's inputs: {described} (a float input, integer pixels, "
        "or integer ids read by an embedding: name it with input_name, or its embedding with embedding)"
    )


def image_input(info: GraphInfo, name: str | None = None) -> str:
    """The explained input (kept under the name the image-only analysis gave it)."""
    return explained_input(info, name)


def input_kind(info: GraphInfo, name: str, point: str) -> str:
    """What kind of model explaining ``name`` (at ``point``) makes it (:data:`KINDS`)."""
    rank = info.rank(name)
    if point != name and info.dtype(name) in ID_TYPES and info.rank(point) == (rank or 0) + 1:
        return "tokens"
    if rank == 4:
        return "image"
    if rank == 2 and info.is_float(name):
        return "table"
    return "signal" if rank == 3 and info.is_float(name) else "tensor"


def _type_name(info: GraphInfo, name: str) -> str:
    return onnx.TensorProto.DataType.Name(info.dtype(name)).lower()


def embedding_of(info: GraphInfo, ids: str) -> str | None:
    """The output of the Gather that reads ``ids``' rows from a float ``[V, D]`` table (for a table
    quantized by dynamic quantization, the DequantizeLinear that reads the rows), when the ids reach
    one through shape moves and integer Casts only (else None)."""
    current = ids
    while True:
        consumers = data_consumers(info, current)
        gathers = [
            c
            for c in consumers
            if c.op_type == "Gather"
            and c.input[1] == current
            and info.rank(c.input[0]) == 2
            and _attr_axis(c) == 0
        ]
        for gather in gathers:
            if not data_consumers(info, gather.output[0]):
                continue  # read for its shape only (an optimizer's leftover lookup): not the point
            if info.is_float(gather.input[0]):
                return gather.output[0]
            read = data_consumers(
                info, gather.output[0]
            )  # a quantized table: read through its dequantization
            if len(read) == 1 and read[0].op_type == "DequantizeLinear":
                return read[0].output[0]
        moves = [
            c
            for c in consumers
            if c.op_type in MOVES or (c.op_type == "Cast" and not info.is_float(c.output[0]))
        ]  # a Cast between integer types too (the transformer optimizer's int32 ids)
        if len(moves) != 1:
            return None
        current = moves[0].output[0]


def _attr_axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def data_consumers(info: GraphInfo, name: str) -> list[onnx.NodeProto]:
    """The consumers of a tensor that read its values (not just its shape)."""
    return [c for c in info.consumers.get(name, []) if c.op_type not in SHAPE_ONLY]


def differentiable_input(
    info: GraphInfo, image: str, embedding: str | None = None
) -> tuple[str, list[onnx.NodeProto]]:
    """The float tensor gradients are taken for, and the moves that lead to it from the input (none
    for an embedding: its gradient is its own, ``[..., D]``)."""
    if embedding is not None:
        return _named_embedding(info, image, embedding), []
    if info.is_float(image):
        return image, []
    found = embedding_of(info, image) if info.dtype(image) in ID_TYPES else None
    if found is not None:
        return found, []
    if info.dtype(image) not in INTEGER_TYPES:
        raise ModelError(
            f"the input {image!r} is {_type_name(info, image)}: neither floats, integer pixels, nor ids "
            "read by an embedding (name one with embedding)"
        )
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


def _named_embedding(info: GraphInfo, ids: str, name: str) -> str:
    """A tensor named as the explained point: a float tensor computed from the input."""
    from .paths import dependents

    if name not in info.producer or not info.is_float(name):
        raise ModelError(f"embedding {name!r} is not a float tensor computed in the model")
    if name not in dependents(info, [ids]):
        raise ModelError(f"embedding {name!r} is not computed from the input {ids!r}")
    return name


def _quantized(info: GraphInfo, name: str) -> bool:
    """Whether ``name`` is DequantizeLinear(QuantizeLinear(x)): a QDQ model's quantized output."""
    node = info.producer.get(name)
    return (
        node is not None
        and node.op_type == "DequantizeLinear"
        and info.producer.get(node.input[0]) is not None
        and info.producer[node.input[0]].op_type == "QuantizeLinear"
    )


def score_tensor(info: GraphInfo, output: str | None = None, as_given: bool = False) -> Score:
    """The score behind the named (or first) model output (see the module docstring); ``as_given``:
    the output itself, probabilities and all (kind ``output``), a ZipMap read at its input."""
    outputs = [o.name for o in info.graph.output]
    name = output if output is not None else default_output(info)
    if name not in outputs:
        raise ModelError(f"the model has no output {name!r}; outputs: {', '.join(outputs)}")
    name = _before_zipmap(info, name)
    if as_given:
        return Score(name, "output")
    moves = _moves_after_activation(info, name)
    if moves:
        name = moves[0].input[0]
    kind = "logit"
    while (
        name in info.producer
        and info.producer[name].op_type in ("Identity", *SCORE_KINDS)
        or _quantized(info, name)
        or _times_one(info, name) is not None
    ):
        if _times_one(info, name) is not None:  # onnxmltools' Mul(probabilities, 1)
            name = _times_one(info, name) or name
            continue
        node = info.producer[name]
        if node.op_type in SCORE_KINDS:
            if kind != "logit":
                break
            kind = SCORE_KINDS[node.op_type]
        name = info.producer[node.input[0]].input[0] if _quantized(info, name) else node.input[0]
    if name in info.producer and info.producer[name].op_type in TREE_ENSEMBLES and kind == "logit":
        kind = "margin"  # read as the trees' scores before their post-transform (runtime.margins)
    return Score(name, kind, tuple(moves))


def _times_one(info: GraphInfo, name: str) -> str | None:
    """The other input where ``name`` is a Mul (or Div) of it by a constant of ones, else None."""
    node = info.producer.get(name)
    if node is None or node.op_type not in ("Mul", "Div") or len(node.input) != 2:
        return None
    for value, other in ((node.input[1], node.input[0]), (node.input[0], node.input[1])):
        const = info.const_value(value)
        if (
            const is not None
            and const.size
            and (const == 1).all()
            and (node.op_type == "Mul" or value == node.input[1])
        ):
            return other
    return None


def _before_zipmap(info: GraphInfo, name: str) -> str:
    """ZipMap's input where ZipMap writes ``name``: a sequence of maps, which no gradient crosses, read
    as the scores it zips (before a Cast of data that feeds it, as skl2onnx writes for an SVC)."""
    node = info.producer.get(name)
    if node is None or node.op_type != "ZipMap":
        return name
    cast = info.producer.get(node.input[0])
    if cast is not None and cast.op_type == "Cast" and info.carries_data(cast.input[0]):
        return cast.input[0]
    return node.input[0]


def default_output(info: GraphInfo) -> str:
    """The output explained when none is named: the first one, unless it holds integers (a
    classifier's labels, as scikit-learn's converters put them first) and another does not."""
    outputs = [o.name for o in info.graph.output]
    numbers = [n for n in outputs if info.dtype(n) not in (*ID_TYPES, onnx.TensorProto.STRING)]
    return (
        numbers[0]
        if numbers and info.dtype(outputs[0]) in (*ID_TYPES, onnx.TensorProto.STRING)
        else outputs[0]
    )


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
