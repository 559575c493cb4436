"""What a request may ask of the model: its cost in runs, its deadline, and the lane that runs it.

An ``:explain`` request's cost is known once it is read: the model runs (instances) its methods take
beyond the shared run of its photos (:meth:`onnx_xai.Explainer.cost`: SmoothGrad's copies, RISE's
masks, occlusion's patches ...). Over ``--max-runs`` it is refused at once, 400 in one line naming
what asks for the runs; over ``--max-batch`` runs it is a long request, run alone in the long lane
(:mod:`.lanes`) while short ones keep being batched; under, it is batched with the requests that
share its options. Every request gets a deadline: ``--timeout-s``, or the shorter ``timeout_s`` it
asks for, counted from its arrival and checked between runs of the model; a request stopped by it,
by its client leaving or by the server stopping gets 503 in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kserve.errors import InvalidInput

from ..runtime.work import Work
from ..support.errors import DeadlineExceeded, WorkStopped, XaiError
from .limits import Busy

STOPPING = "the server is stopping: the request was not finished (retry on another replica)"
FALLBACK_RUNS = 2000  # --max-runs where a run cannot be timed (a model with other inputs to feed)
TEXT_LENGTH = 128  # tokens of the texts a text encoder's forward is timed on, where its length is free
RUN_COST = 2.0  # a run beyond the shared one, in forwards: a Grad-CAM copy ~1, a gradient's ~4


@dataclass(frozen=True)
class WorkLimits:
    """The server's bounds on a request's work (the ``serve`` command's flags)."""

    max_runs: int
    timeout_s: float
    long_runs: int  # a request costing more runs than this goes to the long lane


def measured_max_runs(ex, timeout_s: float) -> tuple[int, str]:
    """``--max-runs`` when not given: the runs that fit half the deadline at :data:`RUN_COST`
    forwards each, one forward timed on this machine at load (a batch of zeros of the input's
    shape: 8 photos, or 1024 rows; the best of three), two significant digits; and how it was found."""
    import time

    import numpy as np

    from ..runtime.inputs import ONNXRUNTIME_TYPES

    dims = ex.input_shape[1:]
    batch = 1024 if ex.kind == "table" else 8
    if ex.kind == "tokens":  # texts of TEXT_LENGTH tokens, every input (the mask) ones
        length = dims[0] if dims and isinstance(dims[0], int) else TEXT_LENGTH
        types = {name: ONNXRUNTIME_TYPES.get(kind, np.int64) for name, (_, kind) in ex.inputs.items()}
        feeds = {name: np.ones((batch, length), dtype) for name, dtype in types.items()}
    elif all(isinstance(d, int) for d in dims):
        feeds = {ex.input_name: np.zeros((batch, *(int(d) for d in dims)), ex.input_dtype)}
    else:
        return FALLBACK_RUNS, "the input's shape is not fixed: the default"
    timings = []
    try:
        for _ in range(3):  # the best of three: a busy moment at load does not lower the limit
            started = time.perf_counter()
            ex.predict(feeds)
            timings.append(time.perf_counter() - started)
    except XaiError:
        return FALLBACK_RUNS, "a forward could not be timed: the default"
    each = max(min(timings) / batch, 1e-9)
    runs = int(timeout_s / 2 / (RUN_COST * each))
    rounded = max(100, int(float(f"{runs:.2g}")))
    return min(
        rounded, 10**8
    ), f"a forward {each * 1000:.3g} ms an instance, {RUN_COST:g} a run, half of {timeout_s:g} s"


def bind(work: Work, limits: WorkLimits, asked_timeout_s: float | None = None) -> Work:
    """The request's work (the one its connection is watched with, :mod:`.disconnects`) bounded by
    the server's deadline or the shorter one asked, and by ``--max-runs``."""
    timeout = limits.timeout_s if asked_timeout_s is None else min(asked_timeout_s, limits.timeout_s)
    return work.bound(timeout, limits.max_runs, "--max-runs")


def is_long(
    cost: Callable[[tuple], tuple[int, str]],
    shapes: list[tuple],
    limits: WorkLimits,
    fewer: str = "smooth, instances",
) -> bool:
    """Whether instances of ``shapes`` (each a batch of one), whose ``cost`` in model runs (and what
    asks for them) is known per shape, take the long lane; refused (400) over ``--max-runs``, the
    refusal saying what to ask ``fewer`` of."""
    costs = [cost(shape) for shape in dict.fromkeys(shapes)]
    per_shape = {shape: cost for shape, cost in zip(dict.fromkeys(shapes), costs)}
    runs = sum(per_shape[shape][0] for shape in shapes)
    why, count = costs[0][1], len(shapes)
    if runs > limits.max_runs:
        asked = why.replace("on 1 sample", f"on {count} instance{'s' if count != 1 else ''}")
        raise InvalidInput(
            f"{asked}: {runs} model runs; at most {limits.max_runs} (--max-runs): ask for fewer "
            f"({fewer}) or methods that run the model less"
        )
    return runs > limits.long_runs


def refusal(exc: WorkStopped) -> Busy:
    """The 503 a request stopped before its end gets, in one line."""
    if isinstance(exc, DeadlineExceeded):
        return Busy(f"{exc} (--timeout-s, or the request's timeout_s)")
    return Busy(str(exc))
