"""Channels-last outputs as Keras models write them, converted by tf2onnx: a BlazeFace-style face
detector (box and keypoint regressors ``[N, A, 16]`` first, one-class logits ``[N, A, 1]`` after,
anchors on two grids), a selfie-segmenter-style probability mask ``[N, H, W, 1]`` and a landmark
vector ``[N, 1, 1, K]``, all in one model.

Each is explained from the command line with at most ``--output``, ``--region`` and the decoder spec
the detector needs; the record's objective is compared with the answer decoded here by hand
(MediaPipe's anchor formula, scipy's connected regions) from a plain onnxruntime session's outputs,
and the input gradient with float64 central differences of the Keras model itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from scipy import ndimage

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.imaging.preprocessing import preprocessing_for
from onnx_xai.photos import DEMO_PHOTOS

from ..forms.reference import rel

tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")

PHOTO = Path(str(DEMO_PHOTOS)) / "coffee.jpg"
SIZE = 64


def keras_face(dtype: str):
    """Two grids (strides 8 and 16, two anchors a cell) of 16 regressors and one face logit, a mask
    at stride 2 and eight landmark values."""
    layers = tf.keras.layers

    def conv(x, filters, stride=1, kernel=3, name=None, activation="relu"):
        return layers.Conv2D(
            filters, kernel, strides=stride, padding="same", activation=activation, dtype=dtype, name=name
        )(x)

    image = tf.keras.Input((SIZE, SIZE, 3), dtype=dtype, name="image")
    f2 = conv(image, 8, 2)
    f8 = conv(conv(f2, 8, 2), 8, 2)
    f16 = conv(f8, 8, 2)
    heads = []
    for kind, columns in (("reg", 16), ("cls", 1)):
        levels = [
            layers.Reshape((-1, columns), dtype=dtype)(
                conv(f, 2 * columns, kernel=1, activation=None, name=f"{kind}{s}")
            )
            for s, f in ((8, f8), (16, f16))
        ]
        heads.append(
            layers.Concatenate(axis=1, dtype=dtype, name="regressors" if kind == "reg" else "classificators")(
                levels
            )
        )
    mask = conv(f2, 1, activation="sigmoid", name="mask")
    pooled = layers.GlobalAveragePooling2D(dtype=dtype)(f16)
    landmarks = layers.Reshape((1, 1, 8), dtype=dtype, name="landmarks")(layers.Dense(8, dtype=dtype)(pooled))
    return tf.keras.Model(image, [*heads, mask, landmarks])


def face_model(folder: Path) -> tuple[Path, object, list[str]]:
    """The face model converted by tf2onnx into ``folder``, its float64 Keras twin (same weights), and
    its output names."""
    tf.keras.utils.set_random_seed(6)
    model = keras_face("float32")
    rng = np.random.default_rng(6)  # biases away from zero, as trained ones are: no ReLU sits on its kink
    model.set_weights([w + rng.normal(scale=0.1, size=w.shape) * (w.ndim == 1) for w in model.get_weights()])
    for level in ("reg8", "reg16"):  # box sizes of about 20 pixels, as trained detectors give
        kernel, bias = model.get_layer(level).get_weights()
        bias.reshape(2, 16)[:, 2:4] = 20.0
        model.get_layer(level).set_weights([kernel, bias])
    spec = (tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    path = folder / "face.onnx"
    path.write_bytes(proto.SerializeToString())
    twin = keras_face("float64")
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return path, twin, [o.name for o in proto.graph.output]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_face")
    return (*face_model(folder), folder)


def explain(path: Path, out: Path, *flags: str) -> dict:
    assert main(["explain", str(path), str(PHOTO), "--out", str(out), "--method", "gradient", *flags]) == 0
    return json.loads((out / "coffee.jpg.json").read_text())["objective"]


def setup(path: Path):
    p = prepare(load_image(PHOTO), **preprocessing_for(onnx_xai.Explainer(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return p, dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": p.array})))


def gradient_matches_differences(path: Path, output: str, seed: np.ndarray, x: np.ndarray, f) -> None:
    """The input gradient of sum(seed * output) against float64 central differences of ``f``."""
    gradient = onnx_xai.Explainer(path, output_name=output).input_gradient(x, objective=seed)
    rng, h = np.random.default_rng(0), 1e-6
    ours, differences = [], []
    for _ in range(6):
        v = rng.standard_normal(x.shape)
        differences.append((f(x + h * v) - f(x - h * v)) / (2 * h))
        ours.append(float((gradient * v).sum()))
    assert rel(ours, differences) < 1e-4


def mediapipe_boxes(raw: np.ndarray) -> np.ndarray:
    """MediaPipe's SSD anchors (fixed size 1, centres at (i + 0.5) / cells) and its decode, in
    normalized coordinates, then in input pixels as (x0, y0, x1, y1)."""
    anchors = []
    for stride in (8, 16):
        cells = SIZE // stride
        for y in range(cells):
            for x in range(cells):
                anchors += [((x + 0.5) / cells, (y + 0.5) / cells)] * 2
    anchors = np.array(anchors)
    cx = raw[:, 0] / SIZE + anchors[:, 0]
    cy = raw[:, 1] / SIZE + anchors[:, 1]
    w, h = raw[:, 2] / SIZE, raw[:, 3] / SIZE
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * SIZE


def test_a_face_detector_with_anchors(converted, tmp_path, capsys):
    path, twin, names, folder = converted
    p, found = setup(path)
    regressors, classificators = names[0], names[1]
    chosen = explain(path, tmp_path / "plain")
    assert f"explaining {classificators!r}, the class scores of the detector" in capsys.readouterr().out
    assert chosen["output"] == classificators and chosen["box"] is None
    assert chosen["candidate"] == int(found[classificators][0, :, 0].argmax())

    spec = folder / "anchors.json"
    spec.write_text(
        json.dumps(
            {"boxes": regressors, "form": "anchors", "strides": [8, 16], "per_cell": [2, 2], "scale": SIZE}
        )
    )
    boxes = mediapipe_boxes(found[regressors][0])
    logits = found[classificators][0, :, 0]
    target = int(np.argsort(logits)[-3])  # the third most confident face, pointed at by its box
    region = p.box_to_photo(np.clip(boxes[target], 0, SIZE))
    inside = p.box_to_input(region)
    overlaps = [a for a in range(len(boxes)) if _iou(inside, boxes[a]) >= 0.5]
    index = max(overlaps, key=lambda a: logits[a])
    chosen = explain(path, tmp_path / "region", "--decoder", str(spec), "--region", *map(str, region))
    assert (chosen["output"], chosen["candidate"], chosen["class"]) == (classificators, index, 0)
    np.testing.assert_allclose(chosen["box"], boxes[index], rtol=1e-4, atol=1e-3)
    seed = np.zeros_like(found[classificators])
    seed[0, index, 0] = 1
    gradient_matches_differences(
        path, classificators, seed, p.array, lambda x: float(twin(x)[1].numpy()[0, index, 0])
    )


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def test_a_channels_last_probability_mask(converted, tmp_path):
    path, twin, names, _ = converted
    p, found = setup(path)
    mask = found[names[2]][0, :, :, 0]
    labels, _ = ndimage.label(mask > 0.5, structure=np.ones((3, 3)))
    region = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    chosen = explain(path, tmp_path / "out", "--output", names[2], "--threshold", "0.5")
    assert chosen["kind"] == "dense" and chosen["pixels"] == int(region.sum())
    assert chosen["score_kind"] == "pre-sigmoid"
    seed = np.zeros_like(found[names[2]])
    seed[0, :, :, 0] = region

    def logit_sum(x):  # the mask's logits summed over the region: the explained objective
        probability = twin(x)[2].numpy()[0, :, :, 0]
        return float(np.log(probability / (1 - probability))[region].sum())

    gradient_matches_differences(path, names[2], seed, p.array, logit_sum)


def test_landmarks_are_explained_one_value_at_a_time(converted, tmp_path, capsys):
    path, twin, names, _ = converted
    p, found = setup(path)
    flags = ["--output", names[3]]
    assert main(["explain", str(path), str(PHOTO), "--out", str(tmp_path / "no"), *flags]) == 1
    assert "holds 8 values per sample" in capsys.readouterr().err
    chosen = explain(path, tmp_path / "out", *flags, "--objective", "regression", "--channel", "3")
    assert chosen["index"] == 3 and chosen["value"] == pytest.approx(
        float(found[names[3]][0, 0, 0, 3]), rel=1e-5
    )
    seed = np.zeros_like(found[names[3]])
    seed[0, 0, 0, 3] = 1
    gradient_matches_differences(
        path, names[3], seed, p.array, lambda x: float(twin(x)[3].numpy()[0, 0, 0, 3])
    )
    chosen = explain(path, tmp_path / "point", *flags, "--values", "2", "3")  # a landmark's x and y
    assert chosen["indices"] == [2, 3]
    assert chosen["value"] == pytest.approx(float(found[names[3]][0, 0, 0, 2:4].sum()), rel=1e-5)
    seed = np.zeros_like(found[names[3]])
    seed[0, 0, 0, 2:4] = 1
    gradient_matches_differences(
        path, names[3], seed, p.array, lambda x: float(twin(x)[3].numpy()[0, 0, 0, 2:4].sum())
    )
