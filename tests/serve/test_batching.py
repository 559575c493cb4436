"""The server's batcher on its own: requests that arrive during a run share the next, each gets its
own slice back in order, a full queue goes at once, a failing shared run fails only the request at
fault, and a request run alone holds the others back until it ends."""

from __future__ import annotations

import asyncio
import threading

from onnx_xai.serve.batching import Batcher


class Recorder:
    """A run that answers ``item * 10`` per item, records each batch, can be held at its start, and
    fails on a negative item."""

    def __init__(self):
        self.batches: list[tuple[tuple, list]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.threads: set[str] = set()

    def __call__(self, key: tuple, items: list) -> list:
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.batches.append((key, list(items)))
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [item * 10 for item in items]


async def _started(batcher: Batcher, key: tuple, items: list) -> asyncio.Task:
    """A submit that has reached the batcher's queue (or its run)."""
    task = asyncio.ensure_future(batcher.submit(key, items))
    await asyncio.sleep(0.01)
    return task


def test_requests_that_arrive_during_a_run_share_the_next_and_get_their_own_slices():
    async def scenario():
        run = Recorder()
        batcher = Batcher(run, max_batch=64, max_latency=0.0)
        run.gate.clear()  # the first run holds until the others have queued
        first = await _started(batcher, ("k",), [1])
        later = [await _started(batcher, ("k",), [10 * k + j for j in range(k)]) for k in range(1, 5)]
        run.gate.set()
        answers = await asyncio.gather(first, *later)
        return run, answers

    run, answers = asyncio.run(scenario())
    assert [len(items) for _, items in run.batches] == [1, 1 + 2 + 3 + 4]  # two runs for five requests
    assert answers[0] == [10]
    for k, answer in enumerate(answers[1:], start=1):
        assert answer == [(10 * k + j) * 10 for j in range(k)]


def test_a_full_queue_goes_at_once_and_different_keys_never_share_a_run():
    async def scenario():
        run = Recorder()
        batcher = Batcher(run, max_batch=4, max_latency=0.0)
        run.gate.clear()
        tasks = [await _started(batcher, ("a",), [0])]
        tasks += [await _started(batcher, ("a",), [k]) for k in range(1, 7)]
        tasks += [await _started(batcher, ("b",), [100])]
        run.gate.set()
        return run, await asyncio.gather(*tasks)

    run, answers = asyncio.run(scenario())
    assert answers == [[k * 10] for k in range(7)] + [[1000]]
    assert sorted((key, len(items)) for key, items in run.batches) == [
        (("a",), 1), (("a",), 2), (("a",), 4), (("b",), 1)
    ]  # fmt: skip
    assert all(len(items) <= 4 for _, items in run.batches)


def test_a_failing_shared_run_fails_only_the_request_at_fault():
    async def scenario():
        run = Recorder()
        batcher = Batcher(run, max_batch=64, max_latency=0.0)
        run.gate.clear()
        first = await _started(batcher, ("k",), [1])
        good, bad, other = [await _started(batcher, ("k",), items) for items in ([2, 3], [-1], [4])]
        run.gate.set()
        return await asyncio.gather(first, good, bad, other, return_exceptions=True)

    first, good, bad, other = asyncio.run(scenario())
    assert (first, good, other) == ([10], [20, 30], [40])
    assert isinstance(bad, ValueError) and "[-1]" in str(bad)


def test_a_request_run_alone_runs_in_the_run_thread_and_holds_the_others_back():
    async def scenario():
        run = Recorder()
        batcher = Batcher(run, max_batch=64, max_latency=0.0)
        assert batcher.idle
        hold = threading.Event()

        def work() -> str:
            hold.wait(10)
            return threading.current_thread().name

        alone = asyncio.ensure_future(batcher.alone(work))
        await asyncio.sleep(0.01)
        assert not batcher.idle
        queued = [await _started(batcher, ("k",), [k]) for k in range(3)]
        assert run.batches == []  # nothing runs beside the lone request
        hold.set()
        name = await alone
        answers = await asyncio.gather(*queued)
        return run, name, answers, batcher.idle

    run, name, answers, idle = asyncio.run(scenario())
    assert answers == [[0], [10], [20]] and [len(items) for _, items in run.batches] == [3]
    assert run.threads == {name} and name.startswith("onnx-xai-run")
    assert idle


def test_an_idle_runner_waits_at_most_the_latency_for_companions():
    latency = 0.05

    async def scenario():
        run = Recorder()
        batcher = Batcher(run, max_batch=64, max_latency=latency)
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = [asyncio.ensure_future(batcher.submit(("k",), [k])) for k in range(3)]
        answers = await asyncio.gather(*tasks)
        return run, answers, loop.time() - start

    run, answers, waited = asyncio.run(scenario())
    assert answers == [[0], [10], [20]] and [len(items) for _, items in run.batches] == [3]
    assert latency * 0.9 <= waited < latency + 5
