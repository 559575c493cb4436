"""``onnx-xai explain``: photos explained with one or more methods, a picture per method and a JSON
record per photo, each photo's set written whole (:mod:`onnx_xai.photos.run`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError, XaiError
from .options import (
    UsageError,
    add_model_and_images,
    add_preprocessing,
    add_runtime,
    at_least,
    finite,
    fraction,
    preprocessing,
)


def add_parser(sub) -> None:
    from ..runtime.methods import METHOD_NAMES

    p = sub.add_parser(
        "explain",
        help="explain photos: heatmap overlays, boxes and a JSON record each",
        description="Explain image files (or folders of them) with one or more methods. "
        "Writes, per photo, <name>.<method>.png (heatmap over the original photo, box in "
        "white) and <name>.json (file, model sha256, and per method: target class, "
        "label, score, box in original pixels).",
    )
    add_model_and_images(p, "ONNX classifier (original or rewritten by 'augment')")
    p.add_argument(
        "--method",
        nargs="+",
        choices=METHOD_NAMES,
        default=["gradcam"],
        metavar="METHOD",
        help=f"default: gradcam; any of {', '.join(METHOD_NAMES)}",
    )
    add_preprocessing(p)
    _add_sampling(p)
    _add_pictures(p)
    add_runtime(p)
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="skip photos that cannot be read (a warning "
        "each, exit status 1 at the end) instead of stopping before anything is written",
    )
    p.add_argument(
        "--out",
        default="onnx-xai-out",
        help="output folder (default: onnx-xai-out; never searched for input photos)",
    )
    p.add_argument(
        "--target-layer",
        nargs="+",
        help="4-D tensor(s) to explain with the CAM family (several: each layer's map, fused by --fuse)",
    )
    p.add_argument("--input", help="image input name (default: the first 4-D float input)")
    p.add_argument(
        "--output",
        help="the model output to explain, for models with several (default: the first; inspect lists them)",
    )
    p.add_argument(
        "--fuse",
        choices=("mean", "max"),
        default="mean",
        help="how the maps of several target layers combine (default mean, as pytorch-grad-cam)",
    )
    _add_objective(p)
    p.set_defaults(run=run)


def _add_sampling(p: argparse.ArgumentParser) -> None:
    """SmoothGrad over every method, integration points, the noise seed."""
    p.add_argument(
        "--smooth", type=at_least(1), metavar="N", help="SmoothGrad every method with N noisy samples"
    )
    p.add_argument(
        "--steps",
        type=at_least(1),
        metavar="N",
        help="integration points of integrated_gradients (default 50)",
    )
    p.add_argument("--seed", type=at_least(0), default=0, help="SmoothGrad noise seed (default 0)")


def _add_pictures(p: argparse.ArgumentParser) -> None:
    """What is written per photo, and how much of the model is held."""
    from ..visuals import COLORMAPS

    p.add_argument("--cmap", choices=COLORMAPS, default="jet")
    p.add_argument(
        "--alpha", type=fraction(closed_low=True), default=0.5, help="heatmap opacity in [0, 1] (default 0.5)"
    )
    p.add_argument(
        "--sheet", action="store_true", help="also write <name>.sheet.png, the methods side by side"
    )
    p.add_argument(
        "--format",
        choices=("png", "jpg"),
        default="png",
        help="the pictures' format (default png, lossless; jpg is 20x faster to write and 6x smaller)",
    )
    p.add_argument(
        "--no-overlays", action="store_true", help="write only the JSON records (scores, boxes), no pictures"
    )
    p.add_argument(
        "--memory",
        choices=("fast", "lean"),
        default="fast",
        help="lean: hold one copy of the model at a time (slower when methods of different costs are mixed)",
    )


def _add_objective(p: argparse.ArgumentParser) -> None:
    from ..photos.objectives import KINDS

    g = p.add_argument_group(
        "what to explain beyond a class",
        "The kind follows the explained output's "
        "shape: [N, K] a class (--target), [N, 4+C, A] a pre-NMS detector (the best "
        "candidate of --target's class, or of any, overlapping --region), [N, C, H, W] "
        "a segmenter (--target's class where it wins) or, for C = 1, a dense map (its "
        "largest region above --threshold, or --region).",
    )
    g.add_argument("--objective", choices=KINDS, default="auto", help="override the kind (default: auto)")
    g.add_argument(
        "--region",
        type=finite,
        nargs=4,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="a box in photo pixels: the detection to explain (IoU >= 0.5), or the part of a map",
    )
    g.add_argument("--candidate", type=at_least(0), help="a detector's candidate by index")
    g.add_argument("--channel", type=at_least(0), default=0, help="a dense map's channel (default 0)")
    g.add_argument(
        "--threshold",
        type=finite,
        default=0.3,
        help="a dense map's region: the largest above this value (default 0.3)",
    )
    g.add_argument(
        "--boxes",
        choices=("cxcywh", "xyxy", "none"),
        help="detector box format; none: the output holds class scores only (default: read from the shape)",
    )
    g.add_argument(
        "--anchors",
        choices=("last", "first"),
        help="detector layout: [N, 4+C, A] (last, YOLOv8) or [N, A, 4+C] (first); default: candidates "
        "along the longer axis",
    )
    g.add_argument(
        "--classes-from",
        type=at_least(0),
        help="row of the first class score (4; 5 after an objectness score; 0 for scores only)",
    )


def run(args: argparse.Namespace) -> int:
    from ..files import sha256_of
    from ..images import image_files
    from ..runtime import Explainer

    files = image_files(args.images, exclude=args.out)
    ex = Explainer(
        args.model,
        target_layer=args.target_layer,
        threads=args.threads,
        backend=args.backend,
        memory=args.memory,
        input_name=args.input,
        output_name=args.output,
    )
    _ask_which_detector_output(args, ex)
    opts = _options(args, ex.num_classes, ex.metadata)
    _say_where_labels_come_from(args, ex)
    skipped: list = []

    def skip(path, reason: str) -> None:
        skipped.append(path)
        print(f"onnx-xai: warning: skipped {path}: {reason}", file=sys.stderr)

    show = any(Path(p).is_dir() for p in args.images)
    records = _run_with_progress(ex, files, Path(args.out), opts, sha256_of(args.model), show, skip)
    for rec in records:
        first = rec["explanations"][0]
        print(
            f"{rec['file']}: {_explained(rec['objective'], first)} ({first['score']:.2f}) -> "
            f"{Path(args.out) / rec['name']}.*"
        )
    if skipped:
        raise XaiError(f"{len(skipped)} of {len(files)} photos could not be read; the others were explained")
    return 0


def _ask_which_detector_output(args: argparse.Namespace, ex) -> None:
    """A detector whose candidates are spread over several outputs (boxes in one, scores in another, as
    SSD and BlazeFace export them) is not explained on its first output by guess: the user says which."""
    if args.output is not None or len(ex.output_shape) != 3:
        return

    def candidates(shape: tuple) -> int | None:
        sizes = [d for d in shape[1:] if isinstance(d, int)]
        return max(sizes) if len(shape) == 3 and len(sizes) == 2 else None

    count = candidates(ex.output_shape)
    alike = [
        f"{name!r} {list(shape)}"
        for name, shape in ex.outputs.items()
        if count and candidates(shape) == count
    ]
    if len(alike) > 1:
        raise InputError(
            f"the model has {len(alike)} outputs of {count} candidates ({', '.join(alike)}): say which to "
            "explain with --output NAME (a detector's class scores, usually; its boxes are another output)"
        )


def _detection_layout(args: argparse.Namespace):
    """The detector layout the flags say, or None (read from the output's shape and record)."""
    from ..seeds import DetectionLayout

    if args.anchors is None and args.boxes is None and args.classes_from is None:
        return None
    boxes = args.boxes or "cxcywh"
    classes_from = args.classes_from if args.classes_from is not None else (0 if boxes == "none" else 4)
    if boxes != "none" and classes_from < 4:
        raise UsageError("--classes-from must be 4 or more when the output holds boxes")
    return DetectionLayout(args.anchors != "first", boxes, classes_from)


def _say_where_labels_come_from(args: argparse.Namespace, ex) -> None:
    """Class names the model's own metadata gave (never used silently)."""
    from ..labels import labels_from_metadata

    found = None if args.labels else labels_from_metadata(ex.metadata, ex.num_classes)
    if found is not None:
        print(f"class names: {len(found[0])} from the model's metadata ({found[1]!r})")


def _options(args: argparse.Namespace, classes: int | None, metadata: dict):
    """The :class:`~onnx_xai.photos.run.ExplainOptions` the flags say (labels read, target checked)."""
    from ..labels import parse_target, read_labels
    from ..photos.run import ExplainOptions

    labels = read_labels(args.labels, classes, metadata)
    return ExplainOptions(
        methods=_methods(args.method, args.smooth),
        target=parse_target(args.target, labels, classes),
        preprocessing=preprocessing(args),
        smooth=args.smooth,
        seed=args.seed,
        steps=args.steps,
        cmap=args.cmap,
        alpha=args.alpha,
        batch_size=args.batch_size,
        sheets=args.sheet,
        labels=labels,
        keep_going=args.keep_going,
        objective=args.objective,
        region=tuple(args.region) if args.region else None,
        channel=args.channel,
        candidate=args.candidate,
        threshold=args.threshold,
        fuse=args.fuse,
        image_format=args.format,
        overlays=not args.no_overlays,
        detection=_detection_layout(args),
    )


def _explained(objective: dict, first: dict) -> str:
    """What a photo's explanations are of, in a few words."""
    name = first["label"] or (first["target"] if objective["kind"] == "class" else objective.get("class"))
    words = [objective["kind"]] if objective["kind"] != "class" else []
    words += [str(name)] if name is not None else []
    if objective["kind"] == "dense":
        words.append(f"channel {objective['channel']}")
    if "candidate" in objective:
        words.append(f"candidate {objective['candidate']}")
    if objective.get("photo_box"):
        words.append("at " + ",".join(str(v) for v in objective["photo_box"]))
    return " ".join(words)


def _methods(methods: Sequence[str], smooth: int | None) -> list[str]:
    chosen = list(dict.fromkeys(methods))
    if smooth and "smoothgrad" in chosen:
        raise UsageError("--smooth already smooths every method; drop 'smoothgrad' from --method")
    return chosen


def _run_with_progress(ex, files, out, opts, sha256, show: bool, on_skip):
    from tqdm import tqdm

    from ..photos.run import explain_files

    def bar(total: int):
        return tqdm(total=total, unit="image", disable=not show, file=sys.stderr)

    return explain_files(ex, files, out, opts, sha256, progress=bar, on_skip=on_skip)
