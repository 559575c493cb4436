"""The graph rewriter (needs only ``onnx`` and ``numpy``): reverse-mode autodiff over ONNX graphs and
the ``augment`` rewrite that adds explanation outputs to a classifier."""

from .augment import OUTPUT_SETS, augment
from .model_io import load_model, save_model
from .rules import supported_ops

__all__ = ["OUTPUT_SETS", "augment", "load_model", "save_model", "supported_ops"]
