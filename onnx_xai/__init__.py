"""onnx_xai: gradient explanations (gradient, SmoothGrad, CAM, Grad-CAM) computed from an ONNX file.

``onnx_xai.augment`` rewrites a classifier into an ordinary ONNX model that also outputs activations
and exact gradients (needs only ``onnx`` and ``numpy``); ``onnx_xai.Explainer`` computes the methods
on onnxruntime.
"""
from .errors import CamNotApplicableError, InputError, ModelError, UnsupportedModelError, XaiError
from .graph import OUTPUT_SETS, augment, supported_ops
from .runtime import METHOD_NAMES, Explainer, Explanation

__version__ = "0.1.0"
__all__ = ["METHOD_NAMES", "OUTPUT_SETS", "CamNotApplicableError", "Explainer", "Explanation",
           "InputError", "ModelError", "UnsupportedModelError", "XaiError", "augment", "supported_ops"]
