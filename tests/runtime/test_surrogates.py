"""LIME and KernelSHAP against Captum's ``Lime`` and ``KernelShap`` on the method table's small CNN,
with the same feature masks and the same on/off samples (handed to Captum as its perturbation
generator); Captum builds the copies, runs the float64 torch net, weighs the copies (its cosine
kernel; its Shapley end-point weights) and fits the interpretable model, here a weighted ridge solved
by the normal equations in torch. Also the superpixels' properties and the Shapley-kernel sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum._utils.models.model import Model
from captum.attr import KernelShap, Lime

from onnx_xai.runtime.methods.surrogates import kernel_shap_samples, lime_samples
from onnx_xai.runtime.superpixels import slic

from ..forms.reference import rel
from .test_method_references import setup  # noqa: F401  (the module's fixture)


class WeightedRidge(Model):
    """Captum's interpretable model interface: ``min Σ w (y - b - z·β)² + alpha |β|²`` by the normal
    equations (the intercept unpenalized, the data centred on their weighted means)."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def fit(self, train_data, **kwargs):
        z, y, w = (torch.cat(parts).double() for parts in zip(*train_data))
        y, w = y.reshape(-1), w.reshape(-1)
        zc = z - (w @ z) / w.sum()
        yc = y - (w @ y) / w.sum()
        gram = zc.T @ (w[:, None] * zc) + self.alpha * torch.eye(z.shape[1], dtype=torch.float64)
        self.coefficients = torch.linalg.solve(gram, zc.T @ (w * yc))
        return None

    def representation(self):
        return self.coefficients.reshape(1, -1)

    def __call__(self, x):
        return x @ self.coefficients


def _samples(rows: np.ndarray):
    def generator(original, **kwargs):
        for row in rows:
            yield torch.as_tensor(row[None], dtype=torch.long)

    return generator


def _grid(height: int, width: int, cell: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width] // cell
    return (ys * ((width + cell - 1) // cell) + xs).astype(np.int64)


@pytest.mark.parametrize("baseline, alpha", [(0.0, 1.0), (-0.5, 0.0)])
def test_lime_matches_captum_on_the_same_samples(setup, baseline, alpha):  # noqa: F811
    ex, net, x, targets = setup
    mask = _grid(16, 16, 4)
    for i in range(len(x)):
        ours = ex.explain(
            x[i : i + 1], "lime", objective=targets[i : i + 1], feature_mask=mask, n_samples=80,
            noise_seed=7, baseline=baseline, alpha=alpha, batch_size=16,
        ).raw  # fmt: skip
        lime = Lime(
            net, interpretable_model=WeightedRidge(alpha), perturb_func=_samples(lime_samples(80, 16, 7))
        )
        want = lime.attribute(
            torch.tensor(x[i : i + 1], dtype=torch.float64), target=int(targets[i]), n_samples=80,
            feature_mask=torch.as_tensor(mask)[None, None], baselines=baseline,
        )  # fmt: skip
        assert rel(ours, want.numpy()) < 1e-4


def test_kernel_shap_matches_captum_on_the_same_samples(setup):  # noqa: F811
    ex, net, x, targets = setup
    mask = _grid(16, 16, 8)  # 4 features
    ours = ex.explain(x, "kernel_shap", objective=targets, feature_mask=mask, n_samples=60, noise_seed=2).raw
    for i in range(len(x)):
        shap = KernelShap(net)
        shap.interpretable_model = WeightedRidge(0.0)
        shap.perturb_func = _samples(kernel_shap_samples(60, 4, 2))
        want = shap.attribute(
            torch.tensor(x[i : i + 1], dtype=torch.float64), target=int(targets[i]), n_samples=60,
            feature_mask=torch.as_tensor(mask)[None, None],
        )  # fmt: skip
        assert rel(ours[i : i + 1], want.numpy()) < 1e-4


def test_kernel_shap_is_efficient_and_near_the_exact_shapley_values(setup):  # noqa: F811
    """Three features: the values sum to score(all on) - score(all off) to the precision of the fit
    (the end points' 10⁶ weights), and approach the Shapley values computed over every coalition
    (400 samples: each of the 6 coalitions about 66 times, their unequal counts the only error)."""
    ex, net, x, targets = setup
    mask = np.repeat(np.arange(3), [6, 6, 4])[:, None].repeat(16, 1)  # three bands of rows
    found = ex.explain(
        x[:1], "kernel_shap", objective=targets[:1], feature_mask=mask, n_samples=400, noise_seed=0
    )
    values = np.array([found.raw[0, 0][mask == k][0] for k in range(3)])
    sample = torch.tensor(x[:1], dtype=torch.float64)

    def score(on: tuple[int, ...]) -> float:
        keep = torch.as_tensor(np.isin(mask, on), dtype=torch.float64)
        with torch.no_grad():
            return float(net(sample * keep)[0, targets[0]])

    shapley = np.zeros(3)
    for k in range(3):
        for group in [(), *[(j,) for j in range(3) if j != k], tuple(j for j in range(3) if j != k)]:
            share = 1 / 3 if len(group) != 1 else 1 / 6  # |S|! (M - |S| - 1)! / M!
            shapley[k] += share * (score(tuple(sorted(group + (k,)))) - score(group))
    assert values.sum() == pytest.approx(score((0, 1, 2)) - score(()), rel=1e-5)
    assert rel(values, shapley) < 0.05


def test_kernel_shap_samples_follow_the_shapley_kernel():
    samples = kernel_shap_samples(20000, 6, noise_seed=1)
    assert samples[0].all() and not samples[1].any()
    sizes = np.bincount(samples[2:].sum(1).astype(int), minlength=7)[1:6] / (len(samples) - 2)
    chances = np.array([5 / (k * (6 - k)) for k in range(1, 6)])
    np.testing.assert_allclose(sizes, chances / chances.sum(), atol=0.01)


def test_superpixels_are_connected_numbered_and_follow_edges():
    rng = np.random.default_rng(0)
    image = np.zeros((48, 64, 3))
    image[:, 40:] = 3.0  # a sharp vertical edge at x = 40, off the initial grid
    image += rng.normal(0, 0.05, image.shape)
    labels = slic(image, segments=12)
    from scipy import ndimage

    assert labels.min() == 0 and set(np.unique(labels)) == set(range(labels.max() + 1))
    for k in range(labels.max() + 1):
        assert ndimage.label(labels == k)[1] == 1  # one piece each
        columns = np.nonzero(labels == k)[1]
        assert columns.max() < 40 or columns.min() >= 40  # none crosses the edge
    np.testing.assert_array_equal(slic(image, segments=12), labels)  # deterministic
