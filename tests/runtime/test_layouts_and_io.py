"""NHWC inputs, and models with several inputs and outputs, through the Explainer."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

import onnx_xai

from ..graph.test_augment import ChannelsLast, export


def test_channels_last_input():
    net = ChannelsLast().eval()
    ex = onnx_xai.Explainer(export(net, (1, 8, 8, 3)))
    assert ex.layout == "NHWC"
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    gradient = ex.explain(x, "gradient", objective=[0, 2])
    xt = torch.tensor(x, requires_grad=True)
    net(xt)[[0, 1], [0, 2]].sum().backward()
    np.testing.assert_allclose(gradient.raw, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    summed = np.abs(xt.grad.numpy()).sum(-1)  # PAIR's grayscale map: channels summed, 99th percentile
    lo, hi = (
        summed.min((1, 2), keepdims=True),
        np.percentile(summed.reshape(2, -1), 99, axis=1)[:, None, None],
    )
    np.testing.assert_allclose(gradient.maps, np.clip((summed - lo) / (hi - lo), 0, 1), atol=1e-5)
    cam = ex.explain(x, "cam")
    assert cam.raw.shape == (2, 8, 8) and cam.maps.shape == (2, 8, 8)


class TwoInTwoOut(nn.Module):
    """An image and a per-sample bias in; logits and a second, auxiliary head out."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc, self.aux = nn.Conv2d(3, 4, 3), nn.Linear(4, 3), nn.Linear(4, 2)

    def forward(self, bias, image):
        pooled = torch.relu(self.conv(image)).mean((2, 3))
        return self.aux(pooled), self.fc(pooled) + bias


def test_several_inputs_and_outputs_are_selected_by_name():
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TwoInTwoOut().eval(),
            (torch.zeros(1, 3), torch.zeros(1, 3, 8, 8)),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["bias", "image"],
            output_names=["aux", "logits"],
            dynamic_axes={n: {0: "N"} for n in ("bias", "image", "aux", "logits")},
        )
    ex = onnx_xai.Explainer(buf.getvalue(), output_name="logits")
    assert ex.input_name == "image"
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    bias = np.array([[0.0, 5.0, 0.0], [0.0, 0.0, 5.0]], np.float32)
    result = ex.explain(x, "gradient", extra_inputs={"bias": bias})
    assert result.targets.tolist() == [1, 2]  # the bias decides the top-1 class
    assert ex.explain(x, "gradient", objective=[1, 2], extra_inputs={"bias": bias}).targets.tolist() == [1, 2]
    xt = torch.tensor(x, requires_grad=True)
    TwoInTwoOut().eval()(torch.tensor(bias), xt)[1][[0, 1], [1, 2]].sum().backward()
    np.testing.assert_allclose(result.raw, xt.grad.numpy(), rtol=1e-4, atol=1e-7)
