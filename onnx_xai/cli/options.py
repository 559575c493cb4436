"""What the commands share: argument types that check their values, the flag groups several commands
take, and the usage error.

Every command module imports this one and never another command. Argument types raise argparse's own
error (a usage error: exit status 2, argparse's message); a conflict between flags found after
parsing raises :class:`UsageError`, which the entry point reports the same way.
"""

from __future__ import annotations

import argparse
import math

BACKENDS = ("onnxruntime", "openvino", "auto")  # as onnx_xai.runtime.backends, without importing a runtime


class UsageError(Exception):
    """Flags that cannot go together: exit status 2, as argparse's own errors."""


def number(text: str, kind=float):
    """argparse type helper: ``text`` as a number of ``kind``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a {'whole ' if kind is int else ''}number"
        ) from None


def at_least(low: int):
    """argparse type: a whole number, ``low`` or more."""

    def parse(text: str) -> int:
        value = number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is less than {low}")
        return value

    return parse


def fraction(closed_low: bool):
    """argparse type: a number in [0, 1], or in (0, 1]."""

    def parse(text: str) -> float:
        value = number(text)
        if not (0 <= value <= 1 if closed_low else 0 < value <= 1):
            raise argparse.ArgumentTypeError(f"{text} is not in {'[' if closed_low else '('}0, 1]")
        return value

    return parse


def finite(text: str) -> float:
    """argparse type: a finite number."""
    value = number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def open_fraction(text: str) -> float:
    """argparse type: a number in (0, 1)."""
    value = finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), not {text}")
    return value


def positive(text: str) -> float:
    """argparse type: a number above 0."""
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def add_model_choice(p: argparse.ArgumentParser) -> None:
    """Which layer, input and output of the model (augment, inspect, audit)."""
    p.add_argument(
        "--target-layer",
        nargs="+",
        help="4-D tensor to explain with the CAM family (default: the "
        "input of the head's spatial pooling, after the last conv's BN/ReLU); several: their maps "
        "fused (inspect lists the candidates per scale)",
    )
    p.add_argument("--input", help="image input name (default: the first 4-D float input)")
    p.add_argument("--output", help="model output whose score is explained (default: the first)")


def add_model_and_images(p: argparse.ArgumentParser, model_help: str) -> None:
    """The positional arguments of the commands that read photos (explain, audit)."""
    p.add_argument("model", help=model_help)
    p.add_argument("images", nargs="+", help="image files or folders")


def add_preprocessing(p: argparse.ArgumentParser) -> None:
    """The flags that say which class to explain and how photos become model inputs (explain, audit)."""
    from ..imaging.images import PRESETS

    p.add_argument(
        "--target",
        help="class to explain, as an index or a label name (default, or -1: each photo's top-1 class)",
    )
    p.add_argument("--labels", help="class names, one per line (default: ImageNet for 1000 classes)")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="normalization: imagenet mean/std (the default), inception [-1, 1], raw [0, 1]; "
        "models that take integer pixels get them as they are",
    )
    p.add_argument(
        "--mean",
        type=finite,
        nargs="+",
        help="explicit mean, one value or one per channel (overrides the preset)",
    )
    p.add_argument(
        "--std",
        type=finite,
        nargs="+",
        help="explicit std, one value or one per channel (overrides the preset)",
    )
    p.add_argument(
        "--crop",
        type=fraction(closed_low=False),
        default=0.875,
        help="centre-crop fraction "
        "of the shorter side, in (0, 1] (default 0.875, as ImageNet evaluation; 1 keeps it all)",
    )
    p.add_argument(
        "--fit",
        choices=("auto", "crop", "letterbox", "stretch"),
        default="auto",
        help="how a photo meets a fixed input size: crop (the centre, by --crop), letterbox (all of it, "
        "padded), stretch (all of it, resized); default auto: crop for a classifier with a square input, "
        "letterbox otherwise",
    )
    p.add_argument(
        "--size",
        type=at_least(1),
        nargs=2,
        metavar=("H", "W"),
        help="input size for models with a dynamic one (a fixed one must match)",
    )


def preprocessing(args: argparse.Namespace):
    """The :class:`~onnx_xai.imaging.preprocessing.Preprocessing` that :func:`add_preprocessing`'s
    flags say."""
    from ..imaging.preprocessing import Preprocessing

    return Preprocessing(
        preset=args.preset,
        mean=args.mean,
        std=args.std,
        crop=args.crop,
        size=tuple(args.size) if args.size else None,
        fit=args.fit,
    )


def add_runtime(p: argparse.ArgumentParser) -> None:
    """Batch size, threads and backend (explain, audit)."""
    p.add_argument("--batch-size", type=at_least(1), default=8, help="photos per run (default 8)")
    p.add_argument("--threads", type=at_least(1), help="intra-op threads of the runtime")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="onnxruntime",
        help="the runtime (default onnxruntime; openvino needs the openvino package; auto: each graph on "
        "the faster of the two, timed on its first runs)",
    )
