"""Photos per second through ``onnx-xai explain`` against the Explainer's own batched throughput.

Makes N photos (640 x 480 and 600 x 450 JPEGs from the bundled three), then, with 2 threads:
- the baseline: ``Explainer.explain_many`` on batches of 8 preprocessed inputs (sessions warm),
  images per second;
- ``explain_files`` in this process (the command line's pipeline, sessions warm): photos per second
  over the whole run and in steady state (after its first batch), for JSON only, JPEG and PNG;
- the command line end to end in a fresh process (start-up, model load and rewrite included).
Ratios are against the baseline of the same run.

    python tools/bench_cli.py [--photos 96] [--model efficientnet_lite0] [--method gradcam]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from bench_methods import model_path  # noqa: E402

import onnx_xai  # noqa: E402
from onnx_xai.imaging.images import load_image, prepare  # noqa: E402
from onnx_xai.imaging.preprocessing import preprocessing_for  # noqa: E402
from onnx_xai.photos import DEMO_PHOTOS  # noqa: E402
from onnx_xai.photos.run import ExplainOptions, explain_files  # noqa: E402

FORMS = {
    "JSON only (--no-overlays)": dict(overlays=False),
    "JPEG (--format jpg)": dict(image_format="jpg"),
    "PNG (default)": dict(image_format="png"),
}
FLAGS = {
    "JSON only (--no-overlays)": ["--no-overlays"],
    "JPEG (--format jpg)": ["--format", "jpg"],
    "PNG (default)": [],
}


def make_photos(folder: Path, count: int) -> list[Path]:
    sources = [Image.open(p).convert("RGB") for p in sorted(Path(str(DEMO_PHOTOS)).glob("*.jpg"))]
    paths = []
    for k in range(count):
        photo = sources[k % len(sources)]
        photo = photo.resize((640, 480)) if k % 2 == 0 else ImageOps.mirror(photo).resize((600, 450))
        paths.append(folder / f"p{k:03d}.jpg")
        photo.save(paths[-1], quality=90)
    return paths


def baseline(ex, photos: list[Path], method: str) -> float:
    preprocessing = preprocessing_for(ex)
    batches = [
        np.concatenate([prepare(load_image(p), **preprocessing).array for p in photos[k : k + 8]])
        for k in range(0, len(photos), 8)
    ]
    ex.explain_many(batches[0], [method])
    start = time.perf_counter()
    for batch in batches:
        ex.explain_many(batch, [method])
    return len(photos) / (time.perf_counter() - start)


def pipeline(ex, photos: list[Path], out: Path, method: str, form: dict) -> tuple[float, float]:
    stamps = []

    class Bar:
        def update(self, n):
            stamps.append(time.perf_counter())

        def close(self):
            pass

    start = time.perf_counter()
    explain_files(
        ex, photos, out, ExplainOptions(methods=[method], **form), "0" * 64, progress=lambda total: Bar()
    )
    whole = len(photos) / (stamps[-1] - start)
    steady = (len(photos) - 8) / (stamps[-1] - stamps[7])
    return whole, steady


def end_to_end(model: str, folder: Path, out: Path, method: str, flags: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "onnx_xai.cli",
            "explain",
            model,
            str(folder),
            "--method",
            method,
            "--threads",
            "2",
            "--out",
            str(out),
            *flags,
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--method", default="gradcam")
    args = parser.parse_args()
    model = model_path(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        photos = make_photos(folder, args.photos)
        ex = onnx_xai.Explainer(model, threads=2)
        base = baseline(ex, photos, args.method)
        print(
            f"{args.model}, {args.method}, {args.photos} photos, 2 threads; "
            f"Explainer.explain_many at batch 8: {base:.1f} images/s"
        )
        print(
            "| output | pipeline photos/s (x baseline) | steady state (x baseline) | "
            "command line end to end |"
        )
        print("|---|---|---|---|")
        for k, (name, form) in enumerate(FORMS.items()):
            whole, steady = pipeline(ex, photos, Path(tmp) / f"out{k}", args.method, form)
            seconds = end_to_end(model, folder, Path(tmp) / f"cli{k}", args.method, FLAGS[name])
            print(
                f"| {name} | {whole:.1f} ({whole / base:.2f}) | {steady:.1f} ({steady / base:.2f}) | "
                f"{seconds:.2f} s, {args.photos / seconds:.1f} photos/s "
                f"({args.photos / seconds / base:.2f}) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
