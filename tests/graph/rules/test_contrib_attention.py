"""onnxruntime's fused attention ops (com.microsoft Attention, MultiHeadAttention) against their kernels,
by the checks of :mod:`.test_contrib` (float64 reference = onnxruntime's float32 kernel; the rule's
gradient against central differences of both), per mask form and attribute; refused forms one line
each."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from scipy import special

from .test_contrib import REFERENCES, Case, _Reference, check, covered, op, refusal

FILTER = -10000.0
R = np.random.default_rng(11)
B, S, L, N = 2, 5, 4, 2
QKV = {"w": 0.5 * R.normal(size=(8, 24)), "bias": 0.5 * R.normal(size=24)}
MASKS = {
    "lengths": np.array([3, 5], np.int32),
    "end_start": np.array([4, 5, 1, 0], np.int32),
    "2d": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32),
    "3d": np.where(R.uniform(size=(B, S, S)) < 0.3, 0, 1).astype(np.int32),
}
MASKS["3d"][:, :, 0] = 1  # a row masked whole is uniform, and its float32 score loses digits to -10000


def _kept(mask, batch: int, keys: int):
    """Where a key may be attended, broadcast to [B, 1, S or 1, L]: the kernels' padding masks."""
    if mask.ndim == 1:
        end = mask[:batch]
        start = mask[batch:] if mask.shape[0] == 2 * batch else np.zeros(batch, np.int32)
        at = np.arange(keys)
        return ((at < end[:, None]) & (at >= start[:, None]))[:, None, None, :]
    return (mask > 0)[:, None, None, :] if mask.ndim == 2 else (mask > 0)[:, None, :, :]


def _attend(q, k, v, mask, n, scale, filter_value, causal):
    """softmax(scale Q K^T + filter at padded keys) V per head, later keys excluded when causal."""
    heads = [t.reshape(t.shape[0], t.shape[1], n, -1).transpose(0, 2, 1, 3) for t in (q, k, v)]
    scale = scale or 1 / np.sqrt(heads[0].shape[-1])
    scores = scale * heads[0] @ heads[1].transpose(0, 1, 3, 2)
    if mask is not None:
        scores = scores + np.where(_kept(mask, q.shape[0], k.shape[1]), 0.0, filter_value)
    if causal:
        scores = np.where(np.triu(np.ones(scores.shape[-2:], bool), 1), -np.inf, scores)
    out = special.softmax(scores, axis=-1) @ heads[2]
    return out.transpose(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], -1)


class Attention(_Reference):
    def _run(self, x, w, bias=None, mask=None, *_, num_heads=1, qkv_hidden_sizes=None, scale=0.0, **a):
        qkv = x @ w + (0 if bias is None else bias)
        sizes = qkv_hidden_sizes or [w.shape[1] // 3] * 3
        q, k, v = np.split(qkv, np.cumsum(sizes)[:2], axis=-1)
        f, causal = a.get("mask_filter_value", FILTER), a.get("unidirectional", 0)
        return (_attend(q, k, v, mask, num_heads, scale, f, causal),)


class MultiHeadAttention(_Reference):
    def _run(self, q, k, v, bias=None, mask=None, *_, num_heads=1, scale=0.0, mask_filter_value=FILTER, **a):
        if bias is not None:
            d = q.shape[-1]
            q, k, v = q + bias[:d], k + bias[d : 2 * d], v + bias[2 * d :]
        return (_attend(q, k, v, mask, num_heads, scale, mask_filter_value, False),)


REFERENCES_ALL = [*REFERENCES, Attention, MultiHeadAttention]
X = {"x": (B, S, 8)}
ATTENTION = ["x", "w", "bias", "mask"]


def _attention(name, inputs=None, mask=None, consts=QKV, **attrs):
    consts = {**consts, **({"mask": MASKS[mask]} if mask else {})}
    inputs = inputs or (ATTENTION if mask else ATTENTION[:3])
    return Case(name, [op("Attention", inputs, num_heads=N, **attrs)], X, consts)


def _mha(name, mask=None, wrt=None, consts=None, inputs=("q", "k", "v", "bias"), **attrs):
    wrt = wrt or {"q": (B, S, 8), "k": (B, L, 8), "v": (B, L, 12)}
    names = list(inputs) + (["mask"] if mask is not None else [])
    return Case(
        name,
        [op("MultiHeadAttention", names, num_heads=N, **attrs)],
        wrt,
        {**(consts or {}), **({"mask": mask} if mask is not None else {})},
    )


MHA_BIAS = {"bias": 0.5 * R.normal(size=8 + 8 + 12)}
KEY_MASKS = {
    "lengths": np.array([2, 4], np.int32),
    "2d": np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.int32),
    "3d": np.where(R.uniform(size=(B, S, L)) < 0.3, 0, 1).astype(np.int32),
}
KEY_MASKS["3d"][:, :, 0] = 1
CASES = [
    _attention("attention"),
    _attention("attention_no_bias", ["x", "w", "", "mask"], mask="2d"),
    *[_attention(f"attention_mask_{form}", mask=form) for form in MASKS],
    _attention("attention_unidirectional", mask="2d", unidirectional=1),
    _attention("attention_unidirectional_end_start", mask="end_start", unidirectional=1),
    _attention("attention_scale_filter", mask="2d", scale=0.3, mask_filter_value=-2.0),
    _attention(
        "attention_qkv_hidden_sizes",
        mask="lengths",
        consts={"w": 0.5 * R.normal(size=(8, 28)), "bias": 0.5 * R.normal(size=28)},
        qkv_hidden_sizes=[8, 8, 12],
    ),
    _mha("mha", inputs=("q", "k", "v")),
    _mha("mha_bias", consts=MHA_BIAS),
    *[_mha(f"mha_mask_{form}", KEY_MASKS[form], consts=MHA_BIAS) for form in KEY_MASKS],
    _mha("mha_scale_filter", KEY_MASKS["2d"], consts=MHA_BIAS, scale=0.2, mask_filter_value=-3.0),
    _mha(
        "mha_self", MASKS["2d"], {"x": (B, S, 8)}, {"bias": 0.5 * R.normal(size=24)}, ("x", "x", "x", "bias")
    ),
]


def check_case(case: Case, opset: int) -> dict:
    return check(case, opset, REFERENCES_ALL)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets:
        check_case(case, opset)


def test_cases_cover_both_ops():
    assert covered(CASES) == {"com.microsoft.Attention", "com.microsoft.MultiHeadAttention"}


FLOAT, INT32 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT32
MHA3 = {"q": (B, S, 8), "k": (B, L, 8), "v": (B, L, 8)}


def _refused(case: Case, problem: str, **declared):
    """A refused form: ``declared`` names the graph inputs it needs besides ``wrt`` (no shape)."""
    return pytest.param(case, declared, problem, id=case.name)


REFUSED = [
    _refused(_attention("past", ["x", "w", "bias", "", "past"]), "past input", past=FLOAT),
    _refused(
        _attention("relative_position_bias", ["x", "w", "bias", "", "", "rel"]),
        "attention_bias (relative position bias) input",
        rel=FLOAT,
    ),
    _refused(_attention("rotary", do_rotary=1), "do_rotary=1"),
    _refused(
        _attention("mask_4d", ATTENTION, consts={**QKV, "mask": np.ones((B, 1, S, S), np.int32)}), "4-D mask"
    ),
    _refused(
        Case("mask_rank", [op("Attention", ATTENTION, num_heads=N)], X, QKV),
        "mask of unknown rank",
        mask=INT32,
    ),
    _refused(
        Case("weights_wanted", [op("Attention", ["x", "w"], num_heads=N)], {**X, "w": (8, 24)}),
        "input 'w' (a weight) depends on the input",
    ),
    _refused(
        Case("weights_shape", [op("Attention", ["x", "w"], num_heads=N)], X),
        "weights of unknown shape",
        w=FLOAT,
    ),
    _refused(
        _mha("packed_qkv", wrt={"q": (B, S, N, 3, 4)}, inputs=("q", "", "")),
        "packed QKV or KV (no key or value input)",
    ),
    _refused(
        _mha("bnsh", wrt={"q": (B, S, 8), "k": (B, N, L, 4), "v": (B, N, L, 4)}, inputs=("q", "k", "v")),
        "key of rank 4 (packed, or split in heads)",
    ),
    _refused(
        _mha("mha_relative_position_bias", wrt=MHA3, inputs=("q", "k", "v", "", "", "rel")),
        "attention_bias (relative position bias) input",
        rel=FLOAT,
    ),
    _refused(
        _mha("mha_past", wrt=MHA3, inputs=("q", "k", "v", "", "", "", "pk", "pv")),
        "past_key input",
        pk=FLOAT,
        pv=FLOAT,
    ),
    _refused(
        _mha("mha_unidirectional", wrt=MHA3, inputs=("q", "k", "v"), unidirectional=1), "unidirectional=1"
    ),
    _refused(
        _mha("mha_bias_wanted", wrt={**MHA3, "b": (24,)}, inputs=("q", "k", "v", "b")),
        "input 'b' (a weight) depends on the input",
    ),
]


@pytest.mark.parametrize("case, declared, problem", REFUSED)
def test_refused(case, declared, problem):
    message, (op_type, *_) = refusal(case, declared), case.nodes[0]
    assert f"'{op_type}_0' ({op_type}): {problem}" in message and "\n" not in message


def test_state_output_on_the_path_is_refused():
    case = Case("present", [op("MultiHeadAttention", ["q", "k", "v"], ["o", "y"], num_heads=N)], MHA3)
    assert "output 'y' (state) on the path" in refusal(case)
