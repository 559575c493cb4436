"""A token model's explained point: its ids' word embedding, and the runs that move it.

Ids are explained at their word embedding (:mod:`onnx_xai.graph.point`): the shared run gives the
embedding (the ``embedding`` output set), which becomes the methods' ``x``; their further runs feed a
point in place of the lookup (the ids still given, for positions and masks), so integrated
gradients, SmoothGrad, GradientSHAP and DeepLIFT move it as they move a picture. The perturbation
methods' copies are ids, run as the model takes them (``call_ids``), and a baseline given as ids
becomes its embedding (``embed``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph import contract as c
from .inputs import held_inputs


def token_parts(
    ids: np.ndarray, outputs: dict, call: Callable, fed: Callable, extra: dict, input_name: str, resolved
) -> tuple:
    """The point (from the shared run's ``outputs``), the call that runs the model fed at a point
    (``fed(points, objectives, sets, held)``), and the Context's token fields; ``call`` runs the
    model on ids (copies of rows ``owners``); ``resolved`` is the objective fed per row (classes, or
    a seed per row for a model explained with one, which the embedding's run takes too)."""

    def at_point(points, objectives, sets, owners=None, given=None) -> dict:
        held = held_inputs(extra | {input_name: ids}, owners, len(ids)) | (given or {})
        return fed(points, objectives, sets or ("score",), held)

    def embed(rows: np.ndarray) -> np.ndarray:
        owners = np.arange(len(rows)) if len(rows) == len(ids) else np.zeros(len(rows), np.int64)
        seeded = resolved.dtype.kind == "f"
        objectives = resolved[owners] if seeded else np.full(len(rows), -1, np.int64)
        return call(rows, objectives, ("embedding",), owners)[c.EMBEDDING]

    return outputs[c.EMBEDDING], at_point, {"ids": ids, "call_ids": call, "embed": embed}
