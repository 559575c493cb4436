"""The outputs a rewrite publishes per target layer (its activation, the gradient there, Grad-CAM,
CAM read from the head's class weights) and at the explained point (the plain, guided and deconvolved
input gradients), each in the layout the contract gives them (:mod:`.contract`); ``a`` is the
rewrite's :class:`~onnx_xai.graph.augment.Analysis`."""

from __future__ import annotations

import numpy as np

from . import contract as c
from .autodiff import backward
from .emitter import Emitter
from .head import CamHead
from .publish import as_float32, input_gradient, publish
from .rules import rule_table
from .views import channels_first, channels_first_shape


def layer_outputs(e: Emitter, a, wanted, used: str | None, grads: dict) -> list:
    """Each target layer's activation (channels-first), its gradient and Grad-CAM; CAM (one layer)."""
    if not {"activation", "cam", "gradcam"} & set(wanted):
        return []
    outs = []
    for k, view in enumerate(a.views):
        target, shape = view.name, channels_first_shape(a.info, view)
        activation = as_float32(e, channels_first(e, view, target), target)
        outs.append(publish(e, c.layer_output(c.ACTIVATION, k), activation, shape))
        if "gradcam" in wanted:
            grad = grads[target] or e.zeros_like(target)
            d_activation = as_float32(e, channels_first(e, view, grad), target)
            outs.append(publish(e, c.layer_output(c.ACTIVATION_GRAD, k), d_activation, shape))
            outs.append(
                publish(
                    e,
                    c.layer_output(c.GRADCAM, k),
                    _gradcam(e, activation, d_activation),
                    shape[:1] + shape[2:],
                )
            )
        if "cam" in wanted and k == 0 and isinstance(a.head, CamHead) and used is not None:
            outs.append(publish(e, c.CAM, _cam(e, activation, a.head, used), shape[:1] + shape[2:]))
    return outs


def input_outputs(e: Emitter, a, wanted, grads: dict, seed: str, maxpool: str) -> list:
    """d score / d input, plain, guided and deconvolved (the ReLU rule swapped), in the input's own
    shape."""
    outs, shape = [], list(a.info.known_shape(a.point))
    if "input_grad" in wanted:
        outs.append(publish(e, c.INPUT_GRAD, input_gradient(e, a, grads[a.source]), shape))
    for output_set, table, name in (
        ("guided", "guided", c.GUIDED_INPUT_GRAD),
        ("deconv", "deconv", c.DECONV_INPUT_GRAD),
    ):
        if output_set in wanted:
            modified = backward(e, a.score.name, seed, [a.source], rules=rule_table(maxpool, table))[a.source]
            outs.append(publish(e, name, input_gradient(e, a, modified), shape))
    return outs


def _gradcam(e: Emitter, activation: str, d_activation: str) -> str:
    """ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dS/dA_k (float32 tensors)."""
    alpha = e.reduce("ReduceMean", d_activation, [2, 3], keepdims=True)
    return e.op("Relu", [e.reduce("ReduceSum", e.op("Mul", [alpha, activation]), [1], keepdims=False)])


def _cam(e: Emitter, activation: str, head: CamHead, used: str) -> str:
    """sum_k w[c, k] A_k with the head's weights, read in-graph from the original initializer."""
    if head.transposed:
        rows = e.op("Transpose", [e.op("Gather", [head.weight, used], axis=1)], perm=[1, 0])
    else:
        rows = e.op("Gather", [head.weight, used], axis=0)
    rows = as_float32(e, rows, head.weight)
    if head.alpha != 1.0:
        rows = e.op("Mul", [rows, e.const(np.array(head.alpha, np.float32))])
    weights = e.unsqueeze(rows, [2, 3])
    return e.reduce("ReduceSum", e.op("Mul", [weights, activation]), [1], keepdims=False)
