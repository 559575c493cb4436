"""Peak resident memory of one benchmark configuration, in a process of its own.

Our configurations import only onnx_xai (numpy, onnx, onnxruntime); the PyTorch tools import torch
and the tool. Prints the peak RSS (VmHWM) in MB after running the configuration once (sessions included).

    python tools/bench_memory.py MODEL_NAME ONNX_PATH BATCH CONFIG [--quick]
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import numpy as np

OURS = {"gradient", "smoothgrad-50", "cam", "gradcam", "gradient+cam+gradcam", "integrated_gradients-32"}


def main() -> None:
    model, path, batch, config = sys.argv[1:5]
    quick = "--quick" in sys.argv
    if config in OURS:
        import onnx_xai

        size = 32 if model == "tiny" else 224
        x = np.random.default_rng(0).standard_normal((int(batch), 3, size, size)).astype(np.float32)
        ex = onnx_xai.Explainer(path, threads=2)
        if config == "gradient+cam+gradcam":
            run = lambda: ex.explain_many(x, ["gradient", "cam", "gradcam"])  # noqa: E731
        elif config == "integrated_gradients-32":
            run = lambda: ex.explain(x, "integrated_gradients", n_steps=4 if quick else 32)  # noqa: E731
        elif config == "smoothgrad-50":
            run = lambda: ex.explain(x, "smoothgrad", n_samples=4 if quick else 50, noise_seed=0)  # noqa: E731
        else:
            run = lambda: ex.explain(x, config)  # noqa: E731
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        import bench_configs
        import torch

        torch.set_num_threads(2)
        runs, _ = bench_configs.build(model, int(batch), quick, only=config)
        run = runs[config]
    run()
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """VmHWM of this process: unlike ru_maxrss, it does not inherit the parent's peak at fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
