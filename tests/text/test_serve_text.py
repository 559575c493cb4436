"""``onnx-xai serve`` on a text encoder (an Optimum-like folder: model.onnx with its tokenizer.json and
config.json beside it): texts in, ``:explain`` gives per text the tokens and each token's score, the
same as ``explain_text`` gives them (texts of other lengths batched beside it change nothing: each is
padded to its bucket), the labels from config.json; ``:predict`` the model's output; a text that is
not one is a one-line 400."""

from __future__ import annotations

import numpy as np
import pytest

import onnx_xai

from ..serve.server import Served

TEXTS = ["the movie was great and fun", "a terrible , boring film that i did not like at all , not at all"]


@pytest.fixture(scope="module")
def served(distilbert):
    server = Served(
        "--methods", "integrated_gradients", "occlusion", model=distilbert.folder / "model.onnx", name="texts"
    )
    yield server, onnx_xai.Explainer(str(distilbert.folder / "model.onnx"))
    server.stop()


def test_tokens_and_scores_as_the_library_gives_them(served):
    server, ex = served
    status, body = server.call("explain", [TEXTS[0], {"text": TEXTS[1]}])
    assert status == 200, body
    for method in ("integrated_gradients", "occlusion"):
        want = ex.explain_text(TEXTS, method)
        for i, entries in enumerate(body["explanations"]):
            entry = next(e for e in entries if e["method"] == method)
            assert entry["tokens"] == want.tokens[i] and entry["label"] == want.labels[i]
            assert entry["target"] == int(want.targets[i])
            np.testing.assert_allclose(entry["scores"], want.scores[i], rtol=1e-4, atol=1e-6)
            assert entry["special"] == [bool(s) for s in want.special[i]]
    status, body = server.call("predict", [TEXTS[0]])
    assert status == 200 and body["predictions"][0]["top_k"][0]["label"] in ("negative", "positive")


@pytest.mark.parametrize(
    "instance,message",
    [
        (7, "instance 0 must be a text"),
        ({"txt": "hello"}, "instance 0 must be a text"),
        ("   ", "instance 0 must be a text"),
    ],
)
def test_a_bad_text_is_one_line(served, instance, message):
    status, body = served[0].call("explain", [instance])
    assert status == 400 and body["error"].startswith(message)


def test_a_tagger_explains_the_token_each_instance_names(bert_tokens):
    server = Served("--methods", "gradient", model=bert_tokens.folder / "model.onnx", name="tagger")
    try:
        ex = onnx_xai.Explainer(str(bert_tokens.folder / "model.onnx"))
        texts = [TEXTS[0], TEXTS[1]]
        status, body = server.call(
            "explain", [{"text": texts[0], "token": "great"}, {"text": texts[1], "token": 3}]
        )
        assert status == 200, body
        want = ex.explain_text(texts, "gradient", token=["great", 3])
        for i, (entry,) in enumerate(body["explanations"]):
            assert entry["token"] == want.positions[i] and entry["label"] == want.labels[i]
            assert np.isclose(entry["score"], want.target_scores[i], rtol=1e-4)
            np.testing.assert_allclose(entry["scores"], want.scores[i], rtol=1e-4, atol=1e-6)
        status, body = server.call("explain", [texts[0]])
        assert status == 400 and body["error"].startswith("instance 0: this model labels every token")
        status, body = server.call("explain", [{"text": texts[0], "token": "film"}])
        assert status == 400 and body["error"].startswith("text 0 has no token or word 'film'")
    finally:
        server.stop()
