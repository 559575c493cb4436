"""Copies per run for the batched methods, found at first use on this machine and kept per Explainer.

When a call gives neither ``batch_size`` nor ``max_batch_bytes``, SmoothGrad, integrated gradients,
GradientSHAP and DeepLIFT-SHAP take their chunks at sizes that explore a ladder: it starts at the
usual size (:func:`~.base.chunk_size`), doubles while the cost per copy falls by a clear margin
(:data:`GAIN`: memory grows only for a real gain), halves instead if the first doubling is clearly
worse, and never passes :func:`cap`. Every chunk of the exploration is real work of the call (no
extra run); a call too short to finish it leaves it where it stopped, and the next call of the same
key goes on from there (a key whose calls all have fewer copies than the size to measure stays
exploring, each call's copies then in one chunk under the cap). The size found is kept by
:data:`Key` (the graph the copies run, one sample's shape and dtype) in the Explainer's
:class:`RunSizes`, shown by ``Explainer.copies_per_run`` and said once on the ``onnx_xai.progress``
logger.

A chunk's time is the time its consumer held it (from the generator's ``yield`` to its resumption:
the run, the accumulation, and the drawing of the next chunk's noise), divided by its copies. The
first chunk of each size is not trusted (arena growth, first-touch pages: ResNet-50's first gradient
run at batch 4 and 8 took 1.08-1.12x the median of the next five, 2 cores); a size is judged on the
least of :data:`TRUSTED` later chunks (noise on a shared machine only adds time, so the least is the
estimate nearest the true cost), and wins only by :data:`GAIN`. Measured (``tools/bench_run_sizes.py
--explore 5``, 2 cores shared with other work): 10 fresh stores of 10 chose 6 for SmoothGrad-50 of
ResNet-50 and EfficientNet-Lite0, where 12 was within 2 % (and 3 to 50 % worse when tried).
Simulated with 10 % log-normal noise on every chunk and one chunk in ten 1.6x slower (the model of
``tests/runtime/test_run_sizes.py``, 1,000 explorations): on ResNet-50's flat curve 99 % choose 4 or
8, the cheapest within 1 % (0.7 %: 16); on a curve falling to 32 (a GPU's), 96 % choose 32.

The cap: on 2 cores, ResNet-50's input gradients cost 93-105 ms per copy at any batch from 4 to 64,
while the peak memory (VmHWM, ``tools/bench_run_sizes.py --peak``) grows from 995 MB at batch 4 to
1,478 MB at 16, 2,165 MB at 32 and 4,635 MB at 64 (EfficientNet-Lite0: 325, 763, 1,300 MB at 4,
16, 32); so at most 32 copies of a 224 x 224 image, fewer of bigger ones, never more than
:data:`~.base.MOST_COPIES`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from ...support.progress import stage

GAIN = 0.9  # a size wins only at <= 90 % of the other's cost per copy
TRUSTED = 2  # chunks a size is judged on, after its first
CAP_BYTES = 32 * 3 * 224 * 224 * 4  # input bytes a tuned chunk may hold: 32 images of 224 x 224
Key = tuple[str, tuple[int, ...], str]  # the graph the copies run, one sample's shape, its dtype
T = TypeVar("T", bound=tuple)


def cap(start: int, sample_bytes: int, most: int) -> int:
    """The largest size a ladder tries: at most ``most`` copies and :data:`CAP_BYTES` of input, and
    never less than where it starts."""
    return max(start, min(most, CAP_BYTES // max(1, sample_bytes)))


@dataclass(frozen=True)
class Choice:
    """What was found for one key: ``size`` (None while exploring) and the least ms per copy measured
    at each size tried (DeepLIFT-SHAP's sizes and costs are of pairs: an input and a reference)."""

    size: int | None
    ms_per_copy: Mapping[int, float]


@dataclass
class Ladder:
    """The exploration of one key (module docstring); :meth:`next` the size of the next chunk,
    :meth:`took` a chunk's time. Thread-safe: calls of one Explainer may run at once."""

    start: int
    cap: int
    name: str = ""
    size: int = 0  # the size measured now (the chosen one once found)
    chosen: int | None = None
    times: dict[int, list[float]] = field(default_factory=dict)  # trusted ms per copy, by size
    _previous: int = 0  # the size the current one is compared with (0: none yet)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.size = self.start
        if self.start >= self.cap:
            self.chosen = self.start

    def next(self) -> int:
        with self._lock:
            return self.size

    def took(self, size: int, seconds: float) -> None:
        """A chunk of ``size`` copies held its consumer ``seconds``; only full chunks of the size being
        measured count, and a size's first chunk is warm-up."""
        with self._lock:
            if self.chosen is not None or size != self.size:
                return
            if size not in self.times:
                self.times[size] = []  # the warm-up chunk: not trusted
                return
            self.times[size].append(1000 * seconds / size)
            if len(self.times[size]) >= TRUSTED:
                self._judge()

    def cost(self, size: int) -> float:
        return min(self.times[size])

    def _judge(self) -> None:
        size, previous = self.size, self._previous
        if not previous:
            self._move(min(2 * size, self.cap), size)
        elif self.cost(size) <= GAIN * self.cost(previous):
            self._move(min(2 * size, self.cap) if size > previous else max(1, size // 2), size)
        elif size > previous and previous == self.start and GAIN * self.cost(size) > self.cost(previous):
            self._move(max(1, previous // 2), previous)  # the first doubling is clearly worse
        else:
            self._found(previous)

    def _move(self, size: int, better: int) -> None:
        """Measure ``size`` next against ``better``, the best so far; if it was tried (or is the cap,
        or 1), ``better`` is found."""
        if size == better or size in self.times:
            self._found(better)
        else:
            self._previous, self.size = better, size

    def _found(self, size: int) -> None:
        self.chosen = self.size = size
        tried = ", ".join(f"{s}: {self.cost(s):.1f}" for s in sorted(self.times) if self.times[s])
        stage(f"{self.name}: {size} copies per run (ms per copy by size: {tried})")

    def choice(self) -> Choice:
        with self._lock:
            measured = {s: self.cost(s) for s in sorted(self.times) if self.times[s]}
            return Choice(self.chosen, MappingProxyType(measured))


class RunSizes:
    """The ladders of one Explainer, by :data:`Key`; a read-only view with :meth:`view`."""

    def __init__(self) -> None:
        self._ladders: dict[Key, Ladder] = {}
        self._lock = threading.Lock()

    def ladder(self, key: Key, start: int, most: int) -> Ladder:
        """The ladder of ``key``, made at its first use (starting at ``start``, capped at ``most``)."""
        with self._lock:
            if key not in self._ladders:
                name = f"{key[0]} on {'x'.join(map(str, key[1]))} {key[2]}"
                self._ladders[key] = Ladder(start, most, name)
            return self._ladders[key]

    def view(self) -> Mapping[Key, Choice]:
        """Each key's :class:`Choice` now."""
        with self._lock:
            ladders = dict(self._ladders)
        return MappingProxyType({key: ladder.choice() for key, ladder in ladders.items()})


PerRun = int | Ladder  # copies per run: fixed, or explored


def size_of(per_run: PerRun) -> int:
    """The size of the next chunk."""
    return per_run if isinstance(per_run, int) else per_run.next()


def timed(items: Iterator[T], per_run: PerRun, clock=time.perf_counter) -> Iterator[T]:
    """``items`` (chunks whose first element has one row per copy) passed on, each timed as the time
    its consumer held it and told to ``per_run`` when it is a :class:`Ladder`."""
    if isinstance(per_run, int):
        yield from items
        return
    for item in items:
        started = clock()
        yield item
        per_run.took(len(item[0]), clock() - started)
