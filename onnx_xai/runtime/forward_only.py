"""Forward-only methods on a model whose graph cannot be rewritten for gradients.

A model with post-processing inside (NMS, TopK over boxes, custom-domain ops, control flow) may have
no gradient path to its output; occlusion and RISE need only the score, so they still run, on the
original model: the score is the output itself (the class's value, or ``sum(seed * output)``), not
the logit before a Softmax/Sigmoid as on a rewritten graph, and each result says why
(``Explanation.note``).
"""

from __future__ import annotations

import numpy as np

from ..graph import contract as c
from ..objectives.objective import Objective
from ..support.errors import InputError
from .checks import seeds_for, targets_for, values_for
from .explanation import Explanation, explanation
from .head import layer_head
from .inputs import held_inputs
from .methods import Context


def forward_only(
    ex, x: np.ndarray, plan, wanted: Objective, box_threshold: float, extra: dict, reason: str
) -> dict:
    """Every method of ``plan`` (all forward-only) on the model itself (see the module docstring)."""
    output = ex.predict(x, **extra)
    objective = _objective(output, wanted)

    def call(xs: np.ndarray, objectives: np.ndarray, sets: tuple, owners=None, given=None) -> dict:
        held = held_inputs(extra, owners, len(x)) | (given or {})
        return {c.SCORE: _scores(ex.predict(xs, **held), objectives)}

    scores = _scores(output, objective)
    targets = objective if objective.dtype.kind in "iu" else np.full(len(x), -1, np.int64)
    note = f"scored on the output itself: the graph cannot be rewritten for gradients ({reason})"
    results: dict[str, Explanation] = {}
    size = ex._spatial_size(x)
    for method, opts in plan:
        head = lambda: layer_head(ex._sessions, ex.input_name, wanted.seeded, extra)  # noqa: E731
        context = Context(
            x, objective, {c.SCORE: scores}, call, ex.layout, head, inputs=extra, input_name=ex.input_name
        )
        raw = method.attribute(context, opts)
        result = explanation(
            method.name,
            method.family_for(opts),
            method.signed_for(opts),
            raw,
            targets,
            scores.astype(np.float32),
            ex.layout,
            size,
            box_threshold,
        )
        result.output, result.note = output, note
        result.base, result.features = context.found.get("base"), context.found.get("features")
        results[method.name] = result
    return results


def output_scores(output: np.ndarray, objective: Objective) -> np.ndarray:
    """Each sample's score on the output itself for ``objective``."""
    return _scores(output, _objective(output, objective)).astype(np.float64)


def _objective(output: np.ndarray, objective: Objective) -> np.ndarray:
    """The classes (each sample's top class resolved) or the seeds, one per sample, on the output."""
    n = len(output)
    if objective.kind == "value":
        return np.asarray(values_for(objective.values, n, output.shape))
    if objective.seeded:
        return seeds_for(objective.values, n, output.shape)
    if output.ndim != 2:
        raise InputError(f"a class needs an [N, K] output, not {list(output.shape)}: give a seed")
    classes = targets_for(objective.values, n, lambda: output.shape[1])
    return np.where(classes < 0, output.argmax(axis=1), classes)


def _scores(output: np.ndarray, objective: np.ndarray) -> np.ndarray:
    if objective.dtype.kind == "f":
        return (output * objective).reshape(len(output), -1).sum(axis=1)
    return output[np.arange(len(output)), objective]
