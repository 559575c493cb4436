"""Benchmark onnx_xai against the PyTorch tools on the same CPU: gradient, SmoothGrad-50, CAM,
Grad-CAM, all methods in one call, peak memory, and photos per second through the CLI.

For each model and batch size, with 2 threads on both sides and medians over interleaved rounds in
one process: ORT forward (the baseline every ratio is quoted against), torch forward, our methods,
Captum ``Saliency`` and ``NoiseTunnel(Saliency, "smoothgrad", 50)`` (with its fastest
``nt_samples_batch_size``), and pytorch-grad-cam ``GradCAM`` on the conventional layer. Peak resident
memory of each configuration is measured in a separate process. Captum, pytorch-grad-cam and
torchvision live in a separate environment (see tools/README.md); where they are missing their rows
read n/a.

    python tools/bench.py [--models resnet50 efficientnet_lite0] [--batches 1 16] [--rounds 5]
                          [--json bench.json] [--chart ratios.png]
    python tools/bench.py --quick          # a tiny model, seconds: keeps the script from rotting
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python tools/bench.py ...   # torch capped to AVX2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_configs as configs  # noqa: E402

THREADS = 2
SETTLE_S = 0.3


def interleaved(runs: dict, rounds: dict) -> dict:
    """Median, min and max ms per configuration; rounds interleaved, expensive ones fewer (and not
    warmed up: they share their sessions with the cheap ones, which are)."""
    times = {k: [] for k in runs}
    top = max(rounds.values())
    for k, fn in runs.items():
        if rounds[k] == top:
            fn()  # warm-up: sessions built, caches filled
    for r in range(max(rounds.values())):
        for k, fn in runs.items():
            if r < rounds[k]:
                time.sleep(SETTLE_S)  # let the previous tool's spinning worker threads go idle
                start = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - start) * 1000)
    return {k: (float(np.median(v)), float(min(v)), float(max(v))) for k, v in times.items()}


def peak_memory_mb(model: str, batch: int, config: str, quick: bool) -> float | None:
    """Peak RSS of a fresh process that runs one configuration (tools/bench_memory.py)."""
    path = configs.load(model)[1]
    cmd = [
        sys.executable,
        str(Path(__file__).parent / "bench_memory.py"),
        model,
        str(path),
        str(batch),
        config,
    ] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def instruction_sets() -> str:
    """What each side runs: torch's kernels (capped by ``ATEN_CPU_CAPABILITY`` and oneDNN's by
    ``ONEDNN_MAX_CPU_ISA``, set before the run) and onnxruntime's, which follow the CPU's flags
    (MLAS has no cap: an AVX2-only figure for it needs an AVX2-only machine)."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    cpu = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "below AVX2"
    capped = ", ".join(
        f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ
    )
    torch_isa = torch.backends.cpu.get_cpu_capability() + (f" ({capped})" if capped else "")
    return f"torch {torch_isa}; onnxruntime {cpu} (the CPU's)"


def bench_one(model: str, batch: int, rounds: int, quick: bool, memory: bool) -> list[dict]:
    runs, pairs = configs.build(model, batch, quick)
    cheap = {k: rounds for k in runs}
    expensive = max(1, rounds // 2) if batch == 1 else 1
    cheap.update(
        {k: expensive for k in runs if any(s in k for s in ("smoothgrad", "noisetunnel", "integrated"))}
    )
    stats = interleaved(runs, cheap)
    base = stats["ort forward"][0]
    rows = []
    for name, (med, lo, hi) in stats.items():
        other, kind = pairs.get(name, (None, None))
        ratio = None
        if other in stats:
            ratio = stats[other][0] / med if kind == "speedup" else med / stats[other][0]
        measure = memory and (not quick or name in ("gradient", "smoothgrad-50"))
        rows.append(
            {
                "model": model,
                "batch": batch,
                "config": name,
                "median_ms": med,
                "min_ms": lo,
                "max_ms": hi,
                "vs_ort_forward": med / base,
                "compared_with": other,
                "comparison": kind,
                "ratio": ratio,
                "peak_mb": peak_memory_mb(model, batch, name, quick) if measure else None,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'model':18s} {'N':>3s} {'configuration':26s} {'median ms':>10s} {'min':>9s} {'max':>9s} "
        f"{'/ORT fwd':>9s} {'vs PyTorch tool':>24s} {'peak MB':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["ratio"] is None:
            tool = "n/a"
        elif r["comparison"] == "speedup":
            tool = f"{r['ratio']:.2f}x faster than {r['compared_with'].split()[0]}"
        else:
            tool = f"{r['ratio']:.2f}x the cost of {r['compared_with']}"
        mem = f"{r['peak_mb']:.0f}" if r["peak_mb"] else "n/a"
        print(
            f"{r['model']:18s} {r['batch']:3d} {r['config']:26s} {r['median_ms']:10.1f} {r['min_ms']:9.1f} "
            f"{r['max_ms']:9.1f} {r['vs_ort_forward']:8.2f}x {tool:>24s} {mem:>8s}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tiny model and few rounds (for CI)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-process memory runs")
    parser.add_argument("--no-cli", action="store_true", help="skip the 64-photo CLI run")
    parser.add_argument("--json", help="write the table as JSON here")
    parser.add_argument("--chart", help="write a PNG chart of the ratios here")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    models, batches, rounds = (
        (["tiny"], [1, 2], 2) if args.quick else (args.models, args.batches, args.rounds)
    )
    print(
        f"onnx_xai benchmark: {platform.processor() or platform.machine()}, {THREADS} threads, "
        f"torch {torch.__version__}, tools: {configs.tool_versions()}"
    )
    print(f"instruction sets: {instruction_sets()}")
    rows = [
        r for m in models for b in batches for r in bench_one(m, b, rounds, args.quick, not args.no_memory)
    ]
    print_table(rows)
    cli = [] if args.no_cli else [configs.cli_throughput(m, 8 if args.quick else 64) for m in models]
    for c in cli:
        print(
            f"CLI: onnx-xai explain --method gradcam, {c['photos']} photos, {c['model']}: "
            f"{c['images_per_s']:.1f} images/s ({c['seconds']:.1f} s end to end)"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"rows": rows, "cli": cli, "threads": THREADS, "tools": configs.tool_versions()}, indent=2
            )
        )
    if args.chart:
        configs.chart(rows, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
