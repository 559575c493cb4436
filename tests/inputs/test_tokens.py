"""Text encoders explained at their word embeddings, as Captum's layer methods on ``word_embeddings``:
tiny random-init DistilBERT, BERT, RoBERTa and XLM-R exported by torch.onnx. The gradient against float64
autograd at the embedding lookup; integrated gradients against Captum's LayerIntegratedGradients
from baseline ids (and its completeness); occlusion against Captum's FeatureAblation over the ids;
KernelSHAP against the Shapley values by enumeration (a removed token takes the mask id, special
tokens and padding are no features); LIME against a weighted ridge fit of the same copies; padded
positions exactly zero; the per-token scores as the result says it reduces them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import onnx_xai
from onnx_xai.runtime.methods.surrogates import lime_samples

transformers = pytest.importorskip("transformers")
captum_attr = pytest.importorskip("captum.attr")

MASK, PAD = 4, 1
T = 7


def build(family: str, tmp_path) -> tuple[str, torch.nn.Module, list[str]]:
    """A tiny random-init classifier of ``family`` exported with its inputs, and the torch model."""
    torch.manual_seed(3)
    common = dict(vocab_size=60, max_position_embeddings=40, num_labels=3, initializer_range=0.3)
    if family == "distilbert":
        config = transformers.DistilBertConfig(dim=16, n_layers=2, n_heads=2, hidden_dim=32, **common)
        model, names = (
            transformers.DistilBertForSequenceClassification(config),
            ["input_ids", "attention_mask"],
        )
    else:
        configs = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig}
        config = configs.get(family, transformers.XLMRobertaConfig)(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            pad_token_id=PAD, **common,
        )  # fmt: skip
        kind = {
            "bert": transformers.BertForSequenceClassification,
            "roberta": transformers.RobertaForSequenceClassification,
        }.get(family, transformers.XLMRobertaForSequenceClassification)
        model = kind(config)
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if family == "bert" else [])
    model.eval()
    examples = tuple(torch.ones(1, T, dtype=torch.int64) for _ in names)
    path = str(tmp_path / f"{family}.onnx")
    axes = {n: {0: "N", 1: "T"} for n in names} | {"logits": {0: "N"}}
    torch.onnx.export(
        model, examples, path, dynamo=False, input_names=names, output_names=["logits"], dynamic_axes=axes
    )
    return path, model.double(), names


def batch(names: list[str]) -> tuple[np.ndarray, dict]:
    ids = np.random.default_rng(5).integers(6, 60, (2, T))
    ids[:, 0] = 2  # a [CLS]-like special token
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    ids[1, 5:] = PAD
    extra = {"attention_mask": mask} | (
        {"token_type_ids": np.zeros_like(ids)} if "token_type_ids" in names else {}
    )
    return ids, extra


def baseline_ids(ids: np.ndarray, extra: dict, replacement: int) -> np.ndarray:
    """The replacement id at ordinary tokens; the input's own at the special token and the padding."""
    keep = (np.arange(ids.shape[1])[None] == 0) | (extra["attention_mask"] == 0)
    return np.where(keep, ids, replacement)


def forward(model, extra: dict):
    tensors = {k: torch.as_tensor(v) for k, v in extra.items()}
    return lambda ids: model(input_ids=ids, **tensors).logits


def forward_with(model, extra: dict):
    """The model on ids and its other inputs as further arguments (Captum expands them with the
    copies), and those arguments."""
    names = list(extra)
    return (
        lambda ids, *rest: model(input_ids=ids, **dict(zip(names, rest))).logits,
        tuple(torch.as_tensor(extra[n]) for n in names),
    )


def embeddings_of(model) -> torch.nn.Module:
    return (
        model.distilbert.embeddings.word_embeddings
        if hasattr(model, "distilbert")
        else model.base_model.embeddings.word_embeddings
    )


@pytest.fixture(scope="module", params=["distilbert", "bert", "roberta", "xlm-roberta"])
def encoder(request, tmp_path_factory):
    path, model, names = build(request.param, tmp_path_factory.mktemp(request.param))
    return onnx_xai.Explainer(path), model, names


def test_the_gradient_at_the_word_embeddings(encoder):
    ex, model, names = encoder
    assert ex.kind == "tokens" and ex.input_name == "input_ids"
    ids, extra = batch(names)
    found = {}

    def keep(module, inputs, out):
        out.retain_grad()
        found["e"] = out

    hook = embeddings_of(model).register_forward_hook(keep)
    logits = forward(model, extra)(torch.as_tensor(ids))
    hook.remove()
    target = logits.argmax(1)
    logits[torch.arange(2), target].sum().backward()
    want = found["e"].grad.numpy()
    r = ex.explain(ids, "gradient", extra_inputs=extra)
    np.testing.assert_array_equal(r.targets, target.numpy())
    assert np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max()
    assert (r.raw[1, 5:] == 0).all() and (r.feature_scores[1, 5:] == 0).all()
    np.testing.assert_allclose(r.feature_scores, np.linalg.norm(r.raw, axis=-1), rtol=1e-5)


def test_integrated_gradients_against_captum(encoder):
    ex, model, names = encoder
    ids, extra = batch(names)
    base = baseline_ids(ids, extra, PAD)
    r = ex.explain(ids, "integrated_gradients", 1, extra_inputs=extra, baseline=base, n_steps=24)
    f, others = forward_with(model, extra)
    lig = captum_attr.LayerIntegratedGradients(f, embeddings_of(model))
    want, delta = lig.attribute(
        torch.as_tensor(ids),
        baselines=torch.as_tensor(base),
        target=1,
        n_steps=24,
        additional_forward_args=others,
        return_convergence_delta=True,
    )
    want = want.detach().numpy()
    assert np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max()
    with torch.no_grad():
        f = forward(model, extra)
        gap = (f(torch.as_tensor(ids)) - f(torch.as_tensor(base)))[:, 1].numpy()
    completeness = np.abs(r.raw.reshape(2, -1).sum(1) - gap).max()
    assert completeness <= max(2 * np.abs(delta.numpy()).max(), 1e-5) + 1e-3 * np.abs(gap).max()
    np.testing.assert_allclose(r.feature_scores, r.raw.sum(-1), rtol=1e-5)
    assert (r.raw[:, 0] == 0).all() and (r.raw[1, 5:] == 0).all()


def test_occlusion_against_feature_ablation(encoder):
    ex, model, names = encoder
    ids, extra = batch(names)
    base = baseline_ids(ids, extra, MASK)
    r = ex.explain(ids, "occlusion", 1, extra_inputs=extra, baseline=base)
    f, others = forward_with(model, extra)
    ablation = captum_attr.FeatureAblation(f)
    want = ablation.attribute(
        torch.as_tensor(ids), baselines=torch.as_tensor(base), target=1, additional_forward_args=others
    ).numpy()
    assert r.raw.shape == ids.shape and np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max() + 1e-6
    np.testing.assert_array_equal(r.feature_scores, r.raw)


def shapley(score, ids: np.ndarray, base: np.ndarray) -> np.ndarray:
    positions = [t for t in range(len(ids)) if base[t] != ids[t]]
    values = np.zeros(len(ids))

    def value(kept) -> float:
        return score(np.where(np.isin(np.arange(len(ids)), kept) | (base == ids), ids, base))

    m = len(positions)
    for t in positions:
        others = [p for p in positions if p != t]
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for kept in itertools.combinations(others, size):
                values[t] += weight * (value([*kept, t]) - value(list(kept)))
    return values


def test_kernel_shap_is_the_shapley_value_of_masking_tokens(encoder):
    ex, model, names = encoder
    ids, extra = batch(names)
    base = baseline_ids(ids, extra, MASK)
    r = ex.explain(ids, "kernel_shap", 2, extra_inputs=extra, baseline=base)  # 2^6 - 2 coalitions: exact
    for i in range(2):
        row = {k: v[i : i + 1] for k, v in extra.items()}
        with torch.no_grad():
            score = lambda copy, row=row: float(forward(model, row)(torch.as_tensor(copy[None]))[0, 2])  # noqa: E731
            want = shapley(score, ids[i], base[i])
            masked = score(np.where(base[i] == ids[i], ids[i], base[i]))
        assert np.abs(r.raw[i] - want).max() <= 1e-4 * np.abs(want).max() + 1e-6
        assert r.base[i] == pytest.approx(masked, abs=1e-5)
        assert r.raw[i].sum() + r.base[i] == pytest.approx(r.scores[i], abs=1e-5)


def test_lime_is_a_weighted_ridge_fit_of_masked_copies(encoder):
    ex, model, names = encoder
    ids, extra = batch(names)
    base = baseline_ids(ids, extra, MASK)
    r = ex.explain(ids[:1], "lime", 0, extra_inputs={k: v[:1] for k, v in extra.items()}, baseline=base[:1],
                   n_samples=64, noise_seed=7, kernel_width=0.75, alpha=0.5)  # fmt: skip
    positions = np.flatnonzero(base[0] != ids[0])
    z = lime_samples(64, len(positions), 7)
    copies = np.repeat(ids[:1], 64, axis=0)
    copies[:, positions] = np.where(z.astype(bool), ids[0, positions], base[0, positions])
    with torch.no_grad():
        y = forward(model, {k: np.repeat(v[:1], 64, axis=0) for k, v in extra.items()})(
            torch.as_tensor(copies)
        )[:, 0].numpy()
    distance = 1 - np.sqrt(z.sum(1) / len(positions))
    w = np.exp(-(distance**2) / (2 * 0.75**2))
    design = np.c_[z, np.ones(64)]
    penalty = np.diag([0.5] * len(positions) + [0.0])
    coefficients = np.linalg.solve(design.T @ (w[:, None] * design) + penalty, design.T @ (w * y))[:-1]
    np.testing.assert_allclose(r.raw[0, positions], coefficients, rtol=1e-3, atol=1e-5)
    assert (np.delete(r.raw[0], positions) == 0).all()


def test_a_float_baseline_for_token_occlusion_is_refused(encoder):
    ex, _, names = encoder
    ids, extra = batch(names)
    with pytest.raises(onnx_xai.InputError, match="baseline= is the id a removed token takes"):
        ex.explain(ids, "occlusion", extra_inputs=extra)


def test_a_dynamo_export_is_explained_at_its_word_embeddings(tmp_path):
    """torch.onnx's dynamo exporter writes other patterns (and names): the same gradient."""
    torch.manual_seed(3)
    config = transformers.DistilBertConfig(
        vocab_size=60, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=40,
        num_labels=3, initializer_range=0.3,
    )  # fmt: skip
    model = transformers.DistilBertForSequenceClassification(config).eval()
    path = str(tmp_path / "dynamo.onnx")
    batch_dim, length = torch.export.Dim("batch"), torch.export.Dim("length")
    examples = (torch.ones(2, T, dtype=torch.int64), torch.ones(2, T, dtype=torch.int64))
    torch.onnx.export(
        model, examples, path, dynamo=True, input_names=["input_ids", "attention_mask"],
        output_names=["logits"], dynamic_shapes=({0: batch_dim, 1: length}, {0: batch_dim, 1: length}),
    )  # fmt: skip
    ex = onnx_xai.Explainer(path)
    ids, extra = batch(["input_ids", "attention_mask"])
    r = ex.explain(ids, "gradient", 2, extra_inputs=extra)
    found = {}

    def keep(module, inputs, out):
        out.retain_grad()
        found["e"] = out

    model = model.double()
    hook = embeddings_of(model).register_forward_hook(keep)
    forward(model, extra)(torch.as_tensor(ids))[:, 2].sum().backward()
    hook.remove()
    want = found["e"].grad.numpy()
    assert ex.kind == "tokens" and np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max()
    assert (r.raw[1, 5:] == 0).all()
