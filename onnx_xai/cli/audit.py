"""``onnx-xai audit``: faithfulness metrics, sanity checks and an HTML report for photos on a model.

Parses the flags into :class:`onnx_xai.audit.AuditOptions`, runs :func:`onnx_xai.audit.run.audit`
with a progress bar, and prints the summary: one line per method with its mean deletion and insertion
AUC (and ROAD), and the paths written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import XaiError
from .options import (
    UsageError,
    add_model_and_images,
    add_model_choice,
    add_preprocessing,
    add_runtime,
    at_least,
    finite,
    open_fraction,
    positive,
    preprocessing,
)

METRIC_CHOICES = ("deletion", "insertion", "road")
SANITY_CHOICES = ("randomization", "random_target", "none")


def add_parser(sub) -> None:
    from ..runtime.methods import METHOD_NAMES

    p = sub.add_parser(
        "audit",
        help="score the methods' maps (deletion, insertion, ROAD, pointing game) "
        "beside baselines, run sanity checks, write report.html",
        description="Explain photos with each method, score every map with faithfulness "
        "metrics beside trivial baseline maps, check the maps against a randomized model "
        "and a random class, and write report.html (self-contained), results.jsonl (one "
        "record per photo and method) and maps.npz (the raw attributions) into --out.",
    )
    add_model_and_images(p, "ONNX classifier (the original: randomization re-draws its weights)")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHOD_NAMES,
        default=["gradient", "gradcam"],
        metavar="METHOD",
        help=f"default: gradient gradcam; any of {', '.join(METHOD_NAMES)}",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=METRIC_CHOICES,
        default=list(METRIC_CHOICES),
        help="default: all three (ROAD costs a sparse solve per fraction: the slowest); the "
        "pointing game and box IoU are added when --boxes is given",
    )
    p.add_argument(
        "--boxes",
        help='ground-truth boxes in photo pixels: JSON {"photo.jpg": [[x0, y0, x1, y1], '
        "...]} or CSV with the header file,x0,y0,x1,y1",
    )
    _add_sanity(p)
    _add_protocol(p)
    p.add_argument(
        "--seed",
        type=at_least(0),
        default=0,
        help="baselines, tie order, imputation noise, "
        "random classes, re-drawn weights, SmoothGrad noise (default 0)",
    )
    p.add_argument(
        "--report-photos",
        type=at_least(0),
        default=48,
        metavar="N",
        help="photos shown one by one in the report (default 48; the tables count them all)",
    )
    add_preprocessing(p)
    _add_engine(p)
    add_runtime(p)
    p.add_argument(
        "--out",
        default="onnx-xai-audit",
        help="output folder (default: onnx-xai-audit; never searched for input photos)",
    )
    add_model_choice(p)
    p.set_defaults(run=run)


def _add_sanity(p: argparse.ArgumentParser) -> None:
    """Which sanity checks run, on how many photos, in how many randomization steps."""
    p.add_argument(
        "--sanity",
        nargs="+",
        choices=SANITY_CHOICES,
        default=["randomization", "random_target"],
        help="sanity checks (default both; none: skip)",
    )
    p.add_argument(
        "--randomization-steps",
        type=at_least(1),
        default=8,
        metavar="N",
        help="cascading randomization in at most N steps of layer groups (default 8)",
    )
    p.add_argument(
        "--sanity-photos",
        type=at_least(1),
        default=8,
        metavar="N",
        help="photos the sanity checks run on (the first N; default 8)",
    )


def _add_protocol(p: argparse.ArgumentParser) -> None:
    """The perturbation metrics' protocol (:class:`onnx_xai.audit.Protocol`)."""
    from ..audit.curves import Protocol

    p.add_argument(
        "--curve-steps",
        type=at_least(1),
        default=32,
        metavar="N",
        help="deletion/insertion: 1/N of the pixels per step (default 32)",
    )
    p.add_argument(
        "--deletion-fill",
        choices=("constant", "blur"),
        default="constant",
        help="what deleted pixels become (default constant: --fill-value)",
    )
    p.add_argument(
        "--insertion-start",
        choices=("blur", "constant"),
        default="blur",
        help="what insertion starts from (default blur)",
    )
    p.add_argument(
        "--fill-value",
        type=finite,
        default=0.0,
        help="the constant, in model input units (default 0: the mean colour after ImageNet normalization)",
    )
    p.add_argument(
        "--blur-sigma",
        type=positive,
        default=5.0,
        help="the blurred copy's sigma in input pixels (default 5)",
    )
    p.add_argument(
        "--road-fractions",
        type=open_fraction,
        nargs="+",
        metavar="F",
        default=list(Protocol.road_fractions),
        help="ROAD: the fractions of pixels removed, each in (0, 1) (default 0.1 ... 0.9, as Rong et al.)",
    )


def _add_engine(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "large datasets",
        "Run the photos on Ray Data (pip install 'onnx_xai[ray]'): "
        "one Explainer per actor, results written as Parquet parts into OUT/parts, so a "
        "rerun skips the photos already done; the sanity checks and report run here.",
    )
    g.add_argument("--engine", choices=("local", "ray"), default="local", help="default local")
    g.add_argument("--address", help="a Ray cluster's address (default: RAY_ADDRESS, else a local Ray)")
    g.add_argument(
        "--actors",
        type=at_least(1),
        default=1,
        help="actors in the pool, each with one Explainer (default 1)",
    )
    g.add_argument(
        "--cpus-per-actor",
        type=at_least(1),
        default=1,
        help="CPUs Ray reserves per actor; give --threads the same (default 1)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..audit.run import audit
    from ..images import image_files

    if "none" in args.sanity and len(args.sanity) > 1:
        raise UsageError("--sanity none cannot be combined with a check")
    files = image_files(args.images, exclude=args.out)
    opts = _options(args)
    explainer_args = {
        "target_layer": args.target_layer,
        "threads": args.threads,
        "backend": args.backend,
        "input_name": args.input,
        "output_name": args.output,
    }

    def bar(total: int):
        return tqdm(total=total, unit="step", desc="audit", disable=not sys.stderr.isatty(), file=sys.stderr)

    ray_options = {"address": args.address, "actors": args.actors, "cpus_per_actor": args.cpus_per_actor}
    written = audit(args.model, files, Path(args.out), opts, explainer_args, bar, args.engine, ray_options)
    failures = written.pop("failures", [])
    for name, reason in failures:
        print(f"onnx-xai: warning: {name}: {reason}", file=sys.stderr)
    print(summary_lines(written["results.jsonl"]))
    print("wrote " + ", ".join(written.values()))
    if failures:
        raise XaiError(f"{len(failures)} of {len(files)} photos could not be audited; the others were")
    return 0


def _options(args: argparse.Namespace):
    """The :class:`~onnx_xai.audit.AuditOptions` the flags say."""
    from ..audit import AuditOptions
    from ..audit.curves import Protocol
    from ..audit.localization import read_boxes

    protocol = Protocol(
        steps=args.curve_steps,
        deletion_fill=args.deletion_fill,
        insertion_start=args.insertion_start,
        fill_value=args.fill_value,
        blur_sigma=args.blur_sigma,
        seed=args.seed,
        road_fractions=tuple(sorted(set(args.road_fractions))),
    )
    return AuditOptions(
        methods=list(dict.fromkeys(args.methods)),
        metrics=list(dict.fromkeys(args.metrics)),
        sanity=[s for s in args.sanity if s != "none"],
        protocol=protocol,
        randomization_steps=args.randomization_steps,
        sanity_photos=args.sanity_photos,
        report_photos=args.report_photos,
        boxes=read_boxes(args.boxes) if args.boxes else None,
        target=args.target,
        labels=_labels(args),
        preprocessing=preprocessing(args),
        seed=args.seed,
        batch_size=args.batch_size,
    )


def _labels(args: argparse.Namespace) -> list[str]:
    from ..labels import read_labels

    return read_labels(args.labels, None) if args.labels else []


def summary_lines(results: str) -> str:
    """One line per method: its mean of each metric over the photos."""
    import json

    import numpy as np

    records = [json.loads(line) for line in Path(results).read_text(encoding="utf-8").splitlines()]
    keys = [
        k
        for k in (
            "deletion_auc",
            "insertion_auc",
            "road",
            "pointing_hit",
            "box_iou",
            "random_target_spearman",
        )
        if any(k in r for r in records)
    ]
    lines = []
    for method in dict.fromkeys(r["method"] for r in records):
        mine = [r for r in records if r["method"] == method]
        cells = [
            f"{k} {np.mean([float(r[k]) for r in mine if r.get(k) is not None]):.3f}"
            for k in keys
            if any(r.get(k) is not None for r in mine)
        ]
        lines.append(f"{method}: " + ", ".join(cells))
    return "\n".join(lines)
