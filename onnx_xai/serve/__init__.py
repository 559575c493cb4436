"""Serving explanations next to predictions, on KServe's Python model server (``onnx-xai serve``).

:class:`~.model.ExplainedModel` is a KServe ``Model``: ``:predict`` answers the model's predictions,
``:explain`` the predictions and their explanations from one batched run of the rewritten graph.
:func:`~.server.serve` starts KServe's ``ModelServer`` on it (V1 and V2 over REST, V2 over gRPC),
bound to loopback unless told otherwise. Needs the ``serve`` extra (``pip install onnx_xai[serve]``).
"""

from __future__ import annotations

__all__ = ["ExplainedModel", "ServeConfig", "serve"]


def __getattr__(name: str):
    if name in ("ExplainedModel", "ServeConfig"):
        from . import model

        return getattr(model, name)
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(name)
