"""Features: how the perturbation and surrogate methods see what is explained, one abstraction for
every kind of input.

A sample's features are a partition of the explained point into groups, each with how it is
*removed*: superpixels of a photo replaced by a baseline colour (:class:`Superpixels`), columns of a
table replaced by each background row's values in turn (:class:`Columns`, also a table split over
several inputs), a text's tokens replaced by the baseline's id at their position, the mask token's
(:class:`Tokens`: their copies are ids, run as the model takes them, not at the embedding). A
coalition ``z`` (``[k, F]``, 1 where a feature is kept) becomes model inputs through
:meth:`Features.copies` (``draws`` copies per coalition: one for a baseline, one per background row
for a table; the methods average a coalition's scores over its draws), and a value per feature goes
back to the point's shape through :meth:`Features.spread`. KernelSHAP and LIME on photos and texts,
KernelSHAP on tables, occlusion of tokens and the table audits' deletion and insertion curves are
written over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError


class Features:
    """The features of one sample (see the module docstring)."""

    count: int  # how many features
    draws: int  # model inputs per coalition (their scores are averaged)
    on_ids = False  # the copies are a token model's ids (run as given), not points

    def copies(self, z: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The explained input's copies for coalitions ``z`` ``[k, F]`` (``[k * draws, ...]``,
        coalitions first) and, for features over several inputs, the other inputs' copies by name."""
        raise NotImplementedError

    def spread(self, values: np.ndarray) -> np.ndarray:
        """A value per feature ``[F]`` as an attribution shaped like one sample of the point."""
        raise NotImplementedError

    def labels(self) -> list[str] | None:
        """A name per feature where features have natural names (a table's columns), else None."""
        return None


@dataclass
class Superpixels(Features):
    """A photo's superpixels: ``mask`` ``[H, W]`` gives each pixel's feature, a removed feature takes
    ``baseline`` (in the model's input units); ``channel`` is the sample's channel axis. A signal's
    time windows are the same with ``mask`` ``[T]`` (``channel`` None for a waveform ``[T]``)."""

    sample: np.ndarray  # one sample, as the model takes it (no batch axis)
    mask: np.ndarray
    channel: int | None
    baseline: float = 0.0

    def __post_init__(self):
        self.count, self.draws = int(self.mask.max()) + 1, 1

    def copies(self, z: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        keep = z[:, self.mask].astype(np.float32)
        keep = keep if self.channel is None else np.expand_dims(keep, self.channel + 1)
        return self.sample[None] * keep + self.baseline * (1 - keep), {}

    def spread(self, values: np.ndarray) -> np.ndarray:
        per_pixel = values[self.mask].astype(np.float32)
        per_pixel = per_pixel if self.channel is None else np.expand_dims(per_pixel, self.channel)
        return np.broadcast_to(per_pixel, self.sample.shape)


@dataclass
class Columns(Features):
    """A table row's columns, in blocks: the explained input's first, then those of other inputs
    (a table split over several inputs, as scikit-learn's converters write a data frame: one input
    per column, strings included). A removed column takes each background row's value in turn."""

    names: list[str]  # each block's input
    rows: list[np.ndarray]  # the row's values per block, [width]
    backgrounds: list[np.ndarray]  # per block, [M, width]

    def __post_init__(self):
        self.count = sum(b.shape[1] for b in self.backgrounds)
        self.draws = len(self.backgrounds[0])

    def labels(self) -> list[str]:
        """A name per feature: the input's, or ``input[j]`` for an input of several columns."""
        return [
            n if b.shape[1] == 1 else f"{n}[{j}]"
            for n, b in zip(self.names, self.backgrounds)
            for j in range(b.shape[1])
        ]

    def copies(self, z: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        found, start = [], 0
        for row, background in zip(self.rows, self.backgrounds):
            keep = z[:, start : start + background.shape[1]].astype(bool)
            start += background.shape[1]
            both = np.where(keep[:, None, :], row[None, None, :], background[None, :, :])
            found.append(both.reshape(-1, background.shape[1]))
        return found[0], dict(zip(self.names[1:], found[1:]))

    def spread(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)

    def background(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The background rows themselves, as model inputs (every feature removed)."""
        return self.copies(np.zeros((1, self.count), bool))


@dataclass
class Tokens(Features):
    """A text's tokens ``ids`` ``[T]``: a removed token takes ``baseline``'s id at its position (the
    mask token's); a position whose baseline is the token itself (a special token, padding) is no
    feature, and gets 0."""

    ids: np.ndarray
    baseline: np.ndarray
    on_ids = True

    def __post_init__(self):
        self.positions = np.flatnonzero(self.baseline != self.ids)
        self.count, self.draws = len(self.positions), 1

    def copies(self, z: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        copies = np.repeat(self.ids[None], len(z), axis=0)
        kept = z.astype(bool)
        copies[:, self.positions] = np.where(kept, self.ids[self.positions], self.baseline[self.positions])
        return copies, {}

    def spread(self, values: np.ndarray) -> np.ndarray:
        found = np.zeros(len(self.ids), np.float64)
        found[self.positions] = values
        return found


def token_baseline(value, ids: np.ndarray, method: str) -> np.ndarray:
    """The ids a removed token takes, ``[N, T]`` like ``ids``: one id, or ids per position."""
    given = np.asarray(value)
    if isinstance(value, bool) or given.dtype.kind not in "iu":
        raise InputError(
            f"{method} on tokens: baseline= is the id a removed token takes (the mask token's), "
            f"an int or ids shaped like the input {list(ids.shape)}, not {value!r}"
        )
    try:
        return np.broadcast_to(given.astype(ids.dtype), ids.shape).copy()
    except ValueError:
        raise InputError(f"baseline has shape {list(given.shape)}; the ids have {list(ids.shape)}") from None


def table_background(given, x: np.ndarray, method: str) -> np.ndarray:
    """A table's background rows ``[M, F]`` for ``method``, checked against the batch ``x``."""
    if given is None:
        raise InputError(
            f"{method} on a table needs background=: rows that stand for the data (a sample of what "
            "the model was trained on) to draw the columns it leaves out from"
        )
    rows = np.asarray(given)
    if rows.ndim != 2 or rows.shape[1] != x.shape[1] or rows.dtype.kind not in "fiu" or len(rows) == 0:
        raise InputError(f"background has shape {list(rows.shape)}; want [rows, {x.shape[1]}], numbers")
    if not np.isfinite(rows.astype(np.float64)).all():
        raise InputError("background holds values that are not finite")
    return rows.astype(x.dtype)


def table_columns(x: np.ndarray, i: int, background, inputs: dict, explained: str, method: str) -> Columns:
    """Row ``i`` of a table's batch ``x`` as :class:`Columns` against ``background``: rows
    ``[M, F]``, or a dict of rows per input (the explained one among them) for a table split over
    several inputs, whose values for the batch are in ``inputs``."""
    if not isinstance(background, dict):
        return Columns([explained], [x[i]], [table_background(background, x, method)])
    if explained not in background:
        raise InputError(f"background gives no rows for {explained!r}, the input explained")
    names = [explained] + [n for n in background if n != explained]
    values = [x] + [_two_d(inputs.get(n), n, len(x)) for n in names[1:]]
    backgrounds = [_two_d(np.asarray(background[n]), n, None) for n in names]
    if len({len(b) for b in backgrounds}) != 1 or any(
        b.shape[1] != v.shape[1] for b, v in zip(backgrounds, values)
    ):
        raise InputError("background's inputs must have as many rows each, and the columns of the inputs")
    return Columns(names, [v[i] for v in values], [b.astype(v.dtype) for b, v in zip(backgrounds, values)])


def _two_d(value, name: str, rows: int | None) -> np.ndarray:
    if value is None:
        raise InputError(f"background names {name!r}: give its values too (x as a dict of every input)")
    value = np.asarray(value)
    if value.ndim == 1:
        value = value[:, None]
    if value.ndim != 2 or (rows is not None and len(value) != rows):
        raise InputError(f"{name!r} must be rows [N, columns], not {list(value.shape)}")
    return value
