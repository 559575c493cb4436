"""The ``explain`` flags that say what to explain beyond a class, and which output holds it.

The kind follows the explained output (:mod:`onnx_xai.photos.objectives`); these flags override it,
pick a region or candidate, and say how a detector lays out its candidates (``--anchors``, ``--boxes``,
``--classes-from``) and where its boxes are (``--decoder``). Before anything runs the explained output
is settled: a detector's box output named first (BlazeFace's regressors) gives way to its scores,
said on the terminal; outputs of as many candidates that cannot be told apart make the command ask
for ``--output``; several grid levels of one head are explained per photo on the level of its
candidate (:mod:`onnx_xai.photos.detectors`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..support.errors import InputError
from .options import UsageError, at_least, finite


def add_objective(p: argparse.ArgumentParser) -> None:
    """The objective flags of ``explain``."""
    from ..photos.objectives import KINDS

    g = p.add_argument_group(
        "what to explain beyond a class",
        "The kind follows the explained output: [N, K] a class (--target), candidates x attributes "
        "a pre-NMS detector (the best candidate of --target's class, or of any, overlapping --region), "
        "a map (channels first or last) a segmenter (--target's class where it wins) or, with one "
        "channel, a dense map (its largest region above --threshold, or --region); [N, 1, 1, K] "
        "values (--objective regression --channel I, or --values I J for a sum).",
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
    g.add_argument(
        "--channel", type=at_least(0), default=0, help="a map's channel or a value's index (default 0)"
    )
    g.add_argument(
        "--values",
        type=at_least(0),
        nargs="+",
        metavar="I",
        help="a regression's values to sum, by index (a landmark's x and y: --values 8 9)",
    )
    g.add_argument(
        "--threshold",
        type=finite,
        default=0.3,
        help="a dense map's region: the largest above this value (default 0.3)",
    )
    _add_detector(g)


def _add_detector(g) -> None:
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
        help="row of the first class score (4; 5 after an objectness score; 0 for scores only; default: "
        "5 when the model's class names are one fewer than the rows after the box, else 4)",
    )
    g.add_argument(
        "--decoder",
        metavar="JSON",
        help="how a scores output's boxes decode, as a JSON file: "
        '{"boxes": OUTPUT, "form": "anchors"|"dfl"|"cxcywh"|"xyxy", "strides": [...], ...} '
        "(default: paired by candidate count when the shapes say; docs: Objectives)",
    )


def detection_layout(args: argparse.Namespace):
    """The detector layout the flags say, or None (read from the output's shape and record)."""
    from ..objectives.seeds import DetectionLayout

    if args.anchors is None and args.boxes is None and args.classes_from is None:
        return None
    boxes = args.boxes or "cxcywh"
    classes_from = args.classes_from if args.classes_from is not None else (0 if boxes == "none" else 4)
    if boxes != "none" and classes_from < 4:
        raise UsageError("--classes-from must be 4 or more when the output holds boxes")
    return DetectionLayout(args.anchors != "first", boxes, classes_from)


def decoder(args: argparse.Namespace, outputs: dict):
    """The :class:`~onnx_xai.objectives.boxes.BoxDecoder` of ``--decoder``'s file, or None."""
    from ..objectives.boxes import decoder_from_spec

    if args.decoder is None:
        return None
    try:
        spec = json.loads(Path(args.decoder).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the decoder spec {args.decoder}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the decoder spec {args.decoder} is not JSON: {exc}") from None
    return decoder_from_spec(spec, outputs)


def settled_output(args: argparse.Namespace, ex) -> str | None:
    """The output to explain when it is not ``ex``'s (a box output's scores), else None; asks for
    ``--output`` when outputs of as many candidates cannot be told apart."""
    from ..objectives.boxes import candidates_of, detector_outputs
    from ..photos.detectors import input_size, output_shapes

    if args.output is not None or len(ex.output_shape) != 3:
        return None
    shapes = output_shapes(ex)
    pairs = detector_outputs(shapes, input_size(ex), ex.probability_outputs)
    explained = ex.record.output
    for scores, (box_output, _, _) in pairs.items():
        if box_output == explained:
            print(
                f"explaining {scores!r}, the class scores of the detector whose boxes are {explained!r} "
                "(--output to explain another)"
            )
            return scores
    count = (candidates_of(shapes[explained]) or (None,))[0]
    alike = [
        f"{n!r} {list(s)}" for n, s in shapes.items() if count and (candidates_of(s) or (0,))[0] == count
    ]
    if explained not in pairs and len(alike) > 1:
        raise InputError(
            f"the model has {len(alike)} outputs of {count} candidates ({', '.join(alike)}): say which to "
            "explain with --output NAME (a detector's class scores, usually; its boxes are another output)"
        )
    return None
