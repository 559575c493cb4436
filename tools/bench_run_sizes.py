"""Copies per run found at first use against today's default size and against one copy per run.

For ResNet-50 (random init, exported by ``models.py``) and the bundled EfficientNet-Lite0, batch 1 at
224 x 224, 2 threads, one Explainer per model (sessions built beforehand): SmoothGrad-50 and IG-32
with the size the Explainer explores (its first call, which explores, timed apart), with today's
default (``chunk_size``: 6 copies of a 224 x 224 image) and with ``batch_size=1``, in interleaved
rounds; the medians, the ratios to the default's, and the size chosen (``Explainer.copies_per_run``).
``--explore N``: the sizes N fresh stores choose for SmoothGrad-50 on the same Explainer (how much the
choice varies with the machine's noise); ``--peak``: the peak memory (VmHWM) of input gradients at
each batch, a process per batch.

    python tools/bench_run_sizes.py [--rounds 3] [--models resnet50 efficientnet_lite0] [--explore 5]
        [--peak 4 8 16 32]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_methods import model_path  # noqa: E402

import onnx_xai  # noqa: E402
from onnx_xai.runtime.methods import chunk_size  # noqa: E402
from onnx_xai.runtime.methods.run_sizes import RunSizes  # noqa: E402

CALLS = {"smoothgrad": {"n_samples": 50, "noise_seed": 0}, "integrated_gradients": {"n_steps": 32}}


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def bench(name: str, rounds: int) -> None:
    ex = onnx_xai.Explainer(model_path(name), threads=2)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    default = chunk_size(1, x[0].nbytes)
    sizes = {"explored": {}, f"default ({default})": {"batch_size": default}, "1": {"batch_size": 1}}
    print(f"\n{name}, batch 1, 224 x 224, 2 threads")
    print("| method | copies per run | ms (median) | x default |\n|---|---|---|---|")
    for method, options in CALLS.items():
        ex.explain(x, method, **{**options, "batch_size": 1})  # the session built, the kernels warm
        first = timed(lambda m=method, o=options: ex.explain(x, m, **o))
        times: dict[str, list[float]] = {label: [] for label in sizes}
        for _ in range(rounds):
            for label, given in sizes.items():
                times[label].append(timed(lambda m=method, o={**options, **given}: ex.explain(x, m, **o)))
        graph = "smoothgrad of gradient" if method == "smoothgrad" else method
        found = ex.copies_per_run[(graph, x.shape[1:], str(x.dtype))]
        base = np.median(times[f"default ({default})"])
        print(f"| {method} | explored, first call | {first:.0f} | {first / base:.2f} |")
        for label, spent in times.items():
            shown = f"explored: {found.size}" if label == "explored" else label
            print(f"| {method} | {shown} | {np.median(spent):.0f} | {np.median(spent) / base:.2f} |")
        tried = ", ".join(f"{s}: {ms:.1f}" for s, ms in found.ms_per_copy.items())
        print(f"| {method} | ms per copy by size tried | {tried} | |", flush=True)


def explore(name: str, times: int) -> None:
    """The size each of ``times`` fresh stores chooses (calls of SmoothGrad-50 until it has)."""
    ex = onnx_xai.Explainer(model_path(name), threads=2)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ex.explain(x, "smoothgrad", n_samples=2, batch_size=1)
    for _ in range(times):
        ex._run_sizes = RunSizes()  # a store as a new Explainer's, on the same sessions
        calls = 0
        while (
            found := ex.copies_per_run.get(("smoothgrad of gradient", x.shape[1:], "float32"))
        ) is None or (found.size is None):
            ex.explain(x, "smoothgrad", **CALLS["smoothgrad"])
            calls += 1
        tried = ", ".join(f"{s}: {ms:.1f}" for s, ms in found.ms_per_copy.items())
        print(f"| {name} | {found.size} | {calls} | {tried} |", flush=True)


def peak(path: str, batch: int) -> None:
    """One process: VmHWM after input gradients of ``batch`` copies."""
    ex = onnx_xai.Explainer(path, threads=2)
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    ex.explain(x[:1], "gradient")
    ex.explain(x, "gradient")
    hwm = next(
        line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")
    )
    print(f"| {Path(path).stem} | {batch} | {int(hwm.split()[1]) / 1024:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--explore", type=int, default=0, help="fresh stores whose choice to show")
    parser.add_argument("--peak", nargs="*", type=int, default=[], help="batches whose VmHWM to measure")
    parser.add_argument("--one-peak", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--no-rounds", action="store_true", help="only --explore and --peak")
    args = parser.parse_args()
    if args.one_peak:
        return peak(args.one_peak[0], int(args.one_peak[1]))
    for name in [] if args.no_rounds else args.models:
        bench(name, args.rounds)
    if args.explore:
        print("\n| model | size chosen | calls | ms per copy by size |\n|---|---|---|---|", flush=True)
    for name in args.models if args.explore else []:
        explore(name, args.explore)
    if args.peak:
        print("\n| model | batch | VmHWM (MB) |\n|---|---|---|", flush=True)
    for name in args.models:
        for batch in args.peak:
            subprocess.run([sys.executable, __file__, "--one-peak", model_path(name), str(batch)], check=True)


if __name__ == "__main__":
    main()
