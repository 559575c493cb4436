"""KernelSHAP over features (SHAP's ``KernelExplainer``): a table's columns against background rows,
a text's tokens against the mask token.

A row's features are its columns (:mod:`onnx_xai.runtime.features`; a text's: its tokens, removed to
the mask id, one draw). A coalition ``z`` (the columns kept) is scored as SHAP scores it:
the mean over the background rows ``b`` of ``f(x where z, b elsewhere)``; the base is the mean of
``f(b)``. The Shapley values are the weighted least-squares fit of the coalitions' scores minus the
base on ``z``, under the Shapley kernel ``(M - 1) / (C(M, |z|) |z| (M - |z|))``, constrained to add up
to ``f(x) - base`` (the last feature eliminated, as SHAP does): additivity holds exactly. When every
coalition fits in ``n_samples`` (``2^M - 2`` of them) all are enumerated and the values are the
exact Shapley values of that game; otherwise coalitions are drawn from the kernel (their sizes by
it, their features uniformly: Captum's scheme) and weigh alike. The fit is kept as its normal
equations (``(M - 1)²`` numbers), coalitions are made and scored chunk by chunk: memory is that of a
chunk, whatever the count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from ...graph import contract as c
from ...support.progress import copies_done
from ..features import Features, table_background, table_columns
from .base import Context, chunks

TABLE_RUN = 8192  # rows per run by default: a table's rows are small, a run's overhead is not


def coalition_count(features: int, budget: int) -> int:
    """How many coalitions KernelSHAP scores: all ``2^M - 2`` when they fit ``budget``, else ``budget``."""
    every = 2**features - 2 if features < 63 else math.inf
    return int(every) if every <= budget else budget


def all_coalitions(features: int, per_chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every coalition but the empty and the full one, with its Shapley kernel weight, in chunks."""
    bits = np.arange(features, dtype=np.int64)
    for part in chunks(2**features - 2, per_chunk):
        codes = np.arange(part.start + 1, part.stop + 1, dtype=np.int64)
        z = ((codes[:, None] >> bits) & 1).astype(np.float64)
        sizes = z.sum(axis=1).astype(np.int64)
        yield z, (features - 1) / (_choose(features, sizes) * sizes * (features - sizes))


def drawn_coalitions(
    features: int, count: int, noise_seed, per_chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``count`` coalitions drawn from the Shapley kernel (sizes by it, features uniformly), each
    weighing 1, in chunks."""
    rng = np.random.default_rng(noise_seed)
    sizes = np.arange(1, features)
    chances = (features - 1) / (sizes * (features - sizes))
    chances = chances / chances.sum()
    for part in chunks(count, per_chunk):
        z = np.zeros((part.stop - part.start, features))
        for row in range(len(z)):
            z[row, rng.permutation(features)[: rng.choice(sizes, p=chances)]] = 1
        yield z, np.ones(len(z))


def _choose(n: int, k: np.ndarray) -> np.ndarray:
    return np.array([math.comb(n, int(v)) for v in k], np.float64)


def table_kernel_shap(ctx: Context, opts) -> tuple[np.ndarray, np.ndarray]:
    """Each row's Shapley values ``[N, F]`` over its columns (:class:`~onnx_xai.runtime.features.Columns`)
    and base ``[N]``."""
    if opts.background is None:
        table_background(None, ctx.x, "kernel_shap")  # refused: says what background is for
    columns = lambda i: table_columns(ctx.x, i, opts.background, ctx.inputs, ctx.input_name, "kernel_shap")  # noqa: E731
    raw, base = kernel_shap(ctx, opts, columns)
    named = columns(0)
    if len(named.names) > 1:  # columns over several inputs: named (one input's are its own columns)
        ctx.found["features"] = named.labels()
    return raw, base


def kernel_shap(ctx: Context, opts, features_of: Callable[[int], Features]) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's Shapley values over its features (``features_of(i)``), spread back to the
    sample's shape, and its base (the score with every feature removed); exact when every coalition
    fits ``n_samples``, else drawn from the Shapley kernel (module docstring)."""
    x = ctx.ids if ctx.ids is not None else ctx.x
    per_run = opts.batch_size or (
        max(1, opts.max_batch_bytes // max(1, x[:1].nbytes)) if opts.max_batch_bytes else TABLE_RUN
    )
    raw: list[np.ndarray] = []
    base = np.zeros(len(x))
    bases: dict = {}  # the mean score with every feature removed, per objective, for shared draws
    for i in range(len(x)):
        features = features_of(i)
        count = features.count
        key = (ctx.targets[i].tobytes(), features.on_ids)
        if key not in bases or features.on_ids:  # a text's removed tokens are its own
            bases[key] = mean_scores(ctx, i, features, np.zeros((1, count)), per_run)[0]
        base[i] = bases[key]
        whole = float(ctx.outputs[c.SCORE][i]) - base[i]
        if count <= 1:
            raw.append(features.spread(np.full(count, whole)))
            continue
        per_chunk = max(1, per_run // features.draws)
        exact = coalition_count(count, opts.n_samples) == 2**count - 2
        coalitions = (
            all_coalitions(count, per_chunk)
            if exact
            else drawn_coalitions(count, opts.n_samples, opts.noise_seed, per_chunk)
        )
        raw.append(features.spread(_fit(ctx, i, features, coalitions, base[i], whole, per_run)))
    return np.stack(raw).astype(np.float32), base.astype(np.float32)


def mean_scores(ctx: Context, i: int, features: Features, z: np.ndarray, per_run: int) -> np.ndarray:
    """The objective of sample ``i`` for each coalition ``z``, averaged over its draws, the copies
    scored ``per_run`` at a time."""
    first, others = features.copies(z)
    found = np.zeros(len(first))
    for part in chunks(len(first), per_run):
        count = part.stop - part.start
        targets, owners = np.repeat(ctx.targets[i : i + 1], count, axis=0), np.full(count, i)
        if features.on_ids:
            found[part] = ctx.run_ids(first[part], targets, ("activation",), owners)[c.SCORE]
        else:
            given = {n: b[part] for n, b in others.items()}
            found[part] = ctx.run(first[part], targets, ("activation",), owners, given)[c.SCORE]
        copies_done(count)
    return found.reshape(len(z), -1).mean(axis=1)


def _fit(ctx, i: int, columns: Features, coalitions, base: float, whole: float, per_run: int) -> np.ndarray:
    """The constrained weighted fit of the coalitions' mean scores (the last feature eliminated)."""
    features = columns.count
    normal, moment = np.zeros((features - 1, features - 1)), np.zeros(features - 1)
    for z, weights in coalitions:
        means = mean_scores(ctx, i, columns, z, per_run)
        design = z[:, :-1] - z[:, -1:]
        goal = means - base - z[:, -1] * whole
        normal += design.T @ (weights[:, None] * design)
        moment += design.T @ (weights * goal)
    head = np.linalg.lstsq(normal, moment, rcond=None)[0]
    return np.append(head, whole - head.sum())
