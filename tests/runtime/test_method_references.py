"""Every registered method against its reference, on a small CNN exported to ONNX.

The gradient family is compared with Captum itself (``Saliency``, ``InputXGradient``,
``IntegratedGradients`` with both quadratures, ``GuidedBackprop``, ``NoiseTunnel`` with the same
noise); guided Grad-CAM with Captum's ``GuidedGradCam`` recomputed with bilinear upsampling (ours;
Captum's default is nearest). The CAM family (pytorch-grad-cam needs torchvision, which stays out) is
compared with its definitions written here on the activations and gradients torch autograd gives
through hooks, in float64: Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM, Score-CAM,
and CAM from the head's weights. A meta-test fails when a registered method has no reference row.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from torch import nn

import onnx_xai
from onnx_xai.runtime.methods import METHOD_NAMES

from ..forms.reference import rel


class Net(nn.Module):
    """conv-BN-ReLU, max pooling, a residual block, GAP -> Linear; ReLUs are modules (Captum hooks
    them for guided backprop)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.conv1, self.relu1 = nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU()
        self.shortcut, self.out = nn.Conv2d(8, 16, 1), nn.ReLU()
        self.fc = nn.Linear(16, 5)

    def features(self, x):
        x = self.stem(x)
        return self.out(self.relu2(self.conv2(self.relu1(self.conv1(x)))) + self.shortcut(x))

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def onnx_bytes(net: nn.Module) -> bytes:
    """A 16 x 16 net exported by TorchScript (opset 17, dynamic batch), as bytes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            torch.zeros(1, 3, 16, 16),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            dynamic_axes={"x": {0: "N"}},
        )
    return buffer.getvalue()


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = Net().eval()
    net.stem[1].running_mean.uniform_(-0.2, 0.2)
    net.stem[1].running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ex = onnx_xai.Explainer(onnx_bytes(net))
    targets = ex.explain(x, "gradcam").targets
    return ex, copy.deepcopy(net).double(), x, targets


def tensor(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=True)


def hooked(net, x, targets) -> tuple[np.ndarray, np.ndarray]:
    """The target layer's activation A and d score / d A, float64 (pytorch-grad-cam's hooks)."""
    store = {}

    def keep(module, inputs, output):
        store["a"] = output
        output.register_hook(lambda g: store.update(g=g))

    handle = net.out.register_forward_hook(keep)
    net(tensor(x))[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
    handle.remove()
    return store["a"].detach().numpy(), store["g"].numpy()


def cam_from(weights: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.maximum(np.einsum("nk,nkhw->nhw", weights, a), 0)


def gradcam_pp(a, g):
    g2 = g**2
    alpha = g2 / (2 * g2 + a.sum((2, 3), keepdims=True) * g2 * g + 1e-6)
    return cam_from((np.maximum(g, 0) * np.where(g != 0, alpha, 0)).sum((2, 3)), a)


def eigencam(a):
    """pytorch-grad-cam's projection, with the SVD's arbitrary sign fixed as ours is (the largest
    |weight| of the first right singular vector positive)."""
    maps = []
    for sample in a:
        flat = sample.reshape(len(sample), -1).T
        flat = flat - flat.mean(0)
        first = np.linalg.svd(flat, full_matrices=True)[2][0]
        if first[np.abs(first).argmax()] < 0:
            first = -first
        maps.append((flat @ first).reshape(sample.shape[1:]))
    return np.maximum(np.stack(maps), 0)


def scorecam(net, x, targets, a):
    masks = F.interpolate(torch.tensor(a), size=x.shape[2:], mode="bilinear", align_corners=True)
    low, high = masks.amin((2, 3), keepdim=True), masks.amax((2, 3), keepdim=True)
    masks = (masks - low) / (high - low + 1e-8)
    with torch.no_grad():
        scores = torch.stack(
            [
                net(torch.tensor(x[i : i + 1], dtype=torch.float64) * masks[i][:, None])[:, t]
                for i, t in enumerate(targets)
            ]
        ).numpy()
    weights = np.exp(scores - scores.max(1, keepdims=True))
    return cam_from(weights / weights.sum(1, keepdims=True), a)


CAMS = {
    "gradcam": lambda net, x, t, a, g: cam_from(g.mean((2, 3)), a),
    "gradcam_pp": lambda net, x, t, a, g: gradcam_pp(a, g),
    "xgradcam": lambda net, x, t, a, g: cam_from(
        (g * a / (a.sum((2, 3), keepdims=True) + 1e-7)).sum((2, 3)), a
    ),
    "hirescam": lambda net, x, t, a, g: np.maximum((g * a).sum(1), 0),
    "layercam": lambda net, x, t, a, g: np.maximum((np.maximum(g, 0) * a).sum(1), 0),
    "eigencam": lambda net, x, t, a, g: eigencam(a),
    "eigengradcam": lambda net, x, t, a, g: eigencam(g * a),
    "gradcam_elementwise": lambda net, x, t, a, g: np.maximum(np.maximum(g * a, 0).sum(1), 0),
    "scorecam": lambda net, x, t, a, g: scorecam(net, x, t, a),
    "cam": lambda net, x, t, a, g: np.einsum("nk,nkhw->nhw", net.fc.weight.detach().numpy()[t], a),
}


@pytest.mark.parametrize("name", list(CAMS))
def test_cam_family(setup, name):
    ex, net, x, targets = setup
    a, g = hooked(net, x, targets)
    assert rel(ex.explain(x, name, objective=targets).raw, CAMS[name](net, x, targets, a, g)) < 1e-5


def captum(attributor, net, x, targets, **kwargs) -> np.ndarray:
    return attributor.attribute(tensor(x), target=torch.as_tensor(targets), **kwargs).detach().numpy()


GRADIENTS = {
    "gradient": (lambda net: Saliency(net), {"abs": False}, {}),
    "input_x_gradient": (lambda net: InputXGradient(net), {}, {}),
    "guided_backprop": (lambda net: GuidedBackprop(net), {}, {}),
    "deconvolution": (lambda net: Deconvolution(net), {}, {}),
    "integrated_gradients": (lambda net: IntegratedGradients(net), {"n_steps": 8}, {"n_steps": 8}),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
def test_gradient_family_matches_captum(setup, name):
    ex, net, x, targets = setup
    make, captum_options, options = GRADIENTS[name]
    assert (
        rel(
            ex.explain(x, name, objective=targets, **options).raw,
            captum(make(net), net, x, targets, **captum_options),
        )
        < 1e-4
    )


@pytest.mark.parametrize("integration", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_quadratures_and_baselines(setup, integration):
    ex, net, x, targets = setup
    baseline = np.random.default_rng(0).standard_normal(x.shape[1:]).astype(np.float32) * 0.1
    ours = ex.explain(
        x,
        "integrated_gradients",
        objective=targets,
        n_steps=12,
        integration=integration,
        baseline=baseline,
        batch_size=5,
    ).raw
    want = captum(
        IntegratedGradients(net),
        net,
        x,
        targets,
        n_steps=12,
        method=integration,
        baselines=torch.tensor(np.broadcast_to(baseline, x.shape).copy(), dtype=torch.float64),
    )
    assert rel(ours, want) < 1e-4
    completeness = ours.reshape(2, -1).sum(1)  # IG's axiom: attributions sum to f(x) - f(baseline)
    with torch.no_grad():
        gap = (net(tensor(x)) - net(tensor(np.broadcast_to(baseline, x.shape))))[[0, 1], targets].numpy()
    assert np.allclose(completeness, gap, rtol=0.1, atol=0.05)


def test_guided_gradcam_is_guided_backprop_times_bilinear_gradcam(setup):
    ex, net, x, targets = setup
    guided = captum(GuidedBackprop(net), net, x, targets)
    gradcam = captum(LayerGradCam(net, net.out), net, x, targets, relu_attributions=True)
    upsampled = F.interpolate(
        torch.tensor(gradcam), size=x.shape[2:], mode="bilinear", align_corners=False
    ).numpy()
    assert rel(ex.explain(x, "guided_gradcam", objective=targets).raw, guided * upsampled) < 1e-4


@pytest.mark.parametrize(
    "kind,captum_kind", [("mean", "smoothgrad"), ("square", "smoothgrad_sq"), ("var", "vargrad")]
)
def test_smoothgrad_kinds_match_noise_tunnel(setup, kind, captum_kind):
    ex, net, x, targets = setup
    noise = np.random.default_rng(1).standard_normal((6,) + x.shape[1:]).astype(np.float32) * 0.3
    ours = ex.explain(x, "smoothgrad", objective=targets, noise=noise, kind=kind, batch_size=4).raw
    tunnel, want = NoiseTunnel(Saliency(net)), []
    for i in range(2):  # one sample at a time, one noisy copy per partition: the draws come in order
        with _fixed_noise(torch.tensor(noise, dtype=torch.float64)):
            want.append(
                captum(
                    tunnel,
                    net,
                    x[i : i + 1],
                    targets[i : i + 1],
                    nt_type=captum_kind,
                    nt_samples=6,
                    nt_samples_batch_size=1,
                    stdevs=1.0,
                    abs=False,
                )
            )
    assert rel(ours, np.concatenate(want)) < 1e-4


class _fixed_noise:
    """Make Captum's NoiseTunnel draw our noise rows: its ``torch.normal(0, std)`` returns the next
    row times ``std``."""

    def __init__(self, rows: torch.Tensor):
        self.rows, self.original = iter(rows), torch.normal

    def __enter__(self):
        def normal(mean, std, *args, **kwargs):
            return next(self.rows)[None] * std

        torch.normal = normal

    def __exit__(self, *exc):
        torch.normal = self.original


def test_every_method_has_a_reference_row():
    covered = set(CAMS) | set(GRADIENTS) | {"guided_gradcam", "smoothgrad"}
    covered |= {"occlusion", "rise"}  # test_perturbation.py
    covered |= {"lime", "kernel_shap"}  # test_surrogates.py
    covered |= {"gradient_shap"}  # test_gradient_shap.py
    covered |= {"reciprocam", "ablationcam"}  # test_mosaics.py
    covered |= {"kpca_cam", "fem", "finer_cam", "activation_map", "fullgrad"}  # test_feature_cams.py
    covered |= {"lrp"}  # test_relevance.py
    covered |= {"deeplift", "deeplift_shap"}  # test_deeplift.py
    covered |= {"tree_shap"}  # tests/inputs/test_tree_methods.py, against shap's TreeExplainer
    assert covered == set(METHOD_NAMES), f"methods without a reference: {set(METHOD_NAMES) - covered}"


def test_explain_many_runs_the_model_once(setup, monkeypatch):
    ex, *_ = setup
    x = setup[2]
    calls = []
    original = ex._sessions.run
    monkeypatch.setattr(ex._sessions, "run", lambda *a: calls.append(a[0]) or original(*a))
    one_run = [
        "gradient",
        "input_x_gradient",
        "guided_backprop",
        "guided_gradcam",
        "cam",
        "gradcam",
        "gradcam_pp",
        "xgradcam",
        "hirescam",
        "layercam",
        "eigencam",
    ]
    results = ex.explain_many(x, one_run)
    assert list(results) == one_run and len(calls) == 1
    steps = ex.explain_many(x, ["gradcam", "integrated_gradients"], n_steps=4, batch_size=8)
    assert len(calls) == 3 and steps["integrated_gradients"].raw.shape == x.shape  # shared + 8 points in one
