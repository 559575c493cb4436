"""The seconds one model run costs per method family, and the ``--max-runs`` default they give.

``onnx-xai serve`` refuses a request whose methods would run the model more than ``--max-runs``
times (instances: one copy of one photo is one run). The limit should let a request at the limit
finish well within the default deadline (``--timeout-s`` 60) on the machine the server runs on. This
measures, on the bundled EfficientNet-Lite0 at 224 x 224 with 2 threads, one photo, the wall time per
run of the costliest copy of each kind, each through ``Explainer.explain`` with its default chunking:
a gradient (SmoothGrad of ``gradient``), a Grad-CAM (SmoothGrad of ``gradcam``), a forward (RISE's
masked copies), a head run (Ablation-CAM's ablated activations); the medians over ``--rounds``, each
round interleaved with a plain forward as the baseline of the same moment. Printed per kind: the
runs that fit half the deadline. The default is that of a Grad-CAM copy (the server's default
method, smoothed), rounded down to a multiple of 500: the server's own method and every forward-only
method finish at the limit within half the deadline; gradient copies, four times dearer, would take
about all of it, and the deadline stops them.

    python tools/bench_work.py [--rounds 5] [--runs 200] [--timeout 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

import onnx_xai
from onnx_xai.photos import DEMO_MODEL

KINDS = {  # what a run is, and the call that makes ``runs`` of them
    "gradient copy": ("smoothgrad", lambda runs: {"n_samples": runs, "base": "gradient"}),
    "Grad-CAM copy": ("smoothgrad", lambda runs: {"n_samples": runs, "base": "gradcam"}),
    "forward copy": ("rise", lambda runs: {"n_masks": runs}),
    "head copy": ("ablationcam", lambda runs: {}),
}


def per_run(ex, x: np.ndarray, method: str, options: dict) -> tuple[float, int]:
    """Seconds per model run of one explanation, and the runs it made."""
    work = onnx_xai.Work()
    seeded = {"noise_seed": 0} if "noise_seed" in _fields(method) else {}
    started = time.perf_counter()
    ex.explain(x, method, work=work, **seeded, **options)
    return (time.perf_counter() - started) / max(work.runs, 1), work.runs


def _fields(method: str) -> set[str]:
    from onnx_xai.runtime.methods import get

    return set(get(method).Options.__dataclass_fields__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200, help="copies per measurement")
    parser.add_argument("--timeout", type=float, default=60.0, help="the deadline the limit must fit")
    args = parser.parse_args()
    ex = onnx_xai.Explainer(str(DEMO_MODEL), threads=2)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    plain = ort.InferenceSession(str(DEMO_MODEL), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    name = plain.get_inputs()[0].name
    for method, make in KINDS.values():  # sessions built before timing
        per_run(ex, x, method, make(2))
    found: dict[str, list[float]] = {kind: [] for kind in KINDS}
    forwards: list[float] = []
    for _ in range(args.rounds):
        for kind, (method, make) in KINDS.items():
            started = time.perf_counter()
            plain.run(None, {name: x})
            forwards.append(time.perf_counter() - started)
            seconds, _ = per_run(ex, x, method, make(args.runs))
            found[kind].append(seconds)
    forward = float(np.median(forwards))
    print(f"forward (batch 1): {forward * 1000:.1f} ms")
    fits = {}
    for kind, seconds in found.items():
        median = float(np.median(seconds))
        fits[kind] = int(args.timeout / 2 / median)
        print(
            f"{kind:14s} {median * 1000:7.2f} ms a run  ({median / forward:.2f}x a forward of batch 1); "
            f"{fits[kind]} runs in half the deadline"
        )
    chosen = fits["Grad-CAM copy"] // 500 * 500
    print(f"--max-runs default: {chosen} (Grad-CAM copies in half of {args.timeout:g} s)")


if __name__ == "__main__":
    main()
