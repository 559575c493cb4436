"""``onnx-xai audit``: faithfulness metrics, sanity checks and an HTML report for photos, a table's
rows, a text encoder's texts or a signal model's files on a model.

Reads the model's kind first (as ``explain`` does): photos' flags become
:class:`onnx_xai.audit.AuditOptions` for :func:`onnx_xai.audit.run.audit`, a table's rows and
background :class:`~onnx_xai.audit.table_auditor.TableAuditOptions` for
:func:`onnx_xai.audit.table_run.audit_table`, texts (``--text``, ``--text-file``, as ``explain``
reads them) :class:`~onnx_xai.audit.text_auditor.TextAuditOptions` for
:func:`onnx_xai.audit.text_run.audit_texts`, signal files (:mod:`.audit_signals`)
:class:`~onnx_xai.audit.signal_auditor.SignalAuditOptions` for
:func:`onnx_xai.audit.signal_run.audit_signals`; each runs with a progress bar and prints the summary:
one line per method with its mean deletion and insertion AUC (and ROAD, for photos; comprehensiveness
and sufficiency for texts), and the paths written. A photo's or a table's flag given to a text encoder
or a signal model, and a signal's flag given to another model, is a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..support.errors import XaiError
from .audit_inputs import NOT_FOR_TEXTS, bar, run_table, run_text, summary_lines
from .audit_signals import refuse_signal_flags, run_signal_audit
from .options import (
    UsageError,
    add_model_choice,
    add_preprocessing,
    add_runtime,
    at_least,
    finite,
    open_fraction,
    positive,
    preprocessing,
)
from .signal_options import add_signal_flags
from .text_options import add_text_flags, text_asked

METRIC_CHOICES = ("deletion", "insertion", "road")
SANITY_CHOICES = ("randomization", "random_target", "none")
PHOTO_METHODS = ["gradient", "gradcam"]


def add_parser(sub) -> None:
    from ..runtime.methods import METHOD_NAMES

    p = sub.add_parser(
        "audit",
        help="score the methods' maps (deletion, insertion, ROAD, pointing game) "
        "beside baselines, run sanity checks, write report.html",
        description="Explain photos (or a table's rows, or texts) with each method, score every map "
        "(or attribution) with faithfulness metrics beside trivial baselines, check them against a "
        "randomized model and a random class, and write report.html (self-contained), "
        "results.jsonl (one record per photo, row or text and method) and maps.npz (photos) or "
        "attributions.npz (rows) into --out.",
    )
    p.add_argument(
        "model", help="ONNX model (the original: randomization re-draws its weights), or its folder"
    )
    p.add_argument(
        "images",
        nargs="*",
        help="image files or folders (a table model: its rows' file; a signal model: .npy, .csv, .wav files)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHOD_NAMES,
        metavar="METHOD",
        help="default: gradient gradcam for photos; tree_shap kernel_shap for a tree ensemble's "
        "rows, else kernel_shap gradient; integrated_gradients gradient for texts, and for signals "
        "(with gradcam where the model has a target layer); any of "
        f"{', '.join(METHOD_NAMES)}",
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
        "--report-texts",
        type=at_least(0),
        default=48,
        metavar="N",
        help="photos (or texts) shown one by one in the report (default 48; the tables count them all)",
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
    add_text_flags(p, explaining=False)
    add_signal_flags(p, auditing=True)
    p.set_defaults(run=run, flag_defaults={dest: p.get_default(dest) for dest, _ in NOT_FOR_TEXTS})


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
    from ..text.files import model_file

    if "none" in args.sanity and len(args.sanity) > 1:
        raise UsageError("--sanity none cannot be combined with a check")
    explainer_args = {
        "target_layer": args.target_layer,
        "threads": args.threads,
        "backend": args.backend,
        "input_name": args.input,
        "output_name": args.output,
    }
    args.model = model_file(args.model)
    ex = Explainer(args.model, **explainer_args)
    if ex.kind == "signal" and not text_asked(args):
        return run_signal_audit(args, ex, explainer_args)
    refuse_signal_flags(args, ex.kind)
    if ex.kind == "tokens" or text_asked(args):
        return run_text(args, ex, explainer_args)
    if args.bins:
        raise UsageError("--bins is for texts; this model's input is a " + ex.kind)
    if not args.images:
        raise UsageError("give photos (or a table model's rows; a text encoder --text)")
    if ex.kind == "table":
        return run_table(args, ex, explainer_args)
    if args.background:
        raise UsageError("--background is for tables; this model takes photos")
    files = image_files(args.images, exclude=args.out)
    opts = _options(args)
    ray_options = {"address": args.address, "actors": args.actors, "cpus_per_actor": args.cpus_per_actor}
    if args.engine == "ray":
        ex = None  # each actor makes its own
    written = audit(
        args.model, files, Path(args.out), opts, explainer_args, bar, args.engine, ray_options, ex
    )
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
