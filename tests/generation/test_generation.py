"""A causal language model's generation explained from its ONNX file: tiny random-init GPT-2 and
Llama-style models (rotary positions, RMSNorm, grouped-query attention) exported by torch.onnx. The
greedy tokens are torch's ``generate``; each step's gradient at the word embeddings is float64
autograd of that token's probability on its prefix; integrated gradients from zero embeddings is
Captum's ``IntegratedGradients`` on ``inputs_embeds``; occlusion is the probability's drop computed by
hand with the replacement token; KernelSHAP adds up; the logit, log-probability and contrastive
scores are torch's. Files with a cache: test_cache.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import onnx_xai

captum_attr = pytest.importorskip("captum.attr")

PROMPT = "the capital of france is"


def prompt_ids(model) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model.folder / "tokenizer.json")).encode(PROMPT).ids


def step_probability(net, ids, embeds=None):
    """The last position's softmax, ``[V]``, float64, from ids or from word embeddings."""
    if embeds is not None:
        return torch.softmax(net(inputs_embeds=embeds).logits[0, -1], -1)
    return torch.softmax(net(input_ids=torch.as_tensor([ids])).logits[0, -1], -1)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def lm(request):
    model = request.getfixturevalue(request.param)
    return model, onnx_xai.Explainer(str(model.folder / "model.onnx"))


def test_greedy_tokens_are_torchs_generate(lm):
    model, ex = lm
    r = ex.explain_generation(PROMPT, max_new_tokens=5, method="gradient")
    with torch.no_grad():
        want = model.net.generate(torch.as_tensor([prompt_ids(model)]), max_new_tokens=5, do_sample=False)
    assert r.ids == want[0].tolist()
    assert r.matrix.shape == (len(r.generated_tokens), len(r.prompt_tokens) + len(r.generated_tokens) - 1)


def test_each_steps_gradient_is_float64_autograd_of_its_probability(lm):
    model, ex = lm
    r = ex.explain_generation(PROMPT, max_new_tokens=4, method="gradient")
    net = copy.deepcopy(model.net).double()
    table = net.get_input_embeddings()
    prompt = len(r.prompt_tokens)
    for k, token in enumerate(r.ids[prompt:]):
        prefix = r.ids[: prompt + k]
        embeds = table(torch.as_tensor([prefix])).detach().requires_grad_(True)
        probability = step_probability(net, prefix, embeds)[token]
        probability.backward()
        want = embeds.grad[0].norm(dim=-1).numpy()
        assert np.abs(r.matrix[k, : len(prefix)] - want).max() <= 1e-4 * want.max()
        assert np.isnan(r.matrix[k, len(prefix) :]).all()
        assert np.isclose(r.step_scores[k], float(probability), rtol=1e-4)


def test_integrated_gradients_from_zero_embeddings_against_captum(gpt2):
    ex = onnx_xai.Explainer(str(gpt2.folder / "model.onnx"))
    r = ex.explain_generation(PROMPT, max_new_tokens=3, method="integrated_gradients", n_steps=32)
    prompt, net = len(r.prompt_tokens), gpt2.net
    for k, token in enumerate(r.ids[prompt:]):
        prefix = r.ids[: prompt + k]
        embeds = net.get_input_embeddings()(torch.as_tensor([prefix])).detach()
        ig = captum_attr.IntegratedGradients(lambda e: torch.softmax(net(inputs_embeds=e).logits[:, -1], -1))
        want = ig.attribute(embeds, baselines=torch.zeros_like(embeds), target=token, n_steps=32)
        want = want[0].sum(-1).detach().numpy()
        assert np.abs(r.matrix[k, : len(prefix)] - want).max() <= 1e-4 * np.abs(want).max()


def test_occlusion_is_the_probabilitys_drop_with_the_replacement_token(gpt2):
    ex = onnx_xai.Explainer(str(gpt2.folder / "model.onnx"))
    r = ex.explain_generation(PROMPT, max_new_tokens=2, method="occlusion")
    assert r.replaced_by == "<|endoftext|>"
    prompt = len(r.prompt_tokens)
    with torch.no_grad():
        for k, token in enumerate(r.ids[prompt:]):
            prefix = r.ids[: prompt + k]
            start = float(step_probability(gpt2.net, prefix)[token])
            for j in range(len(prefix)):
                removed = list(prefix)
                removed[j] = gpt2.eos
                drop = start - float(step_probability(gpt2.net, removed)[token])
                assert abs(r.matrix[k, j] - drop) <= 1e-5 + 1e-4 * abs(drop)


def test_kernel_shap_over_the_prefix_adds_up(gpt2):
    ex = onnx_xai.Explainer(str(gpt2.folder / "model.onnx"))
    r = ex.explain_generation(PROMPT, max_new_tokens=2, method="kernel_shap", n_samples=300)
    prompt = len(r.prompt_tokens)
    with torch.no_grad():
        for k, token in enumerate(r.ids[prompt:]):
            prefix = r.ids[: prompt + k]
            empty = float(step_probability(gpt2.net, [gpt2.eos] * len(prefix))[token])
            total = np.nansum(r.matrix[k])
            assert np.isclose(total, r.step_scores[k] - empty, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("score", ["logit", "log_probability"])
def test_the_logit_and_log_probability_scores_and_a_contrast(gpt2, score):
    ex = onnx_xai.Explainer(str(gpt2.folder / "model.onnx"))
    r = ex.explain_generation(PROMPT, max_new_tokens=2, method="gradient", score=score, contrast=" mat")
    prompt = len(r.prompt_tokens)
    from tokenizers import Tokenizer

    other = Tokenizer.from_file(str(gpt2.folder / "tokenizer.json"))
    contrasts = (other.encode(" mat", add_special_tokens=False).ids * 2)[:2]  # one token per step
    assert r.contrast == [other.id_to_token(c) for c in contrasts]
    with torch.no_grad():
        for k, (token, contrast) in enumerate(zip(r.ids[prompt:], contrasts)):
            logits = gpt2.net(input_ids=torch.as_tensor([r.ids[: prompt + k]])).logits[0, -1].double()
            values = logits if score == "logit" else torch.log_softmax(logits, -1)
            assert np.isclose(r.step_scores[k], float(values[token] - values[contrast]), rtol=1e-4, atol=1e-5)


def test_given_targets_are_explained(gpt2):
    ex = onnx_xai.Explainer(str(gpt2.folder / "model.onnx"))
    r = ex.explain_generation(PROMPT, targets=" paris", method="input_x_gradient")
    assert "".join(r.generated_tokens).replace("Ġ", " ") == " paris"
