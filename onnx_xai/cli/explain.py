"""``onnx-xai explain``: photos explained with one or more methods, a picture per method and a JSON
record per photo, each photo's set written whole (:mod:`onnx_xai.photos.run`); a table's rows
(:mod:`onnx_xai.tables.run`) and a text encoder's texts (:mod:`.text_options`) likewise."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..support.errors import XaiError
from .generation_options import add_generation_flags, run_generation
from .objectives import add_objective, decoder, detection_layout, settled_output
from .options import (
    UsageError,
    add_preprocessing,
    add_runtime,
    at_least,
    fraction,
    preprocessing,
)
from .photo_runs import reads_ahead, run_with_progress
from .signal_options import add_signal_flags, run_signal
from .text_options import add_text_flags, run_text, text_asked


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
    p.add_argument("model", help="ONNX model (original or rewritten by 'augment'), or its export folder")
    p.add_argument(
        "images",
        nargs="*",
        help="image files or folders (a table model: its rows' file; a signal model: .npy, .csv, .wav files)",
    )
    p.add_argument(
        "--method",
        nargs="+",
        choices=METHOD_NAMES,
        metavar="METHOD",
        help="default: gradcam for photos, tree_shap or kernel_shap for tables, integrated_gradients for "
        "texts; any of " + ", ".join(METHOD_NAMES),
    )
    p.add_argument(
        "--background",
        metavar="ROWS",
        help="a table's background rows (.csv, .parquet, .npy): what the columns a method leaves out are "
        "drawn from (kernel_shap, tree_shap)",
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
    add_objective(p)
    add_text_flags(p)
    add_signal_flags(p)
    add_generation_flags(p)
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
    p.add_argument("--noise-seed", type=at_least(0), default=0, help="SmoothGrad noise seed (default 0)")
    p.add_argument(
        "--baselines",
        metavar="FILE.npy",
        help="references [B, ...] in the model's input units for deeplift_shap and gradient_shap "
        "(default: deeplift_shap compares each photo with itself blurred, the mean colour and black)",
    )


def _add_pictures(p: argparse.ArgumentParser) -> None:
    """What is written per photo, and how much of the model is held."""
    from ..imaging.visuals import COLORMAPS

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
        help="lean: no activation memory kept between runs, one backward graph at a time",
    )


def run(args: argparse.Namespace) -> int:
    from ..text.files import model_file

    args.model = model_file(args.model)
    ahead = None if args.prompt is not None or text_asked(args) else reads_ahead(args)
    try:
        first = _explainer(args, args.output)
        code = _run_kind(args, first, ahead)
        for graph, choice in first.backend_choices.items():  # --backend auto: what ran where
            where = "both runtimes in turn (too few runs to time them)" if choice == "racing" else choice
            print(f"onnx-xai: the {graph} graph ran on {where}", file=sys.stderr)
        return code
    finally:
        if ahead is not None:
            ahead[1].close()


def _run_kind(args: argparse.Namespace, first, ahead) -> int:
    if args.prompt is not None:
        return run_generation(args, first)
    if first.kind == "tokens" or text_asked(args):
        return run_text(args, first)
    if first.kind == "signal":
        return run_signal(args, first)
    if not args.images:
        raise UsageError("give photos (or a table model's rows; a text encoder --text)")
    if first.kind == "table":
        return _run_table(args, first)
    return _run_photos(args, first, ahead)


def _run_photos(args: argparse.Namespace, first, ahead) -> int:
    """Photos explained (:mod:`.photo_runs`); ``ahead``: the photos and their reading, started."""
    from ..imaging.images import image_files
    from ..photos.detectors import explain_levels, levels_of
    from ..support.files import sha256_of

    args.method = args.method or ["gradcam"]
    if args.background:
        raise UsageError("--background is for tables; this model takes photos")
    files, reads = ahead if ahead is not None else (image_files(args.images, exclude=args.out), None)
    explainers: dict = {args.output: first}

    def explainer(output: str | None):
        if output not in explainers:
            explainers[output] = _explainer(args, output)
        return explainers[output]

    ex = explainer(args.output)
    output = settled_output(args, ex)
    if output is not None:  # the box output's explainer is let go: its sessions hold the weights
        explainers.pop(args.output)
        ex = explainer(output)
    opts = _options(args, ex)
    _say_where_labels_come_from(args, ex)
    _say_the_cost(ex, opts)
    levels = [] if args.output or opts.candidate is not None else levels_of(ex)
    skipped: list = []

    def skip(path, reason: str) -> None:
        skipped.append(path)
        print(f"onnx-xai: warning: skipped {path}: {reason}", file=sys.stderr)

    show = any(Path(p).is_dir() for p in args.images)

    def run_on(level_ex, found):
        sha256 = sha256_of(args.model)
        return run_with_progress(level_ex, found, Path(args.out), opts, sha256, show, skip, reads)

    if levels:
        print(
            f"the detector has {len(levels)} levels ({', '.join(map(repr, levels))}): each photo is "
            "explained on the level holding its candidate (--output NAME for one level)"
        )
        records = explain_levels(explainer, levels, files, run_on, opts, skip)
    else:
        records = run_on(ex, files)
    _say_records(records, Path(args.out))
    if skipped:
        raise XaiError(f"{len(skipped)} of {len(files)} photos could not be read; the others were explained")
    return 0


def _say_records(records: list[dict], out: Path) -> None:
    """One line per photo explained: what, its score, and where its files are."""
    for rec in records:
        first = rec["explanations"][0]
        what = _explained(rec["objective"], first)
        print(f"{rec['file']}: {what} ({first['score']:.2f}) -> {out / rec['name']}.*")


def _run_table(args: argparse.Namespace, ex) -> int:
    """A table model's rows explained (:mod:`onnx_xai.tables.run`)."""
    from ..objectives.labels import parse_target, read_labels
    from ..support.files import sha256_of
    from ..tables.feeds import TableInputs
    from ..tables.run import TableOptions, explain_rows

    if len(args.images) != 1:
        raise UsageError("a table model explains the rows of one file (.csv, .parquet or .npy)")
    inputs = TableInputs.of(ex)
    rows = inputs.read(args.images[0])
    background = inputs.read_like(args.background, rows) if args.background else None
    unread = inputs.unread(rows)
    if unread:
        print(f"columns no input of the model reads (left out): {', '.join(unread)}")
    methods = args.method or _table_methods(ex, background is not None)
    one_input = [m for m in methods if m != "kernel_shap"]
    if not inputs.single and one_input:
        others = ", ".join(n for n in inputs.columns if n != ex.input_name)
        print(
            f"{', '.join(one_input)}: the input {ex.input_name!r} explained, the others held as given "
            f"({others}; --input to choose; kernel_shap explains every column)"
        )
    labels = read_labels(args.labels, ex.num_classes, ex.metadata) if ex.num_classes else []
    target = parse_target(args.target, labels, ex.num_classes) if ex.num_classes else None
    opts = TableOptions(methods, target, background, labels, args.noise_seed, figures=not args.no_overlays)
    explain_rows(ex, rows, Path(args.out), opts, sha256_of(args.model))
    out = Path(args.out)
    figures = f", {out}/summary.*.png" if opts.figures else ""
    print(
        f"{len(rows.values)} rows, {', '.join(methods)} -> {out}/attributions.csv, {out}/rows/*.json{figures}"
    )
    return 0


def _table_methods(ex, background: bool) -> list[str]:
    """The methods a table gets when none is named (:mod:`onnx_xai.tables.defaults`), said."""
    from ..tables.defaults import table_methods

    chosen, why = table_methods(ex, background)
    print(f"methods: {', '.join(chosen)} ({why}; --method to choose)")
    return chosen


def _explainer(args: argparse.Namespace, output: str | None):
    from ..runtime import Explainer

    return Explainer(
        args.model,
        target_layer=args.target_layer,
        threads=args.threads,
        backend=args.backend,
        memory=args.memory,
        input_name=args.input,
        output_name=output,
    )


def _say_where_labels_come_from(args: argparse.Namespace, ex) -> None:
    """Class names the model's own metadata gave (never used silently)."""
    from ..objectives.labels import labels_from_metadata

    found = None if args.labels else labels_from_metadata(ex.metadata, ex.num_classes)
    if found is not None:
        print(f"class names: {len(found[0])} from the model's metadata ({found[1]!r})")


def _options(args: argparse.Namespace, ex):
    """The :class:`~onnx_xai.photos.run.ExplainOptions` the flags say (labels read, target checked)."""
    from ..objectives.labels import parse_target, read_labels
    from ..photos.run import ExplainOptions

    classes = ex.num_classes
    labels = read_labels(args.labels, classes, ex.metadata)
    return ExplainOptions(
        methods=_methods(args.method, args.smooth),
        target=parse_target(args.target, labels, classes),
        preprocessing=preprocessing(args),
        smooth=args.smooth,
        noise_seed=args.noise_seed,
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
        values=tuple(args.values) if args.values else None,
        candidate=args.candidate,
        threshold=args.threshold,
        fuse=args.fuse,
        image_format=args.format,
        overlays=not args.no_overlays,
        detection=detection_layout(args),
        decoder=decoder(args, ex.outputs),
        baselines=_baselines(args.baselines, ex),
    )


def _baselines(path: str | None, ex):
    """The ``--baselines`` file's references, checked against one input's shape."""
    if path is None:
        return None
    import numpy as np

    try:
        found = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise XaiError(f"cannot read --baselines {path}: {exc}") from None
    sample = ex.input_shape[1:]
    fits = found.ndim == len(sample) + 1 and all(
        not isinstance(d, int) or d == f for d, f in zip(sample, found.shape[1:])
    )
    if found.dtype.kind not in "fiu" or not fits or not np.isfinite(found).all():
        raise XaiError(
            f"--baselines {path} holds {found.dtype} {list(found.shape)}; want finite numbers "
            f"[B, {', '.join(map(str, sample))}] in the model's input units"
        )
    return found


def _say_the_cost(ex, opts) -> None:
    """A large cost in model runs, said before the work starts."""
    from ..photos.run import cost_per_photo
    from ..runtime.work import LARGE

    found = cost_per_photo(ex, opts)
    if found is not None and found[0] >= LARGE:
        print(f"onnx-xai: {found[1]}: {found[0]} model runs per photo", file=sys.stderr)


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
