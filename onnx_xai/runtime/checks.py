"""What an explain call asks for, checked before anything runs: the objective (the classes, or the
seeds, as the rewritten graph takes them), the model's other inputs, the methods against the kind of
input the model takes, the box threshold; and the names of a run's per-layer outputs. Each problem
is an :class:`~onnx_xai.support.errors.InputError` of one line naming what was given and what was wanted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph import contract as c
from ..support.errors import InputError


def seeds_for(seed, n: int, shape: tuple) -> np.ndarray:
    """The seeds as float32 ``[n, *output shape]`` for an output declared ``shape`` (one seed is
    repeated for every sample)."""
    array = np.asarray(seed) if not isinstance(seed, str) else np.asarray([])
    if array.dtype.kind not in "fiub" or array.size == 0 or not np.isfinite(array.astype(np.float64)).all():
        raise InputError("a seed must be a non-empty numeric array of finite values")
    if array.ndim == len(shape) - 1:
        array = np.broadcast_to(array, (n,) + array.shape)
    if (
        array.ndim != len(shape)
        or len(array) != n
        or any(isinstance(d, int) and d != s for d, s in zip(shape[1:], array.shape[1:]))
    ):
        raise InputError(
            f"the seed has shape {np.shape(seed)}; the explained output has shape {shape} "
            f"(give one seed per sample, or one for all)"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def targets_for(given: np.ndarray | None, n: int, classes: Callable[[], int]) -> np.ndarray:
    """An objective's classes (None: each sample's top class) as int64 ``[n]`` (-1: that sample's
    top class), checked against the model's number of classes (``classes()``, asked only when a
    class is given)."""
    if given is None:
        return np.full(n, -1, np.int64)
    values = _per_sample(given, n, "classes")
    count = classes()
    bad = [int(t) for t in values if not -1 <= t < count]
    if bad:
        raise InputError(f"class {bad[0]} is out of range for a model with {count} classes")
    return values


def values_for(given: np.ndarray | None, n: int, output_shape: tuple) -> np.ndarray:
    """A regression objective's value indices as the graph takes them: the indices themselves for an
    ``[N, K]`` output (its columns), else a one-hot seed over each sample's values."""
    indices = _per_sample(np.zeros((), np.int64) if given is None else given, n, "values")
    sizes = output_shape[1:]
    if not all(isinstance(d, int) for d in sizes):
        raise InputError(
            f"the output's shape {list(output_shape)} is not fixed: "
            "give its value as a seed (a one-hot float array)"
        )
    count = int(np.prod(sizes))
    bad = [int(i) for i in indices if not 0 <= i < count]
    if bad:
        raise InputError(f"value {bad[0]} is out of range for an output of {count} values per sample")
    if len(sizes) == 1:
        return indices
    seeds = np.zeros((n, count), np.float32)
    seeds[np.arange(n), indices] = 1
    return seeds.reshape((n, *sizes))


def _per_sample(given: np.ndarray, n: int, what: str) -> np.ndarray:
    values = np.broadcast_to(given, (n,)) if given.ndim == 0 else given
    if values.shape != (n,):
        raise InputError(
            f"the objective gives {len(values)} {what} for {n} samples: give one, or one per sample"
        )
    return values.astype(np.int64)


def other_inputs(extra_inputs, explained: str) -> dict:
    """The model's other inputs: a dict of arrays, never the explained input or the target."""
    if extra_inputs is None:
        return {}
    if not isinstance(extra_inputs, dict):
        raise InputError(f"extra_inputs must be a dict of arrays, not {type(extra_inputs).__name__}")
    clash = [k for k in extra_inputs if k in (explained, c.TARGET)]
    if clash:
        raise InputError(
            f"extra_inputs cannot set {clash[0]!r}: pass the explained input as x and the class as objective"
        )
    return {k: np.asarray(v) for k, v in extra_inputs.items()}


def check_kinds(plan, kind: str) -> None:
    """Every method asked explains this kind of input, or one line says which do not."""
    wrong = [m for m, opts in plan if kind not in m.kinds]
    if wrong:
        names = ", ".join(f"{m.name} ({_listed(m.kinds)})" for m in wrong)
        raise InputError(f"this model's input is a {kind}; these methods explain other inputs only: {names}")


def _listed(kinds) -> str:
    """``image``, ``image and signal``, ``image, tokens and signal``."""
    kinds = list(kinds)
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"


def check_threshold(value) -> None:
    """A box threshold is a number in (0, 1]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0 < value <= 1
    ):
        raise InputError(f"box_threshold must be a number in (0, 1], not {value!r}")


def layer_shapes(outputs: dict) -> tuple[tuple[int, int, int], ...]:
    """Each target layer's ``(K, h, w)`` as a run gave it (none when it gave no activation)."""
    found, k = [], 0
    while c.layer_output(c.ACTIVATION, k) in outputs:
        found.append(tuple(outputs[c.layer_output(c.ACTIVATION, k)].shape[1:]))
        k += 1
    return tuple(found)
