"""The two demos ``onnx-xai demo`` runs, with no network: a classifier and a text detector.

- The classifier: the bundled pretrained EfficientNet-Lite0 (ImageNet) on the bundled photos, every
  photo's top class explained by :data:`DEMO_METHODS`, one sheet per photo.
- The text detector (``--text``): PP-OCRv4's detector as the ``rapidocr-onnxruntime`` wheel ships it
  (Paddle, exported to ONNX with a dynamic height and width, Apache-2.0), on the bundled picture of
  text (``tools/make_text_photo.py`` draws it); the objective is its probability map summed over
  the largest region above 0.3 (the detector's own binarization threshold): one detected line of
  text, explained by :data:`TEXT_METHODS` at the photo's own size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..imaging.preprocessing import Preprocessing
from ..objectives.labels import read_labels
from ..support.errors import InputError
from ..support.files import sha256_of
from . import DATA, DEMO_MODEL, DEMO_PHOTOS
from .run import ExplainOptions, explain_files

DEMO_METHODS = ("gradient", "smoothgrad", "integrated_gradients", "cam", "gradcam", "gradcam_pp", "layercam")
TEXT_METHODS = ("gradient", "gradcam", "layercam")
TEXT_PHOTO = DATA / "text" / "cards.jpg"
TEXT_DETECTOR = "ch_PP-OCRv4_det_infer.onnx"


def text_detector() -> Path:
    """The PP-OCRv4 text detector inside the installed ``rapidocr-onnxruntime`` wheel (located, not
    imported: importing it needs OpenCV)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    path = Path(spec.origin).parent / "models" / TEXT_DETECTOR if spec and spec.origin else None
    if path is None or not path.is_file():
        raise InputError(
            "the text demo explains PP-OCRv4's detector from the rapidocr-onnxruntime wheel: "
            "pip install rapidocr-onnxruntime"
        )
    return path


def classifier_demo(out: Path, threads: int | None, backend: str) -> list[str]:
    """Explain the bundled photos with EfficientNet-Lite0; returns the lines to print."""
    from ..runtime import Explainer

    model = Path(str(DEMO_MODEL))
    ex = Explainer(model, threads=threads, backend=backend)
    files = sorted(Path(str(DEMO_PHOTOS)).glob("*.jpg"))
    opts = ExplainOptions(
        methods=list(DEMO_METHODS), labels=read_labels(None, 1000), sheets=True, noise_seed=0, steps=16
    )
    records = explain_files(ex, files, out, opts, sha256_of(model))
    lines = [f"EfficientNet-Lite0 (ImageNet), {ex.providers[0]}; {', '.join(DEMO_METHODS)}:"]
    for rec in records:
        top = rec["explanations"][0]
        lines.append(
            f"  {Path(rec['file']).name}: {top['label']} (logit {top['score']:.2f}) -> {out / rec['sheet']}"
        )
    return lines


def text_demo(out: Path, threads: int | None, backend: str) -> list[str]:
    """Explain one detected line of text in the bundled picture with PP-OCRv4's detector."""
    from ..runtime import Explainer

    model = text_detector()
    ex = Explainer(model, threads=threads, backend=backend)
    opts = ExplainOptions(
        methods=list(TEXT_METHODS),
        preprocessing=Preprocessing(preset="inception"),
        sheets=True,
        objective="dense",
        threshold=0.3,
    )
    rec = explain_files(ex, [Path(str(TEXT_PHOTO))], out, opts, sha256_of(model))[0]
    region = rec["objective"]
    return [
        f"PP-OCRv4 text detector (rapidocr-onnxruntime), {ex.providers[0]}, "
        f"target layer {ex.target_layer!r}; "
        f"{', '.join(TEXT_METHODS)}:",
        f"  {TEXT_PHOTO.name}: the text region at {region['photo_box']} ({region['pixels']} map pixels, "
        f"summed logit {rec['explanations'][0]['score']:.1f}) -> {out / rec['sheet']}",
    ]
