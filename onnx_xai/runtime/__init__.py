"""The runtime (needs only ``onnxruntime`` and ``numpy``; ``onnx`` is imported only to rewrite an
original model): the saliency methods, their maps and boxes."""

from .methods import METHOD_NAMES

__all__ = ["BACKENDS", "METHOD_NAMES", "Explainer", "Explanation", "Work", "default_providers"]
_LAZY = {
    "Work": "work",
    "Explainer": "explainer",
    "Explanation": "explainer",
    "BACKENDS": "backends",
    "default_providers": "backends",
}


def __getattr__(name: str):
    """The Explainer and the backends are imported on first use: the command line's parser reads the
    method names without loading scipy or a runtime."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
