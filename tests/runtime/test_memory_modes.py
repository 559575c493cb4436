"""How many copies of a model an Explainer holds, and that holding fewer changes no result.

``memory="fast"`` serves each kind of request from its own graph (a forward-cost one for the CAM
family and predictions, a backward one for gradients, one for guided backprop), and lets the original
model's own session go once a graph can predict; ``memory="lean"`` holds, beside the forward-cost
graph, one backward graph at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnx_xai
from onnx_xai.graph import contract as c

from ..conformance.exports import SIZE, export
from ..forms.reference import rel

SEQUENCE = [
    ["gradcam"],
    ["gradient"],
    ["cam", "gradcam"],
    ["eigencam"],
    ["guided_backprop"],
    ["gradient", "cam"],
]


@pytest.fixture(scope="module")
def model():
    return export("resnet", "torchscript-17", True)


def test_fast_mode_holds_one_graph_per_kind_of_request(model):
    ex = onnx_xai.Explainer(model)
    x = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    assert ex._sessions.held() == 1  # the original model
    ex.explain(x, "gradcam")
    assert ex._sessions.held() == 1  # the light graph predicts too: the original is gone
    held = [ex._sessions.held() for methods in SEQUENCE if ex.explain_many(x, methods)]
    assert held == [1, 2, 2, 2, 3, 3]


def test_lean_mode_holds_one_backward_graph_and_gives_the_same_results(model):
    """Beside the forward-cost graph (predictions, the CAM family), lean mode holds one backward
    graph, the one serving every backward request so far; forward-cost requests never run a
    backward (a runtime runs every node of a graph whatever outputs are fetched)."""
    fast, lean = onnx_xai.Explainer(model), onnx_xai.Explainer(model, memory="lean")
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    held = []
    for methods in SEQUENCE:
        a, b = fast.explain_many(x, methods), lean.explain_many(x, methods)
        held.append(lean._sessions.held())
        light = lean._sessions.get(("cam", "gradcam"))
        assert not {o.name for o in light.outputs} & {c.INPUT_GRAD, c.GUIDED_INPUT_GRAD, c.DECONV_INPUT_GRAD}
        for method in methods:
            assert rel(b[method].raw, a[method].raw) < 1e-6, method
        assert np.allclose(lean.predict(x), fast.predict(x), rtol=1e-6, atol=1e-6)
    assert held == [1, 2, 2, 2, 2, 2]  # the light graph; then it and one backward graph
    backward = [s for s in {id(v): v for v in lean._sessions._sessions.values()}.values() if s is not light]
    outputs = {o.name for o in backward[0].outputs}
    assert {c.INPUT_GRAD, c.GUIDED_INPUT_GRAD} <= outputs


def test_memory_mode_is_checked(model):
    with pytest.raises(onnx_xai.InputError, match="memory must be one of fast, lean"):
        onnx_xai.Explainer(model, memory="small")


@pytest.mark.parametrize(
    "method,options",
    [
        ("smoothgrad", {"n_samples": 6, "noise_seed": 3}),
        ("integrated_gradients", {"n_steps": 6}),
        ("scorecam", {}),
    ],
)
def test_a_byte_budget_sets_the_copies_per_run_and_changes_no_result(model, method, options):
    """``max_batch_bytes`` of one input copy runs copies one at a time; the result is the same."""
    ex = onnx_xai.Explainer(model)
    x = np.random.default_rng(2).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    sizes = []
    real = ex._sessions.run

    def counting(sets, names, feeds, *objective):
        sizes.append(len(feeds["x"]))
        return real(sets, names, feeds, *objective)

    ex._sessions.run = counting
    budget = ex.explain(x, method, max_batch_bytes=x[0].nbytes, **options).raw
    assert max(sizes[1:]) == 1  # after the shared run of the batch itself
    sizes.clear()
    default = ex.explain(x, method, **options).raw
    assert max(sizes[1:]) > 1
    assert rel(budget, default) < 1e-6


def test_lean_mode_runs_deeplift_and_fullgrad_after_other_methods(model):
    """Their graphs join no other: asked after a gradient, lean mode builds them on their own."""
    fast, lean = onnx_xai.Explainer(model), onnx_xai.Explainer(model, memory="lean")
    x = np.random.default_rng(3).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    for method in ("gradient", "deeplift", "fullgrad", "guided_backprop"):
        assert rel(lean.explain(x, method).raw, fast.explain(x, method).raw) < 1e-6, method


def test_the_sessions_share_one_copy_of_each_large_weight(model, monkeypatch):
    """Every session's large weights (here 4 KiB and more) are one array in the process, each the
    file's tensor, held while a session uses it; a tensor of a known name whose bytes differ gets
    its own array."""
    import gc

    import onnx
    from onnx import numpy_helper

    from onnx_xai.runtime import shared_weights
    from onnx_xai.runtime.shared_weights import shared_initializers

    monkeypatch.setattr(shared_weights, "SHARED_BYTES", 4096)
    source = onnx.load(model)
    large = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer if t.ByteSize() >= 4096}
    assert len(large) >= 3
    x = np.random.default_rng(4).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    one, two = onnx_xai.Explainer(model), onnx_xai.Explainer(model)
    for ex in (one, two):
        for method in ("gradcam", "gradient", "guided_backprop"):
            ex.explain(x, method)
    shared = [s.shared for ex in (one, two) for s in ex._sessions._sessions.values()]
    assert len(shared) >= 4 and all(set(large) <= set(weights) for weights in shared)
    for name in large:
        assert len({id(weights[name].array) for weights in shared}) == 1, name  # one array for all
    names, first = shared_initializers(onnx.load(model))
    assert set(names) == set(large)
    for name, weight in zip(names, first):
        np.testing.assert_array_equal(weight.array, large[name])
    changed = onnx.load(model)
    name = names[0]
    tensor = next(t for t in changed.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(large[name] + 1, name))
    again = dict(zip(*shared_initializers(changed)))
    assert again[name] is not first[0] and np.array_equal(again[name].array, large[name] + 1)
    assert all(again[n] is w for n, w in zip(names[1:], first[1:]))
    del one, two, ex, shared, first, again, weight
    gc.collect()
    assert shared_weights.pooled() == 0  # no session uses them any more
