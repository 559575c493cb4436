"""``onnx-xai augment`` through a subprocess: it writes a valid model, and bad input gives one line
on stderr, a non-zero exit and no file."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

from .graph.test_augment import export, small_cnn


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "onnx_xai.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(export(small_cnn(), (1, 3, 8, 8)), path)
    return path


def test_augment_writes_a_rewritten_model(model_path, tmp_path):
    out = tmp_path / "m.xai.onnx"
    done = cli("augment", model_path, out, "--outputs", "gradcam")
    assert done.returncode == 0, done.stderr
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    assert meta["output_sets"] == ["gradcam"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


@pytest.mark.parametrize("problem", ["missing", "not_onnx", "same_file", "no_folder", "bad_layer"])
def test_bad_input_gives_one_line_and_no_file(problem, model_path, tmp_path):
    out = tmp_path / "out.onnx"
    args = {
        "missing": ("augment", tmp_path / "nope.onnx", out),
        "not_onnx": ("augment", tmp_path / "text.onnx", out),
        "same_file": ("augment", model_path, model_path),
        "no_folder": ("augment", model_path, tmp_path / "nowhere" / "out.onnx"),
        "bad_layer": ("augment", model_path, out, "--target-layer", "nothing"),
    }[problem]
    (tmp_path / "text.onnx").write_text("this is text, not a protobuf")
    before = model_path.read_bytes()
    done = cli(*args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnx-xai: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and model_path.read_bytes() == before
