"""Export forms against torch float64 autograd: the rewritten graph on plain onnxruntime, the Explainer.

Every form of :mod:`.exports` (channels-last, dynamic spatial size, channel shuffle, LayerNorm head,
ViT, torchvision's ViT, a ViT with registers exported by dynamo, uint8 pixels, Sigmoid head,
grayscale, fixed batch 4, RegNet-Y, float16) is rewritten with the
default outputs, checked by the full ONNX checker and run on onnxruntime at its default (full)
optimization level:
- the input gradient is no further from float64 autograd than 3x torch's own error at the model's
  precision (float32, or float16 for the float16 form);
- the target layer the rewriter picked by itself is the net's conventional layer, read as
  ``[N, K, h, w]``, and its gradient, Grad-CAM and (where the head allows) CAM match the hook-based
  reference;
- dynamic-size forms are run at two sizes from one rewritten file, the fixed-batch form at batch 3.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import onnx_xai

from .exports import FORMS, SIZE, example_input, export
from .reference import autograd, cam, rel

TORCH_FORMS = [name for name, form in FORMS.items() if form.dtype != "qdq"]


def run(model: onnx.ModelProto, x: np.ndarray, targets) -> dict:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x, "xai_target": np.asarray(targets, np.int64)})))


def sizes(form) -> list[int]:
    return [SIZE, 40] if "spatial" in form.dynamic else [SIZE]


def reference_pair(name: str, x: np.ndarray, targets) -> tuple[dict, dict, float]:
    """Float64 autograd, and the error bound: 3x torch's own error at the form's precision."""
    form, net = FORMS[name], FORMS[name].build()
    half = form.dtype == "float16"
    net = copy.deepcopy(net).half() if half else net
    exact = autograd(net, x.astype(np.float64), targets)
    own = autograd(
        net, x if half else x.astype(np.float32), targets, torch.float16 if half else torch.float32
    )
    return exact, own, 3 * rel(own["input_grad"], exact["input_grad"])


@pytest.mark.parametrize("name", TORCH_FORMS)
def test_form_matches_float64_autograd(name):
    form, net = FORMS[name], FORMS[name].build()
    model = onnx_xai.augment(export(name))
    onnx.checker.check_model(model, full_check=True)
    for size in sizes(form):
        x = example_input(net, 3, seed=size, size=size)
        x = x.astype(np.float16) if form.dtype == "float16" else x
        got = run(model, x, [-1, 1, 0])
        targets = got["xai_target_used"]
        exact, own, bound = reference_pair(name, x, targets)
        assert targets[0] == exact["scores"][0].argmax() and list(targets[1:]) == [1, 0]
        assert rel(got["xai_score"], exact["scores"][np.arange(3), targets]) < 1e-5 + bound
        assert rel(got["xai_input_grad"], exact["input_grad"]) <= max(bound, 2e-6), name
        tolerance = max(bound, 1e-5)
        for key in ("activation", "activation_grad", "gradcam"):
            assert rel(got[f"xai_{key}"], exact[key]) < tolerance, (name, key)
        if net.cam_weight is not None:
            assert rel(got["xai_cam"], cam(net, exact, targets)) < tolerance
        else:
            assert "xai_cam" not in got


@pytest.mark.parametrize("name", TORCH_FORMS)
def test_explainer_on_form(name):
    form, net = FORMS[name], FORMS[name].build()
    ex = onnx_xai.Explainer(export(name))
    x = example_input(net, 2, seed=11, size=sizes(form)[-1])
    results = ex.explain_many(x, ["gradient", "gradcam"] + (["cam"] if ex.cam_available else []))
    exact, _, bound = reference_pair(name, x.astype(ex.input_dtype), results["gradcam"].targets)
    assert rel(results["gradient"].raw, exact["input_grad"]) <= max(bound, 2e-6)
    assert rel(results["gradcam"].raw, exact["gradcam"]) < max(bound, 1e-5)
    assert ex.cam_available == (net.cam_weight is not None)
    spatial = (x.shape[1], x.shape[2]) if net.input_layout == "NHWC" else x.shape[2:]
    assert all(r.maps.shape == (2, *spatial) for r in results.values())
    smooth = ex.explain(x, "smoothgrad", n_samples=3, noise_seed=0)
    assert smooth.maps.shape == (2, *spatial) and np.isfinite(smooth.raw).all()
    assert ex.predict(x).shape[0] == 2


def test_target_layouts_and_score_kinds():
    """What the rewriter reads in each form, as recorded in the rewritten model's metadata."""
    expected = {
        "keras_nhwc": ("NHWC", "NHWC", "pre-softmax"),
        "uint8_pixels": ("NHWC", "NCHW", "logit"),
        "sigmoid_head": ("NCHW", "NCHW", "pre-sigmoid"),
        "vit": ("NCHW", "tokens", "logit"),
        "paddle_dynamic": ("NCHW", "NCHW", "pre-softmax"),
    }
    for name, (input_layout, target_layout, score_kind) in expected.items():
        record = onnx_xai.Explainer(export(name)).record
        assert (record.layout, record.target["layout"], record.score_kind) == (
            input_layout,
            target_layout,
            score_kind,
        ), name
    vit = onnx_xai.Explainer(export("vit")).record.target
    assert vit["prefix"] == 1 and vit["grid"] == [4, 4] and "blocks.1/norm1" in vit["name"]
    torchvision = onnx_xai.Explainer(export("vit_torchvision")).record.target
    assert torchvision["prefix"] == 1 and "layers.1/ln_1" in torchvision["name"]
    assert onnx_xai.Explainer(export("vit_registers_dynamo")).record.target["prefix"] == 5
    assert onnx_xai.Explainer(export("vit_distilled")).record.target["prefix"] == 2


FAMILIES = [
    "vit",
    "vit_torchvision",
    "vit_registers_dynamo",
    "vit_runtime_grid",
    "swin_torchvision",
    "swin_hf",
    "swin_torchvision_dynamo",
    "vit_torchvision_dynamo",
]


@pytest.mark.parametrize("name", FAMILIES)
def test_every_cam_method_runs_on_each_transformer_family(name):
    """No user code: every CAM-family method gives a finite map at the input's size on its default
    layer (the closed-form ones are checked against references elsewhere; here, that none needs a
    reshape the user would write)."""
    from onnx_xai.runtime.methods import METHOD_NAMES, REGISTRY

    form, net = FORMS[name], FORMS[name].build()
    ex = onnx_xai.Explainer(export(name))
    x = example_input(net, 2, seed=5, size=sizes(form)[-1])
    cams = [m for m in METHOD_NAMES if REGISTRY[m].family == "cam" and (m != "cam" or ex.cam_available)]
    results = ex.explain_many(x, cams)
    for method, result in results.items():
        assert result.maps.shape == (2, *x.shape[2:]) and np.isfinite(result.maps).all(), (name, method)
        assert result.maps.max() > 0, (name, method)


def test_inspect_names_the_convention_it_matched():
    from onnx_xai.runtime.report import inspect_model

    said = {
        name: inspect_model(export(name))["convention"]
        for name in ("vit_torchvision", "swin_torchvision", "regnety")
    }
    assert said["vit_torchvision"].startswith("vision transformer: the last block's first LayerNorm")
    assert "its special tokens dropped, on the 4x4 token grid" in said["vit_torchvision"]
    assert (
        said["swin_torchvision"].startswith("windowed-attention transformer")
        and "NHWC" in said["swin_torchvision"]
    )
    assert said["regnety"].startswith("CNN: the last feature map before the head's global pooling")
