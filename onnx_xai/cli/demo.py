"""``onnx-xai demo``: the bundled EfficientNet-Lite0 on the bundled photos (``--text``: PP-OCRv4's text
detector on a bundled picture of text)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import BACKENDS, at_least


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="explain the bundled photos with the bundled EfficientNet-Lite0 (--text: a text detector)",
        description="Run all four methods on the bundled photos with the bundled "
        "pretrained EfficientNet-Lite0 and write a sheet per photo (no network needed).",
    )
    demo.add_argument("--out", default="onnx-xai-demo", help="output folder (default: onnx-xai-demo)")
    demo.add_argument("--threads", type=at_least(1), help="intra-op threads of the runtime")
    demo.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="the runtime")
    demo.add_argument(
        "--text",
        action="store_true",
        help="explain a text detector instead: PP-OCRv4's, "
        "from the rapidocr-onnxruntime wheel, on a bundled picture of text",
    )
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..photos.demo import classifier_demo, text_demo

    print(
        "\n".join((text_demo if args.text else classifier_demo)(Path(args.out), args.threads, args.backend))
    )
    return 0
