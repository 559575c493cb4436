"""The Explainer on exported torch nets against torch: autograd gradients, a hook-based Grad-CAM (as
pytorch-grad-cam computes it), CAM from the head weights, and SmoothGrad with explicit noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnx_xai

from ..conformance.exports import SIZE, export
from ..conformance.nets import build

NETS = ["resnet", "mobilenet", "dense_inception", "vgg", "convnext"]
X = np.random.default_rng(7).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def torch_gradcam(net, x: np.ndarray, targets):
    """Grad-CAM with forward/backward hooks on the net's conventional layer (float32, like
    pytorch-grad-cam): weights = spatial mean of the gradient, map = ReLU(sum_k w_k A_k)."""
    store = {}

    def keep(module, inputs, output):
        store["a"] = output
        output.register_hook(lambda grad: store.update(g=grad))

    handle = net.target.register_forward_hook(keep)
    if hasattr(net, "logits_module"):
        net.logits_module.register_forward_hook(lambda m, i, o: store.update(z=o))
    out = net(torch.tensor(x))
    logits = store.get("z", out)
    logits[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    handle.remove()
    a, g = store["a"].detach().numpy(), store["g"].numpy()
    return np.maximum((g.mean((2, 3), keepdims=True) * a).sum(1), 0), a


def autograd_input_gradient(net, x: np.ndarray, targets, dtype):
    net = net.to(dtype)
    store = {}
    if hasattr(net, "logits_module"):
        net.logits_module.register_forward_hook(lambda m, i, o: store.update(z=o))
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    out = net(xt)
    store.get("z", out)[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    return xt.grad.numpy()


@pytest.mark.parametrize("name", NETS)
def test_methods_match_torch(name):
    ex = onnx_xai.Explainer(export(name, "torchscript-17", True))
    net = build(name)
    gradcam = ex.explain(X, "gradcam", objective=[-1, 3])
    targets = gradcam.targets
    torch_map, activation = torch_gradcam(build(name), X, targets)
    assert rel(gradcam.raw, torch_map) < 1e-4
    gradient = ex.explain(X, "gradient", objective=targets)
    ref64 = autograd_input_gradient(build(name), X.astype(np.float64), targets, torch.float64)
    ref32 = autograd_input_gradient(build(name), X, targets, torch.float32)
    assert rel(gradient.raw, ref64) <= max(2 * rel(ref32, ref64), 2e-6)
    if net.cam_weight is not None:
        cam = ex.explain(X, "cam", objective=targets)
        w = net.cam_weight.detach().numpy()[targets]
        assert rel(cam.raw, np.einsum("nk,nkhw->nhw", w, activation)) < 1e-5


def test_smoothgrad_with_explicit_noise_matches_torch_autograd():
    ex = onnx_xai.Explainer(export("resnet", "torchscript-17", True))
    noise = 0.3 * np.random.default_rng(2).standard_normal((4, 3, SIZE, SIZE)).astype(np.float32)
    smooth = ex.explain(X, "smoothgrad", objective=[1, 2], noise=noise, batch_size=3)
    for i, c in enumerate([1, 2]):
        noisy = (X[i : i + 1] + noise).astype(np.float64)
        grads = autograd_input_gradient(build("resnet"), noisy, [c] * len(noise), torch.float64)
        assert rel(smooth.raw[i], grads.mean(0)) < 1e-4
