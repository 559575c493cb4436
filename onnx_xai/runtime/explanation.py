"""What ``explain`` returns: the raw attribution, and for images its maps and boxes.

``raw`` is the method's attribution (shaped like the explained input, or its embedding, for the
gradient family; ``[N, h, w]`` on the target layer's grid for the CAM family); ``base`` is what the
attributions add up from, where a method has one (SHAP's expected value over the background, per
sample). For an image, ``maps`` are ``(N, H, W)`` float32 in [0, 1] at the
input's resolution: CAM-family maps upsampled bilinearly (half-pixel centres) and min-max
normalized, gradient-family maps as importance (|raw| summed over channels, clipped at the 99th
percentile) min-max normalized; ``signed`` is the signed map in [-1, 1] of signed methods (None
otherwise). ``boxes`` are ``(N, 4)`` int (x0, y0, x1, y1), half-open, around the largest region above
``box_threshold`` (20 %) of each map's maximum, thresholding the map before normalization (as Zhou
et al. threshold the CAM itself, so negative evidence elsewhere never lowers the threshold). A
signal's ``maps`` are ``(N, T)`` at the input's length, the same way (the CAM family's ``raw`` is
``[N, T']`` on the layer's grid, upsampled linearly; the gradient family's |raw| summed over channels),
with ``signed`` ``(N, T)`` and no boxes (:func:`signal_explanation`). Other inputs (tables, ids) have
no maps or boxes here: ``maps``, ``signed`` and ``boxes`` are None; ``feature_scores`` gives a value
per token of a text or column of a table (:func:`feature_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .maps import PERCENTILE, importance, normalize, signed_map, upsample
from .maps import boxes as find_boxes


@dataclass
class Explanation:
    """The result of :meth:`Explainer.explain` for a batch of N inputs.

    ``boxes`` is computed on first access (it labels connected regions, which costs more than the
    rest of the post-processing), then kept.
    """

    method: str
    family: str  # "gradient" (raw shaped like the input) or "cam" (raw on the target layer's grid)
    targets: np.ndarray  # (N,) int64, the classes explained
    scores: np.ndarray  # (N,) float32, their scores (pre-softmax / pre-sigmoid where the model has one)
    raw: np.ndarray  # the method's attribution
    maps: np.ndarray | None  # (N, H, W) float32 in [0, 1] at an image's resolution; None elsewhere
    pixels: np.ndarray | None = field(repr=False)  # the maps before normalization, which boxes threshold
    box_threshold: float = 0.2
    signed: np.ndarray | None = field(default=None, repr=False)  # (N, H, W) in [-1, 1], signed methods
    _boxes: np.ndarray | None = field(default=None, repr=False)
    output: np.ndarray | None = field(default=None, repr=False)  # the explained output, same run
    note: str | None = None  # how it was computed, when not as usual (forward-only on the output)
    base: np.ndarray | None = None  # (N, ...) what the attributions add up from (SHAP's expected value)
    features: list[str] | None = None  # a table's feature per column of ``raw``, where a method names them
    feature_scores: np.ndarray | None = None  # a value per natural feature (token, column): feature_scores()

    @property
    def boxes(self) -> np.ndarray | None:
        """(N, 4) int64, (x0, y0, x1, y1) half-open, in input pixels (None where there are no maps)."""
        if self.pixels is None:
            return None
        if self._boxes is None:
            self._boxes = find_boxes(self.pixels, self.box_threshold)
        return self._boxes

    def box(self, i: int) -> np.ndarray:
        """The ``i``-th map's box, as in :attr:`boxes`; found alone when the batch's are not yet, so
        that threads that each take one photo of a batch find their boxes in parallel."""
        if self.pixels is None:
            raise ValueError("no boxes: this explanation has no maps")
        if self._boxes is not None:
            return self._boxes[i]
        return find_boxes(self.pixels[i : i + 1], self.box_threshold)[0]


def feature_scores(raw: np.ndarray, kind: str, signed: bool) -> np.ndarray | None:
    """A value per feature where features are natural, else None: per token for a text ``[N, T]``
    (the L2 norm over the embedding of an unsigned attribution such as the gradient's, the sum of a
    signed one, the value itself for the perturbation methods, which give one per token), per
    column for a table (``raw`` itself)."""
    if kind == "tokens":
        if raw.ndim == 2:
            return raw
        return (
            raw.sum(axis=-1)
            if signed
            else np.sqrt((raw.astype(np.float64) ** 2).sum(axis=-1)).astype(np.float32)
        )
    if kind == "table" and raw.ndim == 2:
        return raw
    return None


def explanation(
    name: str,
    family: str,
    signed: bool,
    raw: np.ndarray,
    targets: np.ndarray,
    scores: np.ndarray,
    layout: str | None,
    size: tuple[int, int] | int | None,
    box_threshold: float,
) -> Explanation:
    """Maps, signed map and the rest from a method's raw attribution (see the module docstring);
    a signal's (``size`` its length) by :func:`signal_explanation`; no maps for other inputs
    (``size`` None)."""
    if isinstance(size, int) and layout is not None:
        return signal_explanation(name, family, signed, raw, targets, scores, layout, size)
    if not isinstance(size, tuple) or layout is None:
        return Explanation(name, family, targets, scores, raw, None, None, box_threshold)
    pixels = upsample(raw, *size) if family == "cam" else importance(raw, layout)
    return Explanation(
        name,
        family,
        targets,
        scores,
        raw,
        normalize(pixels),
        pixels,
        box_threshold,
        signed_map(raw, layout) if signed and family != "cam" else None,
    )


def signal_explanation(
    name: str, family: str, signed: bool, raw: np.ndarray, targets, scores, layout: str, length: int
) -> Explanation:
    """A signal's explanation (module docstring): maps ``(N, T)``, no boxes."""
    if family == "cam":
        raw = raw[:, 0]  # [N, 1, T'] -> the layer's grid [N, T']
        strength, signed_values = upsample(raw[:, None], 1, length)[:, 0], None
    else:
        channels = layout.index("C") if "C" in layout else None
        summed = raw.sum(axis=channels, dtype=np.float32) if channels else raw.astype(np.float32)
        magnitude = np.abs(raw).sum(axis=channels, dtype=np.float32) if channels else np.abs(summed)
        strength = np.minimum(magnitude, np.percentile(magnitude, PERCENTILE, axis=1)[:, None])
        scale = np.percentile(np.abs(summed), PERCENTILE, axis=1)[:, None]
        signed_values = np.clip(summed / np.where(scale > 0, scale, 1.0), -1, 1) if signed else None
    maps = normalize(strength.astype(np.float32))
    return Explanation(name, family, targets, scores, raw, maps, None, signed=signed_values)
