"""DeepLIFT (Shrikumar et al. 2017, the Rescale rule) and DeepLIFT-SHAP, as Captum's ``DeepLift`` and
``DeepLiftShap``.

``deeplift`` runs a graph rewritten with the Rescale rule table
(:mod:`onnx_xai.graph.rules.deeplift`) on the batch of inputs followed by their references
(``baseline``: a number or an array broadcast to the batch; zeros by default), for the inputs'
objective; the attribution is ``(x - baseline)`` times the input's multipliers, and adds up to
``score(x) - score(baseline)`` where every nonlinearity is elementwise. ``deeplift_shap`` averages
DeepLIFT over a set of references (``baselines``: ``[B, ...]`` for every input, or ``[N, B, ...]``,
each input its own): each input paired with each of its references, as many pairs per run as
``batch_size`` allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...graph import contract as c
from ...support.errors import InputError
from .base import BatchedOptions, Context, Cost, Facts, Method, Options, finite_array, register, sample_rows
from .run_sizes import timed


@dataclass(frozen=True)
class DeepLiftOptions(Options):
    """``baseline``: the reference, a number or an array broadcast to the batch (default zeros)."""

    baseline: object = None

    def check(self) -> None:
        super().check()
        if self.baseline is not None:
            finite_array("baseline", self.baseline)


def multipliers(
    ctx: Context, x: np.ndarray, references: np.ndarray, objectives: np.ndarray, owners: np.ndarray
) -> np.ndarray:
    """DeepLIFT's multipliers of ``x`` against ``references`` (same shape) for ``objectives``;
    ``owners``: the sample of the batch each row of ``x`` belongs to."""
    pair = np.concatenate([x, references]).astype(ctx.x.dtype)
    outputs = ctx.run(
        pair, np.concatenate([objectives, objectives]), ("deeplift",), np.concatenate([owners, owners])
    )
    return outputs[c.DEEPLIFT][: len(x)].astype(np.float64)


@register
class DeepLift(Method):
    name = "deeplift"
    signed = True
    Options = DeepLiftOptions
    summary = "(x - baseline) * multipliers, ReLU & co. rescaled by their change (Shrikumar et al. 2017)"
    reference = "Captum `DeepLift` (Rescale; its MaxPool and Softmax rules not reproduced)"
    agreement = "1e-4, Captum"

    def cost(self, opts: DeepLiftOptions, facts: Facts) -> Cost:
        return 2 * facts.batch, "the input and its reference"

    def attribute(self, ctx: Context, opts: DeepLiftOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        reference = ctx.reference(opts.baseline)
        return ((x - reference) * multipliers(ctx, x, reference, ctx.targets, np.arange(len(x)))).astype(
            np.float32
        )


@dataclass(frozen=True)
class DeepLiftShapOptions(BatchedOptions):
    """``baselines``: the references, ``[B, ...]`` for every input or ``[N, B, ...]`` per input
    (required in the library: a distribution, e.g. a few photos; the command line and the server
    give each photo three, :func:`onnx_xai.imaging.preprocessing.default_references`)."""

    baselines: object = None

    def check(self) -> None:
        super().check()
        if self.baselines is None:
            raise InputError("deeplift_shap needs baselines: an array [B, ...] of reference inputs")
        finite_array("baselines", self.baselines)


@register
class DeepLiftShap(Method):
    name = "deeplift_shap"
    signed = True
    Options = DeepLiftShapOptions
    summary = "DeepLIFT averaged over a set of references (Lundberg & Lee 2017)"
    reference = "Captum `DeepLiftShap`"
    agreement = "1e-4, Captum"

    def cost(self, opts: DeepLiftShapOptions, facts: Facts) -> Cost:
        shape = np.asarray(opts.baselines).shape
        count = shape[1] if len(shape) == len(facts.sample) + 2 else shape[0]
        return 2 * facts.batch * count, f"{count} baselines"

    def attribute(self, ctx: Context, opts: DeepLiftShapOptions) -> np.ndarray:
        x = ctx.x.astype(np.float32)
        references = ctx.references(opts.baselines)
        each = references.ndim == x.ndim + 1  # [N, B, ...]: every input its own references
        if references.shape[1 + each :] != x.shape[1:] or (each and len(references) != len(x)):
            one = ", ".join(map(str, x.shape[1:]))
            raise InputError(
                f"baselines have shape {list(references.shape)}; want [B, {one}] or [{len(x)}, B, {one}]"
            )
        count = references.shape[1] if each else len(references)
        total = np.zeros(x.shape, np.float64)
        per_run = opts.runs(ctx.x, ctx.sizes, self.name, copies=2)  # pairs: an input and a reference
        for owners, which in timed(sample_rows(len(x), count, per_run), per_run):
            chosen = references[owners, which] if each else references[which]
            found = (x[owners] - chosen) * multipliers(ctx, x[owners], chosen, ctx.targets[owners], owners)
            np.add.at(total, owners, found)
        return (total / count).astype(np.float32)
