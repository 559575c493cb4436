"""A Keras 1-D CNN on ``[N, T, C]`` converted by tf2onnx, which writes each ``Conv1D`` as a 2-D
convolution on a unit axis (ExpandDims, Conv, Squeeze): its layout read from the graph as ``NTC``,
the gradient against its float64 Keras twin (same weights) by ``tf.GradientTape``, Grad-CAM on the
last ``[N, C, T']`` map with maps at the input's length."""

from __future__ import annotations

import numpy as np
import pytest

import onnx_xai

tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")

T, C = 120, 3


def keras_cnn(dtype: str):
    layers = tf.keras.layers
    inputs = tf.keras.Input((T, C), dtype=dtype)
    h = layers.Conv1D(8, 7, padding="same", activation="relu", dtype=dtype)(inputs)
    h = layers.MaxPooling1D(2, dtype=dtype)(h)
    h = layers.Conv1D(16, 5, padding="same", activation="relu", dtype=dtype)(h)
    h = layers.GlobalAveragePooling1D(dtype=dtype)(h)
    return tf.keras.Model(inputs, layers.Dense(4, dtype=dtype)(h))


def test_a_keras_conv1d_is_read_as_ntc_and_its_gradient_is_tensorflows(tmp_path):
    tf.random.set_seed(0)
    model, twin = keras_cnn("float32"), keras_cnn("float64")
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    spec = (tf.TensorSpec((None, T, C), tf.float32, name="x"),)
    path = str(tmp_path / "cnn1d.onnx")
    tf2onnx.convert.from_keras(model, input_signature=spec, output_path=path, opset=17)
    ex = onnx_xai.Explainer(path)
    assert (ex.kind, ex.layout) == ("signal", "NTC")
    x = np.random.default_rng(0).standard_normal((2, T, C)).astype(np.float32)
    r = ex.explain(x, "gradient")
    xt = tf.constant(x.astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.gather(twin(xt), r.targets, axis=1, batch_dims=1))
    want = tape.gradient(score, xt).numpy()
    assert np.abs(r.raw - want).max() <= 1e-5 * np.abs(want).max()
    cam = ex.explain(x, "gradcam")
    assert cam.raw.shape == (2, T // 2) and cam.maps.shape == (2, T)


def keras_waveform(dtype: str):
    layers = tf.keras.layers
    inputs = tf.keras.Input((400,), dtype=dtype)
    h = layers.Reshape((400, 1), dtype=dtype)(inputs)
    h = layers.Conv1D(8, 9, strides=4, activation="relu", dtype=dtype)(h)
    h = layers.GlobalMaxPooling1D(dtype=dtype)(h)
    return tf.keras.Model(inputs, layers.Dense(3, dtype=dtype)(h))


def test_a_keras_waveform_model_is_a_signal_not_a_table(tmp_path):
    tf.random.set_seed(1)
    model, twin = keras_waveform("float32"), keras_waveform("float64")
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    path = str(tmp_path / "wave.onnx")
    spec = (tf.TensorSpec((None, 400), tf.float32, name="x"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, output_path=path, opset=17)
    ex = onnx_xai.Explainer(path)
    assert (ex.kind, ex.layout) == ("signal", "NT")
    x = np.random.default_rng(1).standard_normal((2, 400)).astype(np.float32)
    r = ex.explain(x, "gradient")
    xt = tf.constant(x.astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.gather(twin(xt), r.targets, axis=1, batch_dims=1))
    want = tape.gradient(score, xt).numpy()
    assert np.abs(r.raw - want).max() <= 1e-5 * np.abs(want).max()
    assert ex.explain(x, "gradcam").maps.shape == (2, 400)
