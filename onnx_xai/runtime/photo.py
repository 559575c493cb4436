"""A photo explained from Python in one call: ``Explainer(...).explain_image("cat.jpg", "gradcam")``.

The photo (a path or a Pillow image) is made into the model's input as the command line makes it
(:func:`onnx_xai.imaging.preprocessing.preprocessing_for`: the model's size, layout, channels and pixel type,
with the normalization and crop of a :class:`~onnx_xai.imaging.preprocessing.Preprocessing`), explained, and
the result given back over the whole photo: the map in photo pixels, the box in photo pixels, and a
picture (heatmap or spotlight) ready to save.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..imaging.images import Prepared, load_image, prepare, to_rgb
from ..imaging.preprocessing import Preprocessing, preprocessing_for
from ..imaging.visuals import photo_picture
from ..support.errors import InputError
from .explanation import Explanation


@dataclass
class ImageExplanation:
    """One photo's explanation: ``explanation`` is the method's result for the model input made from
    it (``prepared``); the properties give it back in the photo's own pixels."""

    explanation: Explanation
    prepared: Prepared

    @property
    def target(self) -> int:
        return int(self.explanation.targets[0])

    @property
    def score(self) -> float:
        return float(self.explanation.scores[0])

    @property
    def map(self) -> np.ndarray:
        """The map over the whole photo, ``(height, width)`` in [0, 1] (zero outside the input's crop)."""
        return self.prepared.map_to_photo(self._maps()[0])

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """The box around the map's largest region above 20 % of its maximum, in photo pixels
        (x0, y0, x1, y1), half-open; None for an empty map."""
        self._maps()
        box = self.explanation.box(0)
        return self.prepared.box_to_photo(box) if box[2] > box[0] else None

    def picture(self, cmap: str = "jet", alpha: float = 0.5) -> Image.Image:
        """The photo with the map drawn over it and the box in white (:mod:`onnx_xai.imaging.visuals`)."""
        signed = self.explanation.signed[0] if self.explanation.signed is not None else None
        return photo_picture(
            self.prepared, self.explanation.family, self._maps()[0], signed, self.box, cmap, alpha
        )

    def _maps(self) -> np.ndarray:
        maps = self.explanation.maps
        if maps is None:
            raise InputError("this explanation has no map: the model's input is not a picture")
        return maps


def explain_image(
    explainer,
    photo: str | os.PathLike | Image.Image,
    method: str = "gradcam",
    preprocessing: Preprocessing | None = None,
    **options,
) -> ImageExplanation:
    """Explain one photo with ``method``; ``options`` go to :meth:`~onnx_xai.Explainer.explain`
    (``target``, ``seed``, the method's options)."""
    image = to_rgb(photo) if isinstance(photo, Image.Image) else load_image(photo)
    prepared = prepare(image, **preprocessing_for(explainer, preprocessing or Preprocessing()))
    return ImageExplanation(explainer.explain(prepared.array, method, **options), prepared)
