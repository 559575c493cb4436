"""The methods a served model's requests get when neither the request nor the server names any."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Explainer


def default_methods(ex: Explainer, background: bool, generation: bool = False) -> tuple[str, ...]:
    """The methods of a request that names none, when the server was given none: Grad-CAM for
    photos and signals with a target layer, integrated gradients for texts and other signals, input
    x gradient for a language model's generations (as ``explain --prompt`` chooses it: one gradient
    copy a token); for a table, as the command line chooses them
    (:mod:`onnx_xai.tables.defaults`)."""
    from ..tables.defaults import table_methods

    if generation:
        return ("input_x_gradient",)
    if ex.kind == "tokens" or (ex.kind == "signal" and ex.target_layer is None):
        return ("integrated_gradients",)
    return ("gradcam",) if ex.kind != "table" else tuple(table_methods(ex, background)[0])
