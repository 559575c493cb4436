"""onnxruntime's decoder ops (com.microsoft RotaryEmbedding, GroupQueryAttention, MatMulNBits) against
their kernels, by the checks of :mod:`.test_contrib`: a float64 numpy reference of each op's definition
(below) must equal onnxruntime 1.32's float32 kernel; the rule's rewrite, run in float64 on the ONNX
reference evaluator, must match central differences of that reference (relative 1e-6), and in float32
on onnxruntime central differences of the kernel itself (step eps^(1/3)); refused forms one line each.
A tiny Llama fused by hand with them is explained in test_fused_llama.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from scipy import special

from .test_contrib import REFERENCES, Case, _Reference, build, check, covered, op, refusal

MS = "com.microsoft"
R = np.random.default_rng(5)
B, S = 2, 5


# -- float64 references of the definitions, as measured against onnxruntime 1.32 ----------------------
def _rotated(x, cos, sin, interleaved):
    """Heads [B, N, S, H] with their first 2 cos.shape[-1] features turned; cos, sin [P, 1, S, R/2]."""
    out, width = x.copy(), 2 * cos.shape[-1]
    a, b = (x[..., 0:width:2], x[..., 1:width:2]) if interleaved else np.split(x[..., :width], 2, axis=-1)
    turned = a * cos - b * sin, b * cos + a * sin
    if interleaved:
        out[..., 0:width:2], out[..., 1:width:2] = turned
    else:
        out[..., :width] = np.concatenate(turned, axis=-1)
    return out


def _split_heads(x, n):
    return x.reshape(x.shape[0], x.shape[1], n, -1).transpose(0, 2, 1, 3)


class RotaryEmbedding(_Reference):
    def _run(self, x, ids, cos, sin, interleaved=0, num_heads=0, **_):
        flat = x.ndim == 3
        heads = _split_heads(x, num_heads) if flat and num_heads else x
        heads = (
            x.reshape(*x.shape[:2], -1, 2 * cos.shape[1]).transpose(0, 2, 1, 3)
            if flat and not num_heads
            else heads
        )
        length = heads.shape[2]
        positions = ids if ids.ndim == 2 else ids[0] + np.arange(length)[None]
        out = _rotated(heads, cos[positions][:, None], sin[positions][:, None], interleaved)
        return (out.transpose(0, 2, 1, 3).reshape(x.shape) if flat else out,)


class GroupQueryAttention(_Reference):
    def _run(self, q, k, v, pk, pv, seqlens, total, cos=None, sin=None, ids=None, bias=None, sink=None, **a):
        n, nk = a["num_heads"], a["kv_num_heads"]
        if k is None:
            size = q.shape[2] // (n + 2 * nk)
            q, k, v = np.split(q, [n * size, (n + nk) * size], axis=-1)
        q, k, v = _split_heads(q, n), _split_heads(k, nk), _split_heads(v, nk)
        if a.get("do_rotary", 0):
            positions = (0 if ids is None else ids.flat[0]) + np.arange(q.shape[2])[None]
            turn = cos[positions][:, None], sin[positions][:, None], a.get("rotary_interleaved", 0)
            q, k = _rotated(q, *turn), _rotated(k, *turn)
        scores = (
            (a.get("scale") or 1 / np.sqrt(q.shape[-1])) * q @ np.repeat(k, n // nk, 1).transpose(0, 1, 3, 2)
        )
        if a.get("softcap"):
            scores = a["softcap"] * np.tanh(scores / a["softcap"])
        scores = scores + (0 if bias is None else bias)
        rows, keys = np.arange(q.shape[2])[:, None], np.arange(q.shape[2])
        last = seqlens.astype(np.int64)[:, None, None, None]
        m = np.minimum(rows, last) if a.get("causal", 1) else last
        kept = (keys <= m) & (
            keys > m - a["local_window_size"] if a.get("local_window_size", -1) > 0 else True
        )
        scores = np.where(kept, scores, -np.inf)
        if sink is not None or a.get("smooth_softmax", 0) == 1:
            logit = np.zeros((1, 1, 1, 1)) if sink is None else sink.reshape(1, -1, 1, 1)
            column = np.broadcast_to(logit, (*scores.shape[:3], 1))
            p = special.softmax(np.concatenate([scores, column], -1), -1)[..., :-1]
        else:
            p = special.softmax(scores, -1)
        out = (p @ np.repeat(v, n // nk, 1)).transpose(0, 2, 1, 3)
        return self._outputs(out.reshape(*out.shape[:2], -1), k, v)


def _unpack(packed, bits, rows):
    flat = packed.reshape(rows, -1).astype(np.int64)
    return np.stack([(flat >> (i * bits)) % 2**bits for i in range(8 // bits)], -1).reshape(rows, -1)


class MatMulNBits(_Reference):
    def _run(self, a, packed, scales, zero=None, g_idx=None, bias=None, **at):
        n, k, bits, block = at["N"], at["K"], at.get("bits", 4), at["block_size"]
        blocks = -(-k // block)
        q = _unpack(packed, bits, n).reshape(n, blocks, block)
        if zero is None:
            zero = np.full((n, blocks), 2.0 ** (bits - 1))
        elif zero.dtype == np.uint8:
            zero = _unpack(zero, bits, n)[:, :blocks]
        w = ((q - zero.reshape(n, blocks, 1)) * scales.reshape(n, blocks, 1)).reshape(n, -1)[:, :k]
        return (a @ w.T + (0 if bias is None else bias),)


REFERENCES_ALL = [*REFERENCES, RotaryEmbedding, GroupQueryAttention, MatMulNBits]


# -- the cases ----------------------------------------------------------------------------------------
def _caches(length: int, half: int) -> dict:
    angles = np.arange(length)[:, None] * 10000.0 ** (-np.arange(half) / half)
    return {"cos": np.cos(angles), "sin": np.sin(angles)}


def _rope(name, shape, ids, half, **attrs):
    consts = {"ids": np.asarray(ids, np.int64), **_caches(16, half)}
    return Case(name, [op("RotaryEmbedding", ["x", "ids", "cos", "sin"], **attrs)], {"x": shape}, consts)


IDS = R.integers(0, 16, (B, S))
ROPE = [
    _rope("rope_3d", (B, S, 24), IDS, 4),
    _rope("rope_3d_interleaved_start", (B, S, 24), [3], 4, interleaved=1),
    _rope("rope_3d_partial", (B, S, 24), IDS, 2, num_heads=3, rotary_embedding_dim=4),
    _rope("rope_4d", (B, 3, S, 8), IDS, 4),
    _rope(
        "rope_4d_partial_interleaved",
        (B, 3, S, 8),
        [2],
        2,
        num_heads=3,
        rotary_embedding_dim=4,
        interleaved=1,
    ),
    _rope("rope_scale_unread", (B, S, 16), IDS, 4, scale=2.0),
]

GQA_INPUTS = ["q", "k", "v", "", "", "seqlens", "total"]
FULL = {"seqlens": np.full(B, S - 1, np.int32), "total": np.array(S, np.int32)}
PADDED = {"seqlens": np.array([2, 4], np.int32), "total": np.array(S, np.int32)}


def _gqa(name, n=4, nk=2, h=8, consts=FULL, packed=False, more=None, **attrs):
    """GroupQueryAttention over the whole prompt; ``more``: {input index: (name, constant)} besides
    query, key, value, seqlens_k and total_sequence_length."""
    inputs = ["q", "", "", *GQA_INPUTS[3:]] if packed else list(GQA_INPUTS)
    for index, (tensor, value) in (more or {}).items():
        inputs += [""] * (index + 1 - len(inputs))
        inputs[index], consts = tensor, {**consts, tensor: value}
    kv = {} if packed else {"k": (B, S, nk * h), "v": (B, S, nk * h)}
    wrt = {"q": (B, S, (n + (2 * nk if packed else 0)) * h), **kv}
    return Case(name, [op("GroupQueryAttention", inputs, num_heads=n, kv_num_heads=nk, **attrs)], wrt, consts)


def _rotary(half: int, ids=None) -> dict:
    caches = _caches(16, half)
    return {7: ("cos", caches["cos"]), 8: ("sin", caches["sin"])} | (
        {9: ("ids", ids)} if ids is not None else {}
    )


PRESENT = Case(  # the output and both present outputs on the path: their cotangents add up
    "gqa_present_rotary",
    [
        op(
            "GroupQueryAttention",
            [*GQA_INPUTS, "cos", "sin"],
            ["o", "pk", "pv"],
            num_heads=4,
            kv_num_heads=2,
            do_rotary=1,
        ),
        *[op("Reshape", [t, "flat"], f"{t}_flat", domain="") for t in ("o", "pk", "pv")],
        op("Concat", ["o_flat", "pk_flat", "pv_flat"], domain="", axis=0),
    ],
    {"q": (B, S, 64), "k": (B, S, 32), "v": (B, S, 32)},
    {**FULL, **_caches(16, 8), "flat": np.array([-1], np.int64)},
)
EMPTY_PAST = {3: ("pk", np.zeros((B, 2, 0, 8))), 4: ("pv", np.zeros((B, 2, 0, 8)))}
GQA = [
    _gqa("gqa_heads_equal", n=2, nk=2),
    _gqa("gqa_grouped", n=4, nk=2),
    _gqa("gqa_multi_query_padded", n=4, nk=1, consts=PADDED),
    _gqa("gqa_scale_softcap", scale=0.4, softcap=1.5),
    _gqa("gqa_local_window_padded", consts=PADDED, local_window_size=2),
    _gqa("gqa_bidirectional_padded", consts=PADDED, causal=0),
    _gqa("gqa_rotary", h=16, more=_rotary(8), do_rotary=1),
    _gqa(
        "gqa_rotary_interleaved_ids",
        h=16,
        more=_rotary(8, R.integers(3, 9, (B, S))),
        do_rotary=1,
        rotary_interleaved=1,
    ),
    _gqa("gqa_rotary_partial", n=2, nk=1, h=32, more=_rotary(8), do_rotary=1),
    _gqa("gqa_packed", packed=True),
    _gqa("gqa_packed_rotary_softcap", h=16, packed=True, more=_rotary(8), do_rotary=1, softcap=2.0),
    _gqa("gqa_head_sink", more={11: ("sink", R.normal(size=4))}),
    _gqa("gqa_smooth_softmax", smooth_softmax=1),
    _gqa("gqa_attention_bias_softcap", more={10: ("ab", R.normal(size=(B, 1, S, S)))}, softcap=2.0),
    _gqa("gqa_empty_past", more=EMPTY_PAST),
    PRESENT,
]


def _packed(values, bits: int) -> np.ndarray:
    """Integers [rows, m] -> bytes [rows, m bits / 8], the low bits first."""
    per = 8 // bits
    grouped = values.reshape(values.shape[0], -1, per)
    return sum(grouped[..., i] << (i * bits) for i in range(per)).astype(np.uint8)


def _nbits(name, k=64, n=6, bits=4, block=32, zero=None, bias=False, g_idx=False, **attrs):
    """MatMulNBits with random weights of ``bits`` in blocks of ``block``; ``zero``: None (the default
    zero point), "packed" (uint8) or "float"."""
    rng = np.random.default_rng(len(name))
    blocks = -(-k // block)
    consts = {"B": _packed(rng.integers(0, 2**bits, (n, blocks * block)), bits).reshape(n, blocks, -1)}
    consts["scales"] = rng.uniform(0.05, 0.2, (n, blocks))
    if zero == "packed":
        points = rng.integers(0, 2**bits, (n, blocks + (-blocks) % (8 // bits)))
        consts["zp"] = _packed(points, bits)
    elif zero == "float":
        consts["zp"] = rng.uniform(0, 2**bits - 1, (n, blocks))
    optional = {"zp": zero is not None, "g_idx": g_idx, "bias": bias}
    if g_idx:
        consts["g_idx"] = (np.arange(k) // block).astype(np.int32)
    if bias:
        consts["bias"] = rng.normal(size=n)
    inputs = ["a", "B", "scales"] + [key if used else "" for key, used in optional.items()]
    while not inputs[-1]:
        inputs.pop()
    node = op("MatMulNBits", inputs, K=k, N=n, bits=bits, block_size=block, **attrs)
    return Case(name, [node], {"a": (2, 3, k)}, consts)


NBITS = [
    _nbits("nbits4_block32"),
    _nbits("nbits4_block16_zero_points_bias_k40", k=40, block=16, zero="packed", bias=True),
    _nbits("nbits4_float_zero_points", k=48, block=16, zero="float"),
    _nbits("nbits4_in_order_g_idx_float_zero_points", g_idx=True, zero="float"),
    _nbits("nbits8_block16_zero_points", k=48, block=16, bits=8, zero="packed"),
    _nbits("nbits8_block32_k40_bias", k=40, bits=8, bias=True, accuracy_level=1),
    _nbits("nbits2_block16_zero_points", k=40, block=16, bits=2, zero="packed"),
]
CASES = [*ROPE, *GQA, *NBITS]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets:
        check(case, opset, REFERENCES_ALL)


def test_cases_cover_the_three_ops():
    assert covered(CASES) >= {
        "com.microsoft.RotaryEmbedding",
        "com.microsoft.GroupQueryAttention",
        "com.microsoft.MatMulNBits",
    }


FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
ROPE_INPUTS = ["x", "ids", "cos", "sin"]


def _refused(case: Case, problem: str, **declared):
    """A refused form: ``declared`` names the graph inputs it needs besides ``wrt`` (no shape)."""
    return pytest.param(case, declared, problem, id=case.name)


def _rope_case(name, wrt, consts=None, **attrs):
    consts = {"ids": np.array([0], np.int64), **_caches(16, 4)} if consts is None else consts
    return Case(name, [op("RotaryEmbedding", ROPE_INPUTS, **attrs)], wrt, consts)


def _with_wrt(case: Case, **shapes) -> Case:
    return Case(
        case.name,
        case.nodes,
        {**case.wrt, **shapes},
        {k: v for k, v in case.consts.items() if k not in shapes},
    )


REFUSED = [
    _refused(
        _rope_case("rope_packed_batching", {"x": (B, S, 16)}, is_packed_batching=1),
        "is_packed_batching=1 (ragged batches)",
    ),
    _refused(_rope_case("rope_rank", {"x": None}), "input of unknown rank"),
    _refused(
        _rope_case("rope_ids_rank", {"x": (B, S, 16)}, _caches(16, 4)),
        "position_ids of unknown rank",
        ids=INT64,
    ),
    _refused(
        _with_wrt(_rope_case("rope_cache_wanted", {"x": (B, S, 16)}), cos=(16, 4)),
        "input 'cos' (a weight) depends on the input",
    ),
    _refused(
        _gqa("gqa_past", more={3: ("pk", np.zeros((B, 2, 3, 8))), 4: ("pv", np.zeros((B, 2, 3, 8)))}),
        "past_key of length 3",
    ),
    _refused(
        Case(
            "gqa_past_unknown",
            [
                op(
                    "GroupQueryAttention",
                    ["q", "k", "v", "pk", "pv", "seqlens", "total"],
                    num_heads=4,
                    kv_num_heads=2,
                )
            ],
            _gqa("").wrt,
            FULL,
        ),
        "past_value of unknown length",
        pk=FLOAT,
        pv=FLOAT,
    ),
    _refused(_gqa("gqa_k_scale", more={12: ("ks", np.ones(1))}), "k_scale (quantized cache) input"),
    _refused(
        _gqa("gqa_q_norm", more={14: ("qn", np.ones(8)), 15: ("kn", np.ones(8))}),
        "q_norm_weight (per-head RMS norm) input",
    ),
    _refused(
        _gqa("gqa_query_seqlens", more={16: ("qs", np.full(B, S, np.int32))}),
        "query_seqlens (right-padded chunks) input",
    ),
    _refused(
        _gqa("gqa_sliding_window_cache", local_window_size=2, sliding_window_cache=1),
        "sliding_window_cache=1",
    ),
    _refused(_gqa("gqa_bias_rank", more={10: ("ab", np.zeros((B, S, S)))}), "attention_bias of rank 3"),
    _refused(
        _with_wrt(_gqa("gqa_sink_wanted", more={11: ("sink", np.zeros(4))}), sink=(4,)),
        "input 'sink' (a weight) depends on the input",
    ),
    _refused(_nbits("nbits_3", bits=3, block=16), "bits=3 (2, 4 and 8 are read)"),
    _refused(
        _nbits("nbits_prepacked", weight_prepacked=1), "weight_prepacked=1 (an execution provider's layout)"
    ),
    _refused(
        _nbits("nbits_packed_zero_points_g_idx", zero="packed", g_idx=True),
        "g_idx input beside packed zero_points",
    ),
    _refused(
        _with_wrt(_nbits("nbits_scales_wanted"), scales=(6, 2)),
        "input 'scales' (a weight) depends on the input",
    ),
]


@pytest.mark.parametrize("case, declared, problem", REFUSED)
def test_refused(case, declared, problem):
    message, (op_type, *_) = refusal(case, declared), case.nodes[0]
    assert f"'{op_type}_0' ({op_type}): {problem}" in message and "\n" not in message


def test_a_reordering_g_idx_is_refused():
    case = _nbits("nbits_reordered", zero="float", g_idx=True)
    case.consts["g_idx"] = case.consts["g_idx"][::-1].copy()
    assert "g_idx input reordering the blocks" in refusal(case)


def test_the_qk_output_on_the_path_is_refused():
    node = op("GroupQueryAttention", GQA_INPUTS, ["o", "", "", "y"], num_heads=4, kv_num_heads=2, qk_output=1)
    assert "output 'y' (QK scores) on the path" in refusal(Case("qk", [node], _gqa("").wrt, FULL))


def test_decoder_outputs_have_shapes():
    """:mod:`onnx_xai.graph.contrib_shapes` declares what ONNX cannot infer: the standard ops after a
    decoder op keep their ranks."""
    from onnx_xai.graph.info import GraphInfo

    nodes = [
        op("RotaryEmbedding", ["x", "ids", "cos", "sin"], "turned"),
        op(
            "GroupQueryAttention",
            ["turned", "", "", "", "", "seqlens", "total"],
            ["o", "pk", "pv"],
            num_heads=4,
            kv_num_heads=2,
        ),
        op("MatMulNBits", ["o", "B", "scales"], "y", K=64, N=6, bits=4, block_size=32),
    ]
    consts = {**_caches(16, 8), "ids": np.array([0], np.int64), **FULL, **_nbits("", k=64).consts}
    model = build(Case("shapes", nodes, {"x": ("N", S, 128)}, consts), 18, np.float32)
    info = GraphInfo(model)
    assert info.shape("turned") == ("N", S, 128) and info.shape("o") == ("N", S, 64)
    assert info.shape("pk") == ("N", 2, S, 16) and info.shape("y") == ("N", S, 6)
