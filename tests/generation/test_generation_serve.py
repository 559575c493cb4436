"""``onnx-xai serve`` on a causal language model (the tiny GPT-2 of conftest.py, with its tokenizer.json
and config.json beside it): ``:explain`` gives per prompt and method the matrix, the steps' scores and
the tokens that :func:`onnx_xai.generation.explain_generation` gives in-process (itself checked against
torch in test_generation.py); ``:predict`` gives the tokens of torch's greedy ``generate``; each bad
prompt is a one-line 400; a request over ``--max-runs`` is refused before anything runs; a long
generation runs in the long lane (``:predict`` answers beside it), stops at its deadline and at SIGTERM
(503, exit 0)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import numpy as np
import pytest
import torch

import onnx_xai
from onnx_xai.generation import explain_generation

from ..serve.server import Served

pytest.importorskip("kserve")

PROMPT = "the capital of france is"
RUNS, CAP = 30000, 24  # the server's --max-runs and --max-new-tokens


@pytest.fixture(scope="module")
def served(gpt2):
    path = gpt2.folder / "model.onnx"
    server = Served("--max-runs", str(RUNS), "--max-new-tokens", str(CAP), model=path, name="lm")
    yield server, onnx_xai.Explainer(str(path))
    server.stop()


def matrix(rows: list) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], np.float64)


def gpt2_tokenizer(ex):
    from onnx_xai.text import TextTokenizer

    return TextTokenizer.load(ex.source_path())


def test_explain_gives_the_librarys_matrix(served):
    server, ex = served
    instances = [
        {"prompt": PROMPT, "max_new_tokens": 4},
        {"prompt": "a cat", "max_new_tokens": 3, "score": "log_probability", "contrast": "paris"},
        {"prompt": PROMPT, "targets": " paris", "score": "logit"},
    ]
    methods = ["input_x_gradient", "integrated_gradients", "occlusion"]
    status, body = server.call("explain", instances, methods=methods)
    assert status == 200, body
    for instance, prediction, entries in zip(instances, body["predictions"], body["explanations"]):
        assert [e["method"] for e in entries] == methods
        for entry in entries:
            want = explain_generation(
                ex, instance["prompt"], gpt2_tokenizer(ex), instance.get("max_new_tokens", 10),
                entry["method"], score=instance.get("score", "probability"),
                targets=instance.get("targets"), contrast=instance.get("contrast"),
            )  # fmt: skip
            assert entry["prompt_tokens"] == want.prompt_tokens
            assert entry["generated_tokens"] == want.generated_tokens == prediction["tokens"]
            assert entry["ids"] == want.ids and entry["score"] == want.score
            assert entry["replaced_by"] == want.replaced_by and entry["contrast"] == want.contrast
            got = matrix(entry["matrix"])
            assert np.array_equal(np.isnan(got), np.isnan(want.matrix))
            np.testing.assert_allclose(got, want.matrix, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(entry["step_scores"], want.step_scores, rtol=1e-5, atol=1e-7)


def test_predict_is_torchs_greedy_generate_and_explain_defaults_to_input_x_gradient(served, gpt2):
    server, ex = served
    status, body = server.call("predict", [{"prompt": PROMPT, "max_new_tokens": 5}, "a cat"])
    assert status == 200, body
    for prompt, k, answer in zip([PROMPT, "a cat"], [5, 10], body["predictions"]):
        ids = gpt2_tokenizer(ex).tokenizer.encode(prompt).ids
        with torch.no_grad():
            want = gpt2.net.generate(torch.as_tensor([ids]), max_new_tokens=k, do_sample=False)
        assert answer["ids"] == want[0, len(ids) :].tolist() and answer["prompt"] == prompt
        assert answer["text"] == gpt2_tokenizer(ex).tokenizer.decode(answer["ids"])
    status, body = server.call("explain", ["a cat"])
    assert status == 200 and [e["method"] for e in body["explanations"][0]] == ["input_x_gradient"]


@pytest.mark.parametrize(
    "instance,message",
    [
        ({"max_new_tokens": 3}, 'instance 0 must be a prompt (a string, or {"prompt": "..."})'),
        (7, "instance 0 must be a prompt"),
        ("  ", "instance 0: the prompt is empty"),
        (
            {"prompt": "a", "max_new_tokens": 0},
            "instance 0: max_new_tokens must be a whole number >= 1, not 0",
        ),
        ({"prompt": "a", "max_new_tokens": "3"}, "instance 0: max_new_tokens must be a whole number >= 1"),
        ({"prompt": "a", "max_new_tokens": True}, "instance 0: max_new_tokens must be a whole number >= 1"),
        ({"prompt": "a", "score": "odds"}, "instance 0: score must be one of probability, logit, log_proba"),
        ({"prompt": "a", "targets": ""}, "instance 0: targets must be a text of one token or more"),
        ({"prompt": "a", "seed": 1}, "instance 0: unknown field(s) ['seed']"),
        (
            {"prompt": "a", "max_new_tokens": CAP + 1},
            f"instance 0: max_new_tokens 25; at most {CAP} (--max-n",
        ),
        ({"prompt": PROMPT * 2, "max_new_tokens": 20}, "instance 0: the prompt's 48 tokens and 20 new ones"),
    ],
)
def test_a_bad_prompt_is_a_one_line_400(served, instance, message):
    for verb in ("explain", "predict"):
        status, body = served[0].call(verb, [instance])
        assert status == 400 and body["error"].startswith(message) and "\n" not in body["error"], body


def test_a_request_over_max_runs_is_refused_before_anything_runs(served):
    started = time.monotonic()
    status, body = served[0].call("explain", [PROMPT, "a cat", "paris is"], methods=["kernel_shap"])
    assert status == 400 and time.monotonic() - started < 3
    # per prompt: 10 greedy forwards, 10 copies of the shared run, 10 x 1000 coalitions
    assert body["error"] == (
        "generation: 10 tokens, each explained by kernel_shap: n_samples 1000, on 3 instances: 30060 model "
        f"runs; at most {RUNS} (--max-runs): ask for fewer (max_new_tokens, instances) or methods that run "
        "the model less"
    )
    status, body = served[0].call("explain", [{"prompt": "a cat", "max_new_tokens": 2}], methods=["gradcam"])
    assert status == 400 and "gradcam (image and signal)" in body["error"]


def test_the_refusal_comes_before_any_run_in_process(gpt2, monkeypatch):
    from onnx_xai.serve.model import ExplainedModel, ServeConfig

    model = ExplainedModel("lm", str(gpt2.folder / "model.onnx"), ServeConfig(max_runs=100))
    model.load()
    ran: list = []
    monkeypatch.setattr(model.prompts, "run", lambda *a: ran.append(a))
    monkeypatch.setattr(model.ex, "predict", lambda *a, **k: ran.append(a))
    payload = {
        "instances": [{"prompt": PROMPT, "max_new_tokens": 5}],
        "parameters": {"methods": ["occlusion"]},
    }
    with pytest.raises(Exception, match=r"\(--max-runs\)") as refused:
        asyncio.run(model.explain(payload))
    assert type(refused.value).__name__ == "InvalidInput" and ran == []


def test_a_long_generation_runs_in_the_long_lane_and_stops_at_its_deadline(served):
    server, _ = served
    found: dict = {}
    long = {"prompt": PROMPT, "max_new_tokens": 20}  # 20 + 20 + 20 x 1000 runs: several seconds

    def explain():
        found["answer"] = server.call("explain", [long], methods=["kernel_shap"])

    thread = threading.Thread(target=explain)
    thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    status, body = server.call("predict", [{"prompt": "a cat", "max_new_tokens": 2}])
    assert status == 200 and len(body["predictions"][0]["ids"]) == 2
    assert time.monotonic() - started < 2.0 and thread.is_alive()
    thread.join(timeout=120)
    status, body = found["answer"]
    assert status == 200 and len(body["explanations"][0][0]["matrix"]) == 20
    status, body = server.call("explain", [long], methods=["kernel_shap"], timeout_s=1)
    assert status == 503 and body["error"].startswith("the work ran past its deadline of 1 s")


def test_sigterm_stops_a_long_generation_with_503_and_exits_0(gpt2):
    server = Served("--grace-s", "10", "--max-runs", str(RUNS), model=gpt2.folder / "model.onnx", name="lm")
    try:
        found: dict = {}
        long = [{"prompt": PROMPT, "max_new_tokens": 20}]
        thread = threading.Thread(
            target=lambda: found.update(r=server.call("explain", long, methods=["kernel_shap"]))
        )
        thread.start()
        time.sleep(1.5)
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.process.wait(timeout=15) == 0 and time.monotonic() - started < 10
        thread.join(timeout=5)
        status, body = found["r"]
        assert status == 503 and body["error"].startswith("the server is stopping")
    finally:
        if server.process.poll() is None:
            server.process.kill()
