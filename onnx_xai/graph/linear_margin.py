"""A linear classifier's margin: the score before its post-transform, added to the analysis's copy.

An ``ai.onnx.ml`` ``LinearClassifier`` computes its raw scores ``s = x W^T + b`` and writes them
post-transformed (LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT) with no tensor of ``s`` in the graph. The
image rule explains the logit before a final Sigmoid or Softmax, and a tree ensemble is explained in
margin space; so is a linear classifier: where the explained score is such a classifier's output
(through the float Casts and the L1 ``Normalizer`` skl2onnx writes after it), standard ops computing
``s`` from the classifier's own input are appended to the private copy and ``s`` is the score, of
kind ``pre-sigmoid`` (LOGISTIC), ``pre-softmax`` (SOFTMAX, SOFTMAX_ZERO) or ``pre-probit``. These are
scikit-learn's ``decision_function`` per class (for one row of coefficients and two class labels,
where onnxruntime writes ``[1 - sigmoid(s), sigmoid(s)]``, the margins are ``[-s, s]``). Where
onnxruntime applies no post-transform (NONE; one row and two labels under SOFTMAX, where it writes
``[1 - s, s]``; one row without two labels, unless PROBIT) the output already is linear in ``s`` and
stays the score.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .analysis import Score
from .info import GraphInfo, attr
from .rules.ml import classifier_rows

KINDS = {
    "LOGISTIC": "pre-sigmoid",
    "SOFTMAX": "pre-softmax",
    "SOFTMAX_ZERO": "pre-softmax",
    "PROBIT": "pre-probit",
}
MARGIN = "xai_margin"


def linear_margin(model: onnx.ModelProto, info: GraphInfo, score: Score) -> Score | None:
    """The margin score of the linear classifier behind ``score`` (module docstring), its nodes
    appended to ``model`` (a private copy; ``info`` describes it before); None where there is none."""
    if score.kind != "logit" or score.moves:
        return None
    node = _classifier_behind(info, score.name)
    if node is None or info.rank(node.input[0]) != 2:
        return None
    post = attr(node, "post_transform", "NONE")
    rows, binary = classifier_rows(node)
    transformed = post == "LOGISTIC" if binary else (post in KINDS and (rows > 1 or post == "PROBIT"))
    if not transformed:
        return None
    name = _unused(info, MARGIN)
    model.graph.node.extend(_margin_nodes(model, node, rows, binary, name))
    return Score(name, KINDS[post])


def _classifier_behind(info: GraphInfo, name: str) -> onnx.NodeProto | None:
    """The LinearClassifier whose scores ``name`` is, through float Casts and an L1 Normalizer."""
    node = info.producer.get(name)
    while node is not None and (
        (node.op_type == "Cast" and info.is_float(node.input[0]) and info.is_float(node.output[0]))
        or (node.op_type == "Normalizer" and attr(node, "norm", "MAX") == "L1")
    ):
        node = info.producer.get(node.input[0])
    if node is None or node.op_type != "LinearClassifier" or len(node.output) < 2:
        return None
    return node


def _margin_nodes(model: onnx.ModelProto, node: onnx.NodeProto, rows: int, binary: bool, name: str) -> list:
    """``s = Cast(x, float) W^T + b`` (onnxruntime computes in float32), ``[-s, s]`` for one row with
    two labels."""
    coefficients = np.asarray(attr(node, "coefficients"), np.float32)
    features = coefficients.size // rows
    w, b, x = f"{name}_coefficients", f"{name}_intercepts", f"{name}_input"
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(coefficients[: rows * features].reshape(rows, features), w),
            numpy_helper.from_array(np.asarray(attr(node, "intercepts"), np.float32), b),
        ]
    )
    raw = f"{name}_raw" if binary else name
    nodes = [
        helper.make_node("Cast", [node.input[0]], [x], to=TensorProto.FLOAT, name=x),
        helper.make_node("Gemm", [x, w, b], [raw], transB=1, name=raw),
    ]
    if binary:
        negated = f"{name}_negated"
        nodes += [
            helper.make_node("Neg", [raw], [negated], name=negated),
            helper.make_node("Concat", [negated, raw], [name], axis=1, name=name),
        ]
    return nodes


def _unused(info: GraphInfo, name: str) -> str:
    taken = set(info.producer) | {i.name for i in info.graph.input} | {t.name for t in info.graph.initializer}
    found, k = name, 0
    while any(t == found or t.startswith(found + "_") for t in taken):
        k += 1
        found = f"{name}{k}"
    return found
