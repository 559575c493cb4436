"""Spearman's rho against scipy's, SSIM against a direct evaluation of Wang et al.'s formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from onnx_xai.audit.similarity import spearman, ssim


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, (12, 9)).astype(float), rng.random((12, 9))
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0])
    assert spearman(a, a) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(np.ones((3, 3)), b[:3, :3]) == 0.0


def ssim_direct(a, b, sigma=1.5, truncate=3.5):
    """Per pixel, the Gaussian-weighted statistics of a window (reflecting borders), then the mean."""
    a = (a - a.min()) / (a.max() - a.min())
    b = (b - b.min()) / (b.max() - b.min())
    r = int(truncate * sigma + 0.5)
    offsets = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    g /= g.sum()
    h, w = a.shape
    pad_a, pad_b = np.pad(a, r, mode="symmetric"), np.pad(b, r, mode="symmetric")
    total = 0.0
    for y in range(h):
        for x in range(w):
            wa, wb = pad_a[y : y + 2 * r + 1, x : x + 2 * r + 1], pad_b[y : y + 2 * r + 1, x : x + 2 * r + 1]
            k = np.outer(g, g)
            ma, mb = (k * wa).sum(), (k * wb).sum()
            va, vb = (k * wa * wa).sum() - ma**2, (k * wb * wb).sum() - mb**2
            cov = (k * wa * wb).sum() - ma * mb
            total += ((2 * ma * mb + 1e-4) * (2 * cov + 9e-4)) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4))
    return total / (h * w)


def test_ssim_matches_the_formula():
    rng = np.random.default_rng(1)
    a = rng.random((14, 12))
    b = 0.6 * a + 0.4 * rng.random((14, 12))
    assert ssim(a, b) == pytest.approx(ssim_direct(a, b), abs=1e-10)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 1 - a) < 0
