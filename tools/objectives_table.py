"""What ``onnx-xai explain`` explains on each output form: the closing table of the objectives work.

For each model (the detector, segmenter and landmark forms the tests build, exported by torch and by
tf2onnx from Keras, and PaddleOCR's own text models from the rapidocr-onnxruntime wheel) it runs the
command line with the flags given, reads the record, and explains the same objective through the
Python API to find where the Grad-CAM map's maximum falls (photo pixels, and whether inside the
objective's box). Prints a Markdown table: model, output kinds ``inspect`` finds, command, objective
chosen, map maximum.

    python tools/objectives_table.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import onnx_xai  # noqa: E402
from onnx_xai.cli import main  # noqa: E402
from onnx_xai.imaging.images import load_image, prepare  # noqa: E402
from onnx_xai.imaging.preprocessing import Preprocessing, preprocessing_for  # noqa: E402
from onnx_xai.photos import DEMO_PHOTOS  # noqa: E402
from onnx_xai.photos.objectives import objective  # noqa: E402
from onnx_xai.photos.run import ExplainOptions  # noqa: E402
from onnx_xai.runtime.report import inspect_model  # noqa: E402

TEXT = Path(__file__).resolve().parent.parent / "onnx_xai" / "data" / "text"


def models(folder: Path) -> list[tuple[str, Path, list[str]]]:
    """(name, model file, explain flags) for each form; the text models on the bundled text picture."""
    from tests.objectives import test_detector_heads as heads
    from tests.objectives.test_keras_outputs import face_model

    face, _, names = face_model(folder)
    spec = folder / "anchors.json"
    spec.write_text(
        json.dumps({"boxes": names[0], "form": "anchors", "strides": [8, 16], "per_cell": [2], "scale": 64})
    )
    levels = heads.save(
        heads.Levels(), folder / "levels.onnx", ["scores_8", "scores_16", "boxes_8", "boxes_16"]
    )
    detr = heads.save(
        heads.Queries(), folder / "detr.onnx", ["pred_logits", "pred_boxes"], names='["a", "b", "c", "d"]'
    )
    yolo = heads.save(heads.Objectness(), folder / "yolo.onnx", ["output0"], names='["cat", "dog", "bird"]')
    import rapidocr_onnxruntime

    ocr = Path(rapidocr_onnxruntime.__file__).parent / "models"
    return [
        ("Keras face detector (tf2onnx)", face, []),
        ("Keras face detector (tf2onnx)", face, ["--decoder", str(spec)]),
        ("Keras face mask (tf2onnx)", face, ["--output", names[2], "--threshold", "0.5"]),
        (
            "Keras landmarks (tf2onnx)",
            face,
            ["--output", names[3], "--objective", "regression", "--channel", "3"],
        ),
        ("PicoDet-style 2 levels, box bins", levels, []),
        ("DETR-style", detr, []),
        ("YOLOv5-style, objectness", yolo, []),
        ("PP-OCRv4 text detector", ocr / "ch_PP-OCRv4_det_infer.onnx", []),
        (
            "PP-OCR orientation classifier",
            ocr / "ch_ppocr_mobile_v2.0_cls_infer.onnx",
            ["--size", "48", "192"],
        ),
    ]


def row(name: str, path: Path, flags: list[str], photo: Path, out: Path) -> str:
    kinds = ", ".join(
        f"{o['name']}: {o.get('detector') or o.get('kind')}" for o in inspect_model(path)["outputs"]
    )
    command = f"onnx-xai explain MODEL {photo.name} {' '.join(flags)}".strip()
    assert main(["explain", str(path), str(photo), "--out", str(out), "--method", "gradient", *flags]) == 0
    record = json.loads((out / f"{photo.name}.json").read_text())
    chosen = record["objective"]
    ex = onnx_xai.Explainer(path, output_name=chosen.get("output"))
    size = tuple(int(v) for v in flags[flags.index("--size") + 1 :][:2]) if "--size" in flags else None
    p = prepare(load_image(photo), **preprocessing_for(ex, Preprocessing(size=size)))
    opts = _options(ex, chosen, flags)
    wanted, _ = objective(ex, p.array, [p], opts)
    heat = ex.explain(p.array, "gradcam", wanted).maps[0]
    y, x = np.unravel_index(int(heat.argmax()), heat.shape)
    at = p.box_to_photo((x, y, x + 1, y + 1))[:2]
    box = chosen.get("photo_box")
    inside = (
        ""
        if not box
        else (
            " (inside its box)"
            if box[0] <= at[0] < box[2] and box[1] <= at[1] < box[3]
            else " (outside its box)"
        )
    )
    said = {
        k: v
        for k, v in chosen.items()
        if k in ("kind", "output", "candidate", "class", "channel", "index", "pixels", "photo_box", "layout")
    }
    return f"| {name} | {kinds} | `{command}` | {json.dumps(said)} | {at}{inside} |"


def _options(ex, chosen: dict, flags: list[str]) -> ExplainOptions:
    """The options of the command line's objective, its candidate and class pinned from the record."""
    from onnx_xai.objectives.labels import read_labels

    def value(flag: str, cast, default):
        return cast(flags[flags.index(flag) + 1]) if flag in flags else default

    detection = chosen["kind"] == "detection"
    return ExplainOptions(
        objective=value("--objective", str, "auto"),
        channel=value("--channel", int, 0),
        threshold=value("--threshold", float, 0.3),
        candidate=chosen["candidate"] if detection else None,
        target=chosen["class"] if detection else None,
        labels=read_labels(None, ex.num_classes, ex.metadata),
    )


def main_table() -> None:
    photo = Path(str(DEMO_PHOTOS)) / "coffee.jpg"
    print("| model | outputs (inspect) | command | objective chosen | map maximum (photo pixels) |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, path, flags) in enumerate(models(Path(tmp))):
            picture = next(TEXT.glob("*.jpg")) if name.startswith("PP-OCR") else photo
            print(row(name, path, flags, picture, Path(tmp) / f"out{k}"), flush=True)


if __name__ == "__main__":
    main_table()
