"""The long lane: requests that run the model many times, one at a time, at the lowest CPU priority.

A request whose methods cost more than a few runs (SmoothGrad, RISE, occlusion ...) would hold the
batcher's run thread for seconds or minutes, and every ``:predict`` would wait behind it. Such
requests run here instead, in a thread of their own whose scheduling priority is the lowest
(``nice`` 19), on an :class:`~onnx_xai.runtime.Explainer` made in that thread, so that its runtime's
worker threads inherit the priority: when short requests need the cores, the kernel gives them the
cores; when none do, the long request has every core. Measured on 2 cores (onnxruntime, bundled
EfficientNet-Lite0): a forward beside a niced loop of batch-16 forwards kept its idle p50 and p99
(6.3 / 10.2 ms against 7.1 / 10.1), beside the same loop at normal priority it doubled (11.6 / 20.5).
The lane's Explainer is a second copy of the model, made on the first long request.

Each request comes with its :class:`~onnx_xai.runtime.work.Work`: it is checked when the request's
turn comes (a client that left, a deadline passed while it waited) and before every run of the
model, so a cancelled request stops within one chunk. :meth:`LongLane.stop` cancels what waits and
what runs.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..runtime.work import Work

LOWEST = 19  # the nice value of the lane's threads


class LongLane:
    """See the module docstring; ``make()`` makes the lane's Explainer (in the lane's thread)."""

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._works: set[Work] = set()  # waiting or running
        self._stopped: str | None = None

    async def run(self, job: Callable[[Any], Any], work: Work) -> Any:
        """``job(explainer)`` in the lane, under ``work``; its result, or its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._lock:
            if self._stopped is not None:
                work.cancel(self._stopped)
            self._works.add(work)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="onnx-xai-long", daemon=True)
                self._thread.start()
        self._queue.put((job, work, loop, future))
        try:
            return await future
        finally:
            with self._lock:
                self._works.discard(work)

    def stop(self, reason: str) -> None:
        """Cancel every request waiting or running with ``reason``; later ones are cancelled too."""
        with self._lock:
            self._stopped = reason
            for work in self._works:
                work.cancel(reason)

    @property
    def busy(self) -> int:
        """Requests waiting or running."""
        return len(self._works)

    def _serve(self) -> None:
        _lower_priority()
        explainer = None
        while True:
            job, work, loop, future = self._queue.get()
            try:
                work.check()  # cancelled, or late, while it waited
                if explainer is None:
                    explainer = self._make()
                with work.active():
                    result = job(explainer)
            except BaseException as exc:  # noqa: BLE001 - handed to the request, never lost
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _lower_priority() -> None:
    """This thread (and the threads it starts) at the lowest priority, where the system allows."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST)
    except (OSError, AttributeError):  # not Linux, or not allowed: the lane runs at normal priority
        pass


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
