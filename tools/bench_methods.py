"""What each method costs, as a multiple of one forward of the same model, measured in one process.

For ResNet-50 (random init, exported by ``models.py``) and the bundled EfficientNet-Lite0, batch 1 at
224 x 224, 2 threads: the median of a plain onnxruntime forward, then of ``Explainer.explain`` for
every registered method with its default options (sessions built beforehand), interleaved with the
forward so that a drift of the machine hits both, and the ratio of each to the forward of its round.
Sampling methods run fewer rounds (SmoothGrad 50 copies and integrated gradients 50 points: 3; Score-CAM,
one run per channel of the target layer, occlusion's 729 patches, RISE's 2000 masks, LIME's and
KernelSHAP's 1000 samples, Ablation-CAM's one head run per channel: 1).

    python tools/bench_methods.py [--rounds 7] [--models resnet50 efficientnet_lite0] [--skip scorecam]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
import onnx_xai  # noqa: E402
from onnx_xai.photos import DEMO_MODEL  # noqa: E402

EXPENSIVE = {  # rounds of the methods that run many copies (their default counts)
    "smoothgrad": 3,
    "integrated_gradients": 3,
    "scorecam": 1,
    "occlusion": 1,
    "rise": 1,
    "lime": 1,
    "kernel_shap": 1,
    "ablationcam": 1,
}
WARM = {  # the options of the warm-up call that builds each session (a few copies only)
    "smoothgrad": {"n_samples": 2},
    "integrated_gradients": {"n_steps": 2},
    "rise": {"n_masks": 4},
    "lime": {"n_samples": 4},
    "kernel_shap": {"n_samples": 4},
    "occlusion": {"window": 112, "stride": 112},
}


def model_path(name: str) -> str:
    if name == "efficientnet_lite0":
        return str(DEMO_MODEL)
    from models import exported

    return str(exported(name))


def forward_session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def bench(name: str, rounds: int, skip: set[str]) -> None:
    path = model_path(name)
    plain, ex = forward_session(path), onnx_xai.Explainer(path, threads=2)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    feed = {plain.get_inputs()[0].name: x}
    methods = [m for m in onnx_xai.METHOD_NAMES if m not in skip]
    given = {"deeplift_shap": {"baselines": np.zeros((4, 3, 224, 224), np.float32)}}  # 4 references
    for method in methods:  # build every session, warm every kernel
        ex.explain(x, method, **(given.get(method, {}) | WARM.get(method, {})))
    print(f"\n{name}, batch 1, 224 x 224, 2 threads")
    print("| method | ms (median) | x forward |\n|---|---|---|")
    for method in ["forward"] + methods:
        times, ratios = [], []
        for _ in range(EXPENSIVE.get(method, rounds)):
            base = timed(lambda: plain.run(None, feed))
            spent = (
                base if method == "forward" else timed(lambda m=method: ex.explain(x, m, **given.get(m, {})))
            )
            times.append(spent)
            ratios.append(spent / base)
        print(f"| {method} | {np.median(times):.1f} | {np.median(ratios):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args()
    for name in args.models:
        bench(name, args.rounds, set(args.skip))


if __name__ == "__main__":
    main()
