"""Deletion and insertion curves over a table's features, removed to the background rows.

A row's features are its columns, ranked by ``|attribution|`` (ties in a seeded random order, as
:func:`.curves.ranking` breaks them for pixels). A *removed* feature takes each background row's
value in turn, and a curve's value at a step is the mean over the background rows of the score the
methods explain (:meth:`onnx_xai.Explainer.scores`: the class's logit, a tree ensemble's margin):

- **deletion**: the most relevant features removed first, ``k`` at a time (one per step when the
  row has at most ``steps`` features); it starts at the row's own score and ends at the background's
  mean score. Lower area is better.
- **insertion**: from the background rows, the row's own values put back, most relevant first; it
  starts at the background's mean score and ends at the row's. Higher area is better.

The area is the trapezoid over the fraction of features removed (or put back), as for pixels. The
two ends of both curves are the same for every method: they are scored once per row. For a linear
score ``w·x + c`` the curves are known in closed form: removing feature ``j`` moves the mean score
by ``-w_j (x_j - mean(b_j))``, its exact Shapley value, so KernelSHAP's ranking gives the steepest
deletion curve there is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..runtime.features import Columns
from .curves import ranking

Score = Callable[[np.ndarray, int], np.ndarray]  # (rows [n, F], class) -> the class's score [n]
RANDOM = "baseline_random"  # the random ranking every method stands beside


class RowScorer:
    """The score of ``target`` for many rows, ``batch_rows`` at a time (an Explainer's :meth:`scores`)."""

    def __init__(self, explainer, batch_rows: int = 8192):
        self.ex, self.batch_rows = explainer, batch_rows

    def __call__(self, rows: np.ndarray, target: int) -> np.ndarray:
        out = []
        for start in range(0, len(rows), self.batch_rows):
            part = rows[start : start + self.batch_rows].astype(self.ex.input_dtype)
            out.append(self.ex.scores(part, np.full(len(part), target, np.int64)))
        return np.concatenate(out) if out else np.zeros(0)


def counts(features: int, steps: int) -> np.ndarray:
    """How many features are removed (or put back) at each step: 0 to ``features``."""
    return np.round(np.linspace(0, features, min(steps, features) + 1)).astype(np.int64)


def area(fractions: np.ndarray, curve: np.ndarray) -> float:
    """The trapezoid under ``curve`` over ``fractions`` (from 0 to 1)."""
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(fractions)) / 2)


def random_attribution(features: int, noise_seed: int, row: int) -> np.ndarray:
    """The random baseline's attribution of one row: uniform draws, seeded by ``(noise_seed, row)``."""
    return np.random.default_rng((noise_seed, row)).random(features)


def ends(score: Score, row: np.ndarray, background: np.ndarray, target: int) -> tuple[float, float]:
    """The row's own score and the background's mean score: every curve's two ends."""
    found = score(np.concatenate([row[None, :], background]), target)
    return float(found[0]), float(found[1:].mean())


def feature_curves(
    score: Score,
    row: np.ndarray,
    background: np.ndarray,
    attribution: np.ndarray,
    target: int,
    steps: int,
    noise_seed: int,
    scored_ends: tuple[float, float] | None = None,
) -> dict:
    """One row's deletion and insertion curves and areas for one attribution (module docstring).

    Args:
        score: the scorer of copies (:class:`RowScorer`).
        row: ``[F]``; background: ``[B, F]``; attribution: ``[F]``.
        steps: at most this many steps (one feature per step when there are fewer features).
        noise_seed: the seed of the tie order's random draws.
        scored_ends: the row's score and the background's mean score, when already known (:func:`ends`).

    Returns:
        ``deletion_auc``, ``deletion_curve``, ``insertion_auc``, ``insertion_curve`` (lists, one value
        per step) and ``fractions`` (the fraction of features at each step).
    """
    features = row.size
    own, base = scored_ends if scored_ends is not None else ends(score, row, background, target)
    order = ranking(np.abs(np.asarray(attribution, np.float64)), noise_seed)
    inner = counts(features, steps)[1:-1]
    removed = np.zeros((len(inner), features), bool)
    for i, k in enumerate(inner):
        removed[i, order[:k]] = True
    columns = Columns(["row"], [row], [background])  # a removed feature takes each background row's value
    copies = np.concatenate([columns.copies(~removed)[0], columns.copies(removed)[0]])
    means = score(copies, target).reshape(2, len(inner), len(background)).mean(axis=2)
    fractions = counts(features, steps) / features
    deletion = np.r_[own, means[0], base]
    insertion = np.r_[base, means[1], own]
    return {
        "deletion_auc": area(fractions, deletion),
        "deletion_curve": deletion.round(6).tolist(),
        "insertion_auc": area(fractions, insertion),
        "insertion_curve": insertion.round(6).tolist(),
        "fractions": fractions.round(6).tolist(),
    }
