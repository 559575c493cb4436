"""Torch conformance: rewritten exports of real layer patterns against torch autograd.

For every net, exporter (TorchScript at opsets 11, 13, 17; dynamo with external data) and batch kind
(static 1, freed by the rewriter; dynamic):
- ``xai_input_grad`` against float64 torch autograd, no further off than twice float32 torch's own
  error against the same reference;
- ``xai_activation_grad`` within 1e-5 relative of float64 autograd;
- ``xai_activation`` (auto-detected target layer) equals the output of the net's conventional layer;
- ``xai_cam`` equals sum_k w_k A_k from the torch head's weights, and CAM is refused on other heads;
- ``xai_score`` is the pre-softmax logit of ``xai_target_used``.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import onnx_xai
from onnx_xai.support.errors import CamNotApplicableError

from ..reference_runtime import reference
from .exports import EXPORTS, SIZE, export
from .nets import NETS, build

BATCH = 2
CASES = [(n, ex, dyn) for n in NETS for ex in EXPORTS for dyn in (False, True)]


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def torch_reference(net, x: np.ndarray, targets: np.ndarray, dtype):
    """Input gradient, target-layer activation and its gradient of the target logits, by autograd."""
    net = copy.deepcopy(net).to(dtype)
    captured = {}
    hooks = [net.target.register_forward_hook(lambda m, i, o: captured.update(a=o))]
    if hasattr(net, "logits_module"):  # a Softmax output: the score is the pre-softmax logit
        hooks.append(net.logits_module.register_forward_hook(lambda m, i, o: captured.update(z=o)))
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    out = net(xt)
    logits = captured.get("z", out)
    for h in hooks:
        h.remove()
    captured["a"].retain_grad()
    logits[torch.arange(len(targets)), torch.as_tensor(targets)].sum().backward()
    return {
        "input_grad": xt.grad.numpy(),
        "activation": captured["a"].detach().numpy(),
        "activation_grad": captured["a"].grad.numpy(),
        "logits": logits.detach().numpy(),
    }


def run(model: onnx.ModelProto, x: np.ndarray, targets) -> dict:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x, "xai_target": np.asarray(targets, np.int64)})))


@pytest.mark.parametrize(
    "net_name,exporter,dynamic", CASES, ids=[f"{n}-{e}-{'dyn' if d else 'static'}" for n, e, d in CASES]
)
def test_export_matches_torch(net_name, exporter, dynamic):
    net = build(net_name)
    path = export(net_name, exporter, dynamic)
    outputs = ("cam", "gradcam", "input_grad") if net.cam_weight is not None else ("gradcam", "input_grad")
    model = onnx_xai.augment(path, outputs=outputs)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32)
    got = run(model, x, [-1, 1])
    targets = got["xai_target_used"]
    ref64 = torch_reference(net, x.astype(np.float64), targets, torch.float64)
    ref32 = torch_reference(net, x, targets, torch.float32)
    assert targets[0] == ref64["logits"][0].argmax() and targets[1] == 1
    np.testing.assert_allclose(
        got["xai_score"], ref64["logits"][np.arange(BATCH), targets], rtol=1e-4, atol=1e-5
    )
    torch_error = rel(ref32["input_grad"], ref64["input_grad"])
    our_error = rel(got["xai_input_grad"], ref64["input_grad"])
    assert our_error <= max(2 * torch_error, 2e-6), (our_error, torch_error)
    assert rel(got["xai_activation"], ref64["activation"]) < 1e-5
    assert rel(got["xai_activation_grad"], ref64["activation_grad"]) < 1e-5
    gradcam = np.maximum(
        (ref64["activation_grad"].mean((2, 3), keepdims=True) * ref64["activation"]).sum(1), 0
    )
    assert rel(got["xai_gradcam"], gradcam) < 1e-5
    if net.cam_weight is not None:
        w = net.cam_weight.detach().double().numpy()[targets]
        cam = np.einsum("nk,nkhw->nhw", w, ref64["activation"])
        assert rel(got["xai_cam"], cam) < 1e-5
    else:
        with pytest.raises(CamNotApplicableError, match="gradcam"):
            onnx_xai.augment(path, outputs=("cam",))


@pytest.mark.parametrize("net_name", list(NETS))
def test_reference_evaluator_agrees_with_onnxruntime(net_name):
    """A second runtime (the ONNX reference implementation) computes the same outputs: the rewritten
    graph is standard ONNX, not something that only onnxruntime accepts."""
    net = build(net_name)
    outputs = ("cam", "gradcam", "input_grad") if net.cam_weight is not None else ("gradcam", "input_grad")
    model = onnx_xai.augment(export(net_name, "torchscript-17", True), outputs=outputs)
    x = np.random.default_rng(1).standard_normal((BATCH, 3, SIZE, SIZE)).astype(np.float32)
    targets = np.array([-1, 2], np.int64)
    got = run(model, x, targets)
    names = [o.name for o in model.graph.output]
    other = dict(zip(names, reference(model).run(names, {"x": x, "xai_target": targets})))
    for name in names:
        assert rel(other[name], got[name]) < 1e-5, name
