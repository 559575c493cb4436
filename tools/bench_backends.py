"""OpenVINO against onnxruntime on the same rewritten graphs, in one process.

For ResNet-50 (random init, ``models.py``) and the bundled EfficientNet-Lite0, batch 1 at 224 x 224
on the CPU with 2 threads: the plain forward and the rewritten Grad-CAM and input-gradient graphs,
each compiled by both runtimes (the input gradient also with MaxPool's scatter-free backward;
OpenVINO with f32 inference precision, as the Explainer sets it);
rounds interleave the two runtimes so that a drift of the machine hits both. Prints the median of
each and the ratio OpenVINO / onnxruntime (below 1: OpenVINO is faster). Then the Explainer with
``backend="auto"`` against onnxruntime's, per method, once the race of each graph is decided, and
what auto chose (``--auto``: that part alone).

    python tools/bench_backends.py [--rounds 15] [--models resnet50 efficientnet_lite0] [--auto]
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
from onnx_xai.graph import contract as c  # noqa: E402
from onnx_xai.runtime.backends import make_session  # noqa: E402

GRAPHS = {
    "forward": (None, None),
    "gradcam": (("gradcam",), "scatter"),
    "input_grad": (("input_grad",), "scatter"),
    "input_grad, maxpool=windows": (("input_grad",), "windows"),
}


def graph_bytes(path: str, sets, maxpool) -> bytes:
    if sets is None:
        return Path(path).read_bytes()
    return onnx_xai.augment(path, outputs=sets, maxpool=maxpool).SerializeToString()


def feeds(session, x: np.ndarray) -> dict:
    names = [i.name for i in session.inputs]
    return {n: x if n not in (c.TARGET,) else np.full(len(x), -1, np.int64) for n in names}


def timed(session, fed: dict, outputs: list[str]) -> float:
    start = time.perf_counter()
    session.run(outputs, fed)
    return (time.perf_counter() - start) * 1000


def bench(name: str, rounds: int) -> None:
    path = model_path(name)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    print(f"\n{name}, batch 1, 224 x 224, CPU, 2 threads")
    print("| graph | onnxruntime ms | OpenVINO ms | OpenVINO / onnxruntime |\n|---|---|---|---|")
    for graph, (sets, maxpool) in GRAPHS.items():
        model = graph_bytes(path, sets, maxpool)
        sessions = {b: make_session(b, model, None, 2) for b in ("onnxruntime", "openvino")}
        runs = {}
        for backend, session in sessions.items():
            outputs = [o.name for o in session.outputs]
            fed = feeds(session, x)
            for _ in range(3):  # warm-up: first-run allocations and kernel selection
                session.run(outputs, fed)
            runs[backend] = (session, fed, outputs)
        times = {b: [] for b in sessions}
        for _ in range(rounds):
            for backend, (session, fed, outputs) in runs.items():
                times[backend].append(timed(session, fed, outputs))
        ort_ms, ov_ms = (statistics.median(times[b]) for b in ("onnxruntime", "openvino"))
        print(f"| {graph} | {ort_ms:.1f} | {ov_ms:.1f} | {ov_ms / ort_ms:.2f} |")


def bench_auto(name: str, rounds: int, methods=("gradient", "gradcam", "smoothgrad")) -> None:
    """The Explainer with ``backend="auto"`` against onnxruntime's, per method, once the race of each
    graph is decided (warm-up calls), then interleaved rounds; and the runtime auto chose."""
    path = model_path(name)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    explainers = {b: onnx_xai.Explainer(path, threads=2, backend=b) for b in ("onnxruntime", "auto")}
    options = {"smoothgrad": {"n_samples": 8, "noise_seed": 0}}
    print(f"\n{name}, the Explainer, batch 1 (smoothgrad: 8 copies), 2 threads")
    print("| method | onnxruntime ms | auto ms | auto / onnxruntime | auto chose |\n|---|---|---|---|---|")
    for method in methods:
        call = {
            b: (lambda ex=ex, method=method: ex.explain(x, method, **options.get(method, {})))
            for b, ex in explainers.items()
        }
        for _ in range(8):  # warm-up, and the race of each graph decided
            for fn in call.values():
                fn()
        times: dict = {b: [] for b in call}
        for _ in range(rounds):
            for backend, fn in call.items():
                start = time.perf_counter()
                fn()
                times[backend].append((time.perf_counter() - start) * 1000)
        ort_ms, auto_ms = (statistics.median(times[b]) for b in call)
        chose = "; ".join(f"{g}: {c.split(' ')[0]}" for g, c in explainers["auto"].backend_choices.items())
        print(f"| {method} | {ort_ms:.1f} | {auto_ms:.1f} | {auto_ms / ort_ms:.2f} | {chose} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--auto", action="store_true", help="only the Explainer on auto against onnxruntime")
    args = parser.parse_args()
    for name in args.models:
        if not args.auto:
            bench(name, args.rounds)
        bench_auto(name, args.rounds)


if __name__ == "__main__":
    main()
