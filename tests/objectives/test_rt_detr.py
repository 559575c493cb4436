"""An RT-DETR-style detector end to end: query selection by ``TopK`` over the encoder's tokens,
deformable attention sampling the feature map with ``GridSample`` around each query's cell, and the
exported ``[N, Q, 4 + C]`` rows (Sigmoid boxes in fractions of the input, Sigmoid class scores).

The command line explains the best query of a class overlapping a region with no flag but
``--region``; the record's query against the argmax written here on onnxruntime's output, and the
input gradient against float64 torch autograd of the same score (the selection's indices held fixed,
as torch's topk backward holds them).
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


class Deformable(nn.Module):
    """Backbone to an 8 x 8 map, the twelve best tokens as queries, one sampling point each."""

    def __init__(self, classes: int = 3, dim: int = 16, queries: int = 12):
        super().__init__()
        torch.manual_seed(8)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, dim, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(dim, dim, 3, stride=2, padding=1)
        )
        self.select, self.offset = nn.Linear(dim, 1), nn.Linear(dim, 2)
        self.cls, self.box, self.queries = nn.Linear(dim, classes), nn.Linear(dim, 4), queries

    def forward(self, x):
        f = self.backbone(x)
        n, c, h, w = f.shape
        tokens = f.flatten(2).transpose(1, 2)
        top = self.select(tokens)[..., 0].topk(self.queries, dim=1).indices
        q = torch.gather(tokens, 1, top[..., None].expand(-1, -1, c))
        cells = torch.stack([(top % w).float(), torch.div(top, w, rounding_mode="floor").float()], -1)
        reference = (cells + 0.5) / torch.tensor([w, h], dtype=x.dtype) * 2 - 1
        grid = (reference.to(x.dtype) + torch.tanh(self.offset(q)) * 0.25)[:, :, None, :]
        sampled = F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        hidden = q + sampled[..., 0].transpose(1, 2)
        return torch.cat([torch.sigmoid(self.box(hidden)), torch.sigmoid(self.cls(hidden))], -1)


def test_query_selection_and_deformable_sampling(tmp_path):
    net = Deformable().eval()
    path = save(net, tmp_path / "rtdetr.onnx", ["output0"])
    p = photo_input(path)
    rows = run_outputs(path, p.array)["output0"][0]
    cx, cy, w, h = (rows[:, :4] * SIZE).T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    scores = rows[:, 4:]
    region = p.box_to_photo(np.clip(boxes[int(scores.max(1).argmax())], 0, SIZE))
    inside = p.box_to_input(region)
    index = max((float(scores[q].max()), q) for q in range(len(rows)) if iou(inside, boxes[q]) >= 0.5)[1]
    out = tmp_path / "out"
    assert main(["explain", str(path), str(PHOTO), "--out", str(out), "--region", *map(str, region)]) == 0
    chosen = json.loads((out / f"{PHOTO.name}.json").read_text())["objective"]
    category = int(scores[index].argmax())
    assert (chosen["candidate"], chosen["class"]) == (index, category)
    seed = np.zeros((1, *rows.shape), np.float32)
    seed[0, index, 4 + category] = 1
    gradient = onnx_xai.Explainer(path).input_gradient(p.array, objective=seed)
    xt = torch.tensor(p.array, dtype=torch.float64, requires_grad=True)
    net.double()(xt)[0, index, 4 + category].backward()
    assert rel(gradient, xt.grad.numpy()) < 1e-5
