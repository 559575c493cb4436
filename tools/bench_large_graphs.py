"""How graph handling grows with the node count: inspect, augment and explain on long graphs.

A tiny classifier (Conv, ReLU, global pooling, Gemm) with N Identity nodes after its logits: the
analysis, the rewrite and the sessions visit every node, while the arithmetic stays that of the tiny
model, so the times are the graph handling alone. Each size runs in a fresh process (peak RSS is
its own); the ratios are against the smallest size of the same run, beside the node-count ratio
(linear handling keeps the two close).

    python tools/bench_large_graphs.py [--nodes 10000 50000 200000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def chain(nodes: int) -> onnx.ModelProto:
    w_conv = np.random.default_rng(0).standard_normal((3, 2, 1, 1)).astype(np.float32)
    w_fc = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    names = ["logits"] + [f"h{k}" for k in range(nodes)]
    body = [
        helper.make_node("Conv", ["x", "w"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    body += [helper.make_node("Identity", [a], [b], name=b) for a, b in zip(names, names[1:])]
    graph = helper.make_graph(
        body,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(w_conv, "w"), numpy_helper.from_array(w_fc, "fc")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def measure(path: str) -> dict:
    """One size, in this process: seconds of each step and the peak RSS."""
    import onnx_xai
    from onnx_xai.graph.report import inspect_model

    x = np.ones((1, 2, 4, 4), np.float32)
    steps = {
        "inspect": lambda: inspect_model(path),
        "augment": lambda: onnx_xai.augment(path),
        "explain": lambda: onnx_xai.Explainer(path).explain(x, "gradcam"),
    }
    seconds = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - start
    return seconds | {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10000, 50000, 200000])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for n in sorted(args.nodes):
            path = Path(folder) / f"chain_{n}.onnx"
            onnx.save(chain(n), path)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
            )
            rows[n] = json.loads(done.stdout.strip().splitlines()[-1])
    base = min(rows)
    print("| nodes | x nodes | inspect s (x) | augment s (x) | explain s (x) | peak MB |")
    print("|---|---|---|---|---|---|")
    for n, r in rows.items():
        cells = [f"{r[k]:.2f} ({r[k] / rows[base][k]:.1f}x)" for k in ("inspect", "augment", "explain")]
        print(f"| {n:,} | {n / base:.0f}x | {' | '.join(cells)} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
