"""``onnx-xai augment``: write the rewritten model (activations, gradients and CAM maps as outputs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_model_choice


def add_parser(sub) -> None:
    from ..graph.contract import OUTPUT_SETS

    aug = sub.add_parser(
        "augment",
        help="rewrite a model so it also outputs activations and gradients",
        description="Write an ordinary ONNX model that also takes 'xai_target' (int64 [N], -1 = top-1) "
        "and outputs xai_score, xai_target_used and, per output set, xai_activation, "
        "xai_activation_grad, xai_gradcam, xai_cam, xai_input_grad. The input file is never modified.",
    )
    aug.add_argument("model", help="input ONNX model (external data beside it is read too)")
    aug.add_argument("out", help="where to write the rewritten model (must not be the input)")
    aug.add_argument(
        "--outputs",
        nargs="+",
        choices=tuple(OUTPUT_SETS),
        help="output sets to emit; the graph is pruned to them (default: every set the "
        "model allows; cam needs a global-average-pool -> linear head)",
    )
    aug.add_argument(
        "--seeded",
        action="store_true",
        help="take xai_seed (float, the output's shape; the "
        "score is sum(seed * output)) instead of xai_target (default: only for outputs that "
        "are not [batch, classes])",
    )
    aug.add_argument(
        "--maxpool",
        choices=("scatter", "windows"),
        default="scatter",
        help="MaxPool's backward: "
        "Indices + ScatterElements-add (default, fastest on onnxruntime) or window masks + "
        "ConvTranspose (no ScatterElements, no MaxPool Indices: TensorRT, OpenVINO)",
    )
    add_model_choice(aug)
    aug.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..graph import augment, save_model

    model = augment(
        args.model,
        target_layer=args.target_layer,
        outputs=args.outputs,
        input_name=args.input,
        output_name=args.output,
        seeded=args.seeded or None,
        maxpool=args.maxpool,
    )
    save_model(model, args.out, source=args.model)
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    layers = [layer["name"] for layer in meta.get("layers", [])] or [meta["target_layer"]]
    print(
        f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB): target layer"
        f"{'s' if len(layers) > 1 else ''} {', '.join(map(repr, layers))}, objective {meta['objective']}, "
        f"outputs {', '.join(meta['outputs'])}"
    )
    if not meta["cam"]:
        print(f"no CAM outputs: {meta['head']}")
    return 0
