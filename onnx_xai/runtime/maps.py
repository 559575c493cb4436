"""From raw attributions to pictures and boxes: bilinear upsampling, normalization, localization.

- Gradient-family attributions (shaped like the input) become importance maps as PAIR saliency and
  Captum draw them: |attribution| summed over channels, clipped at its 99th percentile (a few outlier
  pixels would otherwise flatten the picture); signed ones also get a signed map, the channel sum
  over the 99th percentile of its magnitude, in [-1, 1], for a diverging colormap.

- Upsampling follows ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
  (half-pixel centres, source index clamped at 0), written as two small interpolation matrices.
- Normalization is min-max per sample; a constant map becomes all zeros, never NaN.
- Boxes follow Zhou et al. 2016: threshold the map at a fraction (20 %) of its maximum, keep the
  largest 8-connected region (``scipy.ndimage.label``), return its bounding box as half-open
  (x0, y0, x1, y1) in map pixels; a map with no positive value gives the empty box (0, 0, 0, 0).
  The Explainer thresholds the upsampled map itself, before min-max normalization.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=64)
def interpolation_matrix(size_out: int, size_in: int, aligned: bool = False) -> np.ndarray:
    """The ``size_out x size_in`` bilinear resampling matrix: half-pixel centres (torch's
    ``align_corners=False``), or corners aligned (``aligned``, torch's ``UpsamplingBilinear2d``);
    float32, cached: the sizes repeat from call to call."""
    if aligned:
        src = np.arange(size_out) * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        src = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    m = np.zeros((size_out, size_in), np.float64)
    np.add.at(m, (np.arange(size_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(size_out), hi), frac)
    m = m.astype(np.float32)
    m.flags.writeable = False
    return m


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(N, h, w)`` maps to ``(N, height, width)`` bilinearly."""
    n, h, w = maps.shape
    if (h, w) == (height, width):
        return maps.astype(np.float32)
    rows, cols = interpolation_matrix(height, h), interpolation_matrix(width, w)
    return np.matmul(np.matmul(rows, maps.astype(np.float32)), cols.T)


PERCENTILE = 99.0


def importance(raw: np.ndarray, layout: str) -> np.ndarray:
    """``(N, H, W)``: |raw| summed over the channel axis, clipped at each map's 99th percentile."""
    summed = np.abs(raw).sum(axis=layout.index("C"), dtype=np.float32)
    ceiling = np.percentile(summed.reshape(len(summed), -1), PERCENTILE, axis=1).astype(np.float32)
    return np.minimum(summed, ceiling[:, None, None])


def signed_map(raw: np.ndarray, layout: str) -> np.ndarray:
    """``(N, H, W)`` in [-1, 1]: the channel sum over the 99th percentile of its magnitude."""
    summed = raw.sum(axis=layout.index("C"), dtype=np.float32)
    scale = np.percentile(np.abs(summed).reshape(len(summed), -1), PERCENTILE, axis=1).astype(np.float32)
    scale = np.where(scale > 0, scale, 1.0)
    return np.clip(summed / scale[:, None, None], -1.0, 1.0)


def normalize(maps: np.ndarray) -> np.ndarray:
    """Min-max normalize each ``(h, w)`` map of a batch to [0, 1]; constant maps become zeros."""
    flat = maps.reshape(len(maps), -1).astype(np.float32)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = hi - lo
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
    return np.clip((flat - lo) * scale, 0.0, 1.0).reshape(maps.shape)


def box(single_map: np.ndarray, threshold: float = 0.2) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1), half-open, of the largest region above ``threshold * max``."""
    peak = float(single_map.max())
    if not peak > 0:
        return (0, 0, 0, 0)
    from scipy import ndimage  # here: scipy.ndimage takes half a second to import

    labels, count = ndimage.label(single_map >= threshold * peak, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    ys, xs = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def boxes(maps: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Boxes of a batch of maps, ``(N, 4)`` int64."""
    return np.array([box(m, threshold) for m in maps], dtype=np.int64).reshape(len(maps), 4)
