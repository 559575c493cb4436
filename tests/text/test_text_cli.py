"""``onnx-xai explain`` on a text encoder: --text and --text-file (.txt, .jsonl) explained into a JSON
per text and report.html as one set (a rerun with fewer texts leaves none of the old ones), the
scores those of the library, a line per text; usage errors in one line with exit status 2, a missing
tokenizer or a bad text file with 1; ``inspect`` names the tokenizer and the class names; the page
renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import torch

import onnx_xai
from onnx_xai.cli import main

from ..audit.test_report_browser import browse, console_errors
from ..inputs.test_any_input import Mlp, export
from .conftest import SPECIAL, WORDS

TEXTS = ["the movie was great!", "i did not like playing it, <script>"]


def test_texts_are_explained_into_records_and_a_page(distilbert, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", str(distilbert.folder), "--text", TEXTS[0], "--text", TEXTS[1], "--method", "gradient"]
    assert main([*args, "occlusion", "--out", str(out)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == f"class names: 2 from {distilbert.folder / 'config.json'}"
    assert said[1].startswith("0: ") and " gradient: [CLS] the(" in said[1] and "\x1b" not in said[1]
    assert said[-1] == f"2 texts, gradient, occlusion -> {out}/texts/*.json, {out}/report.html"
    record = json.loads((out / "texts" / "1.json").read_text())
    r = onnx_xai.Explainer(str(distilbert.folder / "model.onnx")).explain_text(TEXTS[1], "gradient")
    assert (
        record["text"] == TEXTS[1] and record["tokens"] == r.tokens[0] and len(record["model_sha256"]) == 64
    )
    assert (record["target"], record["label"]) == (int(r.targets[0]), r.labels[0])
    assert np.isclose(record["score"], r.target_scores[0], atol=1e-6)
    gradient, occlusion = record["explanations"]
    assert (gradient["method"], gradient["signed"], occlusion["method"]) == ("gradient", False, "occlusion")
    assert np.allclose(gradient["scores"], r.scores[0], rtol=1e-6) and record["special"][0] is True
    report = (out / "report.html").read_text()
    assert report.count("<section") == 2 and ">&lt;</span>" in report and "<script" not in report


def test_text_files_and_a_rerun_with_fewer_texts(distilbert, tmp_path, capsys):
    lines = tmp_path / "texts.jsonl"
    lines.write_text("".join(json.dumps({"text": t}) + "\n" for t in [*TEXTS, "a day"]))
    out = tmp_path / "out"
    model = str(distilbert.folder / "model.onnx")
    assert main(["explain", model, "--text-file", str(lines), "--method", "gradient", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "texts").iterdir()) == ["0.json", "1.json", "2.json"]
    plain = tmp_path / "texts.txt"
    plain.write_text(f"{TEXTS[1]}\n\n")
    args = ["explain", model, "--text-file", str(plain), "--words", "--target", "positive", "--out", str(out)]
    assert main([*args, "--method", "gradient"]) == 0
    assert [p.name for p in (out / "texts").iterdir()] == ["0.json"]
    record = json.loads((out / "texts" / "0.json").read_text())
    assert record["words"] and "playing" in record["tokens"] and record["label"] == "positive"
    assert not [p for p in out.iterdir() if p.name.startswith(".onnx-xai")]  # no staging left
    capsys.readouterr()


def test_usage_errors_are_one_line(distilbert, tmp_path, capsys):
    folder = str(distilbert.folder)
    mlp = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path / "mlp.onnx")
    cases = [
        (
            ["explain", folder, "photo.jpg", "--text", "hi"],
            2,
            "a text encoder explains --text or --text-file",
        ),
        (["explain", folder], 2, "a text encoder explains texts: give --text TEXT or --text-file FILE"),
        (
            ["explain", folder, "--text", "hi", "--background", "b.csv"],
            2,
            "--background is for photos and tables",
        ),
        (
            ["explain", mlp, "--text", "hi"],
            2,
            "--text and --text-file are for text encoders; this model's input is a table",
        ),
        (["explain", mlp], 2, "give photos (or a table model's rows"),
    ]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(distilbert.folder / "model.onnx", alone / "model.onnx")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n["not", "an object"]\n')
    cases += [
        (["explain", str(alone), "--text", "hi"], 1, "no tokenizer.json at"),
        (["explain", folder, "--text-file", str(bad)], 1, 'bad.jsonl, line 2: want {"text": "..."}'),
    ]
    for args, status, message in cases:
        assert main([*args, "--out", str(tmp_path / "o")]) == status, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_inspect_names_the_tokenizer_and_the_class_names(distilbert, tmp_path, capsys):
    assert main(["inspect", str(distilbert.folder)]) == 0
    said = capsys.readouterr().out
    vocabulary = len(SPECIAL) + len(WORDS)
    assert (
        f"tokenizer: {distilbert.folder / 'tokenizer.json'} (WordPiece, {vocabulary} tokens; special: [PAD]"
        in said
    )
    assert "class names: negative, positive (config.json id2label)" in said
    assert "integer ids: gradients are taken at '/distilbert/embeddings/word_embeddings/" in said
    assert "methods: gradient, input_x_gradient, integrated_gradients" in said
    shutil.copy(distilbert.folder / "model.onnx", tmp_path / "model.onnx")
    assert main(["inspect", str(tmp_path / "model.onnx")]) == 0
    assert (
        "tokenizer: none beside the model (explain --text needs --tokenizer PATH)" in capsys.readouterr().out
    )


def test_the_page_renders_in_a_browser(distilbert, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", str(distilbert.folder), "--text", TEXTS[1], "--words", "--method", "gradient"]
    assert main([*args, "--out", str(out)]) == 0
    capsys.readouterr()
    done = browse(out / "report.html", tmp_path, "--dump-dom")
    assert done.returncode == 0 and not console_errors(done.stderr), done.stderr[-2000:]
    tokens = re.findall(r'<span class="tok[^>]*>([^<]*)</span>', done.stdout)
    assert tokens == ["[CLS]", "i", "did", "not", "like", "playing", "it,", "&lt;script&gt;", "[SEP]"]
