"""onnx_xai: gradient explanations (gradient, SmoothGrad, CAM, Grad-CAM) computed from an ONNX file.

``onnx_xai.augment`` rewrites a classifier into an ordinary ONNX model that also outputs activations
and exact gradients; it needs only ``onnx`` and ``numpy``.
"""
from .errors import CamNotApplicableError, InputError, ModelError, UnsupportedModelError, XaiError
from .graph import OUTPUT_SETS, augment, supported_ops

__version__ = "0.1.0"
__all__ = ["OUTPUT_SETS", "CamNotApplicableError", "InputError", "ModelError",
           "UnsupportedModelError", "XaiError", "augment", "supported_ops"]
