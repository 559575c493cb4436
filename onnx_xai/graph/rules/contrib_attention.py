"""VJP rules of onnxruntime's fused attention ops (com.microsoft, keyed as :mod:`.contrib` says):
Attention (one input, packed QKV weights) and MultiHeadAttention (separate query, key and value), in
the forms onnxruntime's transformer optimizer writes for BERT-family encoders.

Both compute ``softmax(scale Q K^T + mask) V`` per head. The rules recompute Q, K, V and the
probabilities P with standard ops (MatMul, Softmax) in the forward's float type and take the
cotangent back: ``dV = P^T dO, dP = dO V^T, dS = P (dP - sum(dP P)), dQ = scale dS K,
dK = scale dS^T Q``; Attention's input then gets ``[dQ dK dV] W^T``.

Masks as onnxruntime 1.32's CPU kernels apply them (measured with a filter value of -1): a padded key
gets ``mask_filter_value`` (default -10000) added to its score, from a 1-D ``mask_index`` of lengths
[B] (or end and start positions [2B]), a 2-D 0/1 mask [B, L] or a 3-D one [B, S, L]; Attention's
``unidirectional`` excludes the later keys outright (their probability is exactly 0, whatever the
filter value). Refused, each in one phrase: past and present state, ``attention_bias`` (relative
position bias), rotary embeddings, a 4-D mask or one of unknown rank; in MultiHeadAttention packed
QKV or KV, key and value already split in heads (BNSH), and ``unidirectional`` (its kernel masks by
another rule when the key length differs from the query's); weights and biases that depend on the
input.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from .contrib import ms, typed_input, weights_check

MASK_FILTER_VALUE = -10000.0
LAST = [0, 1, 3, 2]  # swaps the last two axes of a [B, N, S, h] tensor
INT64 = onnx.TensorProto.INT64


def _input(node, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def _heads(e: Emitter, x: str, n: int) -> str:
    """[B, S, n h] -> [B, n, S, h]."""
    return e.op("Transpose", [e.op("Reshape", [x, e.ints([0, 0, n, -1])])], perm=[0, 2, 1, 3])


def _merged(e: Emitter, x: str) -> str:
    """[B, n, S, h] -> [B, S, n h]."""
    return e.op("Reshape", [e.op("Transpose", [x], perm=[0, 2, 1, 3]), e.ints([0, 0, -1])])


def _dim(e: Emitter, x: str, axis: int) -> str:
    """Dimension ``axis`` of ``x`` at run time, a 0-d int64."""
    return e.op("Gather", [e.op("Shape", [x]), e.const(np.array(axis, np.int64))])


def _positions(e: Emitter, length: str) -> str:
    """0, 1, ..., length - 1 (int64)."""
    return e.op("Range", [e.const(np.array(0, np.int64)), length, e.const(np.array(1, np.int64))])


def _kept_keys(e: Emitter, mask: str, keys: str) -> str:
    """Where a key may be attended (bool, broadcastable to [B, N, S, L]) by a 0/1 mask [B, L] or
    [B, S, L], or by :func:`_kept_between` for a 1-D one; ``keys`` is the key input [B, L, ...]."""
    index = e.op("Cast", [mask], to=INT64)
    rank = e.info.known_rank(mask)
    if rank == 1:
        return e.unsqueeze(_kept_between(e, index, keys), [1, 2])
    kept = e.op("Greater", [index, e.const(np.array(0, np.int64))])
    return e.unsqueeze(kept, [1, 2] if rank == 2 else [1])


def _kept_between(e: Emitter, index: str, keys: str) -> str:
    """[B, L]: start <= key < end, from end positions [B] (start 0) or end and start positions [2B]:
    ``index`` padded with B zeros holds the ends at [0, B) and the starts (or zeros) at [B, 2B)."""
    batch = e.op("Reshape", [_dim(e, keys, 0), e.ints([1])])
    zeros = e.op("ConstantOfShape", [batch], value=numpy_helper.from_array(np.zeros(1, np.int64)))
    padded = e.op("Concat", [index, zeros], axis=0)
    end = e.unsqueeze(e.op("Slice", [padded, e.ints([0]), batch]), [1])
    start = e.unsqueeze(e.op("Slice", [padded, batch, e.op("Add", [batch, batch])]), [1])
    at = _positions(e, _dim(e, keys, 1))
    return e.op("And", [e.op("Less", [at, end]), e.op("Not", [e.op("Less", [at, start])])])


def _later_keys(e: Emitter, scores: str, like: str) -> str:
    """-inf where key j comes after query i, 0 elsewhere: onnxruntime excludes those keys outright."""
    rows = e.unsqueeze(_positions(e, _dim(e, scores, 2)), [1])
    later = e.op("Greater", [_positions(e, _dim(e, scores, 3)), rows])
    return e.op("Where", [later, e.scalar(-np.inf, like), e.scalar(0.0, like)])


def _probabilities(e: Emitter, node, q: str, k: str, scale, mask: str, keys: str, like: str) -> str:
    """P = softmax(scale Q K^T + padding mask), later keys excluded when ``unidirectional``."""
    scores = e.t(e.op("MatMul", [q, e.op("Transpose", [k], perm=LAST)]), like) * scale
    if mask:
        filter_value = e.scalar(attr(node, "mask_filter_value", MASK_FILTER_VALUE), like)
        scores = scores + e.op("Where", [_kept_keys(e, mask, keys), e.scalar(0.0, like), filter_value])
    if attr(node, "unidirectional", 0):
        scores = scores + _later_keys(e, scores.name, like)
    return e.op("Softmax", [scores], axis=-1)


def _attention_backward(e: Emitter, qkv: tuple[str, str, str], p: str, d_out: str, scale, like: str):
    """``(dQ, dK, dV)`` in heads layout from the probabilities ``p`` and ``d_out`` [B, N, S, hv]."""
    q, k, v = qkv
    dv = e.op("MatMul", [e.op("Transpose", [p], perm=LAST), d_out])
    dp, pt = e.t(e.op("MatMul", [d_out, e.op("Transpose", [v], perm=LAST)]), like), e.t(p, like)
    ds = pt * (dp - e.reduce("ReduceSum", (dp * pt).name, [-1])) * scale
    return e.op("MatMul", [ds, k]), e.op("MatMul", [e.op("Transpose", [ds], perm=LAST), q]), dv


def _mask_problems(info, node, index: int) -> list[str]:
    """A mask of unknown rank, or a 4-D one (Megatron's, not in onnxruntime's CPU kernel either)."""
    mask = _input(node, index)
    rank = info.rank(mask) if mask else 0
    if rank is None:
        return ["mask of unknown rank"]
    return [f"{rank}-D mask"] if rank > 3 else []


def _used_inputs(node, names: dict[int, str]) -> list[str]:
    return [f"{what} input" for index, what in names.items() if _input(node, index)]


def _used_outputs(node, wants) -> list[str]:
    return [f"output {name!r} (state) on the path" for name in node.output[1:] if name and wants(name)]


def _attention_check(info, node, wants) -> list[str]:
    problems = weights_check(1, 2)(info, node, wants) + _mask_problems(info, node, 3)
    problems += _used_inputs(
        node, {4: "past", 5: "attention_bias (relative position bias)", 6: "past_sequence_length"}
    )
    problems += [f"{name}=1" for name in ("do_rotary", "past_present_share_buffer") if attr(node, name, 0)]
    if not attr(node, "qkv_hidden_sizes") and info.static_shape(node.input[1]) is None:
        problems.append("weights of unknown shape")
    return problems + _used_outputs(node, wants)


def _qkv_sizes(e: Emitter, node) -> list[int]:
    sizes = attr(node, "qkv_hidden_sizes")
    return list(sizes) if sizes else [e.info.known_static_shape(node.input[1])[1] // 3] * 3


@vjp(ms("Attention"), check=_attention_check)
def attention(e: Emitter, node, g_out):
    """Attention: d input = [dQ dK dV] W^T, with softmax attention's backward per head."""
    x, w, bias = node.input[0], node.input[1], _input(node, 2)
    n, sizes = attr(node, "num_heads"), _qkv_sizes(e, node)
    qkv = e.op("MatMul", [x, w])
    qkv = e.op("Add", [qkv, bias]) if bias else qkv
    bounds = np.cumsum([0] + sizes).tolist()
    parts = [e.op("Slice", [qkv, e.ints([a]), e.ints([b]), e.ints([-1])]) for a, b in zip(bounds, bounds[1:])]
    q, k, v = (_heads(e, part, n) for part in parts)
    scale = attr(node, "scale", 0.0) or 1.0 / math.sqrt(sizes[0] // n)
    p = _probabilities(e, node, q, k, scale, _input(node, 3), x, w)
    grads = _attention_backward(e, (q, k, v), p, _heads(e, g_out[0], n), scale, w)
    d_qkv = e.op("Concat", [_merged(e, g) for g in grads], axis=-1)
    return (e.op("MatMul", [d_qkv, e.op("Transpose", [w])]),) + (None,) * (len(node.input) - 1)


def _mha_check(info, node, wants) -> list[str]:
    query, key, value = (_input(node, i) for i in range(3))
    problems = weights_check(3)(info, node, wants) + _mask_problems(info, node, 4)
    if not key or not value:
        problems.append("packed QKV or KV (no key or value input)")
    for role, name in (("query", query), ("key", key), ("value", value)):
        rank = info.rank(name) if name else None
        if rank not in (None, 3):
            problems.append(f"{role} of rank {rank} (packed, or split in heads)")
    problems += _used_inputs(
        node,
        {
            5: "attention_bias (relative position bias)",
            6: "past_key",
            7: "past_value",
            8: "past_sequence_length",
            9: "cache_indirection",
        },
    )
    problems += ["unidirectional=1"] if attr(node, "unidirectional", 0) else []
    return problems + _used_outputs(node, wants)


def _with_bias(e: Emitter, query: str, key: str, value: str, bias: str) -> tuple[str, str, str]:
    """Query, key and value plus their parts of the bias [D + D + Dv] (D read from the query)."""
    if not bias:
        return query, key, value
    d = e.op("Slice", [e.op("Shape", [query]), e.ints([2]), e.ints([3])])
    bounds = [e.ints([0]), d, e.op("Add", [d, d]), e.ints([np.iinfo(np.int64).max])]
    q, k, v = (e.op("Slice", [bias, a, b]) for a, b in zip(bounds, bounds[1:]))
    return e.op("Add", [query, q]), e.op("Add", [key, k]), e.op("Add", [value, v])


def _default_scale(e: Emitter, query: str, n: int, like: str) -> str:
    """1 / sqrt(head size), the head size read from the query at run time."""
    to = helper.np_dtype_to_tensor_dtype(np.dtype(e.np_dtype(like)))
    size = e.t(e.op("Cast", [_dim(e, query, 2)], to=to), like) / n
    return e.op("Reciprocal", [e.op("Sqrt", [size])])


@vjp(ms("MultiHeadAttention"), check=_mha_check)
def multi_head_attention(e: Emitter, node, g_out):
    """MultiHeadAttention: (d query, d key, d value) by softmax attention's backward per head."""
    query, key, value = node.input[:3]
    n, like = attr(node, "num_heads"), typed_input(e, node)
    q, k, v = (_heads(e, x, n) for x in _with_bias(e, query, key, value, _input(node, 3)))
    scale = attr(node, "scale", 0.0) or _default_scale(e, query, n, like)
    p = _probabilities(e, node, q, k, scale, _input(node, 4), key, like)
    grads = _attention_backward(e, (q, k, v), p, _heads(e, g_out[0], n), scale, like)
    wanted = [_merged(e, g) if e.wants(name) else None for g, name in zip(grads, (query, key, value))]
    return tuple(wanted) + (None,) * (len(node.input) - 3)
