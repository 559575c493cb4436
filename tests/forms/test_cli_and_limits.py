"""Export forms through the command line, a real Paddle export, and the forms that get one clear error.

- ``onnx-xai explain`` on every form with a bundled photo: channels-last, dynamic size (``--size``),
  uint8 pixels fed raw (a normalization flag is refused in one line), grayscale, float16, QDQ, a
  fixed batch of 4, ViTs, ...; ``inspect`` names layouts, token grids and the score's kind; ``augment``
  with the default outputs on a head without CAM writes the other sets and says so.
- PP-OCR's text-direction classifier, a real PaddlePaddle export shipped in the
  ``rapidocr-onnxruntime`` wheel (input ``[-1, 3, ?, ?]``, head ``GlobalAveragePool -> Reshape(x,
  Concat(Slice(Shape(x)), C)) -> MatMul -> Add -> Softmax``): gradients against float64 finite
  differences of the model itself at two input sizes, CAM from the head's weights, Grad-CAM = CAM.
- An ``If`` on the input-gradient path (Grad-CAM on the ``If``'s output is fine: it is the default
  target layer, after the branch), and a batch baked in beyond Reshape targets: one error each.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.support.errors import ModelError, UnsupportedModelError

from .exports import FORMS, export, if_on_path
from .float64 import directional_check
from .reference import rel

PHOTO = Path(str(DEMO_PHOTOS)) / "chelsea.jpg"


@pytest.mark.parametrize("name", list(FORMS))
def test_explain_from_the_command_line(name, tmp_path, capsys):
    size = ["--size", "40", "56"] if "spatial" in FORMS[name].dynamic else []
    code = main(
        [
            "explain",
            str(export(name)),
            str(PHOTO),
            "--method",
            "gradient",
            "gradcam",
            "--sheet",
            "--out",
            str(tmp_path),
            *size,
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "chelsea.jpg.json").read_text())
    assert [e["method"] for e in record["explanations"]] == ["gradient", "gradcam"]
    assert all((tmp_path / e["overlay"]).is_file() for e in record["explanations"])
    assert (tmp_path / "chelsea.jpg.sheet.png").is_file()


def test_raw_pixel_models_refuse_a_second_normalization(tmp_path, capsys):
    code = main(
        ["explain", str(export("uint8_pixels")), str(PHOTO), "--preset", "raw", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "takes uint8 pixels" in err
    assert not any(tmp_path.iterdir())


def test_inspect_names_layouts_tokens_and_score_kinds(capsys):
    expectations = {
        "vit": "tokens (1 dropped, 4x4 grid)",
        "keras_nhwc": "input layout NHWC",
        "sigmoid_head": "before the Sigmoid",
        "uint8_pixels": "integer pixels: gradients are taken",
    }
    for name, words in expectations.items():
        assert main(["inspect", str(export(name))]) == 0
        assert words in capsys.readouterr().out, name


def test_augment_without_cam_head_writes_the_other_sets(tmp_path, capsys):
    out = tmp_path / "convnext.xai.onnx"
    assert main(["augment", str(export("convnext_head")), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no CAM outputs" in printed and "LayerNormalization" in printed
    names = [o.name for o in onnx.load(out).graph.output]
    assert "xai_gradcam" in names and "xai_input_grad" in names and "xai_cam" not in names
    assert (
        main(["augment", str(export("convnext_head")), str(tmp_path / "cam.onnx"), "--outputs", "cam"]) == 1
    )
    assert "CAM needs a global-average-pool" in capsys.readouterr().err


def test_if_on_the_gradient_path_is_named(tmp_path, capsys):
    with pytest.raises(UnsupportedModelError, match=r"'branch' \(If\): control flow is not supported"):
        onnx_xai.augment(if_on_path())
    code = main(["explain", str(if_on_path()), str(PHOTO), "--method", "gradient", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "'branch' (If)" in err


def test_a_batch_baked_in_beyond_reshapes_is_refused_with_how_to_fix(tmp_path):
    class Baked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return (self.conv(x) + torch.zeros(4, 1, 1, 1)).mean((2, 3))  # a constant of batch 4

    path = tmp_path / "baked.onnx"
    torch.onnx.export(Baked(), (torch.zeros(4, 3, 8, 8),), str(path), dynamo=False, opset_version=17)
    with pytest.raises(ModelError, match="static batch of 4 .* re-export it with a dynamic batch axis"):
        onnx_xai.augment(path)


def paddle_ocr_classifier() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")  # located, not imported (no OpenCV needed)
    assert spec is not None, "the test dependency rapidocr-onnxruntime is missing"
    return Path(spec.origin).parent / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"


@pytest.mark.parametrize("width", [192, 320])
def test_paddle_ocr_classifier(width):
    path = paddle_ocr_classifier()
    model = onnx_xai.augment(path)
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    assert (
        meta["cam"]
        and meta["score_kind"] == "pre-softmax"
        and meta["output_sets"] == ["cam", "gradcam", "input_grad"]
    )
    x = np.random.default_rng(width).standard_normal((1, 3, 48, width)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x, "xai_target": [-1]})))
    c = int(got["xai_target_used"][0])
    source = onnx.load(path)
    source.graph.output.append(helper.make_tensor_value_info(meta["score"], onnx.TensorProto.FLOAT, None))
    assert directional_check(source, x, lambda outs: outs[1][0, c], got["xai_input_grad"]) < 1e-3
    constant = next(n for n in source.graph.node if n.output[0] == "fc_0.w_0")  # Paddle: Constant nodes
    weights = onnx.numpy_helper.to_array(constant.attribute[0].t)
    cam = np.einsum("k,nkhw->nhw", weights[:, c], got["xai_activation"])
    assert rel(got["xai_cam"], cam) < 1e-5
    h, w = got["xai_activation"].shape[2:]
    assert rel(got["xai_gradcam"], np.maximum(cam, 0) / (h * w)) < 1e-5
