"""A score behind ``Sigmoid -> Transpose -> Reshape`` (a detector head as PicoDet and SSD exports write
it) is explained on the logit, laid out as the output, and the record says so.

A small torch head, exported by TorchScript with a dynamic size: the input gradient of
``sum(seed * output_logits)`` (the seed shaped like the output) against float64 torch autograd of the
same objective on the logits permuted and reshaped as the output; the score kind ``pre-sigmoid``;
the default target layer before the Sigmoid, never its output.
"""

import numpy as np
import torch
from torch import nn

import onnx_xai
from onnx_xai.runtime.report import inspect_model

from ..forms.reference import rel
from ..graph.test_augment import export


class SigmoidHead(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)
        )
        self.cls = nn.Conv2d(8, 5, 1)

    def logits(self, x):
        y = self.cls(torch.relu(self.body(x)))  # [N, 5, h, w]
        return y.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 5)  # [N, h*w, 5], as the output

    def forward(self, x):
        y = torch.sigmoid(self.cls(torch.relu(self.body(x))))
        return y.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 5)


def test_a_sigmoid_before_shape_moves_is_explained_on_the_logit():
    net = SigmoidHead().eval()
    model = export(net, (1, 3, 16, 16))
    report = inspect_model(model)
    assert report["score_kind"] == "pre-sigmoid" and report["score_moves"] in (["Transpose", "Reshape"],)
    ex = onnx_xai.Explainer(model)
    assert ex.record.score_kind == "pre-sigmoid"
    assert "Sigmoid" not in ex.target_layer and ex.target_layer != model.graph.output[0].name
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    seed = np.zeros((2, 64, 5), np.float32)
    seed[0, 10, 2], seed[1, 33, 4], seed[1, 5, 0] = 1.0, 1.0, 0.5
    got = ex.input_gradient(x, objective=seed)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (net.double().logits(xt) * torch.tensor(seed, dtype=torch.float64)).sum().backward()
    assert rel(got, xt.grad.numpy()) < 1e-5
    scores = ex.explain(x, "gradient", objective=seed).scores
    with torch.no_grad():
        want = (
            net.logits(torch.tensor(x, dtype=torch.float64)) * torch.tensor(seed, dtype=torch.float64)
        ).sum((1, 2))
    np.testing.assert_allclose(scores, want.numpy(), rtol=1e-5)
