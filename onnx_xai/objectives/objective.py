"""The objective: what one explanation explains at the model's output, as one typed value from the
library through the photo application, the table front end, the audits and the server.

An objective is one of four kinds. ``top``: each sample's highest class (its logit before a final
Softmax or Sigmoid, or a tree ensemble's margin). ``class``: a class index per sample (or one for
all). ``value``: one value of a regression output (its index in the output's values per sample; for
an ``[N, K]`` output the same number a class would be, but never replaced by a top-1 and said as a
value). ``seed``: any weighted sum of the output, ``sum(seed * output)``, with a float array shaped
like the explained output (one per sample, or one for all); :mod:`onnx_xai.objectives.seeds` builds
seeds for segmentation, detection and dense maps. Everywhere a call takes ``objective=``, an int, a
sequence of ints or an integer array is read as classes and a float array as a seed; the
constructors say which explicitly. Random seeds are never called "seed" here: they are
``noise_seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..support.errors import InputError

KINDS = ("top", "class", "value", "seed")


@dataclass(frozen=True, eq=False)
class Objective:
    """One objective (see the module docstring); build it with :meth:`top`, :meth:`of_class`,
    :meth:`of_value` or :meth:`weighted`, or let :meth:`coerce` read a plain value."""

    kind: str
    values: np.ndarray | None = None  # int64 classes or value indices ([n] or one for all); float seeds

    @classmethod
    def top(cls) -> Objective:
        """Each sample's highest class."""
        return cls("top")

    @classmethod
    def of_class(cls, index: int | Sequence[int] | np.ndarray) -> Objective:
        """A class index per sample, or one for all (``-1`` in a list: that sample's top class)."""
        values = _integers(index, "a class")
        if values.ndim == 0 and int(values) == -1:
            return cls.top()
        return cls("class", values)

    @classmethod
    def of_value(cls, index: int | Sequence[int] | np.ndarray = 0) -> Objective:
        """One value of a regression output, by its index among each sample's values (0: the first,
        or the only one)."""
        values = _integers(index, "a value")
        if (values < 0).any():
            raise InputError(f"a value's index is 0 or more, not {index!r}")
        return cls("value", values)

    @classmethod
    def weighted(cls, seed) -> Objective:
        """``sum(seed * output)``: a float array shaped like the explained output, per sample or one
        for all."""
        array = np.asarray(seed) if not isinstance(seed, str) else np.asarray([])
        if (
            array.dtype.kind not in "fiub"
            or array.size == 0
            or not np.isfinite(array.astype(np.float64)).all()
        ):
            raise InputError("a seed must be a non-empty numeric array of finite values")
        return cls("seed", array)

    @classmethod
    def coerce(cls, given) -> Objective:
        """An objective from what a caller gave: None (the top class), an Objective, classes (an int,
        ints, an integer array) or a seed (a float array)."""
        if given is None:
            return cls.top()
        if isinstance(given, Objective):
            return given
        if isinstance(given, np.ndarray) and given.dtype.kind == "f":
            return cls.weighted(given)
        return cls.of_class(given)

    @property
    def seeded(self) -> bool:
        """True when the score is a weighted sum of the output (the graph's seed input)."""
        return self.kind == "seed"

    def describe(self) -> dict:
        """What a record says of it: its kind and its classes or values (a seed's shape)."""
        if self.values is None:
            return {"kind": self.kind}
        if self.seeded:
            return {"kind": self.kind, "shape": list(self.values.shape)}
        return {"kind": self.kind, "index": self.values.tolist()}

    def __repr__(self) -> str:
        return f"Objective({', '.join(f'{k}={v!r}' for k, v in self.describe().items())})"


def _integers(index, what: str) -> np.ndarray:
    values = np.asarray(index)
    if isinstance(index, bool) or values.dtype.kind not in "iu" or values.ndim > 1 or values.size == 0:
        hint = (
            " (a float array is a seed: Objective.weighted)"
            if values.dtype.kind == "f" and values.ndim > 1
            else ""
        )
        raise InputError(f"{what} is an int or a list of ints, not {index!r}{hint}")
    return values.astype(np.int64)
