"""Superpixels: the features LIME and KernelSHAP switch on and off (SLIC, Achanta et al. 2012).

Cluster centres start on a regular grid of ``S = sqrt(H * W / segments)`` pixels; each pixel joins
the centre within ``S`` of it (in both axes) that is nearest in ``colour² + (compactness * d / S)²``
(``d``: distance in pixels; colours are the input's channels over their overall standard deviation,
so a compactness of 1 weighs a cell's width of distance as one standard deviation of colour; 3, the
default, gives segments that follow edges such as an eye's yet stay compact), and
the centres move to the mean of their pixels, ten times. A cluster cut into pieces keeps its largest
piece; pieces smaller than a quarter of a cell join the neighbour they touch most (SLIC's
connectivity step), and the labels are renumbered 0..K-1 in reading order. Deterministic: the same
image gives the same segments.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

ITERATIONS = 10


def slic(image: np.ndarray, segments: int = 50, compactness: float = 3.0) -> np.ndarray:
    """Labels ``[H, W]`` (int64, 0..K-1) of an ``[H, W, C]`` image (module docstring)."""
    height, width = image.shape[:2]
    colours = image.astype(np.float64).reshape(height, width, -1)
    colours = colours / max(float(colours.std()), 1e-12)
    step = max(1.0, math.sqrt(height * width / max(1, segments)))
    ys, xs = np.meshgrid(np.arange(step / 2, height, step), np.arange(step / 2, width, step), indexing="ij")
    centres = np.column_stack([ys.ravel(), xs.ravel()])
    means = colours[centres[:, 0].astype(int), centres[:, 1].astype(int)]
    weight = (compactness / step) ** 2
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    labels = np.zeros((height, width), np.int64)
    for _ in range(ITERATIONS):
        best = np.full((height, width), np.inf)
        for k, ((cy, cx), colour) in enumerate(zip(centres, means)):
            y0, y1 = max(0, int(cy - step)), min(height, int(cy + step) + 1)
            x0, x1 = max(0, int(cx - step)), min(width, int(cx + step) + 1)
            distance = ((colours[y0:y1, x0:x1] - colour) ** 2).sum(-1) + weight * (
                (grid_y[y0:y1, x0:x1] - cy) ** 2 + (grid_x[y0:y1, x0:x1] - cx) ** 2
            )
            closer = distance < best[y0:y1, x0:x1]
            best[y0:y1, x0:x1][closer] = distance[closer]
            labels[y0:y1, x0:x1][closer] = k
        counts = np.maximum(np.bincount(labels.ravel(), minlength=len(centres)), 1)[:, None]
        centres = (
            np.column_stack([np.bincount(labels.ravel(), g.ravel(), len(centres)) for g in (grid_y, grid_x)])
            / counts
        )
        means = (
            np.column_stack(
                [
                    np.bincount(labels.ravel(), colours[..., c].ravel(), len(centres))
                    for c in range(colours.shape[2])
                ]
            )
            / counts
        )
    return _connected(labels, max(1, int(step * step / 4)))


def _connected(labels: np.ndarray, smallest: int) -> np.ndarray:
    """Each cluster's pieces as their own labels, pieces under ``smallest`` pixels joined to the
    neighbour they touch most; renumbered 0..K-1 in reading order."""
    pieces = np.zeros(labels.shape, np.int64)
    count = 0
    for value in np.unique(labels):
        found, n = ndimage.label(labels == value)
        pieces[found > 0] = found[found > 0] + count
        count += n
    sizes = np.bincount(pieces.ravel())
    for piece in np.argsort(sizes[1:], kind="stable") + 1:  # the smallest first
        if sizes[piece] >= smallest or sizes[piece] == 0:
            continue
        inside = pieces == piece
        around = pieces[ndimage.binary_dilation(inside) & ~inside]
        if around.size:
            neighbour = np.bincount(around).argmax()
            pieces[inside] = neighbour
            sizes[neighbour] += sizes[piece]
            sizes[piece] = 0
    _, first = np.unique(pieces.ravel(), return_index=True)
    order = np.argsort(np.argsort(first))  # labels numbered by where they first appear
    return order[np.searchsorted(np.unique(pieces), pieces)]
