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
from dataclasses import dataclass

import numpy as np

from ...graph import contract as c
from ...support.errors import InputError
from ...support.progress import copies_done
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


@dataclass
class Columns:
    """Where a row's features are: blocks of columns, the explained input's first, then those of
    other inputs named in a dict ``background`` (a table split over several inputs, as scikit-learn's
    converters write a data frame: one input per column, strings included)."""

    names: list[str]  # each block's input
    rows: list[np.ndarray]  # the batch's values per block, [N, width]
    backgrounds: list[np.ndarray]  # per block, [M, width]

    @property
    def features(self) -> int:
        return sum(b.shape[1] for b in self.backgrounds)

    def labels(self) -> list[str]:
        """A name per feature: the input's, or ``input[j]`` for an input of several columns."""
        return [
            n if b.shape[1] == 1 else f"{n}[{j}]"
            for n, b in zip(self.names, self.backgrounds)
            for j in range(b.shape[1])
        ]

    def copies(self, i: int, z: np.ndarray) -> list[np.ndarray]:
        """Per block, row ``i`` with the features ``z`` keeps (``[k, F]``), the rest drawn from each
        background row: ``[k * M, width]``, coalitions first."""
        found, start = [], 0
        for row, background in zip(self.rows, self.backgrounds):
            keep = z[:, start : start + background.shape[1]].astype(bool)
            start += background.shape[1]
            both = np.where(keep[:, None, :], row[i][None, None, :], background[None, :, :])
            found.append(both.reshape(-1, background.shape[1]))
        return found


def columns_of(ctx: Context, opts) -> Columns:
    """The features of a table's rows (:class:`Columns`), checked against ``background``."""
    given = opts.background
    if not isinstance(given, dict):
        return Columns([ctx.input_name], [ctx.x], [background_of(opts, ctx.x)])
    if ctx.input_name not in given:
        raise InputError(f"background gives no rows for {ctx.input_name!r}, the input explained")
    names = [ctx.input_name] + [n for n in given if n != ctx.input_name]
    rows = [ctx.x] + [_two_d(ctx.inputs.get(n), n, len(ctx.x)) for n in names[1:]]
    backgrounds = [_two_d(np.asarray(given[n]), n, None) for n in names]
    lengths = {len(b) for b in backgrounds}
    if len(lengths) != 1 or any(b.shape[1] != r.shape[1] for b, r in zip(backgrounds, rows)):
        raise InputError("background's inputs must have as many rows each, and the columns of the inputs")
    return Columns(names, rows, [b.astype(r.dtype) for b, r in zip(backgrounds, rows)])


def _two_d(value, name: str, rows: int | None) -> np.ndarray:
    if value is None:
        raise InputError(f"background names {name!r}: give its values too (x as a dict of every input)")
    value = np.asarray(value)
    if value.ndim == 1:
        value = value[:, None]
    if value.ndim != 2 or (rows is not None and len(value) != rows):
        raise InputError(f"{name!r} must be rows [N, columns], not {list(value.shape)}")
    return value


def table_kernel_shap(ctx: Context, opts) -> tuple[np.ndarray, np.ndarray]:
    """Each row's Shapley values ``[N, F]`` over its :class:`Columns` and base ``[N]``."""
    columns = columns_of(ctx, opts)
    per_run = opts.batch_size or (
        max(1, opts.max_batch_bytes // max(1, ctx.x[:1].nbytes)) if opts.max_batch_bytes else TABLE_RUN
    )
    features, draws = columns.features, len(columns.backgrounds[0])
    raw, base = np.zeros((len(ctx.x), features), np.float64), np.zeros(len(ctx.x))
    bases: dict = {}  # the background's mean score, per objective (rows that share one share it)
    for i in range(len(ctx.x)):
        key = ctx.targets[i].tobytes()
        if key not in bases:
            bases[key] = _scores(ctx, i, columns, columns.backgrounds, per_run).mean()
        base[i] = bases[key]
        whole = float(ctx.outputs[c.SCORE][i]) - base[i]
        if features == 1:
            raw[i, 0] = whole
            continue
        per_chunk = max(1, per_run // draws)
        exact = coalition_count(features, opts.n_samples) == 2**features - 2
        coalitions = (
            all_coalitions(features, per_chunk)
            if exact
            else drawn_coalitions(features, opts.n_samples, opts.noise_seed, per_chunk)
        )
        raw[i] = _fit(ctx, i, columns, coalitions, base[i], whole, per_run)
    if len(columns.names) > 1:  # columns over several inputs: named (one input's are its own columns)
        ctx.found["features"] = columns.labels()
    return raw.astype(np.float32), base.astype(np.float32)


def _scores(ctx: Context, i: int, columns: Columns, blocks: list[np.ndarray], per_run: int) -> np.ndarray:
    """The objective of sample ``i`` on rows given per block of ``columns``, ``per_run`` at a time."""
    found = np.zeros(len(blocks[0]))
    for part in chunks(len(blocks[0]), per_run):
        count = part.stop - part.start
        targets = np.repeat(ctx.targets[i : i + 1], count, axis=0)
        given = {n: b[part] for n, b in zip(columns.names[1:], blocks[1:])}
        found[part] = ctx.run(blocks[0][part], targets, ("activation",), np.full(count, i), given)[c.SCORE]
        copies_done(count)
    return found


def _fit(ctx, i: int, columns: Columns, coalitions, base: float, whole: float, per_run: int) -> np.ndarray:
    """The constrained weighted fit of the coalitions' mean scores (the last feature eliminated)."""
    features = columns.features
    normal, moment = np.zeros((features - 1, features - 1)), np.zeros(features - 1)
    for z, weights in coalitions:
        copies = columns.copies(i, z)
        means = _scores(ctx, i, columns, copies, per_run).reshape(len(z), -1).mean(axis=1)
        design = z[:, :-1] - z[:, -1:]
        goal = means - base - z[:, -1] * whole
        normal += design.T @ (weights[:, None] * design)
        moment += design.T @ (weights * goal)
    head = np.linalg.lstsq(normal, moment, rcond=None)[0]
    return np.append(head, whole - head.sum())
