"""Several target layers: a detector's neck (P3, P4, P5) found per scale and fused as pytorch-grad-cam.

``inspect`` must list, per scale, the outputs of the detector's neck blocks (checked by value against
torch hooks on those modules), and the CAM family on all three at once must match the multi-layer
recipe of pytorch-grad-cam (per layer: the map, ReLU, min-max scaling, bilinear resize to the input;
then the mean, or the maximum, scaled again), computed here from float64 autograd with hooks, for a
detection seed, on both exporters and at a size unlike the probe's.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import onnx_xai
from onnx_xai.objectives import seeds
from onnx_xai.runtime.report import inspect_model

from ..forms.reference import rel
from .nets import build
from .test_seeds import export

NECK = ("p3", "p4", "c5")  # the modules whose outputs feed the three heads of TinyYolo


def neck_outputs(x: np.ndarray, seed: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Float64 (activation, gradient) of the neck modules for sum(seed * output)."""
    net = build("yolo").double()
    kept = {}
    hooks = [
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: kept.setdefault(name, o))
        for name in NECK
    ]
    out = net(torch.tensor(x, dtype=torch.float64))
    for hook in hooks:
        hook.remove()
    for a in kept.values():
        a.retain_grad()
    (out * torch.tensor(seed, dtype=torch.float64)).sum().backward()
    return [(kept[n].detach().numpy(), kept[n].grad.numpy()) for n in NECK]


def scale(cams: np.ndarray, size=None) -> np.ndarray:
    """pytorch-grad-cam's ``scale_cam_image``: min-max with its epsilon, then bilinear resize."""
    cams = cams - cams.min(axis=(1, 2), keepdims=True)
    cams = cams / (1e-7 + cams.max(axis=(1, 2), keepdims=True))
    if size is None:
        return cams
    return F.interpolate(torch.tensor(cams)[:, None], size=size, mode="bilinear", align_corners=False)[
        :, 0
    ].numpy()


def fused_reference(layers, per_layer, size, fuse: str) -> np.ndarray:
    maps = np.stack([scale(np.maximum(per_layer(a, g), 0), size) for a, g in layers], 1)
    maps = np.maximum(maps, 0)
    return scale(maps.mean(axis=1) if fuse == "mean" else maps.max(axis=1))


PER_LAYER = {
    "gradcam": lambda a, g: (g.mean(axis=(2, 3), keepdims=True) * a).sum(1),
    "layercam": lambda a, g: (np.maximum(g, 0) * a).sum(1),
    "hirescam": lambda a, g: (g * a).sum(1),
}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_inspect_lists_the_neck_per_scale_and_cams_fuse_as_pytorch_grad_cam(exporter):
    path = export("yolo", exporter)
    report = inspect_model(path)
    by_stride = {s["stride"]: s["name"] for s in report["scales"]}
    layers = [by_stride[8.0], by_stride[16.0], by_stride[32.0]]
    x = np.random.default_rng(3).standard_normal((2, 3, 96, 160)).astype(np.float32)
    ex = onnx_xai.Explainer(path, target_layer=layers)
    seed = seeds.detection_seed(ex.predict(x), category=2)[0]
    want = neck_outputs(x.astype(np.float64), seed)
    rewritten = onnx_xai.augment(path, target_layer=layers, outputs=["gradcam"], seeded=True)
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x, "xai_seed": seed})))
    for k, (a, g) in enumerate(want):
        suffix = f"_{k}" if k else ""
        assert rel(got["xai_activation" + suffix], a) < 1e-5, (exporter, NECK[k])
        assert rel(got["xai_activation_grad" + suffix], g) < 1e-5, (exporter, NECK[k])
    for method, per_layer in PER_LAYER.items():
        for fuse in ("mean", "max"):
            maps = ex.explain(x, method, objective=seed, fuse=fuse).maps
            np.testing.assert_allclose(
                maps,
                fused_reference(want, per_layer, x.shape[2:], fuse),
                atol=2e-5,
                err_msg=f"{exporter} {method} {fuse}",
            )


def test_one_target_layer_ignores_fuse_and_cam_needs_one_layer(tmp_path):
    path = export("yolo", "torchscript")
    layers = [s["name"] for s in inspect_model(path)["scales"]][-2:]
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 64)).astype(np.float32)
    one = onnx_xai.Explainer(path, target_layer=layers[0])
    seed = seeds.detection_seed(one.predict(x), candidate=5)[0]
    assert np.array_equal(
        one.explain(x, "gradcam", objective=seed, fuse="max").raw,
        one.explain(x, "gradcam", objective=seed).raw,
    )
    with pytest.raises(onnx_xai.InputError, match="fuse must be one of mean, max"):
        one.explain(x, "gradcam", objective=seed, fuse="sum")
    with pytest.raises(onnx_xai.InputError, match="distinct"):
        onnx_xai.Explainer(path, target_layer=[layers[0], layers[0]])


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_a_multi_scale_detector_defaults_to_its_neck(exporter):
    """No --target-layer: the three neck outputs, found by value (hooks), are the default layers, and
    the default Grad-CAM is pytorch-grad-cam's fused recipe on them; inspect says why."""
    path = export("yolo", exporter)
    report = inspect_model(path)
    assert report["convention"].startswith("multi-scale detector: the 3 neck outputs")
    x = np.random.default_rng(5).standard_normal((1, 3, 64, 96)).astype(np.float32)
    ex = onnx_xai.Explainer(path)
    assert ex.target_layers == report["target_layers"] and len(ex.target_layers) == 3
    seed = seeds.detection_seed(ex.predict(x), category=1)[0]
    want = neck_outputs(x.astype(np.float64), seed)
    np.testing.assert_allclose(
        ex.explain(x, "gradcam", objective=seed).maps,
        fused_reference(want, PER_LAYER["gradcam"], x.shape[2:], "mean"),
        atol=2e-5,
    )
