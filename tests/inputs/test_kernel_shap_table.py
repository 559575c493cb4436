"""KernelSHAP over a table's columns against background rows: exact Shapley values (every
coalition) when they fit the sample budget, against the values by enumeration of the same game
(a coalition scored as the mean, over the background rows, of the row with the others' columns);
additivity (sum + base = f(x)) exact in both the exact and the sampled modes; the errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import onnx_xai
from onnx_xai.support.errors import InputError

from .test_any_input import Mlp, export


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    path = export(Mlp().eval(), (torch.zeros(1, 6),), ["X"], tmp_path_factory.mktemp("t") / "mlp.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return onnx_xai.Explainer(path), lambda rows: session.run(None, {"X": rows.astype(np.float32)})[0]


def shapley_by_enumeration(f, x: np.ndarray, background: np.ndarray, target: int) -> np.ndarray:
    features = len(x)

    def value(kept) -> float:
        rows = background.copy()
        rows[:, list(kept)] = x[list(kept)]
        return float(f(rows)[:, target].astype(np.float64).mean())

    found = np.zeros(features)
    for j in range(features):
        others = [k for k in range(features) if k != j]
        for size in range(features):
            weight = math.factorial(size) * math.factorial(features - size - 1) / math.factorial(features)
            for kept in itertools.combinations(others, size):
                found[j] += weight * (value(kept + (j,)) - value(kept))
    return found


def test_exact_kernel_shap_is_the_shapley_value(mlp):
    ex, f = mlp
    rng = np.random.default_rng(0)
    x, background = rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(12, 6)).astype(np.float32)
    r = ex.explain(x, "kernel_shap", background=background)
    assert r.raw.shape == (3, 6) and r.base.shape == (3,)
    for i in range(3):
        want = shapley_by_enumeration(f, x[i], background, int(r.targets[i]))
        assert np.abs(r.raw[i] - want).max() < 1e-5 * max(1.0, np.abs(want).max())
        assert r.base[i] == pytest.approx(f(background)[:, r.targets[i]].mean(), abs=1e-6)
        assert r.raw[i].sum() + r.base[i] == pytest.approx(f(x[i : i + 1])[0, r.targets[i]], abs=1e-5)


def test_sampled_kernel_shap_adds_up(mlp):
    ex, f = mlp
    rng = np.random.default_rng(1)
    x, background = rng.normal(size=(2, 6)).astype(np.float32), rng.normal(size=(8, 6)).astype(np.float32)
    r = ex.explain(x, "kernel_shap", background=background, n_samples=20, noise_seed=3)  # 20 < 2^6 - 2
    scores = f(x)[np.arange(2), r.targets]
    assert np.allclose(r.raw.sum(1) + r.base, scores, atol=1e-5)
    assert ex.cost(x, ["kernel_shap"], background=background, n_samples=20)[0] == 2 * 21 * 8


def test_a_table_without_background_is_one_line(mlp):
    ex, _ = mlp
    with pytest.raises(InputError, match="needs background="):
        ex.explain(np.zeros((1, 6), np.float32), "kernel_shap")
    with pytest.raises(InputError, match=r"want \[rows, 6\]"):
        ex.explain(np.zeros((1, 6), np.float32), "kernel_shap", background=np.zeros((3, 5)))
    with pytest.raises(InputError, match=r"explain other inputs only: lime \(image, tokens and signal\)"):
        ex.explain(np.zeros((1, 6), np.float32), "lime")


class CumulativeMlp(nn.Module):
    """An MLP whose hidden units go through Atan (no gradient rule)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.first, self.last = nn.Linear(5, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.last(torch.atan(torch.tanh(self.first(x))))


def test_kernel_shap_explains_a_table_model_the_gradient_cannot_cross(tmp_path):
    """KernelSHAP needs the score only: a model with an op no rule differentiates still gets exact
    Shapley values, while the gradient refuses it naming the op."""
    path = export(CumulativeMlp().eval(), (torch.zeros(1, 5),), ["X"], tmp_path / "cumsum.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def f(rows: np.ndarray) -> np.ndarray:
        return session.run(None, {"X": rows.astype(np.float32)})[0]

    rng = np.random.default_rng(3)
    x, background = rng.normal(size=(2, 5)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32)
    ex = onnx_xai.Explainer(path)
    r = ex.explain(x, "kernel_shap", background=background, objective=1)
    with pytest.raises(onnx_xai.UnsupportedModelError, match="Atan"):
        ex.explain(x, "gradient", objective=1)
    for i in range(2):
        want = shapley_by_enumeration(f, x[i], background, 1)
        assert np.abs(r.raw[i] - want).max() < 1e-5 * max(1.0, np.abs(want).max())
        assert r.raw[i].sum() + r.base[i] == pytest.approx(f(x[i : i + 1])[0, 1], abs=1e-5)
