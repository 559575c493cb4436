"""Model randomization on the ONNX file: which tensors are a layer's, how they are re-drawn, and the
cascade's maps against the tiny model's Grad-CAM computed by hand with the re-drawn weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_xai.audit.randomization import groups, parameter_layers, randomized
from onnx_xai.audit.sanity import cascading_randomization, random_targets
from onnx_xai.audit.similarity import spearman, ssim
from tests.runtime import tiny

RNG = np.random.default_rng(0)
W1 = RNG.normal(0.2, 0.5, (8, 3, 3, 3)).astype(np.float32)
Q2 = RNG.integers(-90, 90, (4, 8, 3, 3)).astype(np.int8)
FC = RNG.normal(0, 1, (4, 5)).astype(np.float32)


def mixed_model() -> onnx.ModelProto:
    """Conv (float) -> BN -> Relu -> Conv (int8 weight through DequantizeLinear) -> GAP -> Reshape ->
    MatMul (weight from a Constant node) -> Add (bias): every way a weight reaches its layer."""
    t = numpy_helper.from_array
    inits = [
        t(W1, "w1"),
        t(np.full(8, 0.1, np.float32), "b1"),
        t(RNG.random(8).astype(np.float32) + 0.5, "bn_s"),
        t(RNG.random(8).astype(np.float32), "bn_b"),
        t(np.zeros(8, np.float32), "bn_mean"),
        t(np.ones(8, np.float32), "bn_var"),
        t(Q2, "q2"),
        t(np.array(0.02, np.float32), "q2_scale"),
        t(np.array(0, np.int8), "q2_zp"),
        t(np.array([-1, 4], np.int64), "shape"),
        t(RNG.random(5).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node(
            "BatchNormalization", ["c1", "bn_s", "bn_b", "bn_mean", "bn_var"], ["bn"], name="bn1"
        ),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("DequantizeLinear", ["q2", "q2_scale", "q2_zp"], ["w2"]),
        helper.make_node("Conv", ["r", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["f"]),
        helper.make_node("Constant", [], ["fc"], value=t(FC, "fc_value")),
        helper.make_node("MatMul", ["f", "fc"], ["m"], name="fc"),
        helper.make_node("Add", ["m", "fc_b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def tensors_of(model) -> dict:
    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out.update(
        {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in model.graph.node
            if n.op_type == "Constant"
        }
    )
    return out


def test_layers_top_down_with_their_tensors():
    layers = parameter_layers(mixed_model())
    assert [(layer.node, layer.tensors) for layer in layers] == [
        ("fc", ("fc", "fc_b")),
        ("conv2", ("q2",)),
        ("bn1", ("bn_s", "bn_b")),
        ("conv1", ("w1", "b1")),
    ]


def test_redrawn_tensors_keep_type_shape_and_statistics():
    model = mixed_model()
    before = tensors_of(model)
    after = tensors_of(randomized(model, {"w1", "q2", "fc", "bn_s"}, noise_seed=0))
    assert tensors_of(model).keys() == before.keys() and all(
        np.array_equal(before[k], tensors_of(model)[k]) for k in before
    )  # the original untouched
    for name in ("w1", "q2", "fc", "bn_s"):
        a, b = before[name], after[name]
        assert a.dtype == b.dtype and a.shape == b.shape and not np.array_equal(a, b)
        se = a.astype(float).std() / np.sqrt(a.size)
        assert abs(b.astype(float).mean() - a.astype(float).mean()) < 5 * se + 0.5 * (a.dtype.kind == "i")
        if a.size >= 100:  # the sample deviation of a few values is too loose to compare
            assert b.astype(float).std() == pytest.approx(a.astype(float).std(), rel=0.15)
    for name in ("b1", "bn_b", "bn_mean", "bn_var", "shape", "q2_scale", "q2_zp", "fc_b"):
        assert np.array_equal(before[name], after[name])
    assert after["q2"].min() >= -128 and after["q2"].max() <= 127


def test_groups_split_top_down():
    layers = parameter_layers(mixed_model())
    assert [len(g) for g in groups(layers, 2)] == [2, 2]
    assert [len(g) for g in groups(layers, 10)] == [1, 1, 1, 1]
    assert [layer for g in groups(layers, 3) for layer in g] == layers


def by_hand_gradcam(w_conv: np.ndarray, w_fc: np.ndarray, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    a = np.maximum(np.einsum("kj,njhw->nkhw", w_conv[:, :, 0, 0], x), 0)
    return np.maximum(np.einsum("nk,nkhw->nhw", w_fc[c] / tiny.HW, a), 0)


def normalized(m: np.ndarray) -> np.ndarray:
    flat = m.reshape(len(m), -1)
    low, span = flat.min(1), np.ptp(flat, 1)
    return (m - low[:, None, None]) / np.where(span > 0, span, 1)[:, None, None]


def test_cascade_maps_match_the_hand_computed_grad_cam():
    import onnx_xai

    model = tiny.model()
    x = np.random.default_rng(2).standard_normal((3, 2, 4, 4)).astype(np.float32)
    targets = np.array([0, 1, 0])
    ex = onnx_xai.Explainer(model)
    original = {"gradcam": ex.explain(x, "gradcam", objective=targets).maps}
    steps = cascading_randomization(
        model, onnx_xai.Explainer, x, ["gradcam"], targets, original, steps=2, noise_seed=5, options={}
    )
    assert [s["layers"] for s in steps] == [0, 1, 2] and steps[1]["down_to"].endswith("(Gemm)")
    fc1 = tensors_of(randomized(model, {"fc", "b"}, 6))["fc"]  # step k draws with noise_seed + k
    both = tensors_of(randomized(model, {"fc", "b", "w"}, 7))
    for step, (w_conv, w_fc) in ((1, (tiny.W_CONV[:, :, None, None], fc1)), (2, (both["w"], both["fc"]))):
        expected = normalized(by_hand_gradcam(w_conv, w_fc, x, targets))
        for i in range(3):
            assert steps[step]["methods"]["gradcam"]["spearman"][i] == pytest.approx(
                spearman(original["gradcam"][i], expected[i]), abs=1e-6
            )
            assert steps[step]["methods"]["gradcam"]["ssim"][i] == pytest.approx(
                ssim(original["gradcam"][i], expected[i]), abs=1e-5
            )
    assert steps[0]["methods"]["gradcam"]["spearman"] == pytest.approx([1.0] * 3)


def test_random_targets_are_other_classes_uniformly():
    targets = np.zeros(4000, np.int64)
    drawn = random_targets(targets, 5, noise_seed=0)
    assert not np.any(drawn == targets) and set(drawn) == {1, 2, 3, 4}
    assert np.allclose(np.bincount(drawn, minlength=5)[1:] / 4000, 0.25, atol=0.03)
