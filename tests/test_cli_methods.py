"""No method offered that cannot run: every ``--method`` choice of ``onnx-xai explain`` runs with its
defaults, and ``inspect`` lists it (deeplift_shap with each photo's own references, or a
``--baselines`` file), on a small CNN classifier and a bundled photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.imaging.preprocessing import Preprocessing, default_references, preprocessing_for
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.runtime.methods import METHOD_NAMES, REGISTRY

from .forms.reference import rel

PHOTO = Path(str(DEMO_PHOTOS)) / "chelsea.jpg"


PHOTO_METHODS = [m for m in METHOD_NAMES if "image" in REGISTRY[m].kinds]


@pytest.mark.parametrize("method", [m for m in PHOTO_METHODS if m != "smoothgrad"] + ["smoothgrad"])
def test_every_method_offered_runs_from_the_command_line(small_model, tmp_path, capsys, method):
    out = tmp_path / "out"
    assert main(["explain", str(small_model), str(PHOTO), "--method", method, "--out", str(out)]) == 0
    record = json.loads((out / f"{PHOTO.name}.json").read_text())
    assert [e["method"] for e in record["explanations"]] == [method]


def test_inspect_offers_every_method_on_a_model_that_runs_them(small_model, capsys):
    assert main(["inspect", str(small_model)]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("methods: "))
    assert listed.removeprefix("methods: ").split(", ") == PHOTO_METHODS


def test_deeplift_shap_compares_each_photo_with_its_three_references(small_model, tmp_path):
    """The default: the photo blurred, the mean colour (0 in normalized units) and black (-mean/std),
    each photo its own; a --baselines file replaces them (here the same three, as one set)."""
    ex = onnx_xai.Explainer(small_model)
    settings = preprocessing_for(ex, Preprocessing())
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype(np.float32)
    references = default_references(x, settings)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    assert references.shape == (1, 3, 3, 8, 8)
    assert np.allclose(references[0, 1], 0) and np.allclose(references[0, 2], (-mean / std)[:, None, None])
    assert references[0, 0].std() < x.std()  # blurred
    per_photo = ex.explain(x, "deeplift_shap", baselines=references).raw
    shared = ex.explain(x, "deeplift_shap", baselines=references[0]).raw
    assert rel(per_photo, shared) < 1e-6
    path = tmp_path / "refs.npy"
    np.save(path, references[0])
    out = tmp_path / "out"
    args = ["explain", str(small_model), str(PHOTO), "--method", "deeplift_shap", "--no-overlays"]
    assert main([*args, "--out", str(out / "a")]) == 0
    assert main([*args, "--baselines", str(path), "--out", str(out / "b")]) == 0


def test_a_bad_baselines_file_is_one_line(small_model, tmp_path, capsys):
    path = tmp_path / "refs.npy"
    np.save(path, np.zeros((2, 3, 5, 5), np.float32))
    args = [
        "explain",
        str(small_model),
        str(PHOTO),
        "--method",
        "deeplift_shap",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--baselines", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "want finite numbers [B, 3, 8, 8]" in err[0]


def test_a_large_cost_is_said_before_the_work(small_model, tmp_path, capsys):
    args = ["explain", str(small_model), str(PHOTO), "--method", "rise", "--no-overlays"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    assert "onnx-xai: rise: n_masks 2000, on 1 sample: 2000 model runs per photo" in capsys.readouterr().err
