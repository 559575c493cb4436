"""onnxruntime's fused embedding layer, written back as the standard ops it fuses, in the analysis's
private copy, so that the word-embedding lookup is a tensor the explanation can stand at.

The transformer optimizer fuses a BERT-like model's embeddings into one ``com.microsoft``
``EmbedLayerNormalization``: the word, position and segment lookups, their sum and the layer
normalization, plus the mask index its ``Attention`` ops read. Integer ids are explained at their
word embedding (Captum's layer methods on ``word_embeddings``), which the fused op never writes out;
so the op becomes ``Gather`` (word, position, segment) + ``Add`` + the layer normalization written
out (mean and variance over the hidden axis, in the model's float type), and the mask index
``ReduceSum`` of the mask, each output keeping its name. The rest of the graph stays as served, its
fused ops differentiated by their own rules. The layer normalization computed so differs from the
fused kernel's by float rounding only (the tests hold them within 1e-5).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .info import attr
from .opsets import ai_onnx_opset

FUSED = "EmbedLayerNormalization"


def unfuse_embeddings(model: onnx.ModelProto) -> bool:
    """Replace every ``EmbedLayerNormalization`` of ``model`` (a private copy) by standard ops, in
    place; whether there was one."""
    graph = model.graph
    found = [
        k for k, node in enumerate(graph.node) if node.op_type == FUSED and node.domain == "com.microsoft"
    ]
    opset = ai_onnx_opset(model) or 17
    for k in reversed(found):
        node = graph.node[k]
        nodes, constants = _standard(node, opset, f"xai_unfused{k}")
        del graph.node[k]
        for offset, made in enumerate(nodes):
            graph.node.insert(k + offset, made)
        graph.initializer.extend(constants)
    return bool(found)


def _standard(node: onnx.NodeProto, opset: int, prefix: str) -> tuple[list, list]:
    """The nodes that compute ``node``'s outputs (module docstring), and their constants."""
    given = list(node.input) + [""] * (9 - len(node.input))
    ids, segments, words, positions, segment_table, gamma, beta, mask, position_ids = given[:9]
    outputs = list(node.output) + [""] * (3 - len(node.output))
    name = lambda part: f"{prefix}_{part}"  # noqa: E731
    nodes, constants = [helper.make_node("Gather", [words, ids], [name("words")])], []
    if not position_ids:
        constants += [_ints(name("zero"), 0), _ints(name("one"), 1)]
        nodes += [
            helper.make_node("Shape", [ids], [name("shape")]),
            helper.make_node("Gather", [name("shape"), name("one")], [name("length")]),
            helper.make_node("Range", [name("zero"), name("length"), name("one")], [name("range")]),
            _unsqueeze_first(name("range"), name("position_ids"), opset, name, constants),
        ]
        position_ids = name("position_ids")
    nodes.append(helper.make_node("Gather", [positions, position_ids], [name("positions")]))
    nodes.append(helper.make_node("Add", [name("words"), name("positions")], [name("sum2")]))
    total = name("sum2")
    if segments and segment_table:
        nodes += [
            helper.make_node("Gather", [segment_table, segments], [name("segments")]),
            helper.make_node("Add", [total, name("segments")], [name("sum3")]),
        ]
        total = name("sum3")
    if outputs[2]:
        nodes.append(helper.make_node("Identity", [total], [outputs[2]]))
    nodes += _layer_norm(
        total, gamma, beta, float(attr(node, "epsilon", 1e-12)), outputs[0], opset, name, constants
    )
    if outputs[1]:
        nodes += _mask_index(mask, ids, outputs[1], opset, name, constants)
    return nodes, constants


def _layer_norm(
    x: str, gamma: str, beta: str, epsilon: float, out: str, opset: int, name, constants: list
) -> list:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over the last axis."""
    constants.append(numpy_helper.from_array(np.array(epsilon, np.float32), name("epsilon")))
    mean = _reduce("ReduceMean", x, name("mean"), opset, name, constants)
    centred = helper.make_node("Sub", [x, name("mean")], [name("centred")])
    square = helper.make_node("Mul", [name("centred"), name("centred")], [name("square")])
    variance = _reduce("ReduceMean", name("square"), name("variance"), opset, name, constants)
    return [
        mean,
        centred,
        square,
        variance,
        helper.make_node("Add", [name("variance"), name("epsilon")], [name("shifted")]),
        helper.make_node("Sqrt", [name("shifted")], [name("deviation")]),
        helper.make_node("Div", [name("centred"), name("deviation")], [name("normal")]),
        helper.make_node("Mul", [name("normal"), gamma], [name("scaled")]),
        helper.make_node("Add", [name("scaled"), beta], [out]),
    ]


def _mask_index(mask: str, ids: str, out: str, opset: int, name, constants: list) -> list:
    """The mask index the fused Attention reads: each row's count of ones in the mask (its length,
    right-padded), int32; every position when there is no mask."""
    if not mask:
        nodes = [helper.make_node("Shape", [ids], [name("ids_shape")])]
        constants.append(_ints(name("last"), [1]))
        nodes.append(helper.make_node("Gather", [name("ids_shape"), name("last")], [name("count64")]))
        return nodes + [helper.make_node("Cast", [name("count64")], [out], to=TensorProto.INT32)]
    cast = helper.make_node("Cast", [mask], [name("mask32")], to=TensorProto.INT32)
    summed = _reduce("ReduceSum", name("mask32"), out, opset, name, constants, axis=1, keepdims=0)
    return [cast, summed]


def _reduce(op: str, x: str, out: str, opset: int, name, constants: list, axis: int = -1, keepdims: int = 1):
    axes_input_from = 13 if op == "ReduceSum" else 18
    if opset >= axes_input_from:
        key = name(f"axes{axis}".replace("-", "m"))
        if not any(c.name == key for c in constants):
            constants.append(_ints(key, [axis]))
        return helper.make_node(op, [x, key], [out], keepdims=keepdims)
    return helper.make_node(op, [x], [out], axes=[axis], keepdims=keepdims)


def _unsqueeze_first(x: str, out: str, opset: int, name, constants: list) -> onnx.NodeProto:
    """``x`` with a leading axis (Unsqueeze's axes an input from opset 13)."""
    if opset >= 13:
        constants.append(_ints(name("axis0"), [0]))
        return helper.make_node("Unsqueeze", [x, name("axis0")], [out])
    return helper.make_node("Unsqueeze", [x], [out], axes=[0])


def _ints(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.int64), name)
