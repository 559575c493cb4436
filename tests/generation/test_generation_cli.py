"""``onnx-xai explain MODEL --prompt ... --max-new-tokens K``: generation.json (the tokens, and per
method the matrix with nulls after each step's prefix, as the library gives it) and generation.html
(rendered by headless Chromium without a console error, every token escaped), a line per token; a
prompt given to a model that takes no ids is a usage error."""

from __future__ import annotations

import json

import numpy as np

import onnx_xai
from onnx_xai.cli import main

from ..audit.test_report_browser import browse, console_errors

PROMPT = "the capital of <b>france</b> is"


def test_a_generation_is_written_as_json_and_a_page(gpt2, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", str(gpt2.folder), "--prompt", PROMPT, "--max-new-tokens", "3", "--out", str(out)]
    assert main([*args, "--method", "gradient", "occlusion"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == f"prompt: {PROMPT}" and said[-1].startswith("3 tokens, gradient, occlusion ->")
    record = json.loads((out / "generation.json").read_text())
    want = onnx_xai.Explainer(str(gpt2.folder / "model.onnx")).explain_generation(
        PROMPT, max_new_tokens=3, method="gradient"
    )
    assert record["ids"] == want.ids and record["generated_tokens"] == want.generated_tokens
    gradient, occlusion = record["explanations"]
    matrix = np.array([[np.nan if v is None else v for v in row] for row in gradient["matrix"]])
    np.testing.assert_allclose(matrix, want.matrix, rtol=1e-5)
    assert occlusion["replaced_by"] == "<|endoftext|>"
    page = out / "generation.html"
    text = page.read_text()
    assert "&lt;b&gt;" in text and "<b>france</b>" not in text and text.count("class='step'") == 6
    shown = browse(page, tmp_path, "--dump-dom")
    assert shown.returncode == 0 and not console_errors(shown.stderr) and "data-step" in shown.stdout


def test_a_prompt_for_a_model_that_takes_no_ids_is_a_usage_error(tmp_path, capsys):
    import torch

    from ..inputs.test_any_input import Mlp, export

    path = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx")
    assert main(["explain", path, "--prompt", "hello", "--out", str(tmp_path / "out")]) == 2
    assert "--prompt is for language models" in capsys.readouterr().err


def test_inspect_says_a_language_models_logits(gpt2, capsys):
    assert main(["inspect", str(gpt2.folder)]) == 0
    said = capsys.readouterr().out
    assert "(next-token logits: a language model, explain a generation with --prompt)  <- explained" in said
