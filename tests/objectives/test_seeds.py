"""Seeded objectives on a segmenter and a YOLO-style detector, against torch float64 autograd.

For each net, exported by TorchScript and by dynamo with dynamic height and width, one rewritten
file is run at two input sizes; each target helper of :mod:`onnx_xai.objectives.seeds` builds a seed from the
model's own output, and the input gradient of sum(seed * output), the target layer's activation and
gradient (the layer the rewriter picked, found among the net's modules by its output) and Grad-CAM
must match torch float64 autograd with hooks; the Explainer gives the same Grad-CAM and gradients.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import onnx_xai
from onnx_xai.objectives import seeds

from ..forms.reference import rel
from .nets import NETS, build

_DIR = Path(tempfile.mkdtemp(prefix="onnx_xai_objectives_"))
CASES = [(net, exporter) for net in NETS for exporter in ("torchscript", "dynamo")]
SEEDS = {
    "segnet": [
        lambda out: seeds.segmentation_seed(out, category=1)[0],
        lambda out: seeds.dense_seed(out, channel=2, box=(3, 4, 20, 14))[0],
    ],
    "yolo": [
        lambda out: seeds.detection_seed(out, category=1)[0],
        lambda out: seeds.detection_seed(out, candidate=7)[0],
    ],
}


@functools.cache
def export(name: str, exporter: str) -> Path:
    net, path = build(name), _DIR / f"{name}-{exporter}.onnx"
    example = torch.zeros(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dims = {
                "x": {
                    0: torch.export.Dim("n", min=1, max=8),
                    2: 32 * torch.export.Dim("h", min=1, max=16),
                    3: 32 * torch.export.Dim("w", min=1, max=16),
                }
            }
            torch.onnx.export(
                net, (example,), dynamo=True, dynamic_shapes=dims, input_names=["x"], verbose=False
            ).save(str(path))
        else:
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=False,
                opset_version=17,
                input_names=["x"],
                dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}},
            )
    return path


def autograd(net, x: np.ndarray, seed: np.ndarray, activation: np.ndarray) -> dict:
    """Float64 input gradient of sum(seed * net(x)), and the activation and gradient of the module
    whose output is ``activation`` (the layer the rewriter picked)."""
    net = net.double()
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs.setdefault(name, output)  # a module called twice (an Upsample) keeps its first output

        return hook

    hooks = [m.register_forward_hook(keep(k)) for k, m in net.named_modules() if k]
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = net(xt)
    for hook in hooks:
        hook.remove()
    name = next(
        k
        for k, o in outputs.items()
        if isinstance(o, torch.Tensor)
        and tuple(o.shape) == activation.shape
        and np.allclose(o.detach().numpy(), activation, rtol=1e-4, atol=1e-4)
    )
    outputs[name].retain_grad()
    score = (out * torch.tensor(seed, dtype=torch.float64)).flatten(1).sum(1)
    score.sum().backward()
    a, g = outputs[name].detach().numpy(), outputs[name].grad.numpy()
    return {
        "score": score.detach().numpy(),
        "input_grad": xt.grad.numpy(),
        "activation": a,
        "activation_grad": g,
        "gradcam": np.maximum((g.mean((2, 3), keepdims=True) * a).sum(1), 0),
    }


@pytest.mark.parametrize("name,exporter", CASES)
def test_seeds_match_float64_autograd_at_two_sizes(name, exporter):
    path = export(name, exporter)
    first = onnx_xai.Explainer(path).target_layers[0]  # a detector's finest neck output (of three)
    ex = onnx_xai.Explainer(path, target_layer=first)
    rewritten = onnx_xai.augment(path, target_layer=first, seeded=True, outputs=("gradcam", "input_grad"))
    session = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for size in (64, 96):
        x = np.random.default_rng(size).standard_normal((2, 3, size, size)).astype(np.float32)
        for make_seed in SEEDS[name]:
            seed = make_seed(ex.predict(x))
            got = dict(zip(names, session.run(None, {"x": x, "xai_seed": seed})))
            want = autograd(build(name), x.astype(np.float64), seed, got["xai_activation"])
            assert rel(got["xai_score"], want["score"]) < 1e-5
            for key in ("input_grad", "activation_grad", "gradcam"):
                assert rel(got[f"xai_{key}"], want[key]) < 1e-5, (name, exporter, size, key)
            assert rel(ex.explain(x, "gradcam", objective=seed).raw, want["gradcam"]) < 1e-5
            assert rel(ex.input_gradient(x, objective=seed), want["input_grad"]) < 1e-5
