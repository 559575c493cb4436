"""Memory an Explainer holds, against one plain onnxruntime session of the same model.

Each configuration runs in a fresh process: it builds what it needs, serves its calls (batch 1,
224 x 224, 2 threads), drops the input, hands free heap pages back (``malloc_trim``) and reports the
resident memory gained since start-up (VmRSS; the peak, VmHWM, beside it). Ratios are against the
plain session's held memory in the same run.

    python tools/bench_held.py [--models resnet50 efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import subprocess
import sys
from pathlib import Path

import numpy as np

CONFIGS = {
    "plain onnxruntime session": ("plain", []),
    "Explainer: gradcam": ("fast", [["gradcam"]]),
    "Explainer: gradient, cam, gradcam": ("fast", [["gradient"], ["cam"], ["gradcam"]]),
    "Explainer: every method": ("fast", "all"),
    "Explainer(memory='lean'): every method": ("lean", "all"),
}


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, config: str) -> None:
    import onnxruntime as ort

    import onnx_xai

    mode, calls = CONFIGS[config]
    start = status_mb("VmRSS")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    if mode == "plain":
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        keep = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        keep.run(None, {keep.get_inputs()[0].name: x})
    else:
        keep = onnx_xai.Explainer(path, threads=2, memory=mode)
        references = np.zeros((2, 3, 224, 224), np.float32)
        options = {
            "smoothgrad": {"n_samples": 2},
            "integrated_gradients": {"n_steps": 2},
            "scorecam": {"batch_size": 64},
            "deeplift_shap": {"baselines": references},
            "gradient_shap": {"baselines": references, "n_samples": 2},
        }
        from onnx_xai.runtime.methods import get

        every = [[m] for m in onnx_xai.METHOD_NAMES if "image" in get(m).kinds]
        for methods in every if calls == "all" else calls:
            keep.explain_many(x, methods, **options.get(methods[0], {}))
    del x
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(status_mb("VmRSS") - start, status_mb("VmHWM") - start)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_methods import model_path

    for name in parser.parse_args().models:
        path = model_path(name)
        print(f"\n{name} ({Path(path).stat().st_size / 2**20:.0f} MB file), batch 1, 224 x 224")
        print("| configuration | held MB | x plain session | peak MB |\n|---|---|---|---|")
        plain = None
        for config in CONFIGS:
            done = subprocess.run(
                [sys.executable, __file__, "--child", path, config], capture_output=True, text=True
            )
            held, peak = (float(v) for v in done.stdout.split()[-2:])
            plain = plain or held
            print(f"| {config} | {held:.0f} | {held / plain:.2f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
