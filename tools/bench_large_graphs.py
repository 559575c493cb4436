"""How graph handling grows with the node count: inspect, augment and explain on long graphs.

A tiny classifier (Conv, ReLU, global pooling, Flatten, Gemm) with a chain of N Identity nodes put
at one place (:data:`PLACEMENTS`): before the spatial collapse (between the ReLU and the pooling),
between the collapse and the head (between Flatten and Gemm), after the head (after the logits),
on a side branch whose end is added back to the ReLU's output, or on a dead end that reaches no
output. The analysis, the rewrite and the sessions visit every node, while the arithmetic stays
that of the tiny model, so the times are the graph handling alone. Each step (``inspect``,
``augment``, ``explain``: one gradient and one Grad-CAM of one input) runs in a fresh process, so
its peak RSS is its own and a step past ``--timeout`` is cut off alone; the ratios are against the
smallest size of the same run, beside the node-count ratio (linear handling keeps the two close).

    python tools/bench_large_graphs.py [--nodes 10000 50000 200000] [--placements head after]
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

PLACEMENTS = ("collapse", "head", "after", "side", "dead")
STEPS = ("inspect", "augment", "explain")


def _identities(first: str, prefix: str, nodes: int) -> tuple[list[onnx.NodeProto], str]:
    """``nodes`` Identity nodes in a row from ``first``; the nodes and the last tensor's name."""
    names = [first] + [f"{prefix}{k}" for k in range(nodes)]
    return [helper.make_node("Identity", [a], [b], name=b) for a, b in zip(names, names[1:])], names[-1]


def chain(nodes: int, placement: str = "head") -> onnx.ModelProto:
    """The tiny classifier with ``nodes`` Identity nodes at ``placement`` (module docstring)."""
    w_conv = np.random.default_rng(0).standard_normal((3, 2, 1, 1)).astype(np.float32)
    w_fc = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    links, last = _identities(
        {"collapse": "a", "head": "f", "after": "logits"}.get(placement, "a"), "c", nodes
    )
    pooled, fed, output = "a", "f", "logits"
    extra: list[onnx.NodeProto] = []
    if placement == "collapse":
        pooled = last
    elif placement == "head":
        fed = last
    elif placement == "after":
        output = last
    elif placement == "side":
        pooled = "joined"
        extra = [helper.make_node("Add", ["a", last], ["joined"], name="join")]
    elif placement != "dead":
        raise ValueError(f"unknown placement {placement!r}; choose from {', '.join(PLACEMENTS)}")
    body = [
        helper.make_node("Conv", ["x", "w"], ["conv"], name="conv"),
        helper.make_node("Relu", ["conv"], ["a"], name="relu"),
        *(links if placement in ("collapse", "side", "dead") else []),
        *extra,
        helper.make_node("GlobalAveragePool", [pooled], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["f"], name="flatten"),
        *(links if placement == "head" else []),
        helper.make_node("Gemm", [fed, "fc"], ["logits"], transB=1, name="gemm"),
        *(links if placement == "after" else []),
    ]
    graph = helper.make_graph(
        body,
        f"chain_{placement}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(w_conv, "w"), numpy_helper.from_array(w_fc, "fc")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def measure(path: str, step: str) -> dict:
    """One step on one model, in this process: its seconds and the process's peak RSS."""
    import onnx_xai
    from onnx_xai.runtime.report import inspect_model

    x = np.ones((1, 2, 4, 4), np.float32)

    def explain() -> None:
        ex = onnx_xai.Explainer(path)
        ex.explain(x, "gradient")
        ex.explain(x, "gradcam")

    run = {
        "inspect": lambda: inspect_model(path),
        "augment": lambda: onnx_xai.augment(path),
        "explain": explain,
    }
    start = time.perf_counter()
    run[step]()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(path: Path, step: str, timeout: float | None) -> dict | None:
    """A step measured in a fresh process; None when it ran past ``timeout``."""
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path), step],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{step} of {path.name} failed:\n{exc.stderr[-2000:]}") from None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(row: dict, base: dict, step: str, timeout: float | None) -> str:
    if row.get(step) is None:
        return f"> {timeout:.0f} (cut off)"
    if base.get(step) is None:
        return f"{row[step]['seconds']:.2f}"
    return f"{row[step]['seconds']:.2f} ({row[step]['seconds'] / base[step]['seconds']:.1f}x)"


def table(placement: str, rows: dict[int, dict], steps: list[str], timeout: float | None) -> list[str]:
    """The markdown table of one placement: seconds per step and the ratio to the smallest size."""
    base = rows[min(rows)]
    lines = [
        f"### {placement}",
        "",
        "| nodes | x nodes | " + " | ".join(f"{s} s (x)" for s in steps) + " | peak MB |",
        "|---|---|" + "---|" * len(steps) + "---|",
    ]
    for n, row in rows.items():
        cells = [_cell(row, base, step, timeout) for step in steps]
        peak = max((r["peak_mb"] for r in row.values() if r is not None), default=float("nan"))
        lines.append(f"| {n:,} | {n / min(rows):.0f}x | {' | '.join(cells)} | {peak:.0f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10000, 50000, 200000])
    parser.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=list(PLACEMENTS))
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--timeout", type=float, help="seconds before a step is cut off (default: none)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        for placement in args.placements:
            rows: dict[int, dict] = {}
            for n in sorted(args.nodes):
                path = Path(folder) / f"{placement}_{n}.onnx"
                onnx.save(chain(n, placement), path)
                rows[n] = {step: _child(path, step, args.timeout) for step in args.steps}
                path.unlink()
            print("\n".join(table(placement, rows, args.steps, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
