"""How a photo becomes a model's input, read from the model: its size, layout, channels and pixel
type, with the normalization and crop asked for (:class:`Preprocessing`).

:func:`preprocessing_for` gives the arguments of :func:`onnx_xai.images.prepare` for an Explainer's
model: a model that takes integer pixels gets them as they are (its normalization is inside; doing it
again would explain the wrong input), a model of any input size gets each photo at its own size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Preprocessing:
    """What photos need beyond the model's own facts: the normalization (``preset`` "imagenet",
    "inception" or "raw", or an explicit ``mean``/``std``), the centre ``crop`` fraction and, for a
    model of any input size, a ``size`` (H, W)."""

    preset: str | None = None  # None: "imagenet" for float inputs, nothing for integer pixels
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    crop: float = 0.875
    size: tuple[int, int] | None = None


def preprocessing_for(ex, p: Preprocessing = Preprocessing()) -> dict:
    """The arguments of :func:`~onnx_xai.images.prepare` for this model: its size, layout and
    channels, and either the normalization asked for or, for a model that takes integer pixels,
    none at all (its preprocessing is inside; normalizing again would explain the wrong input)."""
    pixels = ex.input_dtype.kind in "iu"
    if pixels and (p.preset is not None or p.mean is not None or p.std is not None):
        raise InputError(
            f"the model takes {ex.input_dtype} pixels and normalizes them itself; drop --preset/--mean/--std"
        )
    return dict(
        size=input_size(ex, p.size),
        layout=ex.layout,
        preset=p.preset or "imagenet",
        mean=p.mean,
        std=p.std,
        crop=p.crop,
        channels=ex.input_channels or 3,
        pixels=pixels,
    )


def input_size(ex, size: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The input's (H, W): the model's, or ``--size``; None when neither fixes it (each photo is
    then given at its own size, :func:`~onnx_xai.images.natural_size`)."""
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
