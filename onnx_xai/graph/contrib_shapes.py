"""Types and shapes of the outputs of onnxruntime's fused transformer ops, which ONNX's inference
cannot see (com.microsoft ops, and onnxruntime's SimplifiedLayerNormalization of the default domain).

Without them, every tensor after the first fused op of a BERT-family graph optimized by onnxruntime's
transformer optimizer has no shape, and the rules that need ranks (MatMul, Add) refuse it. The shapes
follow from the inputs as onnxruntime 1.32 computes them: the norms and the Gelu family keep their
input's type and shape (a norm's mean and 1/sigma outputs are 1 along the normalized axes, and the
skip norms' fourth output is the sum, shaped like the input); Attention gives ``[B, S, Dv]`` (``Dv``
the third of ``qkv_hidden_sizes``, or a third of its weights' columns) and MultiHeadAttention the
query's ``[B, S]`` with the value's last dimension. Of the decoder ops, RotaryEmbedding keeps its
input's shape, MatMulNBits gives ``[..., N]`` and GroupQueryAttention ``[B, S, num_heads H]`` (H from
the query, or from a packed one's ``(num_heads + 2 kv_num_heads) H``) with, without a past,
``present_key`` and ``present_value`` ``[B, kv_num_heads, S, H]``. :func:`declare` writes them into a model as
``value_info``, as :mod:`.ml_shapes` does for ``ai.onnx.ml``.
"""

from __future__ import annotations

import onnx
from onnx import helper

from .ml_shapes import _dims

MS_DOMAIN = "com.microsoft"
SAME = frozenset({"Gelu", "BiasGelu", "FastGelu", "QuickGelu", "BiasAdd"})
SKIP_NORMS = frozenset({"SkipLayerNormalization", "SkipSimplifiedLayerNormalization"})
DECODER = frozenset({"RotaryEmbedding", "MatMulNBits", "GroupQueryAttention"})


def _attr(node: onnx.NodeProto, name: str, default=None):
    found = next((a for a in node.attribute if a.name == name), None)
    return helper.get_attribute_value(found) if found is not None else default


def _statistics(dims: list, axis: int) -> list:
    start = axis % len(dims)
    return dims[:start] + [1] * (len(dims) - start)


def _attention_width(node: onnx.NodeProto, types: dict[str, onnx.TypeProto]):
    """The output's last dimension: V's hidden size."""
    if node.op_type == "MultiHeadAttention":
        value = _dims(types.get(node.input[2])) if len(node.input) > 2 and node.input[2] else None
        return value[-1] if value and len(value) == 3 else None
    sizes = _attr(node, "qkv_hidden_sizes")
    weights = _dims(types.get(node.input[1]))
    return sizes[2] if sizes else (weights[1] // 3 if weights and isinstance(weights[1], int) else None)


def output_dims(node: onnx.NodeProto, types: dict[str, onnx.TypeProto]) -> list[list | None]:
    """The dims of each output of ``node`` (None where they do not follow)."""
    dims = _dims(types.get(node.input[0])) if node.input else None
    if dims is None:
        return [None] * len(node.output)
    if node.op_type in SAME and node.domain == MS_DOMAIN:
        return [dims]
    if node.op_type in SKIP_NORMS and node.domain == MS_DOMAIN:
        return [dims, _statistics(dims, -1), _statistics(dims, -1), dims]
    if node.op_type == "SimplifiedLayerNormalization" and node.domain in ("", "ai.onnx"):
        return [dims, _statistics(dims, _attr(node, "axis", -1))]
    if node.op_type in ("Attention", "MultiHeadAttention") and node.domain == MS_DOMAIN and len(dims) == 3:
        return [dims[:2] + [_attention_width(node, types)]]
    if node.domain == MS_DOMAIN and node.op_type in DECODER:
        return _decoder_dims(node, dims)
    return [None] * len(node.output)


def _decoder_dims(node: onnx.NodeProto, dims: list) -> list[list | None]:
    if node.op_type == "RotaryEmbedding":
        return [dims]
    if node.op_type == "MatMulNBits":
        return [dims[:-1] + [_attr(node, "N")]]
    n, nk = _attr(node, "num_heads", 0), _attr(node, "kv_num_heads", 0)
    if len(dims) != 3 or n <= 0:
        return [None] * len(node.output)
    packed = len(node.input) < 2 or not node.input[1]
    width = dims[2] if isinstance(dims[2], int) else None
    head = None if width is None else width // (n + 2 * nk) if packed else width // n
    hidden = (n * head if head else None) if packed else dims[2]
    present = None if len(node.input) > 3 and node.input[3] else [dims[0], nk, dims[1], head]
    return [dims[:2] + [hidden], present, present] + [None] * (len(node.output) - 3)


def declare(model: onnx.ModelProto, types: dict[str, onnx.TypeProto]) -> bool:
    """Declare in ``model`` (modified in place) the types of fused ops' outputs that ``types`` lacks,
    in the element type of their first input; True when any was added."""
    graph, added = model.graph, False
    declared = {v.name for v in graph.value_info} | {o.name for o in graph.output if _dims(o.type)}
    outputs = {o.name: o for o in graph.output}
    for node in graph.node:
        elem = types[node.input[0]].tensor_type.elem_type if node.input and node.input[0] in types else 0
        for name, dims in zip(node.output, output_dims(node, types)):
            if not name or dims is None or name in declared or _dims(types.get(name)) is not None:
                continue
            found = helper.make_tensor_type_proto(elem, dims)
            if name in outputs:
                outputs[name].type.CopyFrom(found)
            else:
                graph.value_info.append(helper.make_value_info(name, found))
            declared.add(name)
            added = True
    return added
