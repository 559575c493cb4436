"""How many copies of a model an Explainer holds, and that holding fewer changes no result.

``memory="fast"`` serves each kind of request from its own graph (a forward-cost one for the CAM
family and predictions, a backward one for gradients, one for guided backprop), and lets the original
model's own session go once a graph can predict; ``memory="lean"`` holds one graph at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnx_xai

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


def test_lean_mode_holds_one_graph_and_gives_the_same_results(model):
    fast, lean = onnx_xai.Explainer(model), onnx_xai.Explainer(model, memory="lean")
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    for methods in SEQUENCE:
        a, b = fast.explain_many(x, methods), lean.explain_many(x, methods)
        assert lean._sessions.held() == 1
        for method in methods:
            assert rel(b[method].raw, a[method].raw) < 1e-6, method
        assert np.allclose(lean.predict(x), fast.predict(x), rtol=1e-6, atol=1e-6)


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
