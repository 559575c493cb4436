"""Work bounded by its caller: a deadline, cancellation from any thread, a limit on model runs.

A :class:`Work` is made by whoever asks for an explanation (the server makes one per request from
``--timeout-s`` and ``--max-runs``; a library user may pass one to ``Explainer.explain``) and is made
current for the thread that runs it (:meth:`Work.active`). Every run of a model goes through
:func:`checkpoint` first (the backends' ``Session.run``), so work stops between two runs, never in
the middle of one: methods run their copies in chunks, a chunk is one run, so a cancelled or late
request stops within one chunk's time. Before its first extra run, an explanation states its cost in
model runs (instances: one copy of one sample is one run), which :meth:`Work.admit` refuses above
``max_runs`` before anything ran; the cost is said on the ``onnx_xai.progress`` logger when large.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

from ..support.errors import DeadlineExceeded, TooMuchWork, WorkStopped
from ..support.progress import stage
from ..support.signals import raise_if_lost

LARGE = 1000  # runs beyond which a cost is said before the work starts

_CURRENT: ContextVar[Work | None] = ContextVar("onnx_xai_work", default=None)


class Work:
    """The bounds of one piece of work (module docstring).

    Args:
        timeout_s: seconds from now after which the work stops at its next run (None: no deadline).
        max_runs: the most model runs (instances) an explanation may cost (None: any).
        limit_name: how the caller names ``max_runs`` in the refusal (``--max-runs``).
    """

    def __init__(
        self, timeout_s: float | None = None, max_runs: int | None = None, limit_name: str = "max_runs"
    ):
        self.timeout_s, self.max_runs, self.limit_name = timeout_s, max_runs, limit_name
        self.started = time.monotonic()
        self.deadline = None if timeout_s is None else self.started + timeout_s
        self.runs = 0  # instances run so far
        self._stopped: str | None = None
        self._lock = threading.Lock()

    def bound(
        self, timeout_s: float | None = None, max_runs: int | None = None, limit_name: str = "max_runs"
    ) -> Work:
        """Give work made earlier (by whoever watches its client) its deadline, counted from when it
        was made, and its limit on runs; itself."""
        self.timeout_s, self.max_runs, self.limit_name = timeout_s, max_runs, limit_name
        self.deadline = None if timeout_s is None else self.started + timeout_s
        return self

    def cancel(self, reason: str = "the work was cancelled") -> None:
        """Stop the work at its next run (from any thread); ``reason`` is the error's message."""
        self._stopped = reason

    @property
    def cancelled(self) -> bool:
        return self._stopped is not None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise :class:`~onnx_xai.support.errors.WorkStopped` if the work was cancelled or is late."""
        if self._stopped is not None:
            raise WorkStopped(self._stopped)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded(f"the work ran past its deadline of {self.timeout_s:g} s")

    def admit(self, runs: int, what: str) -> None:
        """Refuse ``runs`` more model runs over ``max_runs`` (``what`` says where they come from);
        say a large cost on the progress logger."""
        if self.max_runs is not None and runs > self.max_runs:
            raise TooMuchWork(f"{what}: {runs} model runs; at most {self.max_runs} ({self.limit_name})")
        if runs >= LARGE:
            stage(f"{what}: {runs} model runs")

    def ran(self, instances: int) -> None:
        with self._lock:
            self.runs += instances

    @contextlib.contextmanager
    def active(self) -> Iterator[Work]:
        """This work is the current thread's for the block: its runs are checked and counted."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


def current() -> Work | None:
    """The work active in this thread, if any."""
    return _CURRENT.get()


def checkpoint(instances: int = 1) -> None:
    """Before a run of ``instances``: a signal Python dropped raised again
    (:func:`~onnx_xai.support.signals.raise_if_lost`), the active work's bounds checked and the run
    counted."""
    raise_if_lost()
    work = _CURRENT.get()
    if work is not None:
        work.check()
        work.ran(instances)
