"""Detectors that keep class scores and boxes in separate outputs (SSD, BlazeFace, PicoDet): the scores
output is read as scores only, never as YOLO's ``[N, 4 + C, A]``, and the record says which layout.

A small torch head with a box output ``[N, A, 4]`` and a scores output ``Sigmoid -> [N, A, C]``, and
a BlazeFace-style one-class ``[N, A, 1]`` of raw logits: the chosen candidate against the argmax
written by hand on a plain onnxruntime session's output, the input gradient against float64 torch
autograd of that candidate's logit; a region cannot pick among scores that have no boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import onnx_xai
from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.imaging.preprocessing import preprocessing_for
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.photos.objectives import objective
from onnx_xai.photos.run import ExplainOptions
from onnx_xai.support.errors import InputError

from ..forms.reference import rel
from ..graph.test_augment import export
from ..test_reliability import cli, one_line

PHOTO = Path(str(DEMO_PHOTOS)) / "rocket.jpg"


class TwoOutputs(nn.Module):
    """Boxes ``[N, A, 4]`` first, then class scores ``[N, A, C]`` (through a Sigmoid when asked)."""

    def __init__(self, classes: int, sigmoid: bool, columns: int = 4):
        super().__init__()
        torch.manual_seed(2)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.box, self.cls = nn.Conv2d(8, columns, 1), nn.Conv2d(8, classes, 1)
        self.columns = columns
        self.classes, self.sigmoid = classes, sigmoid

    def logits(self, x):
        return self.cls(self.body(x)).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.classes)

    def forward(self, x):
        f = self.body(x)
        boxes = self.box(f).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.columns)
        scores = self.cls(f)
        scores = torch.sigmoid(scores) if self.sigmoid else scores
        return boxes, scores.permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.classes)


@pytest.mark.parametrize("classes,sigmoid", [(6, True), (1, False)])
def test_a_scores_output_is_read_as_scores(classes, sigmoid):
    net = TwoOutputs(classes, sigmoid).eval()
    model = export(net, (1, 3, 32, 32), dynamic=False)
    names = [o.name for o in model.graph.output]
    ex = onnx_xai.Explainer(model, output_name=names[1])
    p = prepare(load_image(PHOTO), **preprocessing_for(ex))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    scores = session.run([names[1]], {"x": p.array})[0]  # [1, 256, C]
    category = classes - 1
    wanted, chosen = objective(ex, p.array, [p], ExplainOptions(target=category))
    index = int(scores[0, :, category].argmax())
    assert chosen[0]["candidate"] == index and chosen[0]["class"] == category and chosen[0]["box"] is None
    assert chosen[0]["layout"] == "class scores only, [N, A, C]"
    want = np.zeros_like(scores)
    want[0, index, category] = 1
    np.testing.assert_array_equal(wanted.values, want)
    xt = torch.tensor(p.array, dtype=torch.float64, requires_grad=True)
    net.double().logits(xt)[0, index, category].backward()
    assert rel(ex.input_gradient(p.array, objective=wanted.values), xt.grad.numpy()) < 1e-5
    with pytest.raises(InputError, match="a --region needs the candidates' boxes.*raw values"):
        objective(ex, p.array, [p], ExplainOptions(target=category, region=(10.0, 10.0, 200.0, 200.0)))


def test_a_box_output_named_first_gives_way_to_its_scores(tmp_path):
    model = export(TwoOutputs(1, False).eval(), (1, 3, 32, 32), dynamic=False)
    path = tmp_path / "faces.onnx"
    onnx.save(model, path)
    boxes, scores = (o.name for o in model.graph.output)
    done = cli("explain", path, PHOTO, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"explaining {scores!r}, the class scores of the detector whose boxes are {boxes!r}"
    )
    record = json.loads((tmp_path / "out" / "rocket.jpg.json").read_text())
    assert record["objective"]["output"] == scores and record["objective"]["class"] == 0
    assert record["objective"]["layout"] == "class scores only, [N, A, C]"


def test_the_command_line_asks_which_of_two_outputs_it_cannot_tell_apart(tmp_path):
    model = export(TwoOutputs(6, False, columns=10).eval(), (1, 3, 32, 32), dynamic=False)
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    first, second = (o.name for o in model.graph.output)
    line = one_line(cli("explain", path, PHOTO, "--out", tmp_path / "out"))
    assert line == (
        f"onnx-xai: error: the model has 2 outputs of 256 candidates ({first!r} ['N', 256, 10], {second!r} "
        "['N', 256, 6]): say which to explain with --output NAME (a detector's class scores, usually; its "
        "boxes are another output)"
    )
    done = cli("explain", path, PHOTO, "--output", second, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "rocket.jpg.json").read_text())
    assert record["objective"]["output"] == second
