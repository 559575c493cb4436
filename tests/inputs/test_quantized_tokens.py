"""A text encoder quantized by onnxruntime's ``quantize_dynamic`` (int8 weights, its word embedding
table included; every activation quantized by ``DynamicQuantizeLinear``, one scale per run): the ids
are explained at their dequantized word embedding, and each text runs alone, so a text's
explanation does not depend on the texts batched beside it (run together, they would: the test
shows the difference it removes). The gradient stays within the quantization's error of the float
model's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import onnx_xai

transformers = pytest.importorskip("transformers")
T = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("quantized")
    torch.manual_seed(6)
    config = transformers.BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, num_labels=2, initializer_range=0.3,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    plain, quantized = str(folder / "bert.onnx"), str(folder / "bert_int8.onnx")
    torch.onnx.export(
        model, tuple(torch.ones(1, T, dtype=torch.int64) for _ in names), plain, dynamo=False,
        input_names=names, output_names=["logits"], dynamic_axes={n: {0: "N", 1: "T"} for n in names},
    )  # fmt: skip
    quantize_dynamic(plain, quantized, weight_type=QuantType.QInt8)
    return plain, quantized


def texts() -> tuple[np.ndarray, dict]:
    ids = np.random.default_rng(9).integers(5, 60, (2, T))
    ids[1, :] = ids[1, :] * 0 + 59  # a very different text beside the first
    mask = np.ones_like(ids)
    return ids, {"attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def test_each_text_runs_alone(models):
    _, quantized = models
    ex = onnx_xai.Explainer(quantized)
    assert ex.kind == "tokens" and ex.record.per_sample_runs
    assert ex.record.differentiated.endswith("Gather_output_0")  # the dequantized lookup
    ids, extra = texts()
    base = np.where(np.arange(T)[None] == 0, ids, 0)
    together = ex.explain(ids, "integrated_gradients", 1, extra_inputs=extra, baseline=base, n_steps=8)
    alone = ex.explain(ids[:1], "integrated_gradients", 1, extra_inputs={k: v[:1] for k, v in extra.items()},
                       baseline=base[:1], n_steps=8)  # fmt: skip
    np.testing.assert_allclose(together.raw[:1], alone.raw, rtol=0, atol=1e-7 * np.abs(alone.raw).max())
    record = ex._sessions.record()
    ex._sessions._record = dataclasses.replace(record, per_sample_runs=False)  # batched, as the model runs
    mixed = ex.explain(ids, "integrated_gradients", 1, extra_inputs=extra, baseline=base, n_steps=8)
    ex._sessions._record = record
    assert np.abs(mixed.raw[:1] - alone.raw).max() > 1e-4 * np.abs(alone.raw).max()


def test_the_tokens_order_is_the_float_models(models):
    """Integrated gradients on the quantized file ranks the tokens as on the float one (Spearman's rho
    of the per-token scores), though its numbers differ by the quantization."""
    from scipy.stats import spearmanr

    plain, quantized = models
    ids, extra = texts()
    base = np.where(np.arange(T)[None] == 0, ids, 0)
    options = dict(extra_inputs=extra, baseline=base, n_steps=16)
    got = onnx_xai.Explainer(quantized).explain(ids, "integrated_gradients", 1, **options).feature_scores
    want = onnx_xai.Explainer(plain).explain(ids, "integrated_gradients", 1, **options).feature_scores
    assert np.abs(got - want).max() > 0  # quantized: not the same numbers
    for i in range(len(ids)):
        rho = spearmanr(got[i, 1:], want[i, 1:]).statistic
        assert rho > 0.8, (got[i], want[i])
