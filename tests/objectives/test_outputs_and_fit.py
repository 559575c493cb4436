"""What the command line reads from the model and the photo beyond a square classifier: the whole
photo letterboxed into a non-square input (and mapped back), class names from the model's metadata,
and the output a user picks with ``--output``.

Letterbox and stretch are checked against Pillow's own resize of the photo and the normalization
written out; the ``--output`` choice against a plain onnxruntime session of the original model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from PIL import Image

from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.objectives.labels import labels_from_metadata, read_labels
from onnx_xai.photos import DEMO_PHOTOS

from ..graph.test_augment import export, small_cnn
from ..test_reliability import cli

PHOTO = Path(str(DEMO_PHOTOS)) / "coffee.jpg"  # 600 x 400
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def normalized(picture: Image.Image) -> np.ndarray:
    return ((np.asarray(picture, np.float32) / 255.0 - MEAN) / STD).astype(np.float32).transpose(2, 0, 1)


def test_letterbox_keeps_the_whole_photo_and_maps_back():
    photo = load_image(PHOTO)
    p = prepare(photo, (64, 128), fit="letterbox")  # scale 0.16: the photo is 96 x 64, 16 columns of pad
    assert p.fit == "letterbox" and p.array.shape == (1, 3, 64, 128)
    inside = normalized(photo.resize((96, 64), Image.BILINEAR))
    np.testing.assert_allclose(p.array[0, :, :, 16:112], inside, atol=1e-6)
    assert np.abs(p.array[0, :, :, :16]).max() < 0.02 and np.abs(p.array[0, :, :, 112:]).max() < 0.02  # mean
    assert p.box_to_photo((16, 0, 112, 64)) == (0, 0, 600, 400)
    np.testing.assert_allclose(p.box_to_input((0, 0, 600, 400)), (16, 0, 112, 64))
    on_photo = np.zeros((64, 128), np.float32)
    on_photo[:, 16:112] = 1
    inner = (slice(None), slice(10, -10))  # one map pixel is 6.25 photo pixels: the edges blend
    assert np.allclose(p.map_to_photo(on_photo)[inner], 1)
    assert p.map_to_photo(1 - on_photo)[inner].max() == 0


def test_stretch_resizes_the_whole_photo():
    photo = load_image(PHOTO)
    p = prepare(photo, (64, 128), fit="stretch")
    np.testing.assert_allclose(p.array[0], normalized(photo.resize((128, 64), Image.BILINEAR)), atol=1e-6)
    assert p.crop == (0.0, 0.0, 600.0, 400.0)


def non_square_model(tmp_path: Path, **metadata: str) -> Path:
    model = export(small_cnn(), (1, 3, 16, 32), dynamic=False)
    helper.set_model_props(model, metadata)
    path = tmp_path / "wide.onnx"
    onnx.save(model, path)
    return path


def test_a_non_square_input_gets_the_whole_photo_unless_told(tmp_path):
    model = non_square_model(tmp_path)
    for flags, fit in (([], "letterbox"), (["--fit", "crop"], "crop"), (["--fit", "stretch"], "stretch")):
        out = tmp_path / f"out_{fit}"
        done = cli("explain", model, PHOTO, *flags, "--out", out)
        assert done.returncode == 0, done.stderr
        record = json.loads((out / "coffee.jpg.json").read_text())
        assert record["fit"] == fit and record["input_size"] == [16, 32]


def test_class_names_come_from_the_models_metadata(tmp_path):
    model = non_square_model(tmp_path, names="{0: 'alpha', 1: 'beta', 2: 'gamma'}")
    done = cli("explain", model, PHOTO, "--target", "beta", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "class names: 3 from the model's metadata ('names')" in done.stdout
    entry = json.loads((tmp_path / "out" / "coffee.jpg.json").read_text())["explanations"][0]
    assert entry["target"] == 1 and entry["label"] == "beta"
    assert (
        "class names: 3 from the model's metadata ('names': alpha, beta, gamma ...)"
        in cli("inspect", model).stdout
    )
    given = tmp_path / "labels.txt"
    given.write_text("a\nb\nc\n")
    assert read_labels(given, 3, {"names": "['x', 'y', 'z']"}) == ["a", "b", "c"]  # a file wins
    assert labels_from_metadata({"names": "['x', 'y']"}, 3) is None  # a count that does not match


def test_output_picks_the_output_explained(tmp_path):
    model = export(small_cnn(), (1, 3, 8, 8), dynamic=False)
    logits = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Neg", [logits], ["negated"]))
    model.graph.output.append(helper.make_tensor_value_info("negated", onnx.TensorProto.FLOAT, [1, 3]))
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = prepare(load_image(PHOTO), (8, 8)).array
    plain, negated = session.run([logits, "negated"], {"x": x})
    for flags, output in (([], plain), (["--output", "negated"], negated)):
        out = tmp_path / f"out{len(flags)}"
        done = cli("explain", path, PHOTO, *flags, "--out", out)
        assert done.returncode == 0, done.stderr
        entry = json.loads((out / "coffee.jpg.json").read_text())["explanations"][0]
        assert entry["target"] == int(output[0].argmax())
        assert abs(entry["score"] - float(output[0].max())) < 1e-5
