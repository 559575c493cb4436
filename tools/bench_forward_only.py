"""The forward-only methods against the same method in a PyTorch tool, on one model in one process.

ResNet-50 (random init, ``models.py``) at 224 x 224, one image, 2 threads on both sides: ours on the
ONNX export against the torch model in float32 running

- Occlusion: Captum's ``Occlusion`` (16 x 16 window, stride 8, over all channels) and ours, the
  same 729 patches, 64 copies per run on both sides;
- LIME and KernelSHAP: Captum's ``Lime`` and ``KernelShap`` on the same 8 x 8 grid of features,
  200 samples, 64 per run (``perturbations_per_eval``);
- RISE: 1000 masks of a 7 x 7 grid, the paper's PyTorch loop (batches of masked copies through the
  model, the masks weighted by the scores) against ours, 64 copies per run;
- ReciproCAM: the authors' PyTorch recipe (features once, the 7 x 7 mosaics of the last stage
  through the pooling and the classifier) against ours (the ONNX model cut at the same layer).

Medians of interleaved rounds, and each ours / theirs ratio (below 1: ours is faster).
OpenVINO-XAI (the reference of RISE and ReciproCAM) pins openvino-dev 2024.4 and numpy 1, which do
not install beside this project's OpenVINO; its methods are timed here through their PyTorch
recipes instead.

    python tools/bench_forward_only.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from models import exported, torch_model  # noqa: E402

import onnx_xai  # noqa: E402
from onnx_xai.runtime.methods.mosaics import reciprocam_masks  # noqa: E402
from onnx_xai.runtime.methods.perturbation import rise_masks  # noqa: E402

PER_RUN = 64


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def grid_features(size: int = 224, cell: int = 28) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] // cell
    return (ys * (size // cell) + xs).astype(np.int64)


def rise_in_torch(net, x: torch.Tensor, masks: torch.Tensor, target: int) -> torch.Tensor:
    with torch.no_grad():
        scores = torch.cat(
            [net(x * masks[k : k + PER_RUN, None])[:, target] for k in range(0, len(masks), PER_RUN)]
        )
    return (scores[:, None, None] * masks).sum(0) / (len(masks) * 0.5)


def reciprocam_in_torch(net, x: torch.Tensor, target: int) -> torch.Tensor:
    with torch.no_grad():
        body = torch.nn.Sequential(*list(net.children())[:-2])
        features = body(x)
        masks = torch.tensor(reciprocam_masks(*features.shape[2:], False))
        mosaics = features * masks[:, None]
        logits = net.fc(torch.flatten(net.avgpool(mosaics), 1))
        return torch.softmax(logits, 1)[:, target].reshape(features.shape[2:])


class ClosedForm:
    """A weighted least-squares fit for Captum's LIME and KernelSHAP (their default interpretable
    models need scikit-learn, which is not installed here; the fit is a negligible share of either)."""

    def fit(self, train_data, **kwargs):
        z, y, w = (torch.cat(parts).double() for parts in zip(*train_data))
        root = w.reshape(-1, 1).sqrt()
        self.coefficients = torch.linalg.lstsq(root * z, root[:, 0] * y.reshape(-1)).solution

    def representation(self):
        return self.coefficients.reshape(1, -1)


def lime_and_shap(net):
    from captum.attr import KernelShap, Lime

    lime = Lime(net, interpretable_model=ClosedForm())
    shap = KernelShap(net)
    shap.interpretable_model = ClosedForm()
    return lime, shap


def runs(ex, net, x: np.ndarray, target: int) -> dict[str, tuple]:
    from captum.attr import Occlusion

    xt = torch.tensor(x)
    features = torch.as_tensor(grid_features())[None, None]
    masks = rise_masks(1000, 7, 0.5, 224, 224, noise_seed=0)
    batched = {"batch_size": PER_RUN}
    lime, shap = lime_and_shap(net)
    surrogate = {"feature_mask": grid_features(), "n_samples": 200, **batched}
    return {
        "occlusion": (
            lambda: ex.explain(x, "occlusion", objective=target, **batched),
            lambda: Occlusion(net).attribute(
                xt, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8), target=target,
                perturbations_per_eval=PER_RUN,
            ),
        ),
        "lime": (
            lambda: ex.explain(x, "lime", objective=target, **surrogate),
            lambda: lime.attribute(
                xt, target=target, feature_mask=features, n_samples=200, perturbations_per_eval=PER_RUN
            ),
        ),
        "kernel_shap": (
            lambda: ex.explain(x, "kernel_shap", objective=target, **surrogate),
            lambda: shap.attribute(
                xt, target=target, feature_mask=features, n_samples=200, perturbations_per_eval=PER_RUN
            ),
        ),
        "rise": (
            lambda: ex.explain(x, "rise", objective=target, n_masks=1000, noise_seed=0, **batched),
            lambda: rise_in_torch(net, xt, torch.tensor(masks), target),
        ),
        "reciprocam": (
            lambda: ex.explain(x, "reciprocam", objective=target),
            lambda: reciprocam_in_torch(net, xt, target),
        ),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    net = torch_model("resnet50").float().eval()
    ex = onnx_xai.Explainer(str(exported("resnet50")), threads=2)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    target = int(ex.predict(x).argmax())
    print("ResNet-50, 224 x 224, one image, 2 threads\n")
    print("| method | ours s | theirs s | ours / theirs | theirs |")
    print("|---|---|---|---|---|")
    theirs_name = {"occlusion": "Captum", "lime": "Captum", "kernel_shap": "Captum"}
    for method, (ours, theirs) in runs(ex, net, x, target).items():
        ours()  # sessions and the head built, kernels warm
        pairs = [(timed(ours), timed(theirs)) for _ in range(args.rounds)]
        mine, other = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[0] / p[1] for p in pairs)
        who = theirs_name.get(method, "PyTorch recipe")
        print(f"| {method} | {mine:.2f} | {other:.2f} | {ratio:.2f} | {who} |", flush=True)


if __name__ == "__main__":
    main()
