"""Requests that arrive together answered from one run of the model, in stages that never overlap.

A request hands :meth:`Batcher.submit` its ``read()``: decoding its photos into the model's input,
which gives the run key (the work asked and the instances' shape: only alike requests share a run),
the instances, and whatever the request needs back. Work goes in stages, each with every core: a
wave of reads (the readers' threads, all requests that arrived so far, in parallel), then runs (one
thread that runs the model, which uses every core; each run takes one key's requests, at most
``max_batch`` instances, and may encode its pictures in the readers' threads), then the next wave.
Requests that arrive during a run wait, unread, for it to end: on a few cores a read beside a run
slows every thread of the run to the pace of the one it preempts (measured on 2 cores: Grad-CAM on
a batch of 14 took 2.3 times as long beside two threads decoding photos). A request that finds
nothing to wait for is read at once (others that arrive during the read join it), or after
``max_latency`` seconds spent waiting for companions; when the batcher is :attr:`~Batcher.quiet`
(no load) and no wait is asked, it is read and run in the run thread in one go. Each
request gets back its own slice of the results, in order. A read that fails fails its own request
only; when a shared run fails (one request's objective has no answer), each request of it is run on
its own, so that only the one at fault gets the error. A read whose key starts with :data:`LONG`
(a request that runs the model many times) is not batched: it goes to ``run_long`` (the long lane,
:mod:`.lanes`), and the stages go on without it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

Read = Callable[[], tuple[tuple, list, Any]]  # () -> (key, items, context)
RunLong = Callable[[tuple, list, Any], Awaitable[list]]  # (key, items, context) -> results
LONG = "long"  # the first element of the key of a read that goes to the long lane


class Batcher:
    """See the module docstring; ``run(key, items) -> results`` (one result per item), reads in
    ``readers``."""

    def __init__(
        self,
        run: Callable[[tuple, list], list],
        readers: Executor,
        max_batch: int,
        max_latency: float,
        run_long: RunLong | None = None,
    ):
        self._run, self._readers, self._run_long = run, readers, run_long
        self.max_batch, self.max_latency = max_batch, max_latency
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-xai-run")
        self._arrived: list[tuple[Read, asyncio.Future]] = []
        self._reading = 0
        self._ready: dict[tuple, list[tuple[list, Any, asyncio.Future]]] = {}
        self._running: asyncio.Future | None = None
        self._waiting: asyncio.TimerHandle | None = None
        self._shared = self._crowded = False  # the run in flight, the last run: had company

    @property
    def quiet(self) -> bool:
        """Nothing read, run or waiting, and the last run had no company (it ran one request, and
        none arrived during it): a request now is most likely alone. Under load, the first request
        after a run finds nothing in flight too, but then others follow within a read's time."""
        idle = not (self._running or self._reading or self._arrived or self._ready or self._waiting)
        return idle and not self._crowded

    async def submit(self, read: Read) -> tuple[list, Any]:
        """``read()``'s items run with the requests that share its key; their results, in order, and
        the read's context. A request that finds the batcher quiet, with no wait asked, is read and
        run in the run thread in one go (one hop between threads, not three)."""
        if self.quiet and self.max_latency <= 0:
            return await self._alone(read)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._arrived.append((read, future))
        if self._running is None and self._waiting is None:
            if self.max_latency > 0 and not self._reading:
                self._waiting = asyncio.get_running_loop().call_later(self.max_latency, self._waited)
            else:
                self._read_arrived()
        return await future

    async def _alone(self, read: Read) -> tuple[list, Any]:
        """A run of its own, reading included; requests that arrive meanwhile wait for it, as behind
        any run."""

        def read_and_run() -> tuple[list | None, Any]:
            key, items, context = read()
            if key[0] == LONG:
                return None, (key, items, context)
            return self._run(key, items), context

        self._shared = False
        self._running = asyncio.ensure_future(
            asyncio.get_running_loop().run_in_executor(self._pool, read_and_run)
        )
        self._running.add_done_callback(self._ran)
        results, context = await self._running
        if results is None:  # read here, run in the long lane
            key, items, context = context
            return await self._long(key, items, context)
        return results, context

    async def _long(self, key: tuple, items: list, context) -> tuple[list, Any]:
        if self._run_long is None:
            raise RuntimeError("a long request, and no long lane to run it")
        return await self._run_long(key, items, context), context

    def _waited(self) -> None:
        self._waiting = None
        self._read_arrived()

    def _read_arrived(self) -> None:
        """A wave of reads: every request that arrived, in the readers' threads."""
        arrived, self._arrived = self._arrived, []
        loop = asyncio.get_running_loop()
        for read, future in arrived:
            self._reading += 1
            reading = loop.run_in_executor(self._readers, read)
            reading.add_done_callback(functools.partial(self._read, future))

    def _read(self, future: asyncio.Future, done: asyncio.Future) -> None:
        self._reading -= 1
        if done.exception() is not None:
            _settle(future, error=done.exception())
        else:
            key, items, context = done.result()
            if key[0] == LONG:
                asyncio.ensure_future(self._settle_long(future, key, items, context))
            else:
                self._ready.setdefault(key, []).append((items, context, future))
        self._next()

    async def _settle_long(self, future: asyncio.Future, key: tuple, items: list, context) -> None:
        try:
            _settle(future, await self._long(key, items, context))
        except Exception as exc:  # noqa: BLE001 - handed to the request, never lost
            _settle(future, error=exc)

    def _ran(self, _done=None) -> None:
        self._running = None
        self._crowded = self._shared or bool(self._arrived or self._ready)
        self._next()

    def _next(self) -> None:
        """The next stage, once the one in flight has ended: the requests that arrived during a run
        are read, and once every read is done, one key's requests are run."""
        if self._running is not None or self._reading or self._waiting is not None:
            return
        if self._arrived:
            self._read_arrived()
        elif self._ready:
            key = next(iter(self._ready))
            queue, taken, size = self._ready[key], 0, 0
            while taken < len(queue) and (taken == 0 or size + len(queue[taken][0]) <= self.max_batch):
                size += len(queue[taken][0])
                taken += 1
            batch, self._ready[key] = queue[:taken], queue[taken:]
            if not self._ready[key]:
                del self._ready[key]
            self._shared = len(batch) > 1
            self._running = asyncio.ensure_future(self._execute(key, batch))
            self._running.add_done_callback(self._ran)

    async def _execute(self, key: tuple, batch: list) -> None:
        loop = asyncio.get_running_loop()
        items = [item for waiting, _, _ in batch for item in waiting]
        try:
            results = await loop.run_in_executor(self._pool, self._run, key, items)
        except Exception as exc:  # noqa: BLE001 - handed to the requests, never lost
            if len(batch) == 1:
                _settle(batch[0][2], error=exc)
                return
            for one in batch:  # alone, so that only the request at fault fails
                await self._execute(key, [one])
            return
        start = 0
        for waiting, context, future in batch:
            _settle(future, (results[start : start + len(waiting)], context))
            start += len(waiting)


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
