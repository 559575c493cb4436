"""LRP against Zennit's composites and Captum's ``LRP`` on small Conv/BN/ReLU/pool/linear nets
exported to ONNX (BatchNorm folded into the convolution by the exporter, as Zennit's canonizer merges
it), in float64 torch; and conservation where the rules conserve: with no biases, the relevance of
the input adds up to the explained logit under the z-plus and flat rules."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import onnx_xai

from ..forms.reference import rel
from .test_method_references import onnx_bytes
from .zennit_import import zennit_layer


class Net(nn.Module):
    """conv-BN-ReLU, max pooling, a block of two convolutions (``gated``: ReLU after the second too)
    summed with its input by Zennit's ``Sum`` (``residual``), global average pooling, two linear
    layers."""

    def __init__(self, bias=True, residual=True, gated=False, batchnorm=True):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(8) if batchnorm else None
        self.relu0, self.pool = nn.ReLU(), nn.MaxPool2d(2)
        self.conv1, self.relu1 = nn.Conv2d(8, 8, 3, padding=1, bias=bias), nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 1, bias=bias)
        self.relu3 = nn.ReLU() if gated else None
        self.sum = zennit_layer().Sum() if residual else None
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.relu2, self.fc2 = nn.Linear(8, 12, bias=bias), nn.ReLU(), nn.Linear(12, 5, bias=bias)

    def forward(self, x):
        x = self.conv0(x)
        x = self.pool(self.relu0(self.bn(x) if self.bn is not None else x))
        y = self.conv2(self.relu1(self.conv1(x)))
        y = self.relu3(y) if self.relu3 is not None else y
        x = self.sum(torch.stack([x, y], -1)) if self.sum is not None else y
        return self.fc2(self.relu2(self.fc1(torch.flatten(self.gap(x), 1))))


def _net(seed=0, **form) -> Net:
    torch.manual_seed(seed)
    net = Net(**form).eval()
    if net.bn is not None:
        with torch.no_grad():
            net.bn.running_mean.uniform_(-0.2, 0.2)
            net.bn.running_var.uniform_(0.5, 1.5)
            net.bn.weight.uniform_(0.5, 1.5)
    return net


def _x() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)


def zennit_relevance(net, x, targets, composite) -> np.ndarray:
    from zennit.attribution import Gradient

    inputs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    with Gradient(model=net, composite=composite) as attributor:
        output = net(inputs)
        seed = torch.zeros_like(output)
        seed[torch.arange(len(x)), torch.as_tensor(targets)] = 1
        _, relevance = attributor(inputs, lambda out: out * seed)
    return relevance.detach().numpy()


@pytest.mark.parametrize("name", ["epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1_flat"])
def test_lrp_matches_zennits_composites(name):
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonAlpha2Beta1Flat, EpsilonPlus, EpsilonPlusFlat

    net = _net()
    ex, x = onnx_xai.Explainer(onnx_bytes(net)), _x()
    ours = ex.explain(x, "lrp", objective=[1, 3], composite=name)
    composite = {"epsilon_plus_flat": EpsilonPlusFlat, "epsilon_plus": EpsilonPlus,
                 "epsilon_alpha2_beta1_flat": EpsilonAlpha2Beta1Flat}[name]  # fmt: skip
    canonized = composite(canonizers=[SequentialMergeBatchNorm()])
    want = zennit_relevance(copy.deepcopy(net).double(), x, [1, 3], canonized)
    assert rel(ours.raw, want) < 1e-4, rel(ours.raw, want)


def test_lrp_gamma_box_matches_zennit():
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonGammaBox

    net = _net()
    ex, x = onnx_xai.Explainer(onnx_bytes(net)), _x()
    low, high = [-2.1, -2.0, -1.8], [2.2, 2.4, 2.6]
    ours = ex.explain(
        x, "lrp", objective=[0, 2], composite="epsilon_gamma_box", low=low, high=high, gamma=0.3
    )
    bounds = [
        torch.tensor(v, dtype=torch.float64).reshape(1, 3, 1, 1).expand(1, 3, 16, 16) for v in (low, high)
    ]
    merge = [SequentialMergeBatchNorm()]
    composite = EpsilonGammaBox(low=bounds[0], high=bounds[1], gamma=0.3, canonizers=merge)
    want = zennit_relevance(copy.deepcopy(net).double(), x, [0, 2], composite)
    assert rel(ours.raw, want) < 1e-4, rel(ours.raw, want)


def test_lrp_epsilon_matches_captum():
    from captum.attr import LRP

    net = _net(residual=False, batchnorm=False)  # Captum's BatchNorm rule is not a folded BatchNorm's
    ex, x = onnx_xai.Explainer(onnx_bytes(net)), _x()
    ours = ex.explain(x, "lrp", objective=[4, 2], composite="epsilon")
    torch_net = copy.deepcopy(net).double()
    want = LRP(torch_net).attribute(torch.tensor(x, dtype=torch.float64), target=torch.tensor([4, 2]))
    assert rel(ours.raw, want.detach().numpy()) < 1e-4


@pytest.mark.parametrize("name, tolerance", [("epsilon", 1e-5), ("epsilon_plus_flat", 1e-3)])
def test_without_biases_the_relevance_adds_up_to_the_logit(name, tolerance):
    """Conservation: no biases (nor a BatchNorm, which folds into one) and every convolution gated
    by a ReLU, so that z-plus never meets a unit without positive contributions; epsilon conserves
    exactly, z-plus to its stabilizer's share (1e-6 over sums of a few hundredths)."""
    net = _net(seed=1, bias=False, gated=True, batchnorm=False)
    ex, x = onnx_xai.Explainer(onnx_bytes(net)), _x()
    found = ex.explain(x, "lrp", objective=[1, 3], composite=name)
    np.testing.assert_allclose(found.raw.reshape(2, -1).sum(1), found.scores, rtol=tolerance)


def test_box_rule_asks_for_the_inputs_bounds():
    ex = onnx_xai.Explainer(onnx_bytes(_net()))
    with pytest.raises(onnx_xai.InputError, match="needs low and high"):
        ex.explain(_x(), "lrp", composite="epsilon_gamma_box")


def test_inspect_says_where_lrp_has_no_rule_as_the_run_does():
    from onnx_xai.runtime.report import inspect_model

    from ..forms import exports as forms

    cnn = onnx_bytes(_net())
    assert inspect_model(cnn)["no_relevance_rule"] == []
    vit = forms.export("vit")
    obstacles = inspect_model(str(vit))["no_relevance_rule"]
    assert any("MatMul of two activations" in o for o in obstacles)
    x = forms.example_input(forms.FORMS["vit"].build(), 1)
    with pytest.raises(onnx_xai.ModelError, match="LRP has no rule"):
        onnx_xai.Explainer(str(vit)).explain(x, "lrp")
