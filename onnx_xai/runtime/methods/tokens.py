"""The forward-only methods on a text's tokens: occlusion, KernelSHAP and LIME with tokens as
features (:class:`~onnx_xai.runtime.features.Tokens`).

A removed token takes the baseline's id at its position: the mask token's (never the pad's for
models that derive positions from the non-pad tokens, as RoBERTa does; the text front end chooses);
positions whose baseline is the token itself (special tokens, padding, unless asked) are no
features and get 0. The copies are ids, run as the model takes them, the other inputs (the attention
mask) those of the copy's text. Occlusion replaces one token at a time (Captum's ``FeatureAblation``
over the ids, one feature per token): the attribution is the score's drop. KernelSHAP is
:func:`.coalitions.kernel_shap` over the tokens (its base: the score with every token masked). LIME
fits a ridge model to random on/off copies weighted by their similarity to the text in the
interpretable space, ``exp(-d^2 / (2 w^2))`` with ``d`` the cosine distance between the copy's on/off
vector and all-on (LIME's text explainer measures it so; Captum's default measures it between the
inputs, which for ids means nothing). Each gives ``[N, T]``.
"""

from __future__ import annotations

import numpy as np

from ...graph import contract as c
from ...support.progress import copies_done
from ..features import Tokens, token_baseline
from .base import Context, chunks


def tokens_of(ctx: Context, opts, method: str):
    """Each text's :class:`~onnx_xai.runtime.features.Tokens` against the ``baseline`` option."""
    assert ctx.ids is not None
    baseline = token_baseline(opts.baseline, ctx.ids, method)
    return lambda i: Tokens(ctx.ids[i], baseline[i])


def scores_of(ctx: Context, i: int, copies: np.ndarray) -> np.ndarray:
    """The objective of text ``i`` on copies of its ids (one run)."""
    targets = np.repeat(ctx.targets[i : i + 1], len(copies), axis=0)
    found = ctx.run_ids(copies, targets, ("activation",), np.full(len(copies), i))[c.SCORE]
    copies_done(len(copies))
    return found.astype(np.float64)


def occlude_tokens(ctx: Context, opts) -> np.ndarray:
    """The score's drop as each token alone is replaced by the baseline's id, ``[N, T]``."""
    assert ctx.ids is not None
    features_of, raw = tokens_of(ctx, opts, "occlusion"), []
    for i in range(len(ctx.ids)):
        tokens = features_of(i)
        drops = np.zeros(tokens.count)
        for part in chunks(tokens.count, opts.copies_per_run(ctx.ids)):
            z = 1 - np.eye(tokens.count, dtype=np.int8)[part]
            drops[part] = ctx.outputs[c.SCORE][i] - scores_of(ctx, i, tokens.copies(z)[0])
        raw.append(tokens.spread(drops))
    return np.stack(raw).astype(np.float32)


def lime_tokens(ctx: Context, opts, sample_chunks, fit_of) -> np.ndarray:
    """LIME's coefficients per token (module docstring); ``sample_chunks`` draws the on/off copies,
    ``fit_of(count)`` makes the weighted ridge fit."""
    assert ctx.ids is not None
    features_of, raw = tokens_of(ctx, opts, "lime"), []
    for i in range(len(ctx.ids)):
        tokens = features_of(i)
        if tokens.count == 0:
            raw.append(tokens.spread(np.zeros(0)))
            continue
        fit = fit_of(tokens.count)
        for z in sample_chunks(opts.n_samples, tokens.count, opts.noise_seed, opts.copies_per_run(ctx.ids)):
            distance = 1 - np.sqrt(z.sum(axis=1) / tokens.count)  # cosine distance to all-on
            weights = np.exp(-(distance**2) / (2 * opts.kernel_width**2))
            fit.add(z, scores_of(ctx, i, tokens.copies(z)[0]), weights)
        raw.append(tokens.spread(fit.coefficients()))
    return np.stack(raw).astype(np.float32)
