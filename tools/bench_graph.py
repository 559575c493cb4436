"""Benchmark of the rewritten graphs against a plain forward, in the same process and run.

For ResNet-50 (random init) and EfficientNet-Lite0 (pretrained), it prints: the time to rewrite, the
rewritten file size against the original, and the median latency of a plain onnxruntime forward,
the Grad-CAM graph and the input-gradient graph (ORT_ENABLE_ALL, 2 threads), measured in interleaved
rounds, with their ratios to the forward. ``--depthwise`` also times the candidate lowerings of a
strided depthwise convolution's input gradient on EfficientNet-Lite0's shapes.

    python tools/bench_graph.py [--rounds 20] [--batch 1] [--depthwise]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
from bench_methods import model_path  # noqa: E402

import onnx_xai  # noqa: E402
from onnx_xai.graph import save_model  # noqa: E402


def session(model, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def interleaved(runs: dict, rounds: int) -> dict:
    """Median, min and max milliseconds of each callable, the calls interleaved round by round."""
    times = {k: [] for k in runs}
    for fn in runs.values():
        fn()
        fn()
    for _ in range(rounds):
        for k, fn in runs.items():
            time.sleep(0.1)  # sessions' worker threads idle before each timed call
            start = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - start) * 1000)
    return {k: (float(np.median(v)), min(v), max(v)) for k, v in times.items()}


def bench_model(name: str, rounds: int, batch: int) -> None:
    path = model_path(name)
    start = time.perf_counter()
    full = onnx_xai.augment(path)
    rewrite_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.xai.onnx"
        save_model(full, out)
        size_ratio = out.stat().st_size / path.stat().st_size
    graphs = {
        "forward": session(str(path)),
        "gradcam graph": session(onnx_xai.augment(path, outputs=("gradcam",))),
        "input-grad graph": session(onnx_xai.augment(path, outputs=("input_grad",))),
    }
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    feeds = {"x": x, "xai_target": np.full(batch, -1, np.int64)}
    runs = {
        k: (lambda s=s, f=(feeds if k != "forward" else {"x": x}): s.run(None, f)) for k, s in graphs.items()
    }
    stats = interleaved(runs, rounds)
    base = stats["forward"][0]
    print(
        f"\n{name}  batch {batch}  rewrite {rewrite_s:.2f} s  rewritten file {size_ratio:.3f}x the original"
    )
    print(f"  {'graph':18s} {'median ms':>10s} {'min':>8s} {'max':>8s} {'vs forward':>11s}")
    for k, (med, lo, hi) in stats.items():
        print(f"  {k:18s} {med:10.1f} {lo:8.1f} {hi:8.1f} {med / base:10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--depthwise", action="store_true", help="also time depthwise lowerings")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, 2 threads, ORT_ENABLE_ALL, {args.rounds} interleaved rounds")
    for name in args.models:
        bench_model(name, args.rounds, args.batch)
    if args.depthwise:
        from bench_depthwise import main as depthwise_main

        depthwise_main(args.rounds)


if __name__ == "__main__":
    main()
