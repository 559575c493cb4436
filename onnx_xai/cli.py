"""The ``onnx-xai`` command line.

Every subcommand turns the package's errors (:class:`~onnx_xai.errors.XaiError`) and I/O errors into
one line on stderr and a non-zero exit; nothing is half-written (outputs go through atomic renames).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import XaiError


def _augment(args: argparse.Namespace) -> int:
    from .graph import augment, save_model

    model = augment(args.model, target_layer=args.target_layer, outputs=args.outputs,
                    input_name=args.input, output_name=args.output)
    save_model(model, args.out, source=args.model)
    meta = next(p.value for p in model.metadata_props if p.key == "onnx_xai")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB): {meta}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .graph import OUTPUT_SETS

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
    aug.add_argument("--target-layer", help="4-D tensor to explain (default: the input of the head's "
                     "spatial pooling)")
    aug.add_argument("--outputs", nargs="+", choices=OUTPUT_SETS, default=list(OUTPUT_SETS),
                     help="output sets to emit; the graph is pruned to them (default: all)")
    aug.add_argument("--input", help="image input name (default: the first 4-D float input)")
    aug.add_argument("--output", help="model output whose score is explained (default: the first)")
    aug.set_defaults(run=_augment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``onnx-xai`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except XaiError as exc:
        print(f"onnx-xai: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"onnx-xai: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
