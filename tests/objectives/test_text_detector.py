"""PP-OCRv4's text detector (Paddle, from the rapidocr-onnxruntime wheel): a dense map explained.

The detector takes any height and width (Resize and ConvTranspose in its neck and head) and outputs
a probability map ``[N, 1, H, W]``. One rewritten file, run at two sizes: the input gradient of a
region of the map (pre-sigmoid) must match float64 central differences of the ONNX graph itself
along random directions; ``onnx-xai demo --text`` must pick the largest region of the map above 0.3
(recomputed here from the model's own output) and report its summed logit, on both backends.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from scipy import ndimage

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.photos.demo import TEXT_PHOTO, text_detector

from ..forms.float64 import directional_check


@pytest.fixture(scope="module")
def rewritten():
    model = onnx_xai.augment(text_detector(), outputs=["gradcam", "input_grad"])
    return model, ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def with_score_output(score: str) -> onnx.ModelProto:
    source = onnx.load(text_detector())
    source.graph.output.append(helper.make_tensor_value_info(score, onnx.TensorProto.FLOAT, None))
    return source


@pytest.mark.parametrize("height,width", [(64, 96), (96, 64)])
def test_input_gradient_of_a_region_matches_float64_differences(rewritten, height, width):
    model, session = rewritten
    record = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    assert record["objective"] == "seed" and record["score_kind"] == "pre-sigmoid"
    x = np.random.default_rng(height).uniform(-1, 1, (1, 3, height, width)).astype(np.float32)
    seed = np.zeros((1, 1, height, width), np.float32)
    seed[:, :, height // 4 : height // 2, width // 3 : width // 2 + 8] = 1
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"x": x, "xai_seed": seed})))
    assert got["xai_activation"].shape[2:] == (height // 2, width // 2)
    source = with_score_output(record["score"])
    gap = directional_check(
        source, x, lambda outs: float(np.sum(outs[1] * seed)), got["xai_input_grad"], directions=4, eps=1e-5
    )  # smaller steps than 1e-4 cross no ReLU kink here
    assert gap < 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_text_demo_explains_the_largest_region_above_the_threshold(tmp_path, capsys, backend):
    assert main(["demo", "--text", "--out", str(tmp_path), "--backend", backend]) == 0
    record = json.loads((tmp_path / "cards.jpg.json").read_text())
    x = prepare(load_image(TEXT_PHOTO), None, preset="inception").array
    session = ort.InferenceSession(str(text_detector()), providers=["CPUExecutionProvider"])
    probability = session.run(None, {"x": x})[0][0, 0]
    labels, _ = ndimage.label(probability > 0.3, structure=np.ones((3, 3)))
    largest = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    ys, xs = np.nonzero(largest)
    assert record["objective"]["pixels"] == largest.sum()
    assert record["objective"]["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    logits = ort.InferenceSession(
        with_score_output(record_score()).SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"x": x})[1][0, 0]
    for entry in record["explanations"]:
        assert entry["score"] == pytest.approx(logits[largest].sum(), rel=1e-4)
    assert "the text region at" in capsys.readouterr().out


def record_score() -> str:
    return onnx_xai.Explainer(text_detector()).record.score
