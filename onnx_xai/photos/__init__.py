"""The photo application beside the library: photo files explained end to end, as ``explain`` and
``demo`` do it.

- :mod:`.run`: decode, preprocess, explain in batches, write each photo's pictures and JSON record as
  one set (:func:`~.run.explain_files`, :class:`~.run.ExplainOptions`);
- :mod:`.objectives`: what each photo's explanation is of, beyond a class (a detection, a segment, a
  region of a dense map), from the output's shape and the flags;
- :mod:`.records`: the pictures and the JSON record of one photo;
- :mod:`.names`: output names that never collide;
- :mod:`.demo`: the two demos, on the bundled model and photos (:data:`DEMO_MODEL`, :data:`DEMO_PHOTOS`).

The library (``onnx_xai`` without this package and ``cli``) never imports it; a photo's explanation
from Python needs only :meth:`onnx_xai.Explainer.explain_image`.
"""

from importlib import resources

DATA = resources.files("onnx_xai") / "data"
DEMO_MODEL = DATA / "efficientnet_lite0.onnx"
DEMO_PHOTOS = DATA / "photos"
