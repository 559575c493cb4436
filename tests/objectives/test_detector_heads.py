"""Detector heads in the forms torch exports write, explained from the command line with at most an
``--output`` or ``--region`` flag.

- PicoDet/GFL-style: two grid levels, each a Sigmoid scores output ``[N, A, C]`` and a box output of
  four distributions over 8 bins ``[N, A, 32]``;
- DETR-style: raw logits ``[N, Q, C + 1]`` (the last: no object) and Sigmoid boxes ``[N, Q, 4]``
  (normalized cx, cy, w, h), the class names in the model's metadata;
- YOLOv5-style: ``[N, A, 4 + 1 + C]`` with an objectness column, the class names in the metadata;
- RT-DETR-style: ``[N, Q, 4 + C]``, every value through a Sigmoid (boxes in fractions of the input).

Each record's objective (which output, candidate, class and box) is compared with the answer decoded
here by hand from a plain onnxruntime session's outputs, and the input gradient of that objective
with float64 central differences of the torch model along random directions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.imaging.preprocessing import preprocessing_for
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.runtime.report import inspect_model

from ..forms.reference import rel

PHOTO = Path(str(DEMO_PHOTOS)) / "chelsea.jpg"
SIZE = 64


def save(net: nn.Module, path: Path, outputs: list[str], **metadata: str) -> Path:
    torch.onnx.export(
        net.eval(), torch.randn(1, 3, SIZE, SIZE), path, dynamo=False, opset_version=17,
        input_names=["x"], output_names=outputs, dynamic_axes={"x": {0: "N"}},
    )  # fmt: skip
    model = onnx.load(path)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


def run_outputs(path: Path, x: np.ndarray) -> dict:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))


def explain(path: Path, out: Path, *flags: str) -> dict:
    assert main(["explain", str(path), str(PHOTO), "--out", str(out), "--method", "gradient", *flags]) == 0
    return json.loads((out / "chelsea.jpg.json").read_text())["objective"]


def photo_input(path: Path):
    return prepare(load_image(PHOTO), **preprocessing_for(onnx_xai.Explainer(path)))


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def gradient_matches_differences(path: Path, output: str, seed: np.ndarray, x: np.ndarray, f) -> None:
    """The explainer's input gradient of sum(seed * output) against float64 central differences of
    ``f`` (the torch model's objective) along six random directions."""
    gradient = onnx_xai.Explainer(path, output_name=output).input_gradient(x, objective=seed)
    rng, h = np.random.default_rng(0), 1e-6
    xd = torch.tensor(x, dtype=torch.float64)
    ours, differences = [], []
    for _ in range(6):
        v = torch.tensor(rng.standard_normal(x.shape))
        with torch.no_grad():
            differences.append(float((f(xd + h * v) - f(xd - h * v)) / (2 * h)))
        ours.append(float((gradient * v.numpy()).sum()))
    assert rel(ours, differences) < 1e-4


class Levels(nn.Module):
    """Two grid levels (strides 8 and 16) of Sigmoid class scores and 4 x 8 box bins."""

    def __init__(self, classes: int = 3, bins: int = 8):
        super().__init__()
        torch.manual_seed(3)
        conv = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU())  # noqa: E731
        self.s8, self.s16 = nn.Sequential(conv(3, 8), conv(8, 8), conv(8, 8)), conv(8, 8)
        self.cls = nn.ModuleList([nn.Conv2d(8, classes, 1) for _ in range(2)])
        self.reg = nn.ModuleList([nn.Conv2d(8, 4 * bins, 1) for _ in range(2)])

    def logits(self, x):
        f8 = self.s8(x)
        features = (f8, self.s16(f8))
        flat = lambda t: t.flatten(2).permute(0, 2, 1)  # noqa: E731
        return [flat(c(f)) for c, f in zip(self.cls, features)], [
            flat(r(f)) for r, f in zip(self.reg, features)
        ]

    def forward(self, x):
        scores, boxes = self.logits(x)
        return (*[torch.sigmoid(s) for s in scores], *boxes)


def distribution_boxes(bins: np.ndarray, stride: int) -> np.ndarray:
    """GFL's decode written out: per candidate, per side, the softmax-weighted mean bin, in strides
    from the cell's centre (left, top, right, bottom)."""
    cells = SIZE // stride
    boxes = []
    for a, row in enumerate(bins):
        cy, cx = (a // cells + 0.5) * stride, (a % cells + 0.5) * stride
        sides = []
        for side in row.reshape(4, -1):
            p = np.exp(side - side.max())
            sides.append(float((p / p.sum() * np.arange(len(side))).sum()) * stride)
        boxes.append([cx - sides[0], cy - sides[1], cx + sides[2], cy + sides[3]])
    return np.array(boxes)


def test_a_multi_level_head_with_box_bins(tmp_path):
    net = Levels()
    names = ["scores_8", "scores_16", "boxes_8", "boxes_16"]
    path = save(net, tmp_path / "levels.onnx", names)
    outputs = {o["name"]: o for o in inspect_model(path)["outputs"]}
    assert "boxes in 'boxes_16': 8 bins per side" in outputs["scores_16"]["detector"]
    assert outputs["boxes_8"]["detector"] == "boxes of 'scores_8'"
    p = photo_input(path)
    found = run_outputs(path, p.array)
    decoded = {"scores_8": distribution_boxes(found["boxes_8"][0], 8)}
    decoded["scores_16"] = distribution_boxes(found["boxes_16"][0], 16)
    level, index = "scores_16", int(found["scores_16"][0].max(1).argmax())
    region = p.box_to_photo(np.clip(decoded[level][index], 0, SIZE))
    region_in = p.box_to_input(region)
    best = max(
        (float(found[name][0, a].max()), name, a)
        for name in decoded
        for a in range(len(decoded[name]))
        if iou(region_in, decoded[name][a]) >= 0.5
    )
    chosen = explain(path, tmp_path / "out", "--region", *map(str, region))
    _, level, index = best
    category = int(found[level][0, index].argmax())
    assert (chosen["output"], chosen["candidate"], chosen["class"]) == (level, index, category)
    assert chosen["score_kind"] == "pre-sigmoid"
    np.testing.assert_allclose(chosen["box"], decoded[level][index], rtol=1e-4, atol=1e-3)
    seed = np.zeros_like(found[level])
    seed[0, index, category] = 1
    k = names.index(level)
    gradient_matches_differences(
        path, level, seed, p.array, lambda x: net.double().logits(x)[0][k][0, index, category]
    )


class Queries(nn.Module):
    """DETR's two heads on a pooled feature: class logits (the last column: no object) and Sigmoid
    boxes (normalized cx, cy, w, h) for each of 12 queries."""

    def __init__(self, classes: int = 4, queries: int = 12):
        super().__init__()
        torch.manual_seed(4)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )
        self.cls, self.box = nn.Linear(32, queries * (classes + 1)), nn.Linear(32, queries * 4)
        self.queries = queries

    def forward(self, x):
        f = self.body(x)
        return self.cls(f).reshape(-1, self.queries, self.cls.out_features // self.queries), torch.sigmoid(
            self.box(f).reshape(-1, self.queries, 4)
        )


def test_detr_logits_beside_normalized_boxes(tmp_path):
    net = Queries()
    path = save(net, tmp_path / "detr.onnx", ["pred_logits", "pred_boxes"], names='["a", "b", "c", "d"]')
    p = photo_input(path)
    found = run_outputs(path, p.array)
    cx, cy, w, h = (found["pred_boxes"][0] * SIZE).T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    logits = found["pred_logits"][0][:, :4]  # the no-object column left out
    region = p.box_to_photo(np.clip(boxes[int(logits.max(1).argmax())], 0, SIZE))
    region_in = p.box_to_input(region)
    ranked = [(float(logits[q].max()), q) for q in range(len(boxes)) if iou(region_in, boxes[q]) >= 0.5]
    index = max(ranked)[1]
    chosen = explain(path, tmp_path / "out", "--region", *map(str, region))
    assert (chosen["output"], chosen["candidate"], chosen["class"]) == (
        "pred_logits",
        index,
        int(logits[index].argmax()),
    )
    assert chosen["layout"] == "class scores only, [N, A, C], the last (no object) left out"
    assert "normalized cxcywh" in chosen["boxes_from"]
    np.testing.assert_allclose(chosen["box"], boxes[index], rtol=1e-4, atol=1e-3)
    seed = np.zeros_like(found["pred_logits"])
    seed[0, index, chosen["class"]] = 1
    gradient_matches_differences(
        path, "pred_logits", seed, p.array, lambda x: net.double()(x)[0][0, index, chosen["class"]]
    )


class Objectness(nn.Module):
    """YOLOv5's rows: cx, cy, w, h in input pixels, objectness, class probabilities (all Sigmoid)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(5)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 5 + classes, 3, stride=2, padding=1),
        )

    def forward(self, x):
        rows = torch.sigmoid(self.body(x).flatten(2).permute(0, 2, 1))
        return torch.cat([rows[..., :4] * SIZE, rows[..., 4:]], -1)


def test_yolo_objectness_is_read_from_the_class_names(tmp_path):
    net = Objectness()
    path = save(net, tmp_path / "yolo.onnx", ["output0"], names="{0: 'cat', 1: 'dog', 2: 'bird'}")
    p = photo_input(path)
    rows = run_outputs(path, p.array)["output0"][0]
    ranked = rows[:, 4:5] * rows[:, 5:]
    index, category = np.unravel_index(int(ranked.argmax()), ranked.shape)
    chosen = explain(path, tmp_path / "out")
    assert (chosen["candidate"], chosen["class"]) == (index, category)
    assert chosen["layout"] == "[N, A, 4+1+C], boxes cxcywh"
    assert chosen["objectness"] == np.float32(rows[index, 4]).item()
    seed = np.zeros((1, *rows.shape), np.float32)
    seed[0, index, 5 + category] = 1
    gradient_matches_differences(
        path, "output0", seed, p.array, lambda x: net.double()(x)[0, index, 5 + category]
    )


class RtDetr(Queries):
    """RT-DETR's exported output: ``Concat(Sigmoid(boxes), Sigmoid(class logits))``, ``[N, Q, 4 + C]``
    (boxes normalized cx, cy, w, h; no "no object" column)."""

    def forward(self, x):
        logits, boxes = super().forward(x)
        return torch.cat([boxes, torch.sigmoid(logits[..., :-1])], -1)


def test_rt_detr_rows_of_normalized_boxes_and_scores(tmp_path):
    net = RtDetr()
    path = save(net, tmp_path / "rtdetr.onnx", ["output0"])
    p = photo_input(path)
    rows = run_outputs(path, p.array)["output0"][0]
    cx, cy, w, h = (rows[:, :4] * SIZE).T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    scores = rows[:, 4:]
    region = p.box_to_photo(np.clip(boxes[int(scores.max(1).argmin())], 0, SIZE))
    region_in = p.box_to_input(region)
    index = max((float(scores[q].max()), q) for q in range(len(boxes)) if iou(region_in, boxes[q]) >= 0.5)[1]
    chosen = explain(path, tmp_path / "out", "--region", *map(str, region))
    assert (chosen["candidate"], chosen["class"]) == (index, int(scores[index].argmax()))
    assert (
        chosen["layout"] == "[N, A, 4+C], boxes cxcywh" and "fractions of the input" in chosen["boxes_from"]
    )
    np.testing.assert_allclose(chosen["box"], boxes[index], rtol=1e-4, atol=1e-3)
    seed = np.zeros((1, *rows.shape), np.float32)
    seed[0, index, 4 + chosen["class"]] = 1
    gradient_matches_differences(
        path, "output0", seed, p.array, lambda x: net.double()(x)[0, index, 4 + chosen["class"]]
    )
