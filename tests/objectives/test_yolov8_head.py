"""An ultralytics-style YOLOv8 head decoded in the graph: per scale a box branch of 4 x 16 bins, the
distribution-focal decode (softmax over the bins, then a fixed 1 x 1 convolution by 0..15, as
ultralytics' ``DFL`` module), distances to ``cx, cy, w, h`` in input pixels from the grid points, and
Sigmoid class scores, concatenated to ``[N, 4 + C, A]``; a top-down neck (P4 into P3) so that neither
neck output carries every path to the candidates.

Checked: the default target layers are the two neck outputs (found by value with hooks); the command
line's region picks the candidate a hand decode of onnxruntime's output picks; the input gradient of
that candidate's class score matches float64 torch autograd.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import onnx_xai
from onnx_xai.cli import main

from ..forms.reference import rel
from .test_detector_heads import PHOTO, SIZE, iou, photo_input, run_outputs, save

BINS = 16


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.SiLU())


class YoloV8(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(9)
        self.c3 = nn.Sequential(conv(3, 8, 2), conv(8, 8, 2), conv(8, 16, 2))  # stride 8
        self.c4 = conv(16, 16, 2)  # stride 16
        self.p4, self.p3 = conv(16, 16), conv(16, 16)
        self.box = nn.ModuleList([nn.Conv2d(16, 4 * BINS, 1) for _ in range(2)])
        self.cls = nn.ModuleList([nn.Conv2d(16, classes, 1) for _ in range(2)])
        self.dfl = nn.Conv2d(BINS, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(BINS, dtype=torch.float).view(1, BINS, 1, 1)
        for box in self.box:  # boxes a stride or two across, as trained heads give, not the bins' mean
            box.bias.data.view(4, BINS)[:, 1] += 4.0

    def necks(self, x):
        c3 = self.c3(x)
        p4 = self.p4(self.c4(c3))
        return self.p3(c3 + F.interpolate(p4, scale_factor=2.0, mode="nearest")), p4

    def forward(self, x):
        boxes, scores = [], []
        for level, (feature, stride) in enumerate(zip(self.necks(x), (8, 16))):
            n, _, h, w = feature.shape
            bins = self.box[level](feature).view(n, 4, BINS, h * w).transpose(2, 1).softmax(1)
            left_top, right_bottom = self.dfl(bins).view(n, 4, h * w).chunk(2, 1)
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            points = torch.stack([xs.flatten(), ys.flatten()]).to(x.dtype)[None] + 0.5
            x0y0, x1y1 = points - left_top, points + right_bottom
            boxes.append(torch.cat([(x0y0 + x1y1) / 2, x1y1 - x0y0], 1) * stride)
            scores.append(self.cls[level](feature).view(n, -1, h * w).sigmoid())
        return torch.cat([torch.cat(boxes, 2), torch.cat(scores, 2)], 1)


def test_a_yolov8_head_decoded_in_the_graph(tmp_path):
    net = YoloV8().eval()
    path = save(net, tmp_path / "yolov8.onnx", ["output0"], names="['a', 'b', 'c']")
    ex = onnx_xai.Explainer(path)
    p = photo_input(path)
    with torch.no_grad():
        necks = [t.numpy() for t in net.necks(torch.tensor(p.array))]
    assert len(ex.target_layers) == 2
    got = run_outputs_rewritten(onnx_xai.augment(path, outputs=["activation"], seeded=True), p.array)
    for k, neck in enumerate(necks):
        assert rel(got[f"xai_activation{'_1' if k else ''}"], neck) < 1e-5
    rows = run_outputs(path, p.array)["output0"][0].T  # [A, 4 + C]
    cx, cy, w, h = rows[:, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    scores = rows[:, 4:]
    region = p.box_to_photo(np.clip(boxes[int(scores.max(1).argmax())], 0, SIZE))
    inside = p.box_to_input(region)
    index = max((float(scores[a].max()), a) for a in range(len(rows)) if iou(inside, boxes[a]) >= 0.5)[1]
    out = tmp_path / "out"
    assert main(["explain", str(path), str(PHOTO), "--out", str(out), "--region", *map(str, region)]) == 0
    chosen = json.loads((out / f"{PHOTO.name}.json").read_text())["objective"]
    category = int(scores[index].argmax())
    assert (chosen["candidate"], chosen["class"]) == (index, category)
    assert chosen["layout"] == "[N, 4+C, A], boxes cxcywh"
    seed = np.zeros((1, 4 + scores.shape[1], len(rows)), np.float32)
    seed[0, 4 + category, index] = 1
    xt = torch.tensor(p.array, dtype=torch.float64, requires_grad=True)
    net.double()(xt)[0, 4 + category, index].backward()
    assert rel(ex.input_gradient(p.array, objective=seed), xt.grad.numpy()) < 1e-5


def run_outputs_rewritten(model, x: np.ndarray) -> dict:
    """The rewritten model's outputs on onnxruntime (a seed of zeros: only the activations are read)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    seed = next(i for i in session.get_inputs() if i.name == "xai_seed")
    shape = [len(x) if not isinstance(d, int) else d for d in seed.shape]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x, "xai_seed": np.zeros(shape, np.float32)})))
