"""Token scores of text encoders against float64 torch autograd and against the model's own scores:
the gradient's L2 norm per token, integrated gradients' completeness from the pad baseline, occlusion's
drops and KernelSHAP's sum with the mask token; special tokens and padding shown or dropped, never
scored; word pieces summed into words; class names from config.json."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import onnx_xai
from onnx_xai.runtime.methods import REGISTRY
from onnx_xai.support.errors import InputError, ModelError
from onnx_xai.text import TextTokenizer, baseline_ids, explain_text

from ..forms.reference import rel
from .reference import embedding_gradients

TEXTS = ["the movie was great!", "i did not like playing it, <script>", "a bad day"]


def encoded(model, ex, texts=TEXTS):
    return TextTokenizer.load(model.folder).encode(texts, ex.inputs, ex.input_name)


@pytest.mark.parametrize("family", ["distilbert", "bert", "roberta"])
def test_gradient_scores_are_the_l2_norm_of_torch_autograd_at_the_embeddings(family, request):
    model = request.getfixturevalue(family)
    ex = onnx_xai.Explainer(str(model.folder / "model.onnx"))
    r = ex.explain_text(TEXTS, "gradient")
    batch = encoded(model, ex)
    assert set(batch.feeds) == set(model.inputs) - {"input_ids"}
    reference = np.linalg.norm(embedding_gradients(model, batch.ids, batch.feeds, r.targets), axis=-1)
    for i, n in enumerate(batch.lengths):
        ordinary = ~batch.special[i, :n]
        assert len(r.tokens[i]) == len(r.scores[i]) == n  # padding dropped
        assert rel(r.scores[i][ordinary], reference[i, :n][ordinary]) < 1e-4
        assert np.all(r.scores[i][~ordinary] == 0) and r.special[i].sum() == 2  # [CLS] [SEP] / <s> </s>
    assert not r.signed and r.method == "gradient"


def test_input_x_gradient_is_the_embedding_times_its_gradient_summed(bert):
    ex = onnx_xai.Explainer(str(bert.folder / "model.onnx"))
    r = ex.explain_text(TEXTS, "input_x_gradient")
    batch = encoded(bert, ex)
    gradients = embedding_gradients(bert, batch.ids, batch.feeds, r.targets)
    table = bert.net.get_submodule(bert.embeddings).weight.detach().double().numpy()
    reference = (table[batch.ids] * gradients).sum(-1)
    assert r.signed
    for i, n in enumerate(batch.lengths):
        ordinary = ~batch.special[i, :n]
        assert rel(r.scores[i][ordinary], reference[i, :n][ordinary]) < 1e-4


def test_padding_changes_nothing_and_gets_exactly_zero(distilbert):
    ex = onnx_xai.Explainer(str(distilbert.folder / "model.onnx"))
    batch = encoded(distilbert, ex)
    assert batch.padded.any()
    found = ex.explain(batch.ids, "gradient", extra_inputs=batch.feeds)
    assert np.all(found.feature_scores[batch.padded] == 0)
    together = ex.explain_text(TEXTS, "gradient")
    for i, text in enumerate(TEXTS):
        alone = ex.explain_text(text, "gradient")
        assert rel(together.scores[i], alone.scores[0]) < 1e-5 and together.tokens[i] == alone.tokens[0]


def test_integrated_gradients_start_from_pad_and_add_up_to_the_score_difference(bert):
    # BERT's head is smooth (tanh); DistilBERT's pre-classifier ReLU puts kinks on the path
    ex = onnx_xai.Explainer(str(bert.folder / "model.onnx"))
    batch, tok = encoded(bert, ex), TextTokenizer.load(bert.folder)
    baseline = baseline_ids(batch, tok, "integrated_gradients")
    ordinary = ~batch.special & ~batch.padded
    assert np.all(baseline[ordinary] == tok.pad_id) and np.all(baseline[~ordinary] == batch.ids[~ordinary])
    r = ex.explain_text(TEXTS, "integrated_gradients", n_steps=64)
    drop = r.target_scores - ex.scores(baseline, r.targets, **batch.feeds)
    sums = np.array([s.sum() for s in r.scores])
    assert r.signed and np.allclose(sums, drop, rtol=2e-3, atol=1e-4), (sums, drop)


def test_occlusion_replaces_each_token_by_the_mask_never_the_pad(roberta):
    ex = onnx_xai.Explainer(str(roberta.folder / "model.onnx"))
    batch, tok = encoded(roberta, ex, TEXTS[:2]), TextTokenizer.load(roberta.folder)
    assert (tok.pad_id, tok.mask_id) == (1, 4)
    r = ex.explain_text(TEXTS[:2], "occlusion")
    for i in range(2):
        n = batch.lengths[i]
        copies = np.repeat(batch.ids[i : i + 1], n, axis=0)
        copies[np.arange(n), np.arange(n)] = tok.mask_id
        feeds = {k: np.repeat(v[i : i + 1], n, axis=0) for k, v in batch.feeds.items()}
        drops = r.target_scores[i] - ex.scores(copies, np.full(n, r.targets[i]), **feeds)
        drops[batch.special[i, :n]] = 0
        assert np.allclose(r.scores[i], drops, atol=1e-5)


def test_kernel_shap_adds_up_to_the_score_with_every_token_masked(bert):
    ex = onnx_xai.Explainer(str(bert.folder / "model.onnx"))
    batch, tok = encoded(bert, ex, TEXTS[::2]), TextTokenizer.load(bert.folder)
    masked = baseline_ids(batch, tok, "kernel_shap")
    r = ex.explain_text(TEXTS[::2], "kernel_shap")
    drop = r.target_scores - ex.scores(masked, r.targets, **batch.feeds)
    assert np.allclose([s.sum() for s in r.scores], drop, atol=1e-4)


def test_special_tokens_are_features_when_asked(distilbert):
    ex = onnx_xai.Explainer(str(distilbert.folder / "model.onnx"))
    batch, tok = encoded(distilbert, ex, TEXTS[:1]), TextTokenizer.load(distilbert.folder)
    kept = baseline_ids(batch, tok, "occlusion", occlude_special=True)
    assert np.all(kept[0] == tok.mask_id)  # no padding in a batch of one
    r = ex.explain_text(TEXTS[:1], "occlusion", occlude_special=True)
    first = batch.ids.copy()
    first[0, 0] = tok.mask_id
    drop = r.target_scores[0] - ex.scores(first, r.targets, **batch.feeds)[0]
    assert r.special[0][0] and np.isclose(r.scores[0][0], drop, atol=1e-5) and drop != 0


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
def test_words_sum_their_pieces(family, request):
    model = request.getfixturevalue(family)
    ex = onnx_xai.Explainer(str(model.folder / "model.onnx"))
    pieces = ex.explain_text(TEXTS[1], "gradient")
    words = ex.explain_text(TEXTS[1], "gradient", words=True)
    inner = [w for w, s in zip(words.tokens[0], words.special[0]) if not s]
    assert inner == ["i", "did", "not", "like", "playing", "it,", "<script>"]
    assert len(pieces.tokens[0]) > len(words.tokens[0])
    assert np.isclose(words.scores[0].sum(), pieces.scores[0].sum())
    k = words.tokens[0].index("playing")
    at = [
        j
        for j, (a, b) in enumerate(pieces.spans[0])
        if a >= words.spans[0][k][0] and b <= words.spans[0][k][1]
    ]
    assert len(at) >= 2 and np.isclose(words.scores[0][k], pieces.scores[0][at].sum())


def test_labels_come_from_config_and_name_the_objective(roberta):
    ex = onnx_xai.Explainer(str(roberta.folder / "model.onnx"))
    r = ex.explain_text(TEXTS[:2], "gradient", objective="glad")
    assert list(r.targets) == [2, 2] and r.labels == ["glad", "glad"]
    batch = encoded(roberta, ex, TEXTS[:2])
    assert np.allclose(r.target_scores, ex.predict(batch.ids, **batch.feeds)[:, 2], atol=1e-6)
    with pytest.raises(InputError, match=r"'angry' names no classes \(labels: sad, calm, glad\)"):
        ex.explain_text(TEXTS[:1], "gradient", objective="angry")


def test_refusals_are_one_line(distilbert, tmp_path, monkeypatch):
    ex = onnx_xai.Explainer(str(distilbert.folder / "model.onnx"))
    with pytest.raises(InputError, match="no tokenizer: give tokenizer="):
        explain_text(ex, "hi", "gradient")
    with pytest.raises(InputError, match="no tokenizer.json at .* or beside it"):
        ex.explain_text("hi", "gradient", tokenizer=tmp_path)
    with pytest.raises(InputError, match="texts must be a text or a non-empty list"):
        ex.explain_text([], "gradient")
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(InputError, match=r"pip install onnx_xai\[text\]"):
        ex.explain_text("hi", "gradient")


# lrp: no rule for a transformer's GELU product (refused below)
TOKEN_METHODS = [name for name, m in REGISTRY.items() if "tokens" in m.kinds and name != "lrp"]


@pytest.mark.parametrize("method", TOKEN_METHODS)
def test_every_token_method_scores_the_ordinary_tokens_only(method, roberta):
    ex = onnx_xai.Explainer(str(roberta.folder / "model.onnx"))
    r = ex.explain_text(TEXTS, method)
    batch = encoded(roberta, ex)
    for i, n in enumerate(batch.lengths):
        assert len(r.scores[i]) == n and np.isfinite(r.scores[i]).all() and r.raw[i].shape[0] == n
        assert np.all(r.scores[i][r.special[i]] == 0) and np.abs(r.scores[i]).max() > 0
    assert r.signed == REGISTRY[method].signed


def test_smoothgrad_without_noise_is_the_gradient_and_deeplift_shap_of_one_baseline_is_deeplift(bert):
    ex = onnx_xai.Explainer(str(bert.folder / "model.onnx"))
    smooth = ex.explain_text(TEXTS, "smoothgrad", noise_level=0.0, n_samples=2)
    gradient = ex.explain_text(TEXTS, "gradient")
    shap, deeplift = ex.explain_text(TEXTS, "deeplift_shap"), ex.explain_text(TEXTS, "deeplift")
    for i in range(len(TEXTS)):
        assert (
            rel(smooth.scores[i], gradient.scores[i]) < 1e-6
            and rel(shap.scores[i], deeplift.scores[i]) < 1e-6
        )


def test_lrp_without_rules_for_the_attention_is_refused_in_one_line(bert):
    ex = onnx_xai.Explainer(str(bert.folder / "model.onnx"))
    with pytest.raises(
        ModelError, match="LRP has no rule for Mul .*explain this model with a gradient method"
    ):
        ex.explain_text(TEXTS, "lrp")


def test_deeplift_from_pad_against_captums_layer_deeplift(bert):
    """BERT's nonlinearities that Captum's DeepLift rescales are its registered modules (the pooler's
    Tanh); GELU and the attention's softmax keep their gradients on both sides."""
    import torch

    captum_attr = pytest.importorskip("captum.attr")
    ex = onnx_xai.Explainer(str(bert.folder / "model.onnx"))
    batch, tok = encoded(bert, ex), TextTokenizer.load(bert.folder)
    baseline = baseline_ids(batch, tok, "deeplift")
    r = ex.explain(batch.ids, "deeplift", 1, extra_inputs=batch.feeds, baseline=baseline)

    class Logits(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, ids, mask, types):
            return self.net(input_ids=ids, attention_mask=mask, token_type_ids=types).logits

    layer = captum_attr.LayerDeepLift(Logits(bert.net), bert.net.get_submodule(bert.embeddings))
    others = tuple(torch.as_tensor(batch.feeds[k]) for k in ("attention_mask", "token_type_ids"))
    ids, base = torch.as_tensor(batch.ids), torch.as_tensor(baseline)
    want = layer.attribute(ids, baselines=base, target=1, additional_forward_args=others).detach().numpy()
    assert np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max()
