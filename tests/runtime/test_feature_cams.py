"""KPCA-CAM, FEM and Finer-CAM against pytorch-grad-cam's definitions, written here in float64 torch
on the method table's CNN (activations and gradients through hooks, as pytorch-grad-cam takes
them); Finer-CAM also on the CNN ending in a Softmax, whose objective reaches the logits through it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import onnx_xai
from onnx_xai.runtime.methods.cams import _first_component
from onnx_xai.runtime.methods.feature_cams import first_kernel_component

from ..forms.reference import rel
from .test_method_references import cam_from, onnx_bytes, setup, tensor  # noqa: F401  (the fixture)


def _activations(net, x) -> torch.Tensor:
    with torch.no_grad():
        return net.features(torch.tensor(x, dtype=torch.float64))


def kpca_by_torch(a: torch.Tensor, kernel: str, gamma: float | None) -> np.ndarray:
    """scikit-learn's KernelPCA(n_components=1) fit_transform on each sample's centred positions."""
    maps = []
    for sample in a:
        points = sample.reshape(len(sample), -1).T
        points = points - points.mean(0)
        g = gamma or 1.0 / points.shape[1]
        dots = points @ points.T
        matrix = (
            torch.tanh(g * dots + 1)
            if kernel == "sigmoid"
            else torch.exp(-g * torch.cdist(points, points) ** 2)
        )
        n = len(matrix)
        ones = torch.full((n, n), 1.0 / n, dtype=torch.float64)
        centred = matrix - ones @ matrix - matrix @ ones + ones @ matrix @ ones
        values, vectors = torch.linalg.eigh(centred)
        top = vectors[:, -1]
        top = top * torch.sign(top[top.abs().argmax()])
        maps.append((top * values[-1].sqrt()).reshape(sample.shape[1:]))
    return torch.relu(torch.stack(maps)).numpy()


@pytest.mark.parametrize("kernel, gamma", [("sigmoid", None), ("rbf", 0.05)])
def test_kpca_cam_matches_kernel_pca(setup, kernel, gamma):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "kpca_cam", objective=targets, kernel=kernel, gamma=gamma).raw
    assert rel(ours, kpca_by_torch(_activations(net, x), kernel, gamma)) < 1e-5


def test_a_linear_kernel_pca_is_the_principal_component(setup):  # noqa: F811
    """Two formulations of one projection: the eigenvector of the centred Gram matrix times its root
    eigenvalue, and the data on its first right singular vector (Eigen-CAM), equal up to sign."""
    _, net, x, _ = setup
    a = _activations(net, x).numpy()
    np.testing.assert_allclose(
        np.abs(first_kernel_component(a, "linear", None)), np.abs(_first_component(a)), atol=1e-9
    )


def test_activation_map_is_the_channel_mean(setup):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "activation_map", objective=targets).raw
    assert rel(ours, _activations(net, x).mean(1).numpy()) < 1e-5


@pytest.mark.parametrize("k", [2.0, 0.5])
def test_fem_matches_its_definition(setup, k):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "fem", objective=targets, k=k).raw
    a = _activations(net, x)
    threshold = a.mean((2, 3), keepdim=True) + k * a.std((2, 3), unbiased=False, keepdim=True)
    weights = (a > threshold).double().mean((2, 3))
    assert rel(ours, cam_from(weights.numpy(), a.numpy())) < 1e-5


def finer_by_torch(net, x, targets, alpha=1.0, ranks=(1, 2, 3)) -> np.ndarray:
    """Grad-CAM of pytorch-grad-cam's FinerWeightedTarget (softmax weights differentiated)."""
    store = {}

    def keep(module, inputs, output):
        store["a"] = output
        output.register_hook(lambda g: store.update(g=g))

    handle = net.out.register_forward_hook(keep)
    output = net(tensor(x))
    total = 0
    for i, target in enumerate(targets):
        row = output[i]
        order = torch.argsort((row - row[target]).abs().detach(), stable=True)
        others = [int(order[r]) for r in ranks]
        p = torch.softmax(row, -1)
        numerator = sum(p[j] * (row[target] - alpha * row[j]) for j in others)
        total = total + numerator / (sum(p[j] for j in others) + 1e-9)
    total.backward()
    handle.remove()
    a, g = store["a"].detach().numpy(), store["g"].numpy()
    return cam_from(g.mean((2, 3)), a)


@pytest.mark.parametrize("alpha, ranks", [(1.0, (1, 2, 3)), (0.6, (1, 3))])
def test_finer_cam_matches_pytorch_grad_cams_target(setup, alpha, ranks):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "finer_cam", objective=targets, alpha=alpha, comparisons=ranks).raw
    assert rel(ours, finer_by_torch(net, x, targets, alpha, ranks)) < 1e-5


def test_finer_cam_reaches_the_logits_through_a_softmax(setup):  # noqa: F811
    _, net, x, targets = setup

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.out = inner, inner.out

        def features(self, x):
            return self.inner.features(x)

        def forward(self, x):
            return torch.softmax(self.inner(x), 1)

    wrapped = WithSoftmax(copy.deepcopy(net).float()).eval()
    ex = onnx_xai.Explainer(onnx_bytes(wrapped))
    assert ex.record.score_kind == "pre-softmax"
    ours = ex.explain(x, "finer_cam", objective=targets, alpha=0.6).raw
    assert rel(ours, finer_by_torch(wrapped.double(), x, targets, 0.6)) < 1e-5


def fullgrad_by_torch(net, x, targets) -> np.ndarray:
    """pytorch-grad-cam's FullGrad: hooks on every Conv2d and BatchNorm2d with a bias, the input's
    gradient times itself and each layer's |bias * gradient|, each channel scaled to [0, 1] and
    resized to the input (bilinear, half-pixel: cv2's for upsampling), all summed."""
    layers = [
        m
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) and m.bias is not None
    ]
    store: list = []

    def keep(module, inputs, output):
        output.register_hook(lambda g, module=module: store.append((module, g)))

    handles = [layer.register_forward_hook(keep) for layer in layers]
    inputs = tensor(x)
    net(inputs)[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    for handle in handles:
        handle.remove()

    def scaled(maps: torch.Tensor) -> torch.Tensor:  # [N, C, h, w], each channel to [0, 1], resized
        maps = maps - maps.amin((2, 3), keepdim=True)
        maps = maps / (1e-7 + maps.amax((2, 3), keepdim=True))
        return F.interpolate(maps, size=x.shape[2:], mode="bilinear", align_corners=False)

    total = scaled((inputs.grad * inputs).abs().detach()).sum(1)
    for module, grad in store:
        if isinstance(module, torch.nn.BatchNorm2d):
            bias = module.bias - module.running_mean * module.weight / torch.sqrt(
                module.running_var + module.eps
            )
        else:
            bias = module.bias
        total = total + scaled((bias[None, :, None, None] * grad).abs().detach()).sum(1)
    return total.numpy()


def test_fullgrad_matches_pytorch_grad_cams_definition(setup):  # noqa: F811
    """The stem's convolution without a bias before its BatchNorm, as in real networks: the export
    folds a BatchNorm into its convolution, and a biased convolution and its BatchNorm (two layers
    to pytorch-grad-cam) would be one layer in the file."""
    _, net, x, targets = setup
    net = copy.deepcopy(net)
    net.stem[0].bias = None
    ex = onnx_xai.Explainer(onnx_bytes(copy.deepcopy(net).float()))
    ours = ex.explain(x, "fullgrad", objective=targets).raw
    assert rel(ours, fullgrad_by_torch(net, x, targets)) < 1e-5
