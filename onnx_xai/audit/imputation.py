"""Filling removed pixels: a constant, a blurred copy, or ROAD's noisy linear imputation.

Noisy linear imputation (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ROAD) sets each removed pixel to the weighted mean of its 8 neighbours (1/6 for
the four edge neighbours, 1/12 for the diagonals, renormalized at the image border), solved jointly
for every removed pixel as one sparse linear system per image (one factorization, every channel a
right-hand side), then adds N(0, noise^2) to the imputed values only. Filling from the neighbours
instead of a constant keeps the removal itself from carrying information about where the removed
pixels were, which is what makes most- and least-relevant-first orderings comparable.
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = (
    (-1, -1, 1 / 12),
    (-1, 0, 1 / 6),
    (-1, 1, 1 / 12),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (1, 1, 1 / 12),
)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """``(C, H, W)`` image blurred per channel by a Gaussian of ``sigma`` pixels (reflecting borders)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image.astype(np.float64), sigma=(0, sigma, sigma), mode="reflect")


def linear_impute(
    image: np.ndarray, removed: np.ndarray, noise: float = 0.01, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``(C, H, W)`` image with the pixels where ``removed`` (``(H, W)`` bool) is set replaced by
    ROAD's noisy linear imputation (see the module docstring); the kept pixels are untouched."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    channels, height, width = image.shape
    flat = image.reshape(channels, -1).astype(np.float64)
    missing = np.flatnonzero(removed.reshape(-1))
    out = flat.copy()
    if len(missing) == 0:
        return out.reshape(image.shape)
    variable = np.full(height * width, -1)
    variable[missing] = np.arange(len(missing))
    rows_, cols_ = np.divmod(missing, width)
    diagonal = np.zeros(len(missing))
    a_rows, a_cols, a_vals = [], [], []
    rhs = np.zeros((len(missing), channels))
    for dy, dx, weight in NEIGHBOURS:
        y, x = rows_ + dy, cols_ + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        eq, where = np.flatnonzero(inside), (y * width + x)[inside]
        diagonal[eq] += weight
        unknown = variable[where] >= 0
        a_rows.append(eq[unknown]), a_cols.append(variable[where[unknown]])
        a_vals.append(np.full(unknown.sum(), weight))
        rhs[eq[~unknown]] -= weight * flat[:, where[~unknown]].T
    n = len(missing)
    system = coo_matrix(
        (
            np.concatenate(a_vals + [-diagonal]),
            (np.concatenate(a_rows + [np.arange(n)]), np.concatenate(a_cols + [np.arange(n)])),
        ),
        shape=(n, n),
    ).tocsc()
    solved = splu(system).solve(rhs)
    rng = rng if rng is not None else np.random.default_rng(0)
    out[:, missing] = solved.T + noise * rng.standard_normal((channels, n))
    return out.reshape(image.shape)
