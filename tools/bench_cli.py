"""Photos per second through ``onnx-xai explain`` against the Explainer's own batched throughput.

Makes N photos (640 x 480 and 600 x 450 JPEGs from the bundled three), then, with 2 threads, in
``--rounds`` interleaved rounds (this machine's speed drifts over seconds; medians are printed, and
each round's ratio):
- the baseline: ``Explainer.explain_many`` on batches of 8 preprocessed inputs (sessions warm),
  images per second; beside it, the same with the photos' reading counted (decoding and preparing
  them, one thread, then the batches: the baseline ``tools/bench_serve.py`` gives the server);
- ``explain_files`` in this process (the command line's pipeline, sessions warm): photos per second
  over the whole run, for JSON only, JPEG and PNG;
- the command line end to end in a fresh process (start-up, model load and rewrite included), its
  start-up alone (the same command on one photo), and its photos per second beyond the start-up
  ((N - 1) photos over the difference);
- with ``--compare CHECKOUT``, another checkout's command line in the same rounds (before / after).
Every ratio is against the baseline of the same round.

    python tools/bench_cli.py [--photos 96] [--model efficientnet_lite0] [--method gradcam]
                              [--rounds 5] [--forms json jpg png] [--compare CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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

ROOT = Path(__file__).resolve().parent.parent
FORMS = {  # name: (explain_files' options, the command line's flags)
    "json": ("JSON only (--no-overlays)", dict(overlays=False), ["--no-overlays"]),
    "jpg": ("JPEG (--format jpg)", dict(image_format="jpg"), ["--format", "jpg"]),
    "png": ("PNG (default)", dict(image_format="png"), []),
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


def baseline(ex, photos: list[Path], method: str) -> tuple[float, float]:
    """Images per second of ``explain_many`` on batches of 8 inputs prepared ahead, and with the
    reading (decoding, preparing) of each batch's photos counted."""
    preprocessing = preprocessing_for(ex)

    def read(k: int) -> np.ndarray:
        return np.concatenate([prepare(load_image(p), **preprocessing).array for p in photos[k : k + 8]])

    batches = [read(k) for k in range(0, len(photos), 8)]
    ex.explain_many(batches[0], [method])
    start = time.perf_counter()
    for batch in batches:
        ex.explain_many(batch, [method])
    runs = len(photos) / (time.perf_counter() - start)
    start = time.perf_counter()
    for k in range(0, len(photos), 8):
        ex.explain_many(read(k), [method])
    return runs, len(photos) / (time.perf_counter() - start)


def pipeline(ex, photos: list[Path], out: Path, method: str, form: dict) -> float:
    shutil.rmtree(out, ignore_errors=True)  # every run writes a fresh folder
    start = time.perf_counter()
    explain_files(ex, photos, out, ExplainOptions(methods=[method], **form), "0" * 64)
    return len(photos) / (time.perf_counter() - start)


def end_to_end(
    model: str, photos: list[Path], out: Path, method: str, flags: list[str], root: Path = ROOT
) -> float:
    """Seconds of the command in a fresh process (the package of the checkout at ``root``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "onnx_xai.cli", "explain", model, *map(str, photos)]
    command += ["--method", method, "--threads", "2", "--out", str(out), *flags]
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def one_round(ex, model: str, folder: Path, photos: list[Path], tmp: Path, args) -> dict:
    """Every measure once: images (photos) per second, and the command lines' seconds."""
    base, with_reading = baseline(ex, photos, args.method)
    found = {"baseline": base, "baseline with reading": with_reading}
    found["start-up"] = end_to_end(model, photos[:1], tmp / "one", args.method, ["--no-overlays"])
    for k, form in enumerate(args.forms):
        _, options, flags = FORMS[form]
        found[f"{form} pipeline"] = pipeline(ex, photos, tmp / f"out{k}", args.method, options)
        found[f"{form} command"] = end_to_end(model, [folder], tmp / f"cli{k}", args.method, flags)
        if args.compare is not None:
            found[f"{form} before"] = end_to_end(
                model, [folder], tmp / f"was{k}", args.method, flags, args.compare
            )
    return found


def report(rounds: list[dict], args) -> None:
    """Medians over the rounds; each ratio is against its own round's baseline."""
    n, bases = args.photos, [r["baseline"] for r in rounds]

    def ratio(values: list[float]) -> str:
        each = [v / b for v, b in zip(values, bases)]
        return f"{statistics.median(each):.2f} ({', '.join(f'{v:.2f}' for v in each)})"

    def column(key: str) -> list[float]:
        return [r[key] for r in rounds]

    reading = column("baseline with reading")
    print(
        f"{args.model}, {args.method}, {n} photos, 2 threads, medians of {len(rounds)} rounds: "
        f"Explainer.explain_many at batch 8: {statistics.median(bases):.1f} images/s; with the "
        f"reading counted: {statistics.median(reading):.1f} (x baseline: {ratio(reading)})"
    )
    print(
        "| output | pipeline photos/s (x baseline: median, each round) | command line end to end "
        "(x baseline) | command line beyond its start-up (x baseline) |"
    )
    print("|---|---|---|---|")
    rows = [(FORMS[form][0], form, "command") for form in args.forms]
    if args.compare is not None:
        rows += [(f"{FORMS[form][0]}, {args.compare}", form, "before") for form in args.forms]
    for name, form, key in rows:
        seconds, start_up = column(f"{form} {key}"), column("start-up")
        whole = ratio([n / t for t in seconds])
        beyond = ratio([(n - 1) / (t - t1) for t, t1 in zip(seconds, start_up)])
        piped = column(f"{form} pipeline")
        pipe = f"{statistics.median(piped):.1f} ({ratio(piped)})" if key == "command" else ""
        t = statistics.median(seconds)
        print(f"| {name} | {pipe} | {t:.2f} s, {n / t:.1f} photos/s ({whole}) | {beyond} |")
    print(f"command line start-up (the same on 1 photo, JSON only): {statistics.median(start_up):.2f} s")


def _load() -> str:
    """The 1-minute load average, and the share of time some task waited for a core (Linux PSI)."""
    try:
        waited = Path("/proc/pressure/cpu").read_text().split()[1].split("=")[1] + " % (10 s)"
    except (OSError, IndexError):
        waited = "unknown"
    return f"load {os.getloadavg()[0]:.2f}, cpu pressure {waited}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=list(FORMS))
    parser.add_argument(
        "--compare", type=Path, metavar="CHECKOUT", help="also time the command line of another checkout"
    )
    args = parser.parse_args()
    model = model_path(args.model)
    print(f"before: {_load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        photos = make_photos(folder, args.photos)
        ex = onnx_xai.Explainer(model, threads=2)
        rounds = [one_round(ex, model, folder, photos, Path(tmp), args) for _ in range(args.rounds)]
    report(rounds, args)
    print(f"after: {_load()}")


if __name__ == "__main__":
    main()
