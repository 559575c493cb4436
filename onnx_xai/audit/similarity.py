"""How alike two maps are: Spearman rank correlation and SSIM, as the sanity checks report them.

Spearman's rho is the Pearson correlation of the maps' ranks (ties take their average rank), over all
pixels; SSIM is Wang et al. (2004) with a Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, on maps
scaled to [0, 1] each (data range 1), averaged over the image. Both are 1 for identical maps; a
constant map has no ranking, and its correlation is reported as 0.
"""

from __future__ import annotations

import numpy as np


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    ra, rb = rankdata(a.reshape(-1)), rankdata(b.reshape(-1))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def _unit(m: np.ndarray) -> np.ndarray:
    m = m.astype(np.float64)
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    from scipy.ndimage import gaussian_filter

    a, b = _unit(a), _unit(b)
    c1, c2 = 0.01**2, 0.03**2

    def blur(m):
        return gaussian_filter(m, sigma, mode="reflect", truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index.mean())
