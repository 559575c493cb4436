"""Trivial maps every method's figures stand beside: uniform random, Sobel edges, a centred Gaussian.

A method that scores no better than these on a metric has shown nothing on it: random noise ranks
pixels at random, the Sobel map is what a model-free edge detector says is salient, and the centre
prior is what photographers' framing alone predicts. Each is a function of the input (never of the
model), ``(H, W)`` float in [0, 1].
"""

from __future__ import annotations

import numpy as np

BASELINES = ("baseline_random", "baseline_sobel", "baseline_center")


def random_map(height: int, width: int, noise_seed: int) -> np.ndarray:
    return np.random.default_rng(noise_seed).random((height, width))


def sobel_map(image_chw: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the channel mean, Sobel kernels, reflecting borders, scaled to [0, 1]."""
    from scipy.ndimage import sobel

    gray = image_chw.astype(np.float64).mean(axis=0)
    magnitude = np.hypot(sobel(gray, axis=0, mode="reflect"), sobel(gray, axis=1, mode="reflect"))
    top = magnitude.max()
    return magnitude / top if top > 0 else magnitude


def center_map(height: int, width: int) -> np.ndarray:
    """A Gaussian centred on the image, sigma a quarter of each side."""
    y = (np.arange(height) + 0.5 - height / 2) / (height / 4)
    x = (np.arange(width) + 0.5 - width / 2) / (width / 4)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))


def baseline_maps(image_chw: np.ndarray, noise_seed: int) -> dict[str, np.ndarray]:
    """Every baseline for one input ``(C, H, W)``, by its method name."""
    _, height, width = image_chw.shape
    return {
        "baseline_random": random_map(height, width, noise_seed),
        "baseline_sobel": sobel_map(image_chw),
        "baseline_center": center_map(height, width),
    }
