"""The ``onnx-xai`` command line: ``augment``, ``inspect``, ``explain``, ``audit``, ``serve`` and ``demo``.

One module per command (``add_parser(sub)`` and ``run(args)``), sharing argument types and flag groups
through :mod:`.options` and never importing each other. Every command turns the package's errors
(:class:`~onnx_xai.support.errors.XaiError`) and I/O errors into one line on stderr and exit status 1, and
flags that cannot go together into a usage error (exit status 2); nothing is half-written (outputs
go through atomic renames).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..support.errors import XaiError
from ..support.signals import Interrupted, critical, interruptible
from . import audit, augment, demo, explain, inspect, serve
from .options import UsageError

COMMANDS = (augment, inspect, explain, audit, serve, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnx-xai",
        description="Gradient explanations (gradient, SmoothGrad, CAM, Grad-CAM) "
        "computed from an ONNX classifier, with no training framework.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _stages():
            return args.run(args)
    except UsageError as exc:
        print(f"onnx-xai {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except XaiError as exc:
        print(f"onnx-xai: error: {_one_line(str(exc))}", file=sys.stderr)
    except OSError as exc:
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"onnx-xai: error: {_one_line(detail)}", file=sys.stderr)
    except MemoryError:
        print(
            "onnx-xai: error: out of memory (try --memory lean, a smaller --batch-size or fewer methods)",
            file=sys.stderr,
        )
    return 1


def _stages():
    """Long steps said on a terminal after a few seconds (:mod:`onnx_xai.support.progress`); nothing
    in a pipe, where standard error is the one-line error channel."""
    from contextlib import nullcontext

    from ..support.progress import StageReporter

    return StageReporter(sys.stderr) if sys.stderr.isatty() else nullcontext()


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"
