"""Signals explained over time: random-init torch models on ``[N, C, T]``, ``[N, T, C]`` and raw
waveforms ``[N, T]``, exported by torch.onnx. Their layout read from the graph; the gradient against
float64 autograd; Grad-CAM-1D against a hand computation in float64 torch (the last conv block's
activations and gradients, weights averaged over time, ReLU, linear upsampling to T); occlusion against
Captum's ``Occlusion`` with the same window over all channels and per channel; integrated gradients
from the per-channel mean against Captum; the surrogates' time segments; a time-first input refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import onnx_xai
from onnx_xai.support.errors import InputError, ModelError

captum_attr = pytest.importorskip("captum.attr")

T = 96


class Cnn(torch.nn.Module):
    """Conv1d blocks on [N, C, T] (or [N, T, C] transposed first, or a waveform unsqueezed)."""

    def __init__(self, channels: int, form: str):
        super().__init__()
        self.form = form
        self.c1 = torch.nn.Conv1d(channels, 8, 7, padding=3)
        self.c2 = torch.nn.Conv1d(8, 12, 5, stride=2, padding=2)
        self.fc = torch.nn.Linear(12, 3)

    def features(self, x):
        if self.form == "NTC":
            x = x.transpose(1, 2)
        elif self.form == "NT":
            x = x.unsqueeze(1)
        return torch.relu(self.c2(torch.tanh(self.c1(x))))

    def forward(self, x):
        return self.fc(self.features(x).mean(-1))


SHAPES = {"NCT": (2, 3, T), "NTC": (2, T, 3), "NT": (2, T)}


@pytest.fixture(scope="module", params=list(SHAPES))
def model(request, tmp_path_factory):
    form = request.param
    torch.manual_seed(1)
    net = Cnn(1 if form == "NT" else 3, form).eval()
    path = tmp_path_factory.mktemp("signals") / f"{form}.onnx"
    example = torch.randn(*SHAPES[form])
    torch.onnx.export(
        net, (example,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )  # fmt: skip
    x = np.random.default_rng(2).standard_normal(SHAPES[form]).astype(np.float32)
    return form, net, onnx_xai.Explainer(str(path)), x


def test_the_layout_is_read_from_the_graph_and_the_gradient_is_autograds(model):
    form, net, ex, x = model
    assert (ex.kind, ex.layout) == ("signal", form)
    r = ex.explain(x, "gradient")
    reference = copy.deepcopy(net).double()
    inputs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    reference(inputs)[torch.arange(2), torch.as_tensor(r.targets)].sum().backward()
    want = inputs.grad.numpy()
    assert r.raw.shape == x.shape and np.abs(r.raw - want).max() <= 1e-5 * np.abs(want).max()
    assert r.maps.shape == (2, T) and r.boxes is None


def test_gradcam_over_time_against_a_hand_computation(model):
    form, net, ex, x = model
    r = ex.explain(x, "gradcam")
    reference = copy.deepcopy(net).double()
    a = reference.features(torch.tensor(x, dtype=torch.float64))
    a.retain_grad()
    reference.fc(a.mean(-1))[torch.arange(2), torch.as_tensor(r.targets)].sum().backward()
    cam = torch.relu((a.grad.mean(-1, keepdim=True) * a).sum(1))  # [N, T']
    want = F.interpolate(cam[:, None], size=T, mode="linear", align_corners=False)[:, 0].detach().numpy()
    assert r.raw.shape == cam.shape and np.abs(r.raw - cam.detach().numpy()).max() <= 1e-5 * float(cam.max())
    span = want.max(axis=1, keepdims=True) - want.min(axis=1, keepdims=True)
    np.testing.assert_allclose(r.maps, (want - want.min(axis=1, keepdims=True)) / span, atol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_occlusion_against_captum(model, per_channel):
    form, net, ex, x = model
    r = ex.explain(x, "occlusion", window=12, stride=5, per_channel=per_channel, baseline=0.25)
    time = form.index("T")
    window, strides = [1] * (x.ndim - 1), [1] * (x.ndim - 1)
    window[time - 1], strides[time - 1] = 12, 5
    if "C" in form and not per_channel:
        window[form.index("C") - 1] = x.shape[form.index("C")]
    want = captum_attr.Occlusion(net).attribute(
        torch.as_tensor(x), sliding_window_shapes=tuple(window), strides=tuple(strides),
        baselines=0.25, target=torch.as_tensor(r.targets),
    ).numpy()  # fmt: skip
    assert np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max()


def test_integrated_gradients_from_each_channels_mean_against_captum(model):
    form, net, ex, x = model
    r = ex.explain(x, "integrated_gradients", baseline="mean", n_steps=32)
    time = form.index("T")
    baseline = np.broadcast_to(x.mean(axis=time, keepdims=True), x.shape)
    want = captum_attr.IntegratedGradients(net).attribute(
        torch.as_tensor(x), baselines=torch.as_tensor(baseline.copy()), target=torch.as_tensor(r.targets),
        n_steps=32,
    ).numpy()  # fmt: skip
    assert np.abs(r.raw - want).max() <= 1e-4 * np.abs(want).max()


def test_kernel_shap_over_time_segments_adds_up(model):
    form, net, ex, x = model
    r = ex.explain(x, "kernel_shap", segments=6, n_samples=400, baseline=0.0)
    one_channel = r.raw[:, 0] if form == "NCT" else r.raw[..., 0] if form == "NTC" else r.raw  # [N, T]
    segments = one_channel.reshape(2, 6, T // 6)
    assert np.all(segments == segments[:, :, :1]), "one value per time segment, every channel"
    drop = ex.scores(x, r.targets) - ex.scores(np.zeros_like(x), r.targets)
    np.testing.assert_allclose(segments[:, :, 0].sum(1), drop, rtol=1e-3, atol=1e-4)


def test_a_mean_baseline_is_for_signals_only_and_time_first_inputs_are_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).eval()
    path = tmp_path / "table.onnx"
    torch.onnx.export(net, (torch.randn(1, 12),), str(path), dynamo=False, input_names=["x"])
    with pytest.raises(InputError, match="'mean' for a signal"):
        onnx_xai.Explainer(str(path)).explain(
            np.ones((1, 12), np.float32), "integrated_gradients", baseline="mean"
        )
    lstm = torch.nn.LSTM(3, 4)  # batch_first=False: [T, N, C]
    path = tmp_path / "time_first.onnx"
    torch.onnx.export(lstm, (torch.randn(10, 1, 3),), str(path), dynamo=False, input_names=["x"])
    with pytest.raises(ModelError, match="laid out TNC"):
        onnx_xai.Explainer(str(path))
