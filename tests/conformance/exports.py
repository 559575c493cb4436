"""Export the conformance nets with both torch exporters, cached per session in a temp folder."""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import torch

from .nets import build

EXPORTS = ["torchscript-11", "torchscript-13", "torchscript-17", "dynamo"]
_DIR = Path(tempfile.mkdtemp(prefix="onnx_xai_conformance_"))
SIZE = 32


@functools.cache
def export(net_name: str, exporter: str, dynamic_batch: bool) -> Path:
    """Path of the ONNX export of ``net_name`` (dynamo exports keep their external data file)."""
    net = build(net_name)
    example = torch.randn(2 if dynamic_batch else 1, 3, SIZE, SIZE)
    path = _DIR / f"{net_name}-{exporter}-{'dyn' if dynamic_batch else 'static'}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = {"x": {0: torch.export.Dim("batch", min=1, max=64)}} if dynamic_batch else None
            program = torch.onnx.export(
                net, (example,), dynamo=True, dynamic_shapes=shapes, input_names=["x"], verbose=False
            )
            program.save(str(path), external_data=True)
        else:
            opset = int(exporter.rsplit("-", 1)[1])
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}} if dynamic_batch else None,
            )
    return path
