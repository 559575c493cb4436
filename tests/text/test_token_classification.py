"""A model that labels every token (a tiny random-init BERT tagger exported by torch.onnx) explained
one token per text: the gradient of the chosen token's logit against float64 torch autograd,
integrated gradients against Captum's LayerIntegratedGradients with a (token, class) target,
occlusion against the drops of that logit computed by hand; the token named by index, by its text or
by its word; one-line errors where no token, a special token or a token for a text classifier is
given; the command line's --token, the page's outlined token, and the server's ``token``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.support.errors import InputError
from onnx_xai.text import TextTokenizer, baseline_ids

from ..forms.reference import rel
from .reference import embedding_gradients

captum_attr = pytest.importorskip("captum.attr")

TEXTS = ["the movie was great!", "i did not like playing it"]


@pytest.fixture(scope="module")
def tagger(bert_tokens):
    return bert_tokens, onnx_xai.Explainer(str(bert_tokens.folder / "model.onnx"))


def encoded(model, ex, texts=TEXTS):
    return TextTokenizer.load(model.folder).encode(texts, ex.inputs, ex.input_name)


def logits_of(model, ids, feeds) -> np.ndarray:
    given = {k: torch.as_tensor(np.asarray(v, np.int64)) for k, v in feeds.items()}
    with torch.no_grad():
        return model.net.double()(input_ids=torch.as_tensor(ids), **given).logits.numpy()


def test_the_gradient_of_a_tokens_top_label_against_torch_autograd(tagger):
    model, ex = tagger
    r = ex.explain_text(TEXTS, "gradient", token=[3, -2])
    batch = encoded(model, ex)
    positions = [3, int(batch.lengths[1]) - 2]
    assert r.positions == positions
    logits = logits_of(model, batch.ids, batch.feeds)
    top = logits[np.arange(2), positions].argmax(-1)
    assert r.targets.tolist() == top.tolist() and r.labels == [
        ["O", "B-PER", "I-PER", "B-LOC"][k] for k in top
    ]
    np.testing.assert_allclose(r.target_scores, logits[np.arange(2), positions, top], rtol=1e-4)
    reference = np.linalg.norm(embedding_gradients(model, batch.ids, batch.feeds, top, positions), axis=-1)
    for i, n in enumerate(batch.lengths):
        ordinary = ~batch.special[i, :n]
        assert rel(r.scores[i][ordinary], reference[i, :n][ordinary]) < 1e-4
        assert np.all(r.scores[i][~ordinary] == 0)


def test_integrated_gradients_of_a_named_label_against_captum(tagger):
    model, ex = tagger
    texts = ["i did not like it", "the movie was not great, not fun"]
    r = ex.explain_text(texts, "integrated_gradients", token="not", objective="B-LOC", n_steps=24)
    batch, tok = encoded(model, ex, texts), TextTokenizer.load(model.folder)
    assert r.positions is not None and all(r.tokens[i][r.positions[i]] == "not" for i in range(2))
    assert r.labels == ["B-LOC", "B-LOC"]

    def forward(ids, mask, types):
        return model.net.float()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits

    lig = captum_attr.LayerIntegratedGradients(forward, model.net.get_submodule(model.embeddings))
    want = (
        lig.attribute(
            torch.as_tensor(batch.ids),
            baselines=torch.as_tensor(baseline_ids(batch, tok, "integrated_gradients")),
            target=[(p, 3) for p in r.positions],
            additional_forward_args=tuple(
                torch.as_tensor(batch.feeds[k]) for k in ("attention_mask", "token_type_ids")
            ),
            n_steps=24,
        )
        .detach()
        .numpy()
    )
    for i, n in enumerate(batch.lengths):
        assert np.abs(r.raw[i] - want[i, :n]).max() <= 1e-4 * np.abs(want[i]).max()


def test_occlusion_drops_the_tokens_logit_as_computed_by_hand(tagger):
    model, ex = tagger
    r = ex.explain_text(TEXTS[1], "occlusion", token="playing")  # a word: its first piece, "play"
    batch, tok = encoded(model, ex, TEXTS[1:]), TextTokenizer.load(model.folder)
    k, label = r.positions[0], int(r.targets[0])
    assert r.tokens[0][k] == "play"
    start = logits_of(model, batch.ids, batch.feeds)[0, k, label]
    for j in range(1, int(batch.lengths[0]) - 1):
        removed = batch.ids.copy()
        removed[0, j] = tok.mask_id
        drop = start - logits_of(model, removed, batch.feeds)[0, k, label]
        assert abs(r.scores[0][j] - drop) <= 1e-4 * max(1.0, abs(drop))


def test_words_put_the_explained_token_at_its_word(tagger):
    _, ex = tagger
    r = ex.explain_text(TEXTS[1], "gradient", token="ing", words=True)
    assert r.tokens[0][r.positions[0]] == "playing"  # "##ing" is part of the word "playing"


@pytest.mark.parametrize(
    "token,message",
    [
        (None, "this model labels every token: choose the token to explain with token="),
        (0, "token 0 of text 0 ([CLS]) is a special token"),
        (40, "token 40 is outside text 0's"),
        ("film", "text 0 has no token or word 'film'"),
        ([1, 2, 3], "3 token values for 2 texts"),
    ],
)
def test_a_token_that_cannot_be_explained_is_one_line(tagger, token, message):
    with pytest.raises(
        InputError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        tagger[1].explain_text(TEXTS, "gradient", token=token)


def test_a_token_for_a_text_classifier_is_refused(distilbert):
    ex = onnx_xai.Explainer(str(distilbert.folder / "model.onnx"))
    with pytest.raises(InputError, match="token= is for models that label every token"):
        ex.explain_text(TEXTS, "gradient", token=1)


def test_the_command_line_explains_the_token_it_is_given(tagger, tmp_path, capsys):
    model, ex = tagger
    out = tmp_path / "out"
    args = ["explain", str(model.folder), "--text", TEXTS[0], "--method", "gradient", "--out", str(out)]
    assert main([*args, "--token", "great"]) == 0
    said = capsys.readouterr().out.splitlines()
    want = ex.explain_text(TEXTS[0], "gradient", token="great")
    assert said[1].startswith(f"0: 'great' is {want.labels[0]} (")
    record = json.loads((out / "texts" / "0.json").read_text())
    assert record["token"] == want.positions[0] == 4 and record["label"] == want.labels[0]
    np.testing.assert_allclose(record["explanations"][0]["scores"], want.scores[0], rtol=1e-6)
    assert "class='tok explained'" in (out / "report.html").read_text()
    assert main(args) == 1
    assert capsys.readouterr().err.strip().endswith("its index among the text's tokens or its text")


def test_inspect_says_the_output_labels_every_token(tagger, capsys):
    assert main(["inspect", str(tagger[0].folder)]) == 0
    said = capsys.readouterr().out
    assert "output logits" in said and "(a label per token: explain one with --token)  <- explained" in said
    assert "detection" not in said
