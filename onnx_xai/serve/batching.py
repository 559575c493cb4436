"""Requests that arrive together answered from one run of the model.

Each request hands its instances to :meth:`Batcher.submit` under a key (the work asked and the
instances' shape: only alike requests share a run). Runs happen in a worker thread, one at a time (a
run already uses every core). While a run is in flight, requests queue up, and when it ends every
queue is run (under load, the requests that arrived meanwhile share one run); a queue that holds
``max_batch`` instances is handed over at once. A request that finds the runner idle waits at most
``max_latency`` seconds for companions (0, the default: it runs at once, so an unloaded server adds
no wait; :meth:`Batcher.alone` runs such a request's whole work, its reading included, in the run
thread). Each request gets back its own slice of the results, in order. When a shared run fails
(one request's objective has no answer), each request of it is run on its own, so that only the one
at fault gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Batcher:
    """See the module docstring; ``run(key, items) -> results`` (one result per item)."""

    def __init__(self, run: Callable[[tuple, list], list], max_batch: int, max_latency: float):
        self._run, self.max_batch, self.max_latency = run, max_batch, max_latency
        self._queues: dict[tuple, list] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-xai-run")
        self._running: set[asyncio.Future] = set()

    @property
    def idle(self) -> bool:
        """Nothing running, nothing queued: a request now has no companions to share a run with."""
        return not self._running and not self._queues

    async def alone(self, work: Callable[[], T]) -> T:
        """``work()`` in the run thread as a run of its own (a request that found the runner idle:
        read and run there in one go, without the hops between threads); requests that arrive
        meanwhile queue up and go next, as behind any run."""
        task = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(self._pool, work))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(self._flush_all)
        return await task

    async def submit(self, key: tuple, items: list) -> list:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        queue = self._queues.setdefault(key, [])
        queue.append((items, future))
        full = sum(len(waiting) for waiting, _ in queue) >= self.max_batch
        if full or (not self._running and self.max_latency <= 0):
            self._flush(key, queue)
        elif not self._running and len(queue) == 1:
            loop.call_later(self.max_latency, self._flush, key, queue)
        return await future

    def _flush_all(self, _task=None) -> None:
        """A run ended: what queued up meanwhile goes next."""
        for key, queue in list(self._queues.items()):
            self._flush(key, queue)

    def _flush(self, key: tuple, queue: list) -> None:
        if self._queues.get(key) is not queue:
            return  # already run
        del self._queues[key]
        task = asyncio.ensure_future(self._execute(key, queue))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(self._flush_all)

    async def _execute(self, key: tuple, queue: list) -> None:
        loop = asyncio.get_running_loop()
        items = [item for waiting, _ in queue for item in waiting]
        try:
            results = await loop.run_in_executor(self._pool, self._run, key, items)
        except Exception as exc:  # noqa: BLE001 - handed to the requests, never lost
            if len(queue) == 1:
                _settle(queue[0][1], error=exc)
                return
            for waiting, future in queue:  # alone, so that only the request at fault fails
                await self._execute(key, [(waiting, future)])
            return
        start = 0
        for waiting, future in queue:
            _settle(future, results[start : start + len(waiting)])
            start += len(waiting)

    async def drain(self) -> None:
        """Run what is queued and wait for every run in flight (before the server stops)."""
        for key, queue in list(self._queues.items()):
            self._flush(key, queue)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
