"""``onnx-xai explain`` on a segmenter and a detector: what each photo's objective is, against torch.

The nets take any size, so each photo goes in at its own size (a multiple of 32, here exactly the
photo's); the objective the CLI picks (a segmentation class where it wins, a dense region, the best
detection of a class overlapping a box given in photo pixels) and its score are recomputed from the
torch net's float64 output by hand, on both backends.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from onnx_xai.cli import main
from onnx_xai.imaging.images import load_image, prepare

from .nets import build
from .test_seeds import export

pytest.importorskip("openvino")
WIDTH, HEIGHT = 256, 192


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    rng = np.random.default_rng(0)
    rgb = np.stack([128 + 100 * np.sin(xs / 17 + k) * np.cos(ys / 23 - k) for k in range(3)], -1)
    rgb = rgb + rng.normal(0, 10, rgb.shape)
    path = tmp_path_factory.mktemp("photo") / "scene.png"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path


def torch_output(name: str, photo) -> np.ndarray:
    x = prepare(load_image(photo), None).array
    assert x.shape == (1, 3, HEIGHT, WIDTH)  # the photo's own size: no resize, no crop
    with torch.no_grad():
        return build(name).double()(torch.tensor(x, dtype=torch.float64)).numpy()[0]


def explain(tmp_path, name: str, photo, *flags: str) -> dict:
    out = tmp_path / "out"
    assert (
        main(
            [
                "explain",
                str(export(name, "torchscript")),
                str(photo),
                "--out",
                str(out),
                "--method",
                "gradcam",
                "gradient",
                *flags,
            ]
        )
        == 0
    )
    return json.loads((out / "scene.png.json").read_text())


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_segmentation_explains_a_class_where_it_wins(tmp_path, photo, backend):
    out = torch_output("segnet", photo)
    category = int(np.bincount(out.argmax(0).ravel(), minlength=out.shape[0]).argmax())
    wins = out.argmax(0) == category
    record = explain(tmp_path, "segnet", photo, "--target", str(category), "--backend", backend)
    assert record["objective"] == {
        "kind": "segmentation",
        "class": category,
        "pixels": int(wins.sum()),
        "output": record["objective"]["output"],  # the exporter's name for the one output
        "score_kind": "logit",
    }
    for entry in record["explanations"]:
        assert entry["score"] == pytest.approx(out[category][wins].sum(), rel=1e-4)


def test_a_dense_region_given_in_photo_pixels(tmp_path, photo):
    out = torch_output("segnet", photo)  # [C, H/2, W/2]: photo box (64, 32, 128, 96) is (32, 16, 64, 48)
    record = explain(
        tmp_path,
        "segnet",
        photo,
        "--objective",
        "dense",
        "--channel",
        "2",
        "--region",
        "64",
        "32",
        "128",
        "96",
    )
    assert record["objective"]["box"] == [32, 16, 64, 48]
    assert record["objective"]["photo_box"] == [64, 32, 128, 96]
    assert record["explanations"][0]["score"] == pytest.approx(out[2, 16:48, 32:64].sum(), rel=1e-4)


def _xyxy(rows: np.ndarray) -> np.ndarray:
    cx, cy, w, h = rows[:4]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def _iou(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(a[2], boxes[:, 2]) - np.maximum(a[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], boxes[:, 3]) - np.maximum(a[1], boxes[:, 1]), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + area - w * h)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_detection_picks_the_best_candidate_of_a_class_overlapping_a_box(tmp_path, photo, backend):
    out = torch_output("yolo", photo)  # [4 + C, A], boxes in input pixels = photo pixels here
    boxes, scores = _xyxy(out), out[4 + 1]
    box = boxes[int(np.argsort(scores)[len(scores) // 2])]  # a middling candidate's box, moved a little
    region = box + np.array([0.1, -0.05, 0.1, 0.05]) * np.tile(box[2:] - box[:2], 2)
    overlapping = np.where(_iou(region, boxes) >= 0.5, scores, -np.inf)
    best = int(overlapping.argmax())
    record = explain(
        tmp_path,
        "yolo",
        photo,
        "--target",
        "1",
        "--backend",
        backend,
        "--region",
        *(f"{v:.4f}" for v in region),
    )
    assert record["objective"]["kind"] == "detection"
    assert record["objective"]["candidate"] == best and record["objective"]["class"] == 1
    assert record["explanations"][1]["score"] == pytest.approx(scores[best], rel=1e-4)


def test_a_detection_by_index_and_any_class(tmp_path, photo):
    out = torch_output("yolo", photo)
    record = explain(tmp_path, "yolo", photo, "--candidate", "40")
    category = int(out[4:, 40].argmax())
    assert (record["objective"]["candidate"], record["objective"]["class"]) == (40, category)
    assert record["explanations"][0]["score"] == pytest.approx(out[4 + category, 40], rel=1e-4)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--objective", "detection"], "rank 3"),
        (["--target", "1", "--region", "5", "5", "1", "1"], "region [5.0, 5.0, 1.0, 1.0] is empty"),
        ([], "needs --target"),
    ],
)
def test_objective_mistakes_are_one_line(tmp_path, photo, capsys, flags, message):
    assert (
        main(
            [
                "explain",
                str(export("segnet", "torchscript")),
                str(photo),
                "--out",
                str(tmp_path / "o"),
                *flags,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "scene.png.json").exists()
