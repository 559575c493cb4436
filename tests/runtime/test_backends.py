"""The OpenVINO backend gives what onnxruntime gives: every method on every conformance net, and the
gradient, Grad-CAM, guided backprop and CAM on every export form (ViT, NHWC, grouped convs, float16,
QDQ, dynamic sizes, a dynamo export with external data).

Both runtimes run the same rewritten graphs in float32 (OpenVINO pinned to f32 inference precision);
their results differ by float32 rounding in other summation orders, about 1e-7 relative: the test
allows 1e-4 (relative L2, per method and net), far below any real difference (a wrong rule moves a
result by whole percents) and above rounding, including the odd ReLU decision rounding settles
differently. The backends also agree on facts (input, layout, classes) and both run the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnx_xai
from onnx_xai.cli import main
from onnx_xai.photos import DEMO_PHOTOS
from onnx_xai.runtime.methods import REGISTRY

from ..conformance.exports import SIZE, export
from ..conformance.nets import NETS
from ..forms import exports as forms
from ..forms.reference import rel

OPTIONS = {
    "smoothgrad": {"n_samples": 3, "noise_seed": 0},
    "integrated_gradients": {"n_steps": 4},
    "rise": {"n_masks": 32, "noise_seed": 0},
    # few superpixels for the samples: a well-posed fit passes the runtimes' rounding on unamplified
    "lime": {"n_samples": 48, "noise_seed": 0, "segments": 8},
    "kernel_shap": {"n_samples": 48, "noise_seed": 0, "segments": 8},
    "gradient_shap": {"n_samples": 3, "noise_seed": 0},
    "deeplift_shap": {"baselines": np.full((2, 3, SIZE, SIZE), 0.5, np.float32)},
}


@pytest.mark.parametrize("net", list(NETS))
def test_every_method_agrees_across_backends(net):
    path = export(net, "torchscript-17", True)
    ort_ex, ov_ex = onnx_xai.Explainer(path), onnx_xai.Explainer(path, backend="openvino")
    assert ov_ex.providers == ["CPU (OpenVINO)"] and ov_ex.layout == ort_ex.layout
    assert ov_ex.num_classes == ort_ex.num_classes and ov_ex.target_layer == ort_ex.target_layer
    x = np.random.default_rng(5).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    methods = [m for m in onnx_xai.METHOD_NAMES if ort_ex.cam_available or m != "cam"]
    for method in [m for m in methods if ort_ex.kind in REGISTRY[m].kinds]:
        try:
            a = ort_ex.explain(x, method, objective=[-1, 1], **OPTIONS.get(method, {}))
        except onnx_xai.ModelError as refused:  # LRP on a net with products of activations (LayerNorm)
            assert method == "lrp" and "LRP has no rule" in str(refused)
            with pytest.raises(onnx_xai.ModelError, match="LRP has no rule"):
                ov_ex.explain(x, method, objective=[-1, 1])
            continue
        b = ov_ex.explain(x, method, objective=[-1, 1], **OPTIONS.get(method, {}))
        assert list(a.targets) == list(b.targets), method
        assert rel(b.raw, a.raw) < 1e-4, (net, method, rel(b.raw, a.raw))


# Other arithmetic than float32 differs between the runtimes by its own rounding: float16 sums. QDQ
# models run as their ONNX definition on both (test_quantized_on_any_cpu.py), so they get 1e-4.
FORM_LIMITS = {"float16": 2e-3}


@pytest.mark.parametrize("name", list(forms.FORMS))
def test_every_export_form_agrees_across_backends(name):
    path, net = forms.export(name), forms.FORMS[name].build()
    x = forms.example_input(net, 2)
    ort_ex, ov_ex = onnx_xai.Explainer(path), onnx_xai.Explainer(path, backend="openvino")
    methods = ["gradient", "guided_backprop", "gradcam"] + (["cam"] if ort_ex.cam_available else [])
    for method in methods:
        a, b = ort_ex.explain(x, method), ov_ex.explain(x, method)
        limit = FORM_LIMITS.get(name, 1e-4) if a.family == "cam" or name == "float16" else 1e-4
        assert rel(b.raw, a.raw) < limit, (name, method, rel(b.raw, a.raw))


def test_a_dynamo_export_with_external_data_on_openvino():
    path = export("resnet", "dynamo", True)
    x = np.random.default_rng(6).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    a = onnx_xai.Explainer(path).input_gradient(x)
    assert rel(onnx_xai.Explainer(path, backend="openvino").input_gradient(x), a) < 1e-4


def test_openvino_from_the_command_line(tmp_path, capsys):
    path = export("resnet", "torchscript-17", True)
    photo = f"{DEMO_PHOTOS}/coffee.jpg"
    for backend in ("onnxruntime", "openvino"):
        assert (
            main(
                [
                    "explain",
                    str(path),
                    photo,
                    "--method",
                    "gradient",
                    "gradcam",
                    "--backend",
                    backend,
                    "--out",
                    str(tmp_path / backend),
                ]
            )
            == 0
        ), capsys.readouterr().err
    a, b = (
        json.loads((tmp_path / k / "coffee.jpg.json").read_text())["explanations"]
        for k in ("onnxruntime", "openvino")
    )
    assert [e["target"] for e in a] == [e["target"] for e in b]
    assert np.allclose([e["score"] for e in a], [e["score"] for e in b], rtol=1e-5)
