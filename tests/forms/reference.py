"""What the rewritten graphs must compute, by torch autograd in float64 on the nets of :mod:`.nets`.

``autograd(net, x, targets)`` returns the input gradient of the explained score (pre-softmax or
pre-sigmoid where the net ends in one), the target layer's activation and gradient read as
``[N, K, h, w]``, Grad-CAM from them and the scores. Float16 nets are evaluated in float64 with
their float16 weights; uint8 nets on the float pixel values (the gradient is d score / d pixel).
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def rel(a, b) -> float:
    """Relative L2 distance of ``a`` from the reference ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def autograd(net, x: np.ndarray, targets, dtype=torch.float64) -> dict:
    net = copy.deepcopy(net).to(dtype)
    store = {}

    def keep(module, inputs, output):
        store["a"] = output
        output.retain_grad()

    hooks = [net.target.register_forward_hook(keep)]
    if getattr(net, "score_module", None) is not None:
        hooks.append(net.score_module.register_forward_hook(lambda m, i, o: store.update(z=o)))
    xt = torch.tensor(np.asarray(x), dtype=dtype, requires_grad=True)
    out = net.float_forward(xt) if hasattr(net, "float_forward") else net(xt)
    score = store.get("z", out)
    for hook in hooks:
        hook.remove()
    index = torch.arange(len(x))
    score[index, torch.as_tensor(np.asarray(targets))].sum().backward()
    to_nchw = getattr(net, "to_nchw", lambda t: t)
    activation = to_nchw(store["a"]).detach().double().numpy()
    activation_grad = to_nchw(store["a"].grad).double().numpy()
    gradcam = np.maximum((activation_grad.mean((2, 3), keepdims=True) * activation).sum(1), 0)
    return {
        "input_grad": xt.grad.double().numpy(),
        "activation": activation,
        "activation_grad": activation_grad,
        "gradcam": gradcam,
        "scores": score.detach().double().numpy(),
        "output": out.detach().double().numpy(),
    }


def cam(net, reference: dict, targets) -> np.ndarray:
    """CAM from the net's head weights: sum_k w[c, k] A_k."""
    w = net.cam_weight.detach().double().numpy()[np.asarray(targets)]
    return np.einsum("nk,nkhw->nhw", w, reference["activation"])
