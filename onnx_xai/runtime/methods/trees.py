"""TreeSHAP: exact interventional Shapley values of a tree ensemble, from its ONNX attributes.

``tree_shap`` reads the ensemble the explained output comes from (:mod:`onnx_xai.graph.trees`: every
form converters write, mapped back to the model input's columns through the scalers, casts and
column picks in front of it) and computes the Shapley values of its margin
(:mod:`onnx_xai.runtime.treeshap`) against the ``background`` rows, as SHAP's
``TreeExplainer(model, data=background, feature_perturbation="interventional", model_output="raw")``:
per row and column ``[N, F]`` for the class explained, and the base, the background's mean margin
(``r.base``), so that the values add up to the row's margin minus the base. No model run beyond the
shared one (which resolves the classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...support.errors import InputError
from ..features import table_background
from ..margins import TreeScores
from .base import Context, Cost, Facts, Method, Options, register


@dataclass(frozen=True)
class TreeShapOptions(Options):
    """``background``: the rows the left-out columns are drawn from (required)."""

    background: Any = None


@register
class TreeShap(Method):
    name = "tree_shap"
    signed = True
    forward_only = True
    kinds = ("table",)
    sets = ("activation",)
    Options = TreeShapOptions
    summary = "exact interventional Shapley values of a tree ensemble's margin, read from its ONNX attributes"
    reference = 'SHAP `TreeExplainer(feature_perturbation="interventional", model_output="raw")`'
    agreement = "1e-5, SHAP"

    def cost(self, opts: TreeShapOptions, facts: Facts) -> Cost:
        return 0, ""

    def attribute(self, ctx: Context, opts: TreeShapOptions) -> np.ndarray:
        from ..treeshap import interventional_tree_shap

        if ctx.trees is None and ctx.score_kind == "output":
            raise InputError(
                "tree_shap explains a tree ensemble's margin, which adds up over its trees; this Explainer "
                "explains the output as given (objective='probability'): use kernel_shap"
            )
        if ctx.trees is None:
            raise InputError("tree_shap explains tree ensembles: this model's output does not come from one")
        trees: TreeScores = ctx.trees()
        background = table_background(opts.background, ctx.x, "tree_shap")
        values, base = interventional_tree_shap(trees.tree, ctx.x, background)
        raw = np.zeros(ctx.x.shape, np.float64)
        found = np.zeros(len(ctx.x))
        for i, target in enumerate(np.asarray(ctx.targets, np.int64)):
            column, sign, offset = trees.column(int(target))
            raw[i] = sign * values[i, :, column]
            found[i] = sign * base[column] + offset
        ctx.found["base"] = found.astype(np.float32)
        return raw.astype(np.float32)
