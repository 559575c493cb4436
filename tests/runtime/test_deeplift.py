"""DeepLIFT and DeepLIFT-SHAP against Captum's ``DeepLift`` and ``DeepLiftShap`` on a Conv/BN/ReLU/
pool/linear net with its activations as modules (Captum rescales modules), in float64 torch; and
summation-to-delta: the attributions add up to score(x) - score(baseline)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import onnx_xai

from ..forms.reference import rel
from .test_method_references import onnx_bytes


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv0, self.bn, self.relu0 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.conv1, self.act1 = nn.Conv2d(8, 8, 3, padding=1), nn.Tanh()
        self.conv2, self.act2 = nn.Conv2d(8, 8, 3, padding=1), nn.Sigmoid()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.relu1, self.fc2 = nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 5)

    def forward(self, x):
        x = self.pool(self.relu0(self.bn(self.conv0(x))))
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc2(self.relu1(self.fc1(torch.flatten(self.gap(x), 1))))


@pytest.fixture(scope="module")
def net_and_explainer():
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 1.5)
    return copy.deepcopy(net).double(), onnx_xai.Explainer(onnx_bytes(net))


def _x(seed=3, count=2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("baseline", [0.0, -0.3])
def test_deeplift_matches_captum(net_and_explainer, baseline):
    from captum.attr import DeepLift

    net, ex = net_and_explainer
    x = _x()
    ours = ex.explain(x, "deeplift", objective=[1, 3], baseline=baseline).raw
    want = DeepLift(net).attribute(
        torch.tensor(x, dtype=torch.float64), baselines=baseline, target=torch.tensor([1, 3])
    )
    assert rel(ours, want.detach().numpy()) < 1e-4


def test_deeplift_adds_up_to_the_change_of_the_score(net_and_explainer):
    _, ex = net_and_explainer
    x, reference = _x(), _x(seed=9, count=1)
    found = ex.explain(x, "deeplift", objective=[0, 4], baseline=reference)
    change = found.scores - ex.predict(np.repeat(reference, 2, axis=0))[np.arange(2), [0, 4]]
    np.testing.assert_allclose(found.raw.reshape(2, -1).sum(1), change, rtol=1e-4, atol=1e-6)


def test_deeplift_shap_matches_captum(net_and_explainer):
    from captum.attr import DeepLiftShap

    net, ex = net_and_explainer
    x, references = _x(), _x(seed=5, count=4)
    ours = ex.explain(x, "deeplift_shap", objective=[2, 0], baselines=references, batch_size=6).raw
    want = DeepLiftShap(net).attribute(
        torch.tensor(x, dtype=torch.float64), baselines=torch.tensor(references, dtype=torch.float64),
        target=torch.tensor([2, 0]),
    )  # fmt: skip
    assert rel(ours, want.detach().numpy()) < 1e-4


def test_deeplift_shap_asks_for_its_references(net_and_explainer):
    _, ex = net_and_explainer
    with pytest.raises(onnx_xai.InputError, match="needs baselines"):
        ex.explain(_x(), "deeplift_shap")
