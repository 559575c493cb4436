"""OpenVINO against onnxruntime on the same rewritten graphs, in one process.

For ResNet-50 (random init, ``models.py``) and the bundled EfficientNet-Lite0, batch 1 at 224 x 224
on the CPU with 2 threads: the plain forward and the rewritten Grad-CAM and input-gradient graphs,
each compiled by both runtimes (the input gradient also with MaxPool's scatter-free backward;
OpenVINO with f32 inference precision, as the Explainer sets it);
rounds interleave the two runtimes so that a drift of the machine hits both. Prints the median of
each and the ratio OpenVINO / onnxruntime (below 1: OpenVINO is faster).

    python tools/bench_backends.py [--rounds 15] [--models resnet50 efficientnet_lite0]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    args = parser.parse_args()
    for name in args.models:
        bench(name, args.rounds)


if __name__ == "__main__":
    main()
