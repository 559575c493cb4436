"""The server's batcher on its own: requests that arrive during a run wait unread and share the next
run, each gets its own slice back in order, reads never overlap a run, ``max_batch`` splits a queue,
keys never share a run, a failing read or shared run fails only the request at fault, a request run
that finds the batcher quiet is read and run alone in the run thread and holds the others back (the
batcher is quiet again after a run without company), and an idle batcher waits ``max_latency`` for
companions."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from onnx_xai.serve.batching import Batcher


class Recorder:
    """A run that answers ``item * 10`` per item, records each batch and when it ran, can be held at
    its start, and fails on a negative item; reads that record when they ran."""

    def __init__(self):
        self.batches: list[tuple[tuple, list]] = []
        self.spans: list[tuple[str, float, float]] = []  # ("read" | "run", start, end)
        self.gate = threading.Event()
        self.gate.set()
        self.threads: set[str] = set()
        self.read_threads: list[str] = []

    def __call__(self, key: tuple, items: list) -> list:
        self.gate.wait(10)
        start = time.perf_counter()
        self.threads.add(threading.current_thread().name)
        self.batches.append((key, list(items)))
        time.sleep(0.002)
        self.spans.append(("run", start, time.perf_counter()))
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [item * 10 for item in items]

    def reader(self, key: tuple, items: list, fail: bool = False):
        def read():
            start = time.perf_counter()
            self.read_threads.append(threading.current_thread().name)
            time.sleep(0.001)
            self.spans.append(("read", start, time.perf_counter()))
            if fail:
                raise ValueError("unreadable")
            return key, items, f"context of {items}"

        return read


def _batcher(run: Recorder, max_batch: int = 64, max_latency: float = 0.0) -> Batcher:
    return Batcher(run, ThreadPoolExecutor(2), max_batch=max_batch, max_latency=max_latency)


async def _started(batcher: Batcher, read) -> asyncio.Task:
    """A submit that has reached the batcher (read, run, or waiting)."""
    task = asyncio.ensure_future(batcher.submit(read))
    await asyncio.sleep(0.02)
    return task


def test_requests_that_arrive_during_a_run_wait_unread_and_share_the_next():
    async def scenario():
        run = Recorder()
        batcher = _batcher(run)
        run.gate.clear()  # the first run holds until the others have arrived
        first = await _started(batcher, run.reader(("k",), [1]))
        later = [
            await _started(batcher, run.reader(("k",), [10 * k + j for j in range(k)])) for k in range(1, 5)
        ]
        reads_during_the_run = sum(kind == "read" for kind, _, _ in run.spans)
        run.gate.set()
        return run, reads_during_the_run, await asyncio.gather(first, *later)

    run, reads_during_the_run, answers = asyncio.run(scenario())
    assert reads_during_the_run == 1  # the first request's own
    assert [len(items) for _, items in run.batches] == [1, 1 + 2 + 3 + 4]  # two runs for five requests
    assert answers[0] == ([10], "context of [1]")
    for k, (results, context) in enumerate(answers[1:], start=1):
        items = [10 * k + j for j in range(k)]
        assert results == [item * 10 for item in items] and context == f"context of {items}"


def test_reads_never_overlap_a_run_under_load():
    async def client(batcher, run, k, rng):
        answers = []
        for n in range(6):
            await asyncio.sleep(rng.uniform(0, 0.004))
            items = [100 * k + n]
            answers.append(await batcher.submit(run.reader(("k",), items)))
        return answers

    async def scenario():
        run = Recorder()
        batcher = _batcher(run, max_batch=8)
        rng = random.Random(0)
        return run, await asyncio.gather(*(client(batcher, run, k, rng) for k in range(12)))

    run, answers = asyncio.run(scenario())
    for k, mine in enumerate(answers):
        assert [results for results, _ in mine] == [[(100 * k + n) * 10] for n in range(6)]
    runs = [(a, b) for kind, a, b in run.spans if kind == "run"]
    reads = [(a, b) for kind, a, b in run.spans if kind == "read"]
    assert len(reads) == 72 and len(runs) < 72  # requests shared runs
    assert all(len(items) <= 8 for _, items in run.batches)
    assert not [(r, s) for r in reads for s in runs if r[0] < s[1] and s[0] < r[1]]


def test_max_batch_splits_a_queue_and_different_keys_never_share_a_run():
    async def scenario():
        run = Recorder()
        batcher = _batcher(run, max_batch=4)
        run.gate.clear()
        tasks = [await _started(batcher, run.reader(("a",), [0]))]
        tasks += [await _started(batcher, run.reader(("a",), [k])) for k in range(1, 7)]
        tasks += [await _started(batcher, run.reader(("b",), [100]))]
        run.gate.set()
        return run, await asyncio.gather(*tasks)

    run, answers = asyncio.run(scenario())
    assert [results for results, _ in answers] == [[k * 10] for k in range(7)] + [[1000]]
    assert [(key, len(items)) for key, items in run.batches] == [
        (("a",), 1), (("a",), 4), (("a",), 2), (("b",), 1)
    ]  # fmt: skip


def test_a_failing_read_or_shared_run_fails_only_the_request_at_fault():
    async def scenario():
        run = Recorder()
        batcher = _batcher(run)
        run.gate.clear()
        first = await _started(batcher, run.reader(("k",), [1]))
        good, bad, other = [
            await _started(batcher, run.reader(("k",), items)) for items in ([2, 3], [-1], [4])
        ]
        unreadable = await _started(batcher, run.reader(("k",), [5], fail=True))
        run.gate.set()
        return await asyncio.gather(first, good, bad, other, unreadable, return_exceptions=True)

    first, good, bad, other, unreadable = asyncio.run(scenario())
    assert [first[0], good[0], other[0]] == [[10], [20, 30], [40]]
    assert isinstance(bad, ValueError) and "[-1]" in str(bad)
    assert isinstance(unreadable, ValueError) and str(unreadable) == "unreadable"


def test_a_request_that_finds_the_batcher_quiet_is_read_and_run_alone_in_the_run_thread():
    async def scenario():
        run = Recorder()
        batcher = _batcher(run)
        assert batcher.quiet
        run.gate.clear()
        lone = await _started(batcher, run.reader(("k",), [1]))
        assert not batcher.quiet
        queued = [await _started(batcher, run.reader(("k",), [k])) for k in range(3)]
        assert [kind for kind, _, _ in run.spans] == ["read"]  # nothing read beside the lone run
        run.gate.set()
        answers = await asyncio.gather(lone, *queued)
        await asyncio.sleep(0.01)  # the run's end is seen after its requests are answered
        after_company = batcher.quiet
        await batcher.submit(run.reader(("k",), [7]))  # read with the others' readers, run alone
        await asyncio.sleep(0.01)
        after_one = batcher.quiet
        assert await batcher.submit(run.reader(("k",), [8])) == ([80], "context of [8]")
        return run, answers, after_company, after_one

    run, answers, after_company, after_one = asyncio.run(scenario())
    assert [results for results, _ in answers] == [[10], [0], [10], [20]]
    assert [len(items) for _, items in run.batches] == [1, 3, 1, 1]
    in_the_run_thread = [name.startswith("onnx-xai-run") for name in run.read_threads]
    assert in_the_run_thread == [True, False, False, False, False, True]
    assert not after_company and after_one  # quiet again once a run had no company


def test_an_idle_batcher_waits_at_most_the_latency_for_companions():
    latency = 0.05

    async def scenario():
        run = Recorder()
        batcher = _batcher(run, max_latency=latency)
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = asyncio.ensure_future(batcher.submit(run.reader(("k",), [0])))
        await asyncio.sleep(latency / 5)
        others = [asyncio.ensure_future(batcher.submit(run.reader(("k",), [k]))) for k in (1, 2)]
        answers = await asyncio.gather(first, *others)
        return run, answers, loop.time() - start

    run, answers, waited = asyncio.run(scenario())
    assert [results for results, _ in answers] == [[0], [10], [20]]
    assert [len(items) for _, items in run.batches] == [3]
    assert latency * 0.9 <= waited < latency + 5
