"""GradientSHAP against Captum's ``GradientShap`` on the method table's small CNN (NumPy's global
generator seeded as ours: the same baseline indexes and points; no noise, whose draws Captum makes
with torch), and with noise against its definition in float64 torch autograd on our draws."""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import GradientShap

from onnx_xai.runtime.methods.gradients import GradientShapOptions, gradient_shap_draws

from ..forms.reference import rel
from .test_method_references import setup  # noqa: F401  (the module's fixture)


def _baselines() -> np.ndarray:
    return np.random.default_rng(8).standard_normal((3, 3, 16, 16)).astype(np.float32) * 0.5


def test_gradient_shap_matches_captum_on_the_same_draws(setup):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(
        x, "gradient_shap", objective=targets, baselines=_baselines(), n_samples=6, noise_seed=11
    ).raw
    np.random.seed(11)
    want = GradientShap(net).attribute(
        torch.tensor(x, dtype=torch.float64), baselines=torch.tensor(_baselines(), dtype=torch.float64),
        n_samples=6, stdevs=0.0, target=torch.as_tensor(targets),
    )  # fmt: skip
    assert rel(ours, want.detach().numpy()) < 1e-4


def test_gradient_shap_with_noise_is_its_definition(setup):  # noqa: F811
    ex, net, x, targets = setup
    opts = GradientShapOptions(baselines=_baselines(), n_samples=4, stdevs=0.3, noise_seed=5)
    ours = ex.explain(
        x, "gradient_shap", objective=targets, baselines=_baselines(), n_samples=4, stdevs=0.3, noise_seed=5
    )
    draws = list(gradient_shap_draws(opts, len(x), x.shape[1:], 3, per_run=3))  # chunked unlike the run
    indexes, alphas, noise = (np.concatenate([d[k] for d in draws]) for k in (1, 2, 3))
    want = np.zeros(x.shape)
    for row, (index, alpha) in enumerate(zip(indexes, alphas)):
        i = row // 4
        noisy = torch.tensor(x[i : i + 1], dtype=torch.float64) + torch.tensor(
            noise[row : row + 1].astype(np.float32), dtype=torch.float64
        )
        start = torch.tensor(_baselines()[index : index + 1], dtype=torch.float64)
        point = (start + alpha * (noisy - start)).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(point)[0, targets[i]], point)
        want[i] += ((noisy - start) * grad).detach().numpy()[0] / 4
    assert rel(ours.raw, want) < 1e-4 and np.abs(noise).max() > 0.1
