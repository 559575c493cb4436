"""A real TensorFlow/Keras export through tf2onnx, against TensorFlow's own float64 gradients.

A small Keras CNN (strided conv, BatchNorm with non-trivial statistics, depthwise conv, swish, 1x1
conv, global average pooling, Dense, Softmax) in channels-last layout, converted by tf2onnx (an NHWC
input, a Transpose to NCHW convs, GlobalAveragePool/ReduceMean, Squeeze, MatMul). The same Keras
model built in float64 with the same weights gives the references by ``tf.GradientTape``: the input
gradient of the pre-softmax logit (no further off than 3x TensorFlow's own float32 error), the
activation of the last ReLU (the layer the rewriter must pick), Grad-CAM and CAM.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf
import tf2onnx

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.photos import DEMO_PHOTOS

from .reference import rel


def keras_net(dtype: str):
    layers = tf.keras.layers
    image = tf.keras.Input((32, 32, 3), dtype=dtype)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, dtype=dtype)(image)
    x = layers.BatchNormalization(dtype=dtype)(x)
    x = layers.ReLU(dtype=dtype)(x)
    x = layers.DepthwiseConv2D(3, padding="same", dtype=dtype)(x)
    x = layers.Activation("swish", dtype=dtype)(x)
    x = layers.Conv2D(16, 1, dtype=dtype)(x)
    activation = layers.ReLU(dtype=dtype, name="last_relu")(x)
    logits = layers.Dense(5, dtype=dtype, name="dense")(
        layers.GlobalAveragePooling2D(dtype=dtype)(activation)
    )
    probabilities = layers.Softmax(dtype=dtype)(logits)
    return tf.keras.Model(image, probabilities), tf.keras.Model(image, [activation, logits])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tf.keras.utils.set_random_seed(0)
    model, _ = keras_net("float32")
    rng = np.random.default_rng(0)
    weights = [w + rng.normal(scale=0.1, size=w.shape).astype(np.float32) for w in model.get_weights()]
    weights = [np.abs(w) + 0.5 if i == 4 else w for i, w in enumerate(weights)]  # BN moving variance
    model.set_weights(weights)
    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    path = tmp_path_factory.mktemp("keras") / "keras.onnx"
    path.write_bytes(proto.SerializeToString())
    return path, weights


def tape(weights, x: np.ndarray, targets, dtype: str) -> dict:
    _, inner = keras_net(dtype)
    inner.set_weights([w.astype(dtype) for w in weights])
    xt = tf.constant(x.astype(dtype))
    with tf.GradientTape(persistent=True) as t:
        t.watch(xt)
        activation, logits = inner(xt)
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    a, g = activation.numpy(), t.gradient(score, activation).numpy()
    dense = weights[-2]  # [C, K]
    return {
        "input_grad": t.gradient(score, xt).numpy(),
        "activation": a.transpose(0, 3, 1, 2),
        "gradcam": np.maximum((g.mean((1, 2), keepdims=True) * a).sum(-1), 0),
        "cam": np.einsum("nhwk,kn->nhw", a, dense[:, targets]),
        "logits": logits.numpy(),
    }


def test_tf2onnx_export_matches_tensorflow_float64(converted):
    path, weights = converted
    model = onnx_xai.augment(path)
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "onnx_xai"))
    assert meta["layout"] == "NHWC" and meta["cam"] and meta["score_kind"] == "pre-softmax"
    x = np.random.default_rng(1).standard_normal((3, 32, 32, 3)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {"image": x, "xai_target": np.array([-1, 2, 4])}),
        )
    )
    targets = got["xai_target_used"]
    exact, own = tape(weights, x, targets, "float64"), tape(weights, x, targets, "float32")
    assert targets[0] == exact["logits"][0].argmax()
    bound = max(3 * rel(own["input_grad"], exact["input_grad"]), 2e-6)
    assert rel(got["xai_input_grad"], exact["input_grad"]) <= bound
    for key in ("activation", "gradcam", "cam"):
        assert rel(got[f"xai_{key}"], exact[key]) < 1e-5, key


def test_tf2onnx_export_from_the_command_line(converted, tmp_path, capsys):
    path, _ = converted
    photo = f"{DEMO_PHOTOS}/coffee.jpg"
    assert (
        main(["explain", str(path), photo, "--method", "gradient", "cam", "gradcam", "--out", str(tmp_path)])
        == 0
    )
    record = json.loads((tmp_path / "coffee.jpg.json").read_text())
    assert [e["method"] for e in record["explanations"]] == ["gradient", "cam", "gradcam"]
