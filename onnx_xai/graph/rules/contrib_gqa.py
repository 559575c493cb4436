"""VJP rule of onnxruntime's GroupQueryAttention (com.microsoft), as its model builder and transformer
optimizer write it for decoder-only language models, over the whole prompt without a past: ``softmax``
of ``scale Q K^T`` (``softcap tanh(. / softcap)`` when softcap > 0, plus ``attention_bias``) times V,
each of ``kv_num_heads`` key and value heads shared by ``num_heads / kv_num_heads`` query heads, Q and
K first turned by the rotary embedding when ``do_rotary`` (:func:`.contrib_decoder.rotate`). The rule
recomputes the probabilities with standard ops and takes the cotangent back as
:mod:`.contrib_attention` does, then through the softcap (``1 - tanh^2``), sums each shared head's
gradients over its group, adds the cotangents of ``present_key`` and ``present_value`` (the turned
keys and the values, when on the path) and turns Q's and K's back. Masks as onnxruntime 1.32's CPU
kernel applies them (measured): query row ``i`` of batch entry ``b`` reads keys ``j <= m`` with ``m =
min(i, seqlens_k[b])`` (``m = seqlens_k[b]`` when ``causal=0``), and ``j > m - local_window_size`` for
a local window; the rotary positions are ``position_ids[0, 0] + i`` (0 without ids); ``head_sink``,
or 0 under ``smooth_softmax``, is one more logit in each softmax's denominator. Refused, each in one
phrase: a past of nonzero or unknown length, a quantized cache (``k_scale``, ``v_scale``, quant
types), ``q_norm_weight``/``k_norm_weight`` (not run by the CPU kernel), ``query_seqlens``,
``sliding_window_cache``, the ``output_qk`` output on the path, an ``attention_bias`` not 4-D, and
caches, bias or sinks that depend on the input.
"""

from __future__ import annotations

import numpy as np

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from .contrib import ms, typed_input, weights_check
from .contrib_decoder import END, INT64, Rotation, dim, optional_input, rank_problems, rotate, rotation, steps

LAST = [0, 1, 3, 2]  # swaps the last two axes of a [B, N, S, h] tensor
REFUSED_INPUTS = {
    12: "k_scale (quantized cache)",
    13: "v_scale (quantized cache)",
    14: "q_norm_weight (per-head RMS norm)",
    15: "k_norm_weight (per-head RMS norm)",
    16: "query_seqlens (right-padded chunks)",
}


def _past_problems(info, node) -> list[str]:
    """A past other than an empty one (static length 0): the rule differentiates a whole prompt."""
    problems = []
    for index, role in ((3, "past_key"), (4, "past_value")):
        name = optional_input(node, index)
        shape = info.shape(name) if name else None
        length = shape[2] if shape is not None and len(shape) == 4 else None
        if name and length != 0:
            problems.append(
                f"{role} of {f'length {length}' if isinstance(length, int) else 'unknown length'}"
            )
    return problems


def _gqa_check(info, node, wants) -> list[str]:
    problems = weights_check(7, 8, 10, 11)(info, node, wants) + _past_problems(info, node)
    problems += rank_problems(info, node.input[0], "query", (3,))
    bias = optional_input(node, 10)
    problems += rank_problems(info, bias, "attention_bias", (4,)) if bias else []
    problems += [f"{what} input" for index, what in REFUSED_INPUTS.items() if optional_input(node, index)]
    problems += ["sliding_window_cache=1"] if attr(node, "sliding_window_cache", 0) else []
    quantized = [q for q in ("k_quant_type", "v_quant_type") if attr(node, q, "NONE") != "NONE"]
    problems += [f"{q}={attr(node, q)} (a quantized cache)" for q in quantized]
    qk = node.output[3] if len(node.output) > 3 else ""
    return problems + ([f"output {qk!r} (QK scores) on the path"] if qk and wants(qk) else [])


def _heads(e: Emitter, x: str, n: int) -> str:
    """[B, S, n h] -> [B, n, S, h]."""
    return e.op("Transpose", [e.op("Reshape", [x, e.ints([0, 0, n, -1])])], perm=[0, 2, 1, 3])


def _merged(e: Emitter, x: str) -> str:
    """[B, n, S, h] -> [B, S, n h]."""
    return e.op("Reshape", [e.op("Transpose", [x], perm=[0, 2, 1, 3]), e.ints([0, 0, -1])])


def _split(e: Emitter, node, n: int, nk: int) -> tuple[str, str, str]:
    """Query, key and value ``[B, S, *]``: the inputs, or a packed query's three parts."""
    query, key, value = (optional_input(node, i) for i in range(3))
    if key:
        return query, key, value
    head = e.op(
        "Div", [e.op("Slice", [e.op("Shape", [query]), e.ints([2]), e.ints([3])]), e.ints([n + 2 * nk])]
    )
    bounds = [
        e.ints([0]),
        e.op("Mul", [head, e.ints([n])]),
        e.op("Mul", [head, e.ints([n + nk])]),
        e.ints([END]),
    ]
    q, k, v = (e.op("Slice", [query, a, b, e.ints([-1])]) for a, b in zip(bounds, bounds[1:]))
    return q, k, v


def _repeat(e: Emitter, x: str, groups: int) -> str:
    """Key or value heads [B, nk, S, h] -> [B, nk groups, S, h], each head repeated ``groups`` times."""
    if groups == 1:
        return x
    shape = e.op("Mul", [e.op("Shape", [x]), e.ints([1, groups, 1, 1])])
    return e.op("Reshape", [e.op("Expand", [e.unsqueeze(x, [2]), e.ints([1, 1, groups, 1, 1])]), shape])


def _group_sum(e: Emitter, grad: str, heads: str, groups: int) -> str:
    """The transpose of :func:`_repeat`: ``grad`` [B, nk groups, S, h] summed over each group."""
    if groups == 1:
        return grad
    shape = e.op("Shape", [heads])
    parts = [e.op("Slice", [shape, e.ints([0]), e.ints([2])]), e.ints([groups])]
    grouped = e.op("Concat", [*parts, e.op("Slice", [shape, e.ints([2]), e.ints([4])])], axis=0)
    return e.reduce("ReduceSum", e.op("Reshape", [grad, grouped]), [2], keepdims=False)


def _turn(e: Emitter, node, q: str) -> Rotation | None:
    """The rotary embedding's angles when ``do_rotary``: positions ``position_ids[0, 0] + i``."""
    if not attr(node, "do_rotary", 0):
        return None
    positions = steps(e, dim(e, q, 2))
    ids = optional_input(node, 9)
    if ids:
        first = e.op("Slice", [e.op("Reshape", [ids, e.ints([-1])]), e.ints([0]), e.ints([1])])
        positions = e.op("Add", [positions, e.op("Cast", [first], to=INT64)])
    caches = (node.input[7], node.input[8])
    return rotation(e, caches, e.unsqueeze(positions, [0]), 1, bool(attr(node, "rotary_interleaved", 0)))


def _scale(e: Emitter, node, q: str, like: str):
    """The ``scale`` attribute, or 1 / sqrt(head size) read from Q's heads at run time."""
    if attr(node, "scale", 0.0):
        return attr(node, "scale")
    size = e.op("Cast", [dim(e, q, 3)], to=e.info.dtype(like))
    return e.op("Reciprocal", [e.op("Sqrt", [size])])


def _kept(e: Emitter, node, scores: str) -> str:
    """Where query row i may read key j (bool, [B, 1, S, S]), as the module docstring says."""
    keys = steps(e, dim(e, scores, 3))
    last = e.op("Reshape", [e.op("Cast", [node.input[5]], to=INT64), e.ints([-1, 1, 1, 1])])
    m = last
    if attr(node, "causal", 1):
        rows = e.unsqueeze(steps(e, dim(e, scores, 2)), [1])
        m = e.op("Where", [e.op("Less", [rows, last]), rows, last])
    kept = e.op("Not", [e.op("Greater", [keys, m])])
    window = attr(node, "local_window_size", -1)
    if window > 0 and attr(node, "causal", 1):
        kept = e.op("And", [kept, e.op("Greater", [keys, e.op("Sub", [m, e.ints([window])])])])
    return kept


def _sink(e: Emitter, node, like: str) -> str | None:
    """The extra logit of each softmax: ``head_sink`` [1, N, 1, 1], 0 for ``smooth_softmax``, or None."""
    sink = optional_input(node, 11)
    if sink:
        return e.op("Reshape", [sink, e.ints([1, -1, 1, 1])])
    return e.scalar(0.0, like) if attr(node, "smooth_softmax", 0) == 1 else None


def _scores(e: Emitter, node, q: str, k: str, scale, like: str):
    """``(scores, tanh)``: ``scale Q K^T``, capped when softcap > 0 (its tanh kept, else None), plus
    ``attention_bias``."""
    scores, tanh = e.t(e.op("MatMul", [q, e.op("Transpose", [k], perm=LAST)]), like) * scale, None
    cap = attr(node, "softcap", 0.0)
    if cap > 0:
        tanh = e.t(e.op("Tanh", [(scores / cap).name]), like)
        scores = tanh * cap
    bias = optional_input(node, 10)
    return (scores + bias if bias else scores), tanh


def _softmax(e: Emitter, node, scores: str, like: str) -> str:
    """Softmax over the last axis, with the sink's logit in each denominator (:func:`_sink`)."""
    sink = _sink(e, node, like)
    if sink is None:
        return e.op("Softmax", [scores], axis=-1)
    rows = e.op("Slice", [e.op("Shape", [scores]), e.ints([0]), e.ints([3])])
    column = e.op("Expand", [sink, e.op("Concat", [rows, e.ints([1])], axis=0)])
    p = e.op("Softmax", [e.op("Concat", [scores, column], axis=-1)], axis=-1)
    return e.op("Slice", [p, e.ints([0]), e.ints([-1]), e.ints([-1])])


def _probabilities(e: Emitter, node, q: str, k: str, scale, like: str):
    """``(P, tanh)``: the probabilities [B, N, S, S], and the softcap's tanh (None without one)."""
    scores, tanh = _scores(e, node, q, k, scale, like)
    masked = e.op("Where", [_kept(e, node, scores.name), scores.name, e.scalar(-np.inf, like)])
    return _softmax(e, node, masked, like), tanh


def _backward(e: Emitter, qkv: tuple[str, str, str], p: str, tanh, d_out: str, scale, like: str):
    """``(dQ, dK, dV)`` with K and V repeated per query head, from P and ``d_out`` [B, N, S, h]."""
    q, k, v = qkv
    dv = e.op("MatMul", [e.op("Transpose", [p], perm=LAST), d_out])
    dp, pt = e.t(e.op("MatMul", [d_out, e.op("Transpose", [v], perm=LAST)]), like), e.t(p, like)
    ds = pt * (dp - e.reduce("ReduceSum", (dp * pt).name, [-1]))
    ds = (ds * (1 - tanh * tanh) if tanh is not None else ds) * scale
    return e.op("MatMul", [ds, k]), e.op("MatMul", [e.op("Transpose", [ds], perm=LAST), q]), dv


def _plus(e: Emitter, grad: str, extra: str | None) -> str:
    return e.op("Add", [grad, extra]) if extra else grad


def _inputs_grads(e: Emitter, node, grads: list[str]) -> tuple:
    """One entry per node input: the packed query's [dQ dK dV], or each of query, key, value wanted."""
    if not optional_input(node, 1):
        return (e.op("Concat", grads, axis=-1),) + (None,) * (len(node.input) - 1)
    wanted = [g if e.wants(name) else None for g, name in zip(grads, node.input[:3])]
    return tuple(wanted) + (None,) * (len(node.input) - 3)


@vjp(ms("GroupQueryAttention"), check=_gqa_check)
def group_query_attention(e: Emitter, node, g_out):
    """GroupQueryAttention (a prompt, no past): dQ, dK, dV of softmax attention, shared heads summed.

    The rotary embedding, when inside, is turned back on dQ and dK; present_key/value's cotangents add in."""
    n, nk, like = attr(node, "num_heads"), attr(node, "kv_num_heads"), typed_input(e, node)
    query, key, value = _split(e, node, n, nk)
    q, k, v = _heads(e, query, n), _heads(e, key, nk), _heads(e, value, nk)
    turn = _turn(e, node, q)
    if turn is not None:
        q, k = rotate(e, q, turn, like), rotate(e, k, turn, like)
    scale, groups = _scale(e, node, q, like), n // nk
    k_all, v_all = _repeat(e, k, groups), _repeat(e, v, groups)
    p, tanh = _probabilities(e, node, q, k_all, scale, like)
    g = list(g_out) + [None] * (3 - len(g_out))
    d_out = _heads(e, g[0] or e.zeros_like(node.output[0]), n)
    dq, dk_all, dv_all = _backward(e, (q, k_all, v_all), p, tanh, d_out, scale, like)
    dk = _plus(e, _group_sum(e, dk_all, k, groups), g[1])
    dv = _plus(e, _group_sum(e, dv_all, v, groups), g[2])
    if turn is not None:
        dq, dk = rotate(e, dq, turn, like, inverse=True), rotate(e, dk, turn, like, inverse=True)
    return _inputs_grads(e, node, [_merged(e, x) for x in (dq, dk, dv)])
