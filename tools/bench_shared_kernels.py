"""Sessions made from the optimized form with shared kernels, against sessions that optimize alone.

For ResNet-50 (random init, ``models.py``) and the bundled EfficientNet-Lite0, at 224 x 224 on the
CPU with 2 threads, in one process: two Explainers of the same file, one whose sessions share their
optimized kernels (:mod:`onnx_xai.runtime.shared_kernels`), one whose sessions optimize alone (the
size threshold raised out of reach while it is built). For each method: the first call (the graph's
build included) and the median of interleaved calls afterwards at batch 1 and 16, with the ratio
shared / alone (below 1: faster with shared kernels); the two Explainers' results compared bit for bit.

    python tools/bench_shared_kernels.py [--rounds 9] [--models resnet50 efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_methods import model_path  # noqa: E402

import onnx_xai  # noqa: E402
from onnx_xai.runtime import shared_kernels  # noqa: E402

METHODS = ["gradcam", "gradient", "guided_backprop"]


def explainers(path: str) -> dict[str, onnx_xai.Explainer]:
    shared = onnx_xai.Explainer(path, threads=2)
    kept, shared_kernels.KERNEL_BYTES = shared_kernels.KERNEL_BYTES, 2**62
    try:
        alone = onnx_xai.Explainer(path, threads=2)
        # each graph is built on its first call: build the "alone" ones while the threshold is raised
        x = np.zeros((1, 3, 224, 224), np.float32)
        first_alone = {m: timed(lambda m=m: alone.explain(x, m)) for m in METHODS}
    finally:
        shared_kernels.KERNEL_BYTES = kept
    first_shared = {m: timed(lambda m=m: shared.explain(x, m)) for m in METHODS}
    for m in METHODS:
        print(
            f"| {m}, first call (build) | {first_shared[m]:.0f} | {first_alone[m]:.0f} | "
            f"{first_shared[m] / first_alone[m]:.2f} |"
        )
    return {"shared": shared, "alone": alone}


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def bench(name: str, rounds: int) -> None:
    path = model_path(name)
    print(f"\n{name}, 224 x 224, CPU, 2 threads; ms, medians of {rounds} interleaved rounds")
    print("| method | shared kernels | optimized alone | shared / alone |\n|---|---|---|---|")
    pair = explainers(path)
    for batch in (1, 16):
        x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        for method in METHODS:
            results = {k: ex.explain(x, method).raw for k, ex in pair.items()}  # warm-up at this batch
            same = np.array_equal(results["shared"], results["alone"])
            times: dict[str, list[float]] = {k: [] for k in pair}
            for _ in range(rounds if batch == 1 else max(3, rounds // 3)):
                for k, ex in pair.items():
                    times[k].append(timed(lambda ex=ex, x=x, m=method: ex.explain(x, m)))
            m = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"| {method}, batch {batch} | {m['shared']:.1f} | {m['alone']:.1f} | "
                f"{m['shared'] / m['alone']:.3f} |{'' if same else ' (results differ)'}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    args = parser.parse_args()
    for name in args.models:
        bench(name, args.rounds)


if __name__ == "__main__":
    main()
