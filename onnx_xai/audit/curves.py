"""Faithfulness curves: deletion, insertion (Petsiuk et al. 2018) and ROAD (Rong et al. 2022).

Each metric perturbs one model input in the order a map ranks its pixels and reads the target's
probability after each perturbation, every perturbed copy of one curve batched into runs of the model.
A map is a ``(H, W)`` array over the model input's pixels; ties in the ranking are broken by a seeded
random order, so a constant map ranks pixels at random rather than in raster order.

- **deletion**: the most relevant pixels first, ``1/steps`` of them per step, replaced by the fill
  (a constant, 0 by default: the dataset mean after the usual normalization, or a blurred copy);
  the area under probability over fraction removed: lower is better.
- **insertion**: from a start image (a blurred copy by default) the original pixels put back, most
  relevant first; the area under the curve: higher is better.
- **ROAD**: at each fraction in ``road_fractions`` the most relevant (MoRF) or least relevant (LeRF)
  pixels are removed and filled by noisy linear imputation (:mod:`.imputation`); ``road_morf`` and
  ``road_lerf`` are the mean probabilities over the fractions (lower, resp. higher, is better) and
  ``road`` is ``road_lerf - road_morf`` (higher is better).

The probability is the model's own output where it ends in a Softmax or Sigmoid, else the softmax of
its logits (:class:`Scorer`). Every parameter is recorded with the result (:class:`Protocol`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .imputation import blurred, linear_impute

FILLS = ("constant", "blur")


@dataclass(frozen=True)
class Protocol:
    """The parameters of the perturbation metrics, written next to every result."""

    steps: int = 32  # deletion/insertion: 1/steps of the pixels per step
    deletion_fill: str = "constant"  # what removed pixels become: "constant" or "blur"
    insertion_start: str = "blur"  # the image insertion starts from: "blur" or "constant"
    fill_value: float = 0.0  # the constant, in the model input's units
    blur_sigma: float = 5.0  # the blurred copy's Gaussian sigma, input pixels
    road_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    road_noise: float = 0.01  # ROAD's imputation noise, input units
    noise_seed: int = 0  # tie-breaking order and imputation noise

    def describe(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Scorer:
    """The target class's probability for batches of model inputs, ``batch_size`` copies per run.

    Args:
        predict: the model's output for a batch (``Explainer.predict``).
        probabilities: True when the output already is probabilities (a Softmax or Sigmoid head),
            False to take a softmax of it.
        dtype: the input's element type; integer pixels are rounded and clipped to its range.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        probabilities: bool,
        dtype=np.float32,
        batch_size: int = 16,
    ):
        self.predict, self.probabilities, self.batch_size = predict, probabilities, batch_size
        self.dtype = np.dtype(dtype)

    def __call__(self, images: np.ndarray, target: int) -> np.ndarray:
        """``(n,)`` probabilities of ``target`` for ``(n, ...)`` inputs."""
        out = []
        for start in range(0, len(images), self.batch_size):
            out.append(
                self.probability(self.predict(self.cast(images[start : start + self.batch_size])), target)
            )
        return np.concatenate(out)

    def probability(self, output: np.ndarray, target: int) -> np.ndarray:
        logits = output.reshape(len(output), -1).astype(np.float64)
        if self.probabilities:
            return logits[:, target]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted[:, target] / shifted.sum(axis=1)

    def cast(self, images: np.ndarray) -> np.ndarray:
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            return np.clip(np.round(images), info.min, info.max).astype(self.dtype)
        return images.astype(self.dtype)


def ranking(saliency: np.ndarray, noise_seed: int) -> np.ndarray:
    """Flat pixel indices, most relevant first; ties in a seeded random order."""
    jitter = np.random.default_rng(noise_seed).random(saliency.size)
    return np.lexsort((jitter, -saliency.reshape(-1).astype(np.float64)))


def _counts(pixels: int, steps: int) -> np.ndarray:
    return np.round(np.linspace(0, pixels, steps + 1)).astype(np.int64)


def _area(curve: np.ndarray) -> float:
    """Trapezoidal area under a curve sampled at evenly spaced fractions of [0, 1]."""
    return float((curve.sum() - (curve[0] + curve[-1]) / 2) / (len(curve) - 1))


def _filled(image: np.ndarray, how: str, protocol: Protocol) -> np.ndarray:
    if how == "constant":
        return np.full(image.shape, protocol.fill_value, np.float64)
    return blurred(image, protocol.blur_sigma)


def _progressive(source: np.ndarray, start: np.ndarray, order: np.ndarray, steps: int) -> np.ndarray:
    """``steps + 1`` images: ``start`` with the first k pixels of ``order`` taken from ``source``."""
    channels = source.shape[0]
    flat_source, flat_start = source.reshape(channels, -1), start.reshape(channels, -1)
    images = np.empty((steps + 1,) + flat_source.shape)
    for i, k in enumerate(_counts(order.size, steps)):
        images[i] = flat_start
        images[i][:, order[:k]] = flat_source[:, order[:k]]
    return images.reshape((steps + 1,) + source.shape)


def deletion(
    score: Scorer,
    image: np.ndarray,
    saliency: np.ndarray,
    target: int,
    protocol: Protocol,
    layout: str = "NCHW",
) -> tuple[float, np.ndarray]:
    """(AUC, curve): the most relevant pixels removed first. ``image`` is one input without the batch
    axis in ``layout``; ``saliency`` ``(H, W)``."""
    chw, back = _to_chw(image, layout)
    order = ranking(saliency, protocol.noise_seed)
    curve = score(
        back(_progressive(_filled(chw, protocol.deletion_fill, protocol), chw, order, protocol.steps)), target
    )
    return _area(curve), curve


def insertion(
    score: Scorer,
    image: np.ndarray,
    saliency: np.ndarray,
    target: int,
    protocol: Protocol,
    layout: str = "NCHW",
) -> tuple[float, np.ndarray]:
    """(AUC, curve): from the start image, the most relevant original pixels put back first."""
    chw, back = _to_chw(image, layout)
    order = ranking(saliency, protocol.noise_seed)
    curve = score(
        back(_progressive(chw, _filled(chw, protocol.insertion_start, protocol), order, protocol.steps)),
        target,
    )
    return _area(curve), curve


def road(
    score: Scorer,
    image: np.ndarray,
    saliency: np.ndarray,
    target: int,
    protocol: Protocol,
    layout: str = "NCHW",
) -> dict:
    """ROAD's MoRF and LeRF curves over ``protocol.road_fractions`` and their means (module docstring)."""
    chw, back = _to_chw(image, layout)
    order = ranking(saliency, protocol.noise_seed)
    rng = np.random.default_rng(protocol.noise_seed)
    images = []
    for most_first in (True, False):
        for fraction in protocol.road_fractions:
            k = int(round(fraction * order.size))
            removed = np.zeros(order.size, bool)
            removed[order[:k] if most_first else order[order.size - k :]] = True
            images.append(linear_impute(chw, removed.reshape(chw.shape[1:]), protocol.road_noise, rng))
    probs = score(back(np.stack(images)), target)
    morf, lerf = probs[: len(protocol.road_fractions)], probs[len(protocol.road_fractions) :]
    return {
        "road_morf": float(morf.mean()),
        "road_lerf": float(lerf.mean()),
        "road": float(lerf.mean() - morf.mean()),
        "road_morf_curve": morf,
        "road_lerf_curve": lerf,
    }


def _to_chw(image: np.ndarray, layout: str) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """One input as (C, H, W) float64, and the function that turns a batch of those back to the layout."""
    axes = layout.replace("N", "")
    chw = np.transpose(image, [axes.index(a) for a in "CHW"]).astype(np.float64)
    back = [0] + [1 + "CHW".index(a) for a in axes]
    return chw, lambda batch: np.ascontiguousarray(np.transpose(batch, back))
