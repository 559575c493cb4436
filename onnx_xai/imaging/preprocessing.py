"""How a photo becomes a model's input, read from the model: its size, layout, channels and pixel
type, with the normalization, crop and fit asked for (:class:`Preprocessing`).

:func:`preprocessing_for` gives the arguments of :func:`onnx_xai.imaging.images.prepare` for an Explainer's
model: a model that takes integer pixels gets them as they are (its normalization is inside; doing it
again would explain the wrong input), a model of any input size gets each photo at its own size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError
from .images import FITS, normalization


@dataclass(frozen=True)
class Preprocessing:
    """What photos need beyond the model's own facts: the normalization (``preset`` "imagenet",
    "inception" or "raw", or an explicit ``mean``/``std``), the centre ``crop`` fraction, for a
    model of any input size a ``size`` (H, W), and how a photo meets a fixed size (``fit``:
    :func:`fit_for`)."""

    preset: str | None = None  # None: "imagenet" for float inputs, nothing for integer pixels
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    crop: float = 0.875
    size: tuple[int, int] | None = None
    fit: str = "auto"  # "crop", "letterbox", "stretch"; auto: see fit_for


def preprocessing_for(ex, p: Preprocessing = Preprocessing()) -> dict:
    """The arguments of :func:`~onnx_xai.imaging.images.prepare` for this model: its size, layout and
    channels, and either the normalization asked for or, for a model that takes integer pixels,
    none at all (its preprocessing is inside; normalizing again would explain the wrong input)."""
    pixels = ex.input_dtype.kind in "iu"
    if pixels and (p.preset is not None or p.mean is not None or p.std is not None):
        raise InputError(
            f"the model takes {ex.input_dtype} pixels and normalizes them itself; drop --preset/--mean/--std"
        )
    size = input_size(ex, p.size)
    return dict(
        size=size,
        fit=fit_for(ex, size, p.fit),
        layout=ex.layout,
        preset=p.preset or "imagenet",
        mean=p.mean,
        std=p.std,
        crop=p.crop,
        channels=ex.input_channels or 3,
        pixels=pixels,
    )


def fit_for(ex, size: tuple[int, int] | None, fit: str = "auto") -> str:
    """How a photo meets a fixed input: ``fit`` when given; ``auto``: the ImageNet centre crop for a
    classifier with a square input, else the whole photo letterboxed (a detector, a segmenter, a
    document model with a non-square input keep every part of the photo)."""
    if fit != "auto":
        if fit not in FITS:
            raise InputError(f"fit must be one of auto, {', '.join(FITS)}, not {fit!r}")
        return fit
    square = size is None or size[0] == size[1]
    return "crop" if square and len(ex.output_shape) == 2 else "letterbox"


def input_size(ex, size: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The input's (H, W): the model's, or ``--size``; None when neither fixes it (each photo is
    then given at its own size, :func:`~onnx_xai.imaging.images.natural_size`)."""
    shape = ex.input_shape
    dims = (shape[ex.layout.index("H")], shape[ex.layout.index("W")])
    fixed = [d for d in dims if isinstance(d, int)]
    if size is not None:
        if any(isinstance(d, int) and d != s for d, s in zip(dims, size)):
            raise InputError(
                f"--size {size[0]} {size[1]} contradicts the model's input size "
                f"{' x '.join(str(d) for d in dims)}"
            )
        return (int(size[0]), int(size[1]))
    if len(fixed) == 1:
        raise InputError(f"the model fixes one side of its input ({shape}); give --size H W")
    return dims if fixed else None


BLUR_FRACTION = 0.05  # the blurred reference's sigma, as a fraction of the input's shorter side


def default_references(batch: np.ndarray, settings: dict) -> np.ndarray:
    """The references DeepLIFT-SHAP averages over when none are given, per sample ``[N, 3, ...]``,
    in the model's input units: the input blurred (a Gaussian of sigma 5 % of its shorter side: the
    photo without its details), the dataset's mean colour (the normalization's mean, which a
    normalized input holds as 0) and black. ``settings``: :func:`preprocessing_for`'s."""
    from scipy import ndimage

    layout = settings["layout"]
    mean, std = normalization(settings["preset"], settings["mean"], settings["std"], settings["channels"])
    shape = [settings["channels"] if a == "C" else 1 for a in layout.replace("N", "")]
    if settings["pixels"]:
        black, colour = np.zeros(shape), (mean * 255.0).reshape(shape)
    else:
        black, colour = (-mean / std).reshape(shape), np.zeros(shape)
    spatial = min(batch.shape[layout.index("H")], batch.shape[layout.index("W")])
    sigma = [BLUR_FRACTION * spatial if a in "HW" else 0.0 for a in layout]
    blurred = ndimage.gaussian_filter(batch.astype(np.float32), sigma, mode="nearest")
    flat = [np.broadcast_to(v, batch.shape[1:]) for v in (colour, black)]
    references = [blurred] + [np.broadcast_to(v, batch.shape) for v in flat]
    return np.stack(references, axis=1).astype(batch.dtype if batch.dtype.kind == "f" else np.float32)
