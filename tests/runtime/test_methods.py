"""The four methods on a tiny hand-computed model, the identities between them, and their errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import onnx_xai
from onnx_xai.objectives.objective import Objective
from onnx_xai.runtime.maps import upsample
from onnx_xai.support.errors import CamNotApplicableError, InputError

from . import tiny

X = np.random.default_rng(0).standard_normal((3, 2, 4, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def ex():
    return onnx_xai.Explainer(tiny.model())


def test_hand_computed_values(ex):
    ref = tiny.by_hand(X, np.array([0, 1, 1]))
    np.testing.assert_allclose(ex.predict(X), ref["logits"], rtol=1e-5, atol=1e-6)
    cam = ex.explain(X, "cam", objective=[0, 1, 1])
    np.testing.assert_allclose(cam.raw, ref["cam"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cam.scores, ref["logits"][[0, 1, 2], [0, 1, 1]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ex.explain(X, "gradcam", objective=[0, 1, 1]).raw, ref["gradcam"], rtol=1e-5, atol=1e-7
    )
    grad = ex.explain(X, "gradient", objective=[0, 1, 1])
    np.testing.assert_allclose(grad.raw, ref["grad"], rtol=1e-5, atol=1e-7)
    summed = np.abs(ref["grad"]).sum(1)  # PAIR's grayscale map: channels summed, 99th percentile
    low, high = (
        summed.min((1, 2), keepdims=True),
        np.percentile(summed.reshape(3, -1), 99, axis=1)[:, None, None],
    )
    np.testing.assert_allclose(grad.maps, np.clip((summed - low) / (high - low), 0, 1), atol=1e-5)
    np.testing.assert_allclose(ex.input_gradient(X, [0, 1, 1]), ref["grad"], rtol=1e-5, atol=1e-7)


def test_default_target_is_top1_and_int_target_broadcasts(ex):
    top1 = tiny.by_hand(X, np.zeros(3, int))["logits"].argmax(1)
    assert ex.explain(X, "cam").targets.tolist() == top1.tolist()
    assert ex.explain(X, "cam", objective=1).targets.tolist() == [1, 1, 1]


def test_gradcam_is_relu_cam_over_hw_on_a_gap_linear_head(ex):
    cam, gradcam = ex.explain(X, "cam", objective=1), ex.explain(X, "gradcam", objective=1)
    np.testing.assert_allclose(gradcam.raw, np.maximum(cam.raw, 0) / tiny.HW, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("base", ["gradient", "gradcam", "cam"])
def test_smoothgrad_without_noise_is_the_base_method(ex, base):
    plain = ex.explain(X, base, objective=[1, 0, 1])
    smooth = ex.explain(X, "smoothgrad", objective=[1, 0, 1], base=base, noise_level=0.0, n_samples=3)
    np.testing.assert_allclose(smooth.raw, plain.raw, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(smooth.maps, plain.maps, atol=1e-6)


def test_smoothgrad_with_explicit_noise_is_the_mean_of_gradients(ex):
    noise = np.random.default_rng(1).standard_normal((5, 2, 4, 4)).astype(np.float32)
    smooth = ex.explain(X[:2], "smoothgrad", objective=[0, 1], noise=noise, batch_size=3)
    for i, c in enumerate([0, 1]):
        expected = np.mean([tiny.by_hand(X[i : i + 1] + n, np.array([c]))["grad"][0] for n in noise], axis=0)
        np.testing.assert_allclose(smooth.raw[i], expected, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_reproducible_and_batch_size_free(ex):
    a = ex.explain(X, "smoothgrad", noise_seed=3, n_samples=7, batch_size=2)
    b = ex.explain(X, "smoothgrad", noise_seed=3, n_samples=7, batch_size=16)
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6)
    assert not np.allclose(a.raw, ex.explain(X, "smoothgrad", noise_seed=4, n_samples=7).raw)


def test_a_batch_equals_single_calls(ex):
    for method in ("gradient", "cam", "gradcam"):
        batch = ex.explain(X, method, objective=[0, 1, 0])
        for i, t in enumerate([0, 1, 0]):
            one = ex.explain(X[i : i + 1], method, objective=t)
            np.testing.assert_allclose(batch.raw[i], one.raw[0], rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(batch.boxes[i], one.boxes[0])


def test_cam_maps_are_the_upsampled_raw(ex):
    result = ex.explain(X, "cam")
    up = upsample(result.raw, 4, 4)
    lo, hi = up.min((1, 2), keepdims=True), up.max((1, 2), keepdims=True)
    np.testing.assert_allclose(result.maps, (up - lo) / (hi - lo), atol=1e-6)


def test_concurrent_calls_from_threads_agree(ex):
    expected = {m: ex.explain(X, m).raw for m in ("gradient", "gradcam")}
    fresh = onnx_xai.Explainer(tiny.model())  # sessions built concurrently, on first use
    errors, results = [], []

    def work(method):
        try:
            results.append((method, fresh.explain(X, method).raw))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(m,)) for m in ("gradient", "gradcam") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for method, raw in results:
        np.testing.assert_allclose(raw, expected[method], rtol=1e-6)


def test_rewritten_model_is_used_as_is():
    rewritten = onnx_xai.augment(tiny.model(), outputs=("gradcam",))
    ex = onnx_xai.Explainer(rewritten.SerializeToString())
    ref = tiny.by_hand(X, np.array([1, 1, 1]))
    np.testing.assert_allclose(
        ex.explain(X, "gradcam", objective=1).raw, ref["gradcam"], rtol=1e-5, atol=1e-7
    )
    with pytest.raises(InputError, match="no 'input_grad' outputs"):
        ex.explain(X, "gradient")
    assert ex.target_layer == "a" and ex.providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda ex: ex.explain(X, "gradcam", objective=2),
            "class 2 is out of range for a model with 2 classes",
        ),
        (lambda ex: ex.explain(X, "gradcam", objective=[0, 1]), "gives 2 classes for 3 samples"),
        (lambda ex: ex.explain(X, "gradcam", objective=1.5), "a class is an int or a list of ints"),
        (lambda ex: ex.explain(X, "gradcam", objective=np.zeros((3, 2), int)), "a class is an int"),
        (lambda ex: ex.explain(X, "gradcam", objective=Objective.of_value(2)), "value 2 is out of range"),
        (lambda ex: ex.explain(X, "saliency"), "unknown method 'saliency'"),
        (lambda ex: ex.explain(np.full_like(X, np.nan), "cam"), "NaN"),
        (lambda ex: ex.explain(X[:, :1], "cam"), r"x has shape \(3, 1, 4, 4\), expected"),
        (lambda ex: ex.explain(X.astype(int), "cam"), "float numpy array"),
        (lambda ex: ex.explain(X, "cam", n_samples=3), "takes no options"),
        (lambda ex: ex.explain(X, "smoothgrad", samples=3), "unknown smoothgrad option"),
        (lambda ex: ex.explain(X, "smoothgrad", base="smoothgrad"), "cannot smooth itself"),
        (lambda ex: ex.explain(X, "smoothgrad", noise=np.zeros((2, 3))), "noise has shape"),
    ],
)
def test_bad_calls_raise_clear_errors(ex, call, message):
    with pytest.raises(InputError, match=message):
        call(ex)


def test_cam_on_another_head_suggests_gradcam():
    import torch
    from torch import nn

    from tests.graph.test_augment import export

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    ex = onnx_xai.Explainer(export(net, (1, 3, 8, 8)))
    with pytest.raises(CamNotApplicableError, match="gradcam"):
        ex.explain(np.zeros((1, 3, 8, 8), np.float32), "cam")
    assert ex.explain(np.ones((1, 3, 8, 8), np.float32), "gradcam").maps.shape == (1, 8, 8)


def test_explain_many_equals_separate_calls(ex):
    many = ex.explain_many(
        X, ["gradient", "cam", "gradcam", "smoothgrad"], objective=[0, 1, 1], noise_seed=1, n_samples=3
    )
    assert list(many) == ["gradient", "cam", "gradcam", "smoothgrad"]
    for method in ("gradient", "cam", "gradcam"):
        one = ex.explain(X, method, objective=[0, 1, 1])
        np.testing.assert_allclose(many[method].raw, one.raw, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(many[method].boxes, one.boxes)
    smooth = ex.explain(X, "smoothgrad", objective=[0, 1, 1], noise_seed=1, n_samples=3)
    np.testing.assert_allclose(many["smoothgrad"].raw, smooth.raw, rtol=1e-6)


def test_eigencam_does_not_depend_on_the_svd_sign():
    """The same activations with their channels in another order (LAPACK then picks either sign) give
    one map, whose largest channel weight is positive; the map is the projection's positive part."""
    from onnx_xai.runtime.methods.cams import EigenCam

    rng = np.random.default_rng(3)
    a = np.maximum(rng.standard_normal((2, 16, 6, 6)), 0).astype(np.float32)
    want = EigenCam().image(a, None, None, None)
    for _ in range(8):
        order = rng.permutation(16)
        np.testing.assert_allclose(EigenCam().image(a[:, order], None, None, None), want, atol=1e-5)
    flat = a[0].reshape(16, -1).T - a[0].reshape(16, -1).T.mean(0)
    first = np.linalg.eigh(flat.T @ flat)[1][:, -1]  # the top eigenvector, by another routine
    first *= np.sign(first[np.abs(first).argmax()])
    np.testing.assert_allclose(want[0], (flat @ first).reshape(6, 6), atol=1e-4)
