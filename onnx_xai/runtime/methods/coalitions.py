"""KernelSHAP on a table's columns, against background rows (SHAP's ``KernelExplainer``).

A row's features are its columns. A coalition ``z`` (the columns kept) is scored as SHAP scores it:
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
from collections.abc import Iterator

import numpy as np

from ... import contract as c
from ...errors import InputError
from ...progress import copies_done
from .base import Context, chunks

TABLE_RUN = 8192  # rows per run by default: a table's rows are small, a run's overhead is not


def background_of(opts, x: np.ndarray, method: str = "kernel_shap") -> np.ndarray:
    """The ``background`` option, checked against the rows ``x``."""
    if opts.background is None:
        raise InputError(
            f"{method} on a table needs background=: rows that stand for the data (a sample of what "
            "the model was trained on) to draw the columns it leaves out from"
        )
    rows = np.asarray(opts.background)
    if rows.ndim != 2 or rows.shape[1] != x.shape[1] or rows.dtype.kind not in "fiu" or len(rows) == 0:
        raise InputError(f"background has shape {list(rows.shape)}; want [rows, {x.shape[1]}], numbers")
    if not np.isfinite(rows.astype(np.float64)).all():
        raise InputError("background holds values that are not finite")
    return rows.astype(x.dtype)


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
    features: int, count: int, seed, per_chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``count`` coalitions drawn from the Shapley kernel (sizes by it, features uniformly), each
    weighing 1, in chunks."""
    rng = np.random.default_rng(seed)
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
    """Each row's Shapley values ``[N, M]`` and base ``[N]`` (module docstring)."""
    x = ctx.x
    background = background_of(opts, x)
    per_run = opts.batch_size or (
        max(1, opts.max_batch_bytes // max(1, x[:1].nbytes)) if opts.max_batch_bytes else TABLE_RUN
    )
    features = x.shape[1]
    raw, base = np.zeros(x.shape, np.float64), np.zeros(len(x))
    bases: dict = {}  # the background's mean score, per objective (rows that share one share it)
    for i in range(len(x)):
        key = ctx.targets[i].tobytes()
        if key not in bases:
            bases[key] = _scores(ctx, i, background, per_run).mean()
        base[i] = bases[key]
        whole = float(ctx.outputs[c.SCORE][i]) - base[i]
        if features == 1:
            raw[i, 0] = whole
            continue
        per_chunk = max(1, per_run // len(background))
        exact = coalition_count(features, opts.n_samples) == 2**features - 2
        coalitions = (
            all_coalitions(features, per_chunk)
            if exact
            else drawn_coalitions(features, opts.n_samples, opts.noise_seed, per_chunk)
        )
        raw[i] = _fit(ctx, i, x[i], background, coalitions, base[i], whole, per_run)
    return raw.astype(np.float32), base.astype(np.float32)


def _scores(ctx: Context, i: int, rows: np.ndarray, per_run: int) -> np.ndarray:
    """The objective of sample ``i`` on ``rows``, ``per_run`` at a time."""
    found = np.zeros(len(rows))
    for part in chunks(len(rows), per_run):
        targets = np.repeat(ctx.targets[i : i + 1], part.stop - part.start, axis=0)
        found[part] = ctx.run(rows[part], targets, ("activation",))[c.SCORE]
        copies_done(part.stop - part.start)
    return found


def _fit(ctx, i: int, row, background, coalitions, base: float, whole: float, per_run: int) -> np.ndarray:
    """The constrained weighted fit of the coalitions' mean scores (the last feature eliminated)."""
    features = len(row)
    normal, moment = np.zeros((features - 1, features - 1)), np.zeros(features - 1)
    for z, weights in coalitions:
        copies = np.where(z[:, None, :].astype(bool), row[None, None, :], background[None, :, :])
        means = _scores(ctx, i, copies.reshape(-1, features), per_run).reshape(len(z), -1).mean(axis=1)
        design = z[:, :-1] - z[:, -1:]
        goal = means - base - z[:, -1] * whole
        normal += design.T @ (weights[:, None] * design)
        moment += design.T @ (weights * goal)
    head = np.linalg.lstsq(normal, moment, rcond=None)[0]
    return np.append(head, whole - head.sum())
