"""The README's pictures beyond classifiers, made by the command line itself.

- ``docs/text-detector.jpg``: ``onnx-xai demo --text`` (PP-OCRv4's detector on the bundled text).
- ``docs/segmenter.jpg`` and ``docs/detector.jpg``: ``onnx-xai explain`` on the shapes scene with the
  segmenter and the detector that ``train_shapes.py`` trains (run it first); the detector's Grad-CAM
  fuses its three neck outputs, found by ``inspect``'s candidates per scale.

    python tools/train_shapes.py && python tools/readme_pictures.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from train_shapes import CACHE, CLASSES  # noqa: E402

from onnx_xai.cli import main as cli  # noqa: E402
from onnx_xai.runtime.report import inspect_model  # noqa: E402

DOCS = ROOT / "docs"


def save_sheet(sheet: Path, name: str, width: int = 1400) -> None:
    picture = Image.open(sheet).convert("RGB")
    if picture.width > width:
        picture = picture.resize((width, round(picture.height * width / picture.width)), Image.LANCZOS)
    picture.save(DOCS / name, quality=85)
    print(f"wrote {DOCS / name}")


def run(*args: str) -> None:
    if cli(list(args)) != 0:
        raise SystemExit(f"onnx-xai {' '.join(args)} failed")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, labels = Path(tmp), Path(tmp) / "labels.txt"
        run("demo", "--text", "--out", str(out / "text"))
        save_sheet(out / "text" / "cards.jpg.sheet.png", "text-detector.jpg")
        scene = str(CACHE / "shapes.png")
        labels.write_text("\n".join(("background",) + CLASSES) + "\n")
        run(
            "explain",
            str(CACHE / "shapes_segnet.onnx"),
            scene,
            "--preset",
            "raw",
            "--mean",
            "0.5",
            "--std",
            "0.25",
            "--labels",
            str(labels),
            "--target",
            "triangle",
            "--method",
            "gradcam",
            "layercam",
            "gradient",
            "--sheet",
            "--out",
            str(out / "seg"),
        )
        save_sheet(out / "seg" / "shapes.png.sheet.png", "segmenter.jpg")
        detector = CACHE / "shapes_yolo.onnx"
        necks = [s["name"] for s in inspect_model(detector)["scales"] if s["stride"] >= 8]
        labels.write_text("\n".join(CLASSES) + "\n")
        run(
            "explain",
            str(detector),
            scene,
            "--mean",
            "0.5",
            "--std",
            "0.25",
            "--labels",
            str(labels),
            "--target",
            "circle",
            "--method",
            "gradcam",
            "layercam",
            "gradient",
            "--target-layer",
            *necks,
            "--sheet",
            "--out",
            str(out / "det"),
        )
        save_sheet(out / "det" / "shapes.png.sheet.png", "detector.jpg")


if __name__ == "__main__":
    main()
