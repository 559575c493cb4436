"""Graphs optimized once, their rewritten kernels shared by every session (runtime.shared_kernels).

A small ResNet export stands in for a large model (the size thresholds lowered): its graphs'
sessions are made from onnxruntime's saved optimized form. Each explanation must equal, bit for
bit, the one from sessions that optimize on their own (the same kernels run); the kernels onnxruntime
reorders for its blocked convolutions (tensors the file does not have) must be one array for every
graph that has them; and a failure to save the optimized form must leave the usual session, with no
temporary folder behind.
"""

from __future__ import annotations

import tempfile

import numpy as np
import onnx
import pytest

import onnx_xai
from onnx_xai.runtime import shared_kernels, shared_weights

from ..conformance.exports import SIZE, export

METHODS = ["gradcam", "gradient", "guided_backprop", "integrated_gradients", "lrp"]


@pytest.fixture(scope="module")
def model():
    return export("resnet", "torchscript-17", True)


@pytest.fixture
def small_counts_as_large(monkeypatch, tmp_path):
    """Every weight of 4 KiB is pooled and every model's kernels are shared; temporary folders go
    under ``tmp_path`` (to see that none is left)."""
    monkeypatch.setattr(shared_weights, "SHARED_BYTES", 4096)
    monkeypatch.setattr(shared_kernels, "KERNEL_BYTES", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _explanations(model, x) -> dict[str, np.ndarray]:
    ex = onnx_xai.Explainer(model, threads=1)
    return {method: ex.explain(x, method).raw for method in METHODS}


def test_shared_kernels_give_the_same_bits_as_sessions_that_optimize_alone(model, small_counts_as_large):
    x = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    shared = _explanations(model, x)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared_kernels, "KERNEL_BYTES", 2**62)
        alone = _explanations(model, x)
    for method in METHODS:
        np.testing.assert_array_equal(shared[method], alone[method], err_msg=method)
    assert list(small_counts_as_large.iterdir()) == []  # each optimized form's folder removed


def test_a_kernel_reordered_for_several_graphs_is_one_array(model, small_counts_as_large):
    ex = onnx_xai.Explainer(model, threads=1)
    x = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    for method in ("gradcam", "gradient", "guided_backprop"):
        ex.explain(x, method)
    in_file = {t.name for t in onnx.load(model).graph.initializer}
    sessions = {id(s): s for s in ex._sessions._sessions.values()}.values()
    assert len(sessions) == 3
    arrays = [{id(h.array): name for name, h in s.shared.items() if name not in in_file} for s in sessions]
    assert all(arrays), "every session runs kernels the optimizer made"
    light, gradient, guided = arrays  # Grad-CAM's graph is the forward's: its kernels are in the others
    assert len(light) >= 5 and set(light) <= set(gradient) and set(light) <= set(guided)


def test_a_form_that_cannot_be_saved_leaves_the_usual_session(model, small_counts_as_large, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("read-only file system")

    x = np.random.default_rng(2).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    ex = onnx_xai.Explainer(model, threads=1)
    got = ex.explain(x, "gradient").raw
    in_file = {t.name for t in onnx.load(model).graph.initializer}
    assert all(set(s.shared) <= in_file for s in ex._sessions._sessions.values())  # the file's own weights
    monkeypatch.undo()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared_kernels, "KERNEL_BYTES", 2**62)
        np.testing.assert_array_equal(got, onnx_xai.Explainer(model, threads=1).explain(x, "gradient").raw)


def test_only_cpu_sessions_of_large_models_share_kernels():
    cpu, large = ["CPUExecutionProvider"], shared_kernels.KERNEL_BYTES
    assert shared_kernels.shares_kernels(cpu, large)
    assert not shared_kernels.shares_kernels(cpu, large - 1)
    assert not shared_kernels.shares_kernels(["CUDAExecutionProvider", "CPUExecutionProvider"], large)
    assert not shared_kernels.shares_kernels(cpu, shared_kernels.SAVE_LIMIT + 1)


def _mlp() -> onnx.ModelProto:
    """A two-layer perceptron on 64 features (weights of 32 KiB and 1.5 KiB)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in (("w1", (64, 128)), ("b1", (128,)), ("w2", (128, 3)), ("b2", (3,)))
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("convolves", [False, True])
def test_only_a_convolutional_graph_is_compiled_twice(model, small_counts_as_large, monkeypatch, convolves):
    """A transformer's or a table model's large weights are shared already: its graphs keep the
    usual session (no second compile, no optimized form saved, only the file's weights pooled); a
    convolutional model's graphs are made from their optimized form."""
    from onnx_xai.runtime import backends

    saved = []
    real = backends.saved_optimized_form
    monkeypatch.setattr(backends, "saved_optimized_form", lambda save: saved.append(1) or real(save))
    source = model if convolves else _mlp()
    shape = (1, 3, SIZE, SIZE) if convolves else (2, 64)
    ex = onnx_xai.Explainer(source, threads=1)
    ex.explain(np.random.default_rng(6).standard_normal(shape).astype(np.float32), "gradient")
    assert (len(saved) > 0) == convolves
    if not convolves:
        sessions = list(ex._sessions._sessions.values())
        assert any("w1" in s.shared for s in sessions)  # the weight itself is pooled
        assert all(set(s.shared) <= {"w1", "b1", "w2", "b2"} for s in sessions)
