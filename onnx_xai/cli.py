"""The ``onnx-xai`` command line: ``augment``, ``inspect``, ``explain``, ``audit`` and ``demo``.

Every subcommand turns the package's errors (:class:`~onnx_xai.errors.XaiError`) and I/O errors into
one line on stderr and exit status 1; nothing is half-written (outputs go through atomic renames).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import XaiError
from .files import Interrupted, critical, interruptible

BACKENDS = ("onnxruntime", "openvino")  # as onnx_xai.runtime.backends, without importing a runtime



def _augment(args: argparse.Namespace) -> int:
    from .graph import augment, save_model

    model = augment(args.model, target_layer=args.target_layer, outputs=args.outputs,
                    input_name=args.input, output_name=args.output, seeded=args.seeded or None,
                    maxpool=args.maxpool)
    save_model(model, args.out, source=args.model)
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    layers = [layer["name"] for layer in meta.get("layers", [])] or [meta["target_layer"]]
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB): target layer"
          f"{'s' if len(layers) > 1 else ''} {', '.join(map(repr, layers))}, objective {meta['objective']}, "
          f"outputs {', '.join(meta['outputs'])}")
    if not meta["cam"]:
        print(f"no CAM outputs: {meta['head']}")
    return 0


SCORE_KINDS = {"logit": "the output itself", "pre-softmax": "before the Softmax",
               "pre-sigmoid": "before the Sigmoid: multi-label"}


def _inspect(args: argparse.Namespace) -> int:
    from .graph.report import inspect_model

    r = inspect_model(args.model, args.target_layer, args.input, args.output)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    if r["rewritten"]:
        return _print_rewrite(args.model, r)
    print(f"{args.model}: opset {r['opset']}, {r['nodes']} nodes, input layout {r['layout']}")
    for kind, key, mark in (("input", "inputs", r["image_input"]), ("output", "outputs", r["explained_output"])):
        for t in r[key]:
            star = "  <- explained" if t["name"] == mark else ""
            print(f"  {kind:6s} {t['name']}  {t['shape']}  {t['type']}{star}")
    if r["differentiated"] != r["image_input"]:
        print(f"integer pixels: gradients are taken at {r['differentiated']!r}, their first float cast")
    print(f"score: {r['score']!r} ({SCORE_KINDS[r['score_kind']]})")
    print("target-layer candidates (last first, * = default):")
    for c in r["candidates"]:
        print(f"  {'*' if c['name'] in r['target_layers'] else ' '} {c['name']}  {c['shape']}  "
              f"{_layout_words(c)}  ({c['op']})")
    if len(r["scales"]) > 1:
        print(f"candidates per scale (grid at a {r['probe_size']}-pixel input; several: --target-layer A B C):")
        for c in r["scales"]:
            print(f"    stride {c['stride']:g}  {c['grid'][0]}x{c['grid'][1]}  {c['name']}  ({c['op']})")
    print(f"head: {r['head']} (global average pooling -> linear: CAM applies)" if r["cam"]
          else f"head: {r['head']}")
    from .runtime.methods import METHOD_NAMES
    methods = [m for m in METHOD_NAMES if r["cam"] or m != "cam"]
    print(f"methods: {', '.join(methods)}" + ("" if r["cam"] else " (no CAM: the head is not GAP -> linear)"))
    problems = r["not_differentiable"]
    print("nodes without a gradient rule: " + (", ".join(problems) if problems else "none"))
    return 0


def _print_rewrite(path: str, report: dict) -> int:
    r = report["rewrite"]
    print(f"{path}: rewritten by onnx_xai (format {r['format']}) from a model with sha256 {r['source_sha256']}")
    print(f"input: {r['input']} ({r.get('input_type', 'float')}, {r['layout']}); explained output: "
          f"{r['output']}, score {r['score']!r} ({SCORE_KINDS.get(r.get('score_kind'), 'logit')})")
    for target in r.get("layers") or [r.get("target") or {"name": r["target_layer"], "layout": r["layout"]}]:
        print(f"target layer: {target['name']}  {_layout_words(target)}")
    print(f"objective: {'xai_seed (a weighted sum of the output)' if r.get('objective') == 'seed' else 'xai_target (a class)'}")
    print(f"output sets: {', '.join(r['output_sets'])}; outputs: {', '.join(r['outputs'])}")
    print(f"head: {r['head']}")
    return 0


def _layout_words(candidate: dict) -> str:
    if candidate["layout"] != "tokens":
        return candidate["layout"]
    h, w = candidate["grid"]
    return f"tokens ({candidate['prefix']} dropped, {h}x{w} grid)"


def _explain(args: argparse.Namespace) -> int:
    from .images import image_files
    from .pipeline import Options, model_sha256, parse_target, read_labels
    from .runtime import Explainer
    from .targets import DetectionLayout

    files = image_files(args.images, exclude=args.out)
    ex = Explainer(args.model, target_layer=args.target_layer, threads=args.threads, backend=args.backend,
                   memory=args.memory)
    classes = ex.num_classes
    labels = read_labels(args.labels, classes)
    opts = Options(methods=_methods(args.method, args.smooth), target=parse_target(args.target, labels, classes),
                   preset=args.preset, mean=args.mean, std=args.std, crop=args.crop,
                   size=tuple(args.size) if args.size else None, smooth=args.smooth, seed=args.seed, steps=args.steps,
                   cmap=args.cmap, alpha=args.alpha, batch_size=args.batch_size, sheets=args.sheet,
                   labels=labels, keep_going=args.keep_going, objective=args.objective,
                   region=tuple(args.region) if args.region else None, channel=args.channel,
                   candidate=args.candidate, threshold=args.threshold, fuse=args.fuse,
                   image_format=args.format, overlays=not args.no_overlays,
                   detection=DetectionLayout(args.anchors == "last", args.boxes, args.classes_from))
    skipped: list = []

    def skip(path, reason: str) -> None:
        skipped.append(path)
        print(f"onnx-xai: warning: skipped {path}: {reason}", file=sys.stderr)

    records = _run_with_progress(ex, files, Path(args.out), opts, model_sha256(args.model),
                                 show=any(Path(p).is_dir() for p in args.images), on_skip=skip)
    for rec in records:
        first = rec["explanations"][0]
        print(f"{rec['file']}: {_explained(rec['objective'], first)} ({first['score']:.2f}) -> "
              f"{Path(args.out) / rec['name']}.*")
    if skipped:
        raise XaiError(f"{len(skipped)} of {len(files)} photos could not be read; the others were explained")
    return 0


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
        raise XaiError("--smooth already smooths every method; drop 'smoothgrad' from --method")
    return chosen


def _run_with_progress(ex, files, out, opts, sha256, show: bool, on_skip):
    from tqdm import tqdm

    from .pipeline import explain_files

    def bar(total: int):
        return tqdm(total=total, unit="image", disable=not show, file=sys.stderr)
    return explain_files(ex, files, out, opts, sha256, progress=bar, on_skip=on_skip)


def _number(text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None


def _at_least(low: int):
    """argparse type: a whole number, ``low`` or more."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is less than {low}")
        return value
    return parse


def _fraction(closed_low: bool):
    """argparse type: a number in [0, 1], or in (0, 1]."""
    def parse(text: str) -> float:
        value = _number(text)
        if not (0 <= value <= 1 if closed_low else 0 < value <= 1):
            raise argparse.ArgumentTypeError(f"{text} is not in {'[' if closed_low else '('}0, 1]")
        return value
    return parse


def _finite(text: str) -> float:
    """argparse type: a finite number."""
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def _demo(args: argparse.Namespace) -> int:
    from .demo import classifier_demo, text_demo

    print("\n".join((text_demo if args.text else classifier_demo)(Path(args.out), args.threads, args.backend)))
    return 0


def _add_model_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-layer", nargs="+", help="4-D tensor to explain with the CAM family (default: the "
                   "input of the head's spatial pooling, after the last conv's BN/ReLU); several: their maps "
                   "fused (inspect lists the candidates per scale)")
    p.add_argument("--input", help="image input name (default: the first 4-D float input)")
    p.add_argument("--output", help="model output whose score is explained (default: the first)")


def add_model_and_images(p: argparse.ArgumentParser, model_help: str) -> None:
    """The positional arguments of the commands that read photos (explain, audit)."""
    p.add_argument("model", help=model_help)
    p.add_argument("images", nargs="+", help="image files or folders")


def add_preprocessing(p: argparse.ArgumentParser) -> None:
    """The flags that say which class to explain and how photos become model inputs (explain, audit)."""
    from .images import PRESETS

    p.add_argument("--target", help="class to explain, as an index or a label name (default, or -1: "
                   "each photo's top-1 class)")
    p.add_argument("--labels", help="class names, one per line (default: ImageNet for 1000 classes)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="normalization: imagenet mean/std (the default), inception [-1, 1], raw [0, 1]; "
                   "models that take integer pixels get them as they are")
    p.add_argument("--mean", type=_finite, nargs="+", help="explicit mean, one value or one per channel "
                   "(overrides the preset)")
    p.add_argument("--std", type=_finite, nargs="+", help="explicit std, one value or one per channel "
                   "(overrides the preset)")
    p.add_argument("--crop", type=_fraction(closed_low=False), default=0.875, help="centre-crop fraction "
                   "of the shorter side, in (0, 1] (default 0.875, as ImageNet evaluation; 1 keeps it all)")
    p.add_argument("--size", type=_at_least(1), nargs=2, metavar=("H", "W"), help="input size for models "
                   "with a dynamic one (a fixed one must match)")


def _add_explain(sub) -> None:
    from .runtime.methods import METHOD_NAMES
    from .visuals import COLORMAPS

    p = sub.add_parser("explain", help="explain photos: heatmap overlays, boxes and a JSON record each",
                       description="Explain image files (or folders of them) with one or more methods. "
                       "Writes, per photo, <name>.<method>.png (heatmap over the original photo, box in "
                       "white) and <name>.json (file, model sha256, and per method: target class, "
                       "label, score, box in original pixels).")
    add_model_and_images(p, "ONNX classifier (original or rewritten by 'augment')")
    p.add_argument("--method", nargs="+", choices=METHOD_NAMES, default=["gradcam"], metavar="METHOD",
                   help=f"default: gradcam; any of {', '.join(METHOD_NAMES)}")
    add_preprocessing(p)
    p.add_argument("--smooth", type=_at_least(1), metavar="N", help="SmoothGrad every method with N noisy "
                   "samples")
    p.add_argument("--steps", type=_at_least(1), metavar="N", help="integration points of "
                   "integrated_gradients (default 50)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="SmoothGrad noise seed (default 0)")
    p.add_argument("--cmap", choices=COLORMAPS, default="jet")
    p.add_argument("--alpha", type=_fraction(closed_low=True), default=0.5,
                   help="heatmap opacity in [0, 1] (default 0.5)")
    p.add_argument("--sheet", action="store_true", help="also write <name>.sheet.png, the methods side "
                   "by side")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="the pictures' format (default png, "
                   "lossless; jpg is 20x faster to write and 6x smaller)")
    p.add_argument("--no-overlays", action="store_true", help="write only the JSON records (scores, boxes), "
                   "no pictures")
    p.add_argument("--memory", choices=("fast", "lean"), default="fast", help="lean: hold one copy of the "
                   "model at a time (slower when methods of different costs are mixed)")
    p.add_argument("--batch-size", type=_at_least(1), default=8, help="photos per run (default 8)")
    p.add_argument("--threads", type=_at_least(1), help="intra-op threads of the runtime")
    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="the runtime (default "
                   "onnxruntime; openvino needs the openvino package)")
    p.add_argument("--keep-going", action="store_true", help="skip photos that cannot be read (a warning "
                   "each, exit status 1 at the end) instead of stopping before anything is written")
    p.add_argument("--out", default="onnx-xai-out", help="output folder (default: onnx-xai-out; "
                   "never searched for input photos)")
    p.add_argument("--target-layer", nargs="+", help="4-D tensor(s) to explain with the CAM family (several: "
                   "each layer's map, fused by --fuse)")
    p.add_argument("--fuse", choices=("mean", "max"), default="mean", help="how the maps of several target "
                   "layers combine (default mean, as pytorch-grad-cam)")
    _add_objective(p)
    p.set_defaults(run=_explain)


def _add_objective(p: argparse.ArgumentParser) -> None:
    from .objective import KINDS

    g = p.add_argument_group("what to explain beyond a class", "The kind follows the explained output's "
                             "shape: [N, K] a class (--target), [N, 4+C, A] a pre-NMS detector (the best "
                             "candidate of --target's class, or of any, overlapping --region), [N, C, H, W] "
                             "a segmenter (--target's class where it wins) or, for C = 1, a dense map (its "
                             "largest region above --threshold, or --region).")
    g.add_argument("--objective", choices=KINDS, default="auto", help="override the kind (default: auto)")
    g.add_argument("--region", type=_finite, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="a box in photo pixels: the detection to explain (IoU >= 0.5), or the part of a map")
    g.add_argument("--candidate", type=_at_least(0), help="a detector's candidate by index")
    g.add_argument("--channel", type=_at_least(0), default=0, help="a dense map's channel (default 0)")
    g.add_argument("--threshold", type=_finite, default=0.3, help="a dense map's region: the largest "
                   "above this value (default 0.3)")
    g.add_argument("--boxes", choices=("cxcywh", "xyxy"), default="cxcywh", help="detector box format")
    g.add_argument("--anchors", choices=("last", "first"), default="last", help="detector layout: "
                   "[N, 4+C, A] (last, YOLOv8) or [N, A, 4+C] (first)")
    g.add_argument("--classes-from", type=_at_least(4), default=4, help="row of the first class score "
                   "(5 after an objectness score)")


def build_parser() -> argparse.ArgumentParser:
    from .contract import OUTPUT_SETS

    parser = argparse.ArgumentParser(
        prog="onnx-xai", description="Gradient explanations (gradient, SmoothGrad, CAM, Grad-CAM) "
        "computed from an ONNX classifier, with no training framework.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    aug = sub.add_parser(
        "augment", help="rewrite a model so it also outputs activations and gradients",
        description="Write an ordinary ONNX model that also takes 'xai_target' (int64 [N], -1 = top-1) "
        "and outputs xai_score, xai_target_used and, per output set, xai_activation, "
        "xai_activation_grad, xai_gradcam, xai_cam, xai_input_grad. The input file is never modified.")
    aug.add_argument("model", help="input ONNX model (external data beside it is read too)")
    aug.add_argument("out", help="where to write the rewritten model (must not be the input)")
    aug.add_argument("--outputs", nargs="+", choices=tuple(OUTPUT_SETS),
                     help="output sets to emit; the graph is pruned to them (default: every set the "
                     "model allows; cam needs a global-average-pool -> linear head)")
    aug.add_argument("--seeded", action="store_true", help="take xai_seed (float, the output's shape; the "
                     "score is sum(seed * output)) instead of xai_target (default: only for outputs that "
                     "are not [batch, classes])")
    aug.add_argument("--maxpool", choices=("scatter", "windows"), default="scatter", help="MaxPool's backward: "
                     "Indices + ScatterElements-add (default, fastest on onnxruntime) or window masks + "
                     "ConvTranspose (no ScatterElements, no MaxPool Indices: TensorRT, OpenVINO)")
    _add_model_choice(aug)
    aug.set_defaults(run=_augment)
    ins = sub.add_parser("inspect", help="show inputs, layout, target-layer candidates, head, "
                         "supported methods and ops without a gradient rule",
                         description="Describe a model as the rewriter sees it.")
    ins.add_argument("model", help="ONNX classifier")
    ins.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_model_choice(ins)
    ins.set_defaults(run=_inspect)
    _add_explain(sub)
    from .cli_audit import add_audit

    add_audit(sub)
    demo = sub.add_parser("demo", help="explain the bundled photos with the bundled EfficientNet-Lite0 (--text: a text detector)",
                          description="Run all four methods on the bundled photos with the bundled "
                          "pretrained EfficientNet-Lite0 and write a sheet per photo (no network needed).")
    demo.add_argument("--out", default="onnx-xai-demo", help="output folder (default: onnx-xai-demo)")
    demo.add_argument("--threads", type=_at_least(1), help="intra-op threads of the runtime")
    demo.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="the runtime")
    demo.add_argument("--text", action="store_true", help="explain a text detector instead: PP-OCRv4's, "
                      "from the rapidocr-onnxruntime wheel, on a bundled picture of text")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``onnx-xai`` console script."""
    with interruptible():
        try:
            return _run(argv)
        except (Interrupted, KeyboardInterrupt) as exc:
            print("onnx-xai: interrupted", file=sys.stderr)
            return 128 + getattr(exc, "signum", 2)


def _run(argv: Sequence[str] | None) -> int:
    with critical():  # a signal in the middle of a C extension's import can crash the interpreter
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import PIL.Image  # noqa: F401
    args = build_parser().parse_args(argv)
    try:
        with _stages():
            return args.run(args)
    except XaiError as exc:
        print(f"onnx-xai: error: {_one_line(str(exc))}", file=sys.stderr)
    except OSError as exc:
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"onnx-xai: error: {_one_line(detail)}", file=sys.stderr)
    except MemoryError:
        print("onnx-xai: error: out of memory (try --memory lean, a smaller --batch-size or fewer methods)",
              file=sys.stderr)
    return 1


def _stages():
    """Long steps said on a terminal after a few seconds (:mod:`onnx_xai.progress`); nothing in a pipe,
    where standard error is the one-line error channel."""
    from contextlib import nullcontext

    from .progress import StageReporter

    return StageReporter(sys.stderr) if sys.stderr.isatty() else nullcontext()


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


if __name__ == "__main__":
    sys.exit(main())
