"""Layer-wise relevance propagation: each input value's share of the explained score.

``lrp`` runs a graph rewritten with a relevance rule table (:mod:`onnx_xai.graph.rules.relevance`):
the score itself (for a seed objective, ``seed * output``) is propagated back to the input layer by
layer, each layer by the rule its ``composite`` gives it (Zennit's composites: ``epsilon_plus_flat``,
the default, ``epsilon_plus``, ``epsilon_gamma_box``, ``epsilon_alpha2_beta1`` with or without
``_flat``; ``epsilon``: Captum's ``LRP``, the epsilon rule everywhere). Where the composite
conserves (no biases, no epsilon eaten), the relevances add up to the score. One graph is built per
composite and parameters, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...graph.rules.relevance import COMPOSITES, Composite
from ...support.errors import InputError
from .base import Context, Cost, Facts, Method, Options, finite, register


@dataclass(frozen=True)
class LrpOptions(Options):
    """``composite``; ``epsilon`` (the epsilon rule's), ``gamma`` (the gamma rule's); ``low`` and
    ``high``: the input's smallest and largest values, one number or one per channel (the box rule of
    ``epsilon_gamma_box``, which needs them)."""

    composite: str = "epsilon_plus_flat"
    epsilon: float | None = None
    gamma: float | None = None
    low: object = None
    high: object = None

    def check(self) -> None:
        super().check()
        if self.composite not in COMPOSITES:
            raise InputError(f"unknown LRP composite {self.composite!r}; choose from {', '.join(COMPOSITES)}")
        for name in ("epsilon", "gamma"):
            if getattr(self, name) is not None:
                finite(name, getattr(self, name), 0.0)
        if COMPOSITES[self.composite].first == "zbox" and (self.low is None or self.high is None):
            raise InputError(
                f"{self.composite} needs low and high: the input's smallest and largest values "
                "(the normalization of 0 and 1, per channel)"
            )

    def composite_rules(self) -> Composite:
        base = COMPOSITES[self.composite]
        changes: dict = {k: getattr(self, k) for k in ("epsilon", "gamma") if getattr(self, k) is not None}
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if value is not None:
                changes[bound] = tuple(np.ravel(np.asarray(value, float)).tolist())
        return replace(base, **changes)


@register
class Lrp(Method):
    name = "lrp"
    signed = True
    Options = LrpOptions
    summary = "each input value's share of the score, propagated back layer by layer by LRP rules"
    reference = 'Zennit\'s composites (`EpsilonPlusFlat` ...); Captum `LRP` (`composite="epsilon"`)'
    agreement = "1e-4, Zennit and Captum"

    def cost(self, opts: LrpOptions, facts: Facts) -> Cost:
        return facts.batch, "a run of the relevance graph"

    def attribute(self, ctx: Context, opts: LrpOptions) -> np.ndarray:
        if ctx.relevance is None:
            raise InputError("LRP needs the rewritten graph, which this run cannot build")
        return ctx.relevance(ctx.x, ctx.targets, opts.composite_rules())
