"""Forward-only methods against their references on the small CNN of the method table's tests:
``occlusion`` against Captum's ``Occlusion`` (same window over all channels, same strides, same
baseline, float64 torch), ``rise`` against RISE's definition written here with numpy on the same masks
and a plain onnxruntime session, for a class and for a seed objective."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from captum.attr import Occlusion

from onnx_xai.runtime.methods.perturbation import occlusion_windows, rise_masks

from ..forms.reference import rel
from .test_method_references import setup  # noqa: F401  (the module's fixture)


@pytest.mark.parametrize("window,stride,baseline", [(4, 2, 0.0), (5, 3, -0.5), (16, 16, 0.0)])
def test_occlusion_matches_captum(setup, window, stride, baseline):  # noqa: F811
    ex, net, x, targets = setup
    ours = ex.explain(x, "occlusion", objective=targets, window=window, stride=stride, baseline=baseline).raw
    want = Occlusion(net).attribute(
        torch.tensor(x, dtype=torch.float64),
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=baseline,
        target=torch.as_tensor(targets),
    )
    assert rel(ours, want.numpy()) < 1e-4


def test_occlusion_windows_cover_the_image_as_captum_does():
    windows = occlusion_windows(10, 7, 4, 3)  # rows 0, 3, 6 (the last clipped: 6..10); cols 0, 3 (3..7)
    assert [(r.start, r.stop, c.start, c.stop) for r, c in windows] == [
        (0, 4, 0, 4), (0, 4, 3, 7), (3, 7, 0, 4), (3, 7, 3, 7), (6, 10, 0, 4), (6, 10, 3, 7),
    ]  # fmt: skip


def rise_by_hand(session, x: np.ndarray, masks: np.ndarray, score, p: float) -> np.ndarray:
    """RISE's definition: sum over masks of score(x * M) M, over (count * p)."""
    total = np.zeros((len(x), *masks.shape[1:]))
    for i in range(len(x)):
        for mask in masks:
            (out,) = session.run(None, {"x": (x[i : i + 1] * mask).astype(np.float32)})
            total[i] += score(out, i) * mask
    return total / (len(masks) * p)


def test_rise_matches_its_definition_on_the_same_masks(setup):  # noqa: F811
    ex, _, x, targets = setup
    session = ort.InferenceSession(ex._sessions._bytes_or_path(), providers=["CPUExecutionProvider"])
    masks = rise_masks(40, 4, 0.5, 16, 16, noise_seed=3)
    assert masks.min() >= 0 and masks.max() <= 1 and abs(masks.mean() - 0.5) < 0.1
    ours = ex.explain(x, "rise", objective=targets, n_masks=40, grid=4, noise_seed=3, batch_size=7).raw
    want = rise_by_hand(session, x, masks, lambda out, i: out[0, targets[i]], 0.5)
    assert rel(ours[:, 0], want) < 1e-5 and np.array_equal(ours[:, 0], ours[:, 2])
    seed = np.random.default_rng(1).standard_normal((len(x), 5)).astype(np.float32)
    ours = ex.explain(x, "rise", objective=seed, n_masks=40, grid=4, noise_seed=3).raw
    want = rise_by_hand(session, x, masks, lambda out, i: float(out[0] @ seed[i]), 0.5)
    assert rel(ours[:, 1], want) < 1e-5


def cumulative():
    """The method table's small CNN ending in Atan (no gradient rule), and its ONNX bytes."""
    from .test_method_references import Net, onnx_bytes

    class Cumulative(Net):
        def forward(self, x):
            return torch.atan(super().forward(x))

    torch.manual_seed(4)
    net = Cumulative().eval()
    return net, onnx_bytes(net)


def test_forward_only_methods_run_where_the_gradient_cannot(tmp_path):
    """A model whose output goes through an op without a gradient rule (Atan): the gradient
    methods are refused naming it; occlusion still runs, on the output itself, as Captum's does."""
    import onnx_xai
    from onnx_xai.support.errors import UnsupportedModelError

    net, model = cumulative()
    ex = onnx_xai.Explainer(model)
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with pytest.raises(UnsupportedModelError, match="Atan"):
        ex.explain(x, "gradcam")
    result = ex.explain(x, "occlusion", objective=[1, 3], window=4, stride=4)
    assert "cannot be rewritten" in result.note and "Atan" in result.note
    want = Occlusion(net.double()).attribute(
        torch.tensor(x, dtype=torch.float64), sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4),
        baselines=0.0, target=torch.tensor([1, 3]),
    )  # fmt: skip
    assert rel(result.raw, want.numpy()) < 1e-4
    seed = np.random.default_rng(6).standard_normal((2, 5)).astype(np.float32)
    masks = rise_masks(16, 4, 0.5, 16, 16, noise_seed=1)
    ours = ex.explain(x, "rise", objective=seed, n_masks=16, grid=4, noise_seed=1).raw
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert (
        rel(ours[:, 0], rise_by_hand(session, x, masks, lambda out, i: float(out[0] @ seed[i]), 0.5)) < 1e-5
    )
    from onnx_xai.cli import main
    from onnx_xai.photos import DEMO_PHOTOS

    path, photo = tmp_path / "cumulative.onnx", str(sorted(Path(str(DEMO_PHOTOS)).glob("*.jpg"))[0])
    path.write_bytes(model)
    assert main(["explain", str(path), photo, "--method", "occlusion", "--out", str(tmp_path / "out")]) == 0
    record = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert "cannot be rewritten" in record["explanations"][0]["note"]
    assert main(["explain", str(path), photo, "--method", "gradcam", "--out", str(tmp_path / "no")]) == 1


def test_reciprocam_runs_the_head_of_a_model_the_gradient_cannot_cross():
    """The Atan net: the gradient methods are refused, ReciproCAM still cuts the model at its
    target layer and scores the masked activations through the head (Atan included)."""
    import onnx_xai
    from onnx_xai.runtime.methods.mosaics import reciprocam_masks

    net, model = cumulative()
    ex = onnx_xai.Explainer(model)
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)
    result = ex.explain(x, "reciprocam", objective=[1, 3])
    assert "cannot be rewritten" in result.note and "Atan" in result.note
    net = net.double()
    with torch.no_grad():
        features = net.features(torch.tensor(x, dtype=torch.float64))
        masks = torch.tensor(reciprocam_masks(8, 8, False), dtype=torch.float64)
        for i, target in enumerate([1, 3]):
            logits = torch.atan(net.fc((features[i : i + 1] * masks[:, None]).mean((2, 3))))
            want = torch.softmax(logits, 1)[:, target].reshape(8, 8)
            assert rel(result.raw[i], want.numpy()) < 1e-5
