"""The tests' torch references are derivatives: a BatchNorm in eval mode whose output is flattened
into tokens (a gradient with channels-last strides at batch 1) gets, from torch inside
``exact_batch_norm`` and from the gradient graph of the ONNX export alike, the gradient computed by hand:
``dy * weight / sqrt(running_var + eps)`` per channel."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from onnx_xai.graph.assemble import vjp_model

from .forms.reference import rel
from .torch_fixes import exact_batch_norm


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bn = nn.BatchNorm2d(8).eval()
        with torch.no_grad():
            self.bn.running_mean.normal_(), self.bn.running_var.uniform_(0.5, 2), self.bn.weight.normal_()
        self.weights = nn.Parameter(torch.randn(1, 25, 8))

    def forward(self, x):
        return (self.bn(x).flatten(2).permute(0, 2, 1) * self.weights).sum((1, 2))[:, None]


def test_batch_norm_gradient_of_tokens(tmp_path):
    net = Tokens().eval().double()
    scale = (net.bn.weight / torch.sqrt(net.bn.running_var + net.bn.eps)).detach().double().numpy()
    by_hand = net.weights.detach().double().numpy()[0].T.reshape(1, 8, 5, 5) * scale[None, :, None, None]
    x = torch.randn(1, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    with exact_batch_norm():
        net(x).sum().backward()
    assert rel(x.grad.numpy(), by_hand) < 1e-12
    path = tmp_path / "tokens.onnx"
    torch.onnx.export(net.float(), torch.zeros(1, 8, 5, 5), str(path), dynamo=False, input_names=["x"])
    model = onnx.load(str(path))
    rewritten = vjp_model(model, model.graph.output[0].name, ["x"])
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": x.detach().float().numpy(), "xai_seed": np.ones((1, 1), np.float32)}
    ours = session.run(["xai_grad/x"], feeds)[0]
    assert rel(ours, by_hand) < 1e-6
