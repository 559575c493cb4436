"""The runtime (needs only ``onnxruntime`` and ``numpy``; ``onnx`` is imported only to rewrite an
original model): the saliency methods, their maps and boxes."""
from .explainer import METHOD_NAMES, Explainer, Explanation
from .backends import BACKENDS, default_providers

__all__ = ["BACKENDS", "METHOD_NAMES", "Explainer", "Explanation", "default_providers"]
