"""onnx_xai: explanations (gradients, CAMs, LRP, SHAP, perturbations, ...) from an ONNX file.

``onnx_xai.augment`` rewrites any model into an ordinary ONNX model that also outputs activations
and exact gradients (needs only ``onnx`` and ``numpy``); ``onnx_xai.Explainer`` computes the methods
on onnxruntime or OpenVINO, for an ``onnx_xai.Objective`` (a class, a value, a seed over an
output); ``onnx_xai.audit`` scores the maps and writes an HTML report. They are imported on first
use, so that the command line starts (and handles signals) before the heavy libraries load.
"""

from .support.errors import (
    CamNotApplicableError,
    DeadlineExceeded,
    InputError,
    ModelError,
    TooMuchWork,
    UnsupportedModelError,
    WorkStopped,
    XaiError,
)

__version__ = "0.1.0"
__all__ = [
    "METHOD_NAMES",
    "OUTPUT_SETS",
    "Objective",
    "CamNotApplicableError",
    "DeadlineExceeded",
    "Explainer",
    "Explanation",
    "InputError",
    "ModelError",
    "TooMuchWork",
    "UnsupportedModelError",
    "Work",
    "WorkStopped",
    "XaiError",
    "augment",
    "supported_ops",
]
_LAZY = {
    "OUTPUT_SETS": "graph",
    "augment": "graph",
    "supported_ops": "graph",
    "METHOD_NAMES": "runtime",
    "Explainer": "runtime",
    "Explanation": "runtime",
    "Work": "runtime",
    "Objective": "objectives.objective",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'onnx_xai' has no attribute {name!r}")
