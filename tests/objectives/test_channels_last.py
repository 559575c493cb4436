"""Outputs read in the layout the graph gives them: channels-last maps (as Keras and TFLite write
segmenters) and ``[N, 1, 1, K]`` value vectors (landmarks, regressions).

Small torch nets end in ``permute(0, 2, 3, 1)``, the Transpose tf2onnx writes, and are exported by
TorchScript at a fixed size. For each, the command line's objective (its seed, built per photo) is
compared with the mask or index written by hand on the model's own output from a plain onnxruntime
session, and the input gradient of that seed with float64 torch autograd; a value vector is never
explained on a guessed index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scipy import ndimage
from torch import nn

import onnx_xai
from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.imaging.preprocessing import preprocessing_for
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.photos.objectives import objective
from onnx_xai.photos.run import ExplainOptions
from onnx_xai.runtime.report import inspect_model
from onnx_xai.support.errors import InputError

from ..forms.reference import rel
from ..graph.test_augment import export

PHOTO = Path(str(DEMO_PHOTOS)) / "chelsea.jpg"


class ChannelsLast(nn.Module):
    """A map of ``channels`` channels at half the input size, written channels-last; with ``vector``,
    pooled to ``[N, 1, 1, channels]`` (a landmark head)."""

    def __init__(self, channels: int, vector: bool = False):
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, channels, 3, stride=2, padding=1)
        )
        self.vector = vector

    def forward(self, x):
        y = self.body(x)
        if self.vector:
            y = y.mean((2, 3), keepdim=True)
        return y.permute(0, 2, 3, 1)


def setup(net: nn.Module):
    model = export(net.eval(), (1, 3, 32, 32), dynamic=False)
    ex = onnx_xai.Explainer(model)
    p = prepare(load_image(PHOTO), **preprocessing_for(ex))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    output = session.run(None, {"x": p.array})[0]
    return model, ex, p, output


def input_gradient_matches_torch(net: nn.Module, ex, x: np.ndarray, seed: np.ndarray) -> None:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (net.double()(xt) * torch.tensor(seed, dtype=torch.float64)).sum().backward()
    assert rel(ex.input_gradient(x, objective=seed), xt.grad.numpy()) < 1e-5


def test_a_channels_last_segmenter():
    net = ChannelsLast(3)
    model, ex, p, output = setup(net)
    assert ex.output_layout == "NHWC" and output.shape == (1, 16, 16, 3)
    described = {o["name"]: o for o in inspect_model(model)["outputs"]}[model.graph.output[0].name]
    assert described["layout"] == "NHWC" and described["kind"] == "segmentation"
    wanted, chosen = objective(ex, p.array, [p], ExplainOptions(target=1))
    mask = output[0].argmax(-1) == 1
    want = np.zeros_like(output)
    want[0, :, :, 1] = mask
    np.testing.assert_array_equal(wanted.values, want)
    assert chosen[0]["kind"] == "segmentation" and chosen[0]["pixels"] == int(mask.sum()) > 0
    input_gradient_matches_torch(net, ex, p.array, wanted.values)


def test_a_channels_last_dense_map():
    net = ChannelsLast(1)
    _, ex, p, output = setup(net)
    threshold = float(np.quantile(output, 0.7))
    wanted, chosen = objective(ex, p.array, [p], ExplainOptions(threshold=threshold))
    regions, count = ndimage.label(output[0, :, :, 0] > threshold, structure=np.ones((3, 3)))
    largest = regions == 1 + np.argmax(ndimage.sum(np.ones_like(regions), regions, range(1, count + 1)))
    np.testing.assert_array_equal(wanted.values[0, :, :, 0], largest.astype(np.float32))
    assert chosen[0]["kind"] == "dense"
    input_gradient_matches_torch(net, ex, p.array, wanted.values)


def test_a_value_vector_is_never_explained_on_a_guessed_index():
    net = ChannelsLast(12, vector=True)
    _, ex, p, output = setup(net)
    assert output.shape == (1, 1, 1, 12)
    with pytest.raises(InputError, match=r"holds 12 values per sample .* --objective regression --channel I"):
        objective(ex, p.array, [p], ExplainOptions())
    wanted, chosen = objective(ex, p.array, [p], ExplainOptions(objective="regression", channel=7))
    want = np.zeros_like(output)
    want[0, 0, 0, 7] = 1
    np.testing.assert_array_equal(wanted.values, want)
    assert chosen[0] == {
        "kind": "regression",
        "index": 7,
        "value": pytest.approx(float(output[0, 0, 0, 7]), rel=1e-5),
        "output": "y",
        "score_kind": "logit",
    }
    input_gradient_matches_torch(net, ex, p.array, wanted.values)
