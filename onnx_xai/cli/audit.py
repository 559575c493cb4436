"""``onnx-xai audit``: faithfulness metrics, sanity checks and an HTML report for photos or a table's
rows on a model.

Reads the model's kind first (as ``explain`` does): photos' flags become
:class:`onnx_xai.audit.AuditOptions` for :func:`onnx_xai.audit.run.audit`, a table's rows and
background :class:`~onnx_xai.audit.table_auditor.TableAuditOptions` for
:func:`onnx_xai.audit.table_run.audit_table`; either runs with a progress bar and prints the summary:
one line per method with its mean deletion and insertion AUC (and ROAD, for photos), and the paths
written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..support.errors import InputError, XaiError
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
PHOTO_METHODS = ["gradient", "gradcam"]


def add_parser(sub) -> None:
    from ..runtime.methods import METHOD_NAMES

    p = sub.add_parser(
        "audit",
        help="score the methods' maps (deletion, insertion, ROAD, pointing game) "
        "beside baselines, run sanity checks, write report.html",
        description="Explain photos (or a table's rows) with each method, score every map "
        "(or attribution) with faithfulness metrics beside trivial baselines, check them against a "
        "randomized model and a random class, and write report.html (self-contained), "
        "results.jsonl (one record per photo or row and method) and maps.npz (photos) or "
        "attributions.npz (rows) into --out.",
    )
    add_model_and_images(p, "ONNX model (the original: randomization re-draws its weights)")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHOD_NAMES,
        metavar="METHOD",
        help="default: gradient gradcam for photos; tree_shap kernel_shap for a tree ensemble's "
        f"rows, else kernel_shap gradient; any of {', '.join(METHOD_NAMES)}",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=METRIC_CHOICES,
        help="default: all three for photos (ROAD costs a sparse solve per fraction: the slowest), "
        "deletion and insertion for a table; the pointing game and box IoU are added when --boxes "
        "is given",
    )
    p.add_argument(
        "--background",
        metavar="ROWS",
        help="a table's background rows (.csv, .parquet, .npy): what a removed feature is replaced "
        "by, and what the SHAP methods draw from (needed for a table)",
    )
    p.add_argument(
        "--boxes",
        help='ground-truth boxes in photo pixels: JSON {"photo.jpg": [[x0, y0, x1, y1], '
        "...]} or CSV with the header file,x0,y0,x1,y1",
    )
    _add_sanity(p)
    _add_protocol(p)
    p.add_argument(
        "--noise-seed",
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
        "--sanity-rows",
        type=at_least(1),
        default=8,
        metavar="N",
        help="photos (or rows) the sanity checks run on (the first N; default 8)",
    )


def _add_protocol(p: argparse.ArgumentParser) -> None:
    """The perturbation metrics' protocol (:class:`onnx_xai.audit.Protocol`)."""
    from ..audit.curves import Protocol

    p.add_argument(
        "--curve-steps",
        type=at_least(1),
        default=32,
        metavar="N",
        help="deletion/insertion: 1/N of the pixels (or features) per step (default 32; one feature "
        "per step for a table with at most N)",
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
    from ..audit.run import audit
    from ..imaging.images import image_files
    from ..runtime import Explainer

    if "none" in args.sanity and len(args.sanity) > 1:
        raise UsageError("--sanity none cannot be combined with a check")
    explainer_args = {
        "target_layer": args.target_layer,
        "threads": args.threads,
        "backend": args.backend,
        "input_name": args.input,
        "output_name": args.output,
    }
    ex = Explainer(args.model, **explainer_args)
    if ex.kind == "table":
        return _run_table(args, ex, explainer_args)
    if args.background:
        raise UsageError("--background is for tables; this model takes photos")
    files = image_files(args.images, exclude=args.out)
    opts = _options(args)
    ray_options = {"address": args.address, "actors": args.actors, "cpus_per_actor": args.cpus_per_actor}
    if args.engine == "ray":
        ex = None  # each actor makes its own
    written = audit(
        args.model, files, Path(args.out), opts, explainer_args, _bar, args.engine, ray_options, ex
    )
    failures = written.pop("failures", [])
    for name, reason in failures:
        print(f"onnx-xai: warning: {name}: {reason}", file=sys.stderr)
    print(summary_lines(written["results.jsonl"]))
    print("wrote " + ", ".join(written.values()))
    if failures:
        raise XaiError(f"{len(failures)} of {len(files)} photos could not be audited; the others were")
    return 0


def _bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="audit", disable=not sys.stderr.isatty(), file=sys.stderr)


def _run_table(args: argparse.Namespace, ex, explainer_args: dict) -> int:
    """A table model's rows audited (:mod:`onnx_xai.audit.table_run`)."""
    from ..audit.table_run import audit_table

    opts, rows = _table_options(args, ex)
    explainer_args = {k: v for k, v in explainer_args.items() if k != "target_layer"}
    written = audit_table(args.model, rows, Path(args.out), opts, explainer_args, _bar, ex)
    print(summary_lines(written["results.jsonl"]))
    print("wrote " + ", ".join(written.values()))
    return 0


def _table_options(args: argparse.Namespace, ex):
    """The :class:`~onnx_xai.audit.table_auditor.TableAuditOptions` the flags say, and the rows."""
    from ..audit.curves import Protocol
    from ..audit.table_auditor import TABLE_METRICS, TableAuditOptions
    from ..objectives.labels import parse_target, read_labels
    from ..tables.rows import read_rows

    if len(args.images) != 1:
        raise UsageError("a table model audits the rows of one file (.csv, .parquet or .npy)")
    if len(ex.inputs) > 1:
        raise InputError(
            f"this table model takes its columns as {len(ex.inputs)} inputs ({', '.join(ex.inputs)}): "
            "auditing such a model is not supported yet; explain its rows with onnx-xai explain"
        )
    if not args.background:
        raise UsageError(
            "a table audit needs --background ROWS: a removed feature is replaced by the background "
            "rows' values (and the SHAP methods draw from them)"
        )
    photo_only = [
        f for f, given in (("--boxes", args.boxes), ("--engine ray", args.engine == "ray")) if given
    ]
    if photo_only or "road" in (args.metrics or []):
        raise UsageError(
            f"{(photo_only or ['--metrics road'])[0]} is for photos; a table is audited here with "
            "--metrics deletion insertion"
        )
    columns = ex.input_shape[-1] if isinstance(ex.input_shape[-1], int) else None
    rows = read_rows(args.images[0], columns)
    background = read_rows(args.background, columns, rows.names)
    labels = read_labels(args.labels, ex.num_classes, ex.metadata) if ex.num_classes else []
    opts = TableAuditOptions(
        background=background,
        methods=list(dict.fromkeys(args.methods)) if args.methods else _table_methods(ex),
        target=parse_target(args.target, labels, ex.num_classes) if ex.num_classes else None,
        labels=labels,
        noise_seed=args.noise_seed,
        metrics=list(dict.fromkeys(args.metrics or TABLE_METRICS)),
        sanity=[s for s in args.sanity if s != "none"],
        protocol=Protocol(steps=args.curve_steps, noise_seed=args.noise_seed),
        randomization_steps=args.randomization_steps,
        sanity_rows=args.sanity_photos,
    )
    return opts, rows


def _table_methods(ex) -> list[str]:
    """The methods a table is audited with when none is named (:mod:`onnx_xai.tables.defaults`), said."""
    from ..tables.defaults import table_methods

    chosen, why = table_methods(ex, background=True, audit=True)
    print(f"methods: {', '.join(chosen)} ({why}; --methods to choose)")
    return chosen


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
        noise_seed=args.noise_seed,
        road_fractions=tuple(sorted(set(args.road_fractions))),
    )
    return AuditOptions(
        methods=list(dict.fromkeys(args.methods or PHOTO_METHODS)),
        metrics=list(dict.fromkeys(args.metrics or METRIC_CHOICES)),
        sanity=[s for s in args.sanity if s != "none"],
        protocol=protocol,
        randomization_steps=args.randomization_steps,
        sanity_photos=args.sanity_photos,
        report_photos=args.report_photos,
        boxes=read_boxes(args.boxes) if args.boxes else None,
        target=args.target,
        labels=_labels(args),
        preprocessing=preprocessing(args),
        noise_seed=args.noise_seed,
        batch_size=args.batch_size,
    )


def _labels(args: argparse.Namespace) -> list[str]:
    from ..objectives.labels import read_labels

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
