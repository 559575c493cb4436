"""What a generated token's score is: its logit, its probability or its log-probability, and the
contrastive forms of each (the token's against another's), as Inseq's step functions define them.

A causal language model outputs logits ``[N, T, V]``: the logits at position ``t`` predict the token
at ``t + 1``. Each copy explained scores one step: an in-memory copy of the model (the user's file is
never changed) takes one more input, :data:`STEP`, a one-hot ``[N, T]`` float row per copy that
selects the step's position (``MatMul`` of it with the logits: ``[N, V]``; where the logits are a
``MatMul`` of the hidden states by constant weights, the language-model head, with the hidden states
before it, so that the head runs at one position instead of ``T``), and squashes the row by
a softmax or a log-softmax over the vocabulary for the probability and the log-probability, so that
every method differentiates through them exactly (integrated gradients walks a path on which the
softmax changes). A step's score is then a class of that ``[N, V]`` output (the token), or for a
contrastive score a seed, one at the token and minus one at the contrast token:
``p(token) - p(contrast)`` (Inseq's ``contrast_prob_diff``), ``logit(token) - logit(contrast)`` or
the log-probabilities' difference.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..support.errors import InputError

SCORES = ("probability", "logit", "log_probability")
SQUASH = {"probability": "Softmax", "log_probability": "LogSoftmax"}
STEP = "xai_step"


def step_model(model: onnx.ModelProto, output: str, score: str) -> tuple[onnx.ModelProto, str]:
    """``model`` (the caller's private copy, changed in place: no second copy of a language model's
    weights) with one step's ``score`` ``[N, V]`` as its first output in place of ``output`` (module
    docstring), and that output's name."""
    if score not in SCORES:
        raise InputError(f"a generated token's score is one of {', '.join(SCORES)}, not {score!r}")
    copy = model
    graph, name = copy.graph, f"xai_step_{score}"
    graph.input.append(helper.make_tensor_value_info(STEP, TensorProto.FLOAT, ["N", "T"]))
    last = name if score == "logit" else "xai_step_logits"
    if _opset(copy) >= 13:  # axes as an input
        graph.initializer.append(helper.make_tensor("xai_step_axis", TensorProto.INT64, [1], [1]))
        unsqueeze = helper.make_node("Unsqueeze", [STEP, "xai_step_axis"], ["xai_step_row"])
        squeeze = helper.make_node("Squeeze", ["xai_step_picked", "xai_step_axis"], [last])
    else:
        unsqueeze = helper.make_node("Unsqueeze", [STEP], ["xai_step_row"], axes=[1])
        squeeze = helper.make_node("Squeeze", ["xai_step_picked"], [last], axes=[1])
    head = _head(copy, output)
    if head is None:
        picked = [helper.make_node("MatMul", ["xai_step_row", output], ["xai_step_picked"])]
    else:  # the hidden states' row, then the head: [N, 1, D] @ W -> [N, 1, V]
        hidden, weight = head
        picked = [helper.make_node("MatMul", ["xai_step_row", hidden], ["xai_step_hidden"])]
        picked.append(helper.make_node("MatMul", ["xai_step_hidden", weight], ["xai_step_picked"]))
    selected = [unsqueeze, *picked, squeeze]
    if score != "logit":
        selected.append(helper.make_node(SQUASH[score], [last], [name], axis=-1))
    graph.node.extend(selected)
    kept = [o for o in graph.output if o.name != output]  # the full logits: not computed any more
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "V"]), *kept])
    return copy, name


def _head(model: onnx.ModelProto, output: str) -> tuple[str, str] | None:
    """The hidden states and the constant weights of the MatMul that makes ``output`` (a language
    model's head, as torch.onnx writes a bias-free ``Linear``), else None."""
    producer = next((n for n in model.graph.node if output in n.output), None)
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    if producer is None or producer.op_type != "MatMul" or producer.input[1] not in constants:
        return None
    return producer.input[0], producer.input[1]


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def step_rows(count: int, length: int, positions) -> np.ndarray:
    """The :data:`STEP` input: row ``k`` one at ``positions[k]``, ``[count, length]`` float32."""
    rows = np.zeros((count, length), np.float32)
    rows[np.arange(count), positions] = 1.0
    return rows


def contrast_seeds(vocabulary: int, tokens, contrasts) -> np.ndarray:
    """Per step, one at the token and minus one at the contrast token, ``[K, V]``."""
    seeds = np.zeros((len(tokens), vocabulary), np.float32)
    rows = np.arange(len(tokens))
    seeds[rows, tokens] = 1.0
    seeds[rows, contrasts] -= 1.0
    return seeds
