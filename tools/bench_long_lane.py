"""``:predict`` latency at one client beside a long request, with the long lane and without it.

The server (a subprocess on loopback, the bundled EfficientNet-Lite0, default flags) answers
``:predict`` from one client, ``--requests`` requests in a row: idle, then while an ``:explain`` of
SmoothGrad with ``--copies`` noisy copies of Grad-CAM (a request of that many model runs, within the
default ``--max-runs``) is in flight. Rounds alternate the two, each round's idle latency measured
right before its busy one (the machine's speed drifts); printed: p50 and p99 of each, their ratio
(busy over idle), the medians over rounds. Then, once, the same server with ``--max-batch`` as large
as the copies, so that the long request is not long and runs in the batcher's run thread as every
request did before the long lane: the latency of the ``:predict`` sent a second into it.

    python tools/bench_long_lane.py [--rounds 3] [--requests 200] [--copies 1900]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.serve.server import PHOTOS, Served, photo  # noqa: E402


def latencies(server: Served, requests: int) -> list[float]:
    body = [photo(PHOTOS[0])]
    found = []
    for _ in range(requests):
        started = time.perf_counter()
        status, _ = server.call("predict", body)
        found.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    return found


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def long_request(server: Served, copies: int) -> dict:
    found: dict = {}

    def call():
        started = time.perf_counter()
        found["status"] = server.call("explain", [photo(PHOTOS[1])], smooth=copies, overlay=False)[0]
        found["seconds"] = time.perf_counter() - started

    found["thread"] = threading.Thread(target=call)
    found["thread"].start()
    time.sleep(1.0)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--copies", type=int, default=1900)
    args = parser.parse_args()
    server = Served()
    ratios = []
    try:
        latencies(server, 20)  # warm
        for k in range(args.rounds):
            idle = percentiles(latencies(server, args.requests))
            running = long_request(server, args.copies)
            busy = percentiles(latencies(server, args.requests))
            ended = "" if running["thread"].is_alive() else " (ended before the last :predict)"
            running["thread"].join()
            ratios.append(busy[1] / idle[1])
            print(
                f"round {k + 1}: idle p50 {idle[0]:.1f} p99 {idle[1]:.1f} ms; beside the long request p50 "
                f"{busy[0]:.1f} p99 {busy[1]:.1f} ms (p99 x{ratios[-1]:.2f}); the long request: "
                f"{running['status']} in {running['seconds']:.1f} s{ended}"
            )
        print(f"median p99 ratio, busy over idle: {statistics.median(ratios):.2f}")
    finally:
        server.stop()
    batched = Served("--max-batch", str(args.copies))
    try:
        latencies(batched, 20)
        running = long_request(batched, args.copies)
        waited = latencies(batched, 1)[0]
        running["thread"].join()
        print(
            f"without the long lane: the :predict sent a second into the long request took "
            f"{waited / 1000:.1f} s (the long request: {running['seconds']:.1f} s)"
        )
    finally:
        batched.stop()


if __name__ == "__main__":
    main()
