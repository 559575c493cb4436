"""Check the CUDA execution provider: every node of the rewritten graphs on the GPU, same results.

Run where ``onnxruntime-gpu`` is installed and a GPU is visible:

    python tools/check_cuda.py [--models resnet50 efficientnet_lite0] [--opsets 13 17]

For each model and opset (opset 13 exercises the MaxUnpool lowering of MaxPool's backward, 17 the
ScatterElements(reduction="add") one) it builds every pruned graph with CPU fallback disabled
(``session.disable_cpu_ep_fallback``), so a node without a CUDA kernel fails loudly instead of
running on the CPU, then runs every method through ``Explainer`` on CUDA and on CPU and prints
the largest relative difference of each method's raw attribution.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
from models import exported  # noqa: E402

import onnx_xai  # noqa: E402

CUDA = "CUDAExecutionProvider"


def all_on_gpu(path: Path) -> list[str]:
    """Output sets whose graph could not be placed entirely on CUDA (empty when all are fine)."""
    failures = []
    for output_set in onnx_xai.OUTPUT_SETS:
        options = ort.SessionOptions()
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        model = onnx_xai.augment(path, outputs=(output_set,))
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=[CUDA])
        except Exception as exc:  # noqa: BLE001 - report and go on
            failures.append(f"{output_set}: {str(exc).splitlines()[0]}")
    return failures


def compare(path: Path, batch: int = 2) -> dict[str, float]:
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    gpu = onnx_xai.Explainer(path, providers=[CUDA, "CPUExecutionProvider"])
    cpu = onnx_xai.Explainer(path, providers=["CPUExecutionProvider"])
    assert gpu.providers[0] == CUDA, f"CUDA provider not used: {gpu.providers}"
    diffs = {}
    options = {"smoothgrad": {"noise_seed": 0, "n_samples": 8}, "integrated_gradients": {"n_steps": 8}}
    for method in onnx_xai.METHOD_NAMES:
        opts = options.get(method, {})
        a = gpu.explain(x, method, objective=[-1, 3], **opts)
        b = cpu.explain(x, method, objective=[-1, 3], **opts)
        diffs[method] = float(np.abs(a.raw - b.raw).max() / max(np.abs(b.raw).max(), 1e-12))
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    parser.add_argument("--opsets", nargs="+", type=int, default=[13, 17])
    args = parser.parse_args()
    if CUDA not in ort.get_available_providers():
        print(f"no {CUDA} in this onnxruntime ({ort.get_available_providers()}); install onnxruntime-gpu")
        return 2
    failed = False
    for name in args.models:
        for opset in args.opsets:
            path = exported(name, opset)
            missing = all_on_gpu(path)
            diffs = compare(path)
            failed |= bool(missing) or max(diffs.values()) > 1e-3
            print(
                f"{name} opset {opset}: nodes off the GPU: {missing or 'none'}; max relative "
                "difference CUDA vs CPU: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
