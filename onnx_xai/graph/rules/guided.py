"""Guided backpropagation (Springenberg et al. 2015) and deconvolution (Zeiler & Fergus 2014): rule
tables with the ReLU rule replaced.

Through a ReLU, guided backprop passes only positive cotangents where the input was positive,
``dx = [x > 0] * max(dy, 0)``, as Captum's ``GuidedBackprop`` does; deconvolution passes the positive
cotangents whatever the input, ``dx = max(dy, 0)``, as Captum's ``Deconvolution`` does (both override
ReLU modules only, so ReLU6/Clip and the other activations keep their ordinary rules here too). The
sweep takes the table as an argument (:func:`onnx_xai.graph.rules.rule_table` with ``"guided"`` or
``"deconv"``); the registry keeps the true gradient's rules.
"""

from __future__ import annotations

from ..emitter import Emitter


def guided_relu(e: Emitter, node, g_out):
    """Guided Relu: dx = [y > 0] * max(dy, 0)."""
    y = node.output[0]
    zero = e.scalar(0.0, like=y)
    mask = e.cast_like(e.op("Greater", [y, zero]), y)
    return (e.op("Mul", [e.op("Relu", [g_out[0]]), mask]),)


def deconv_relu(e: Emitter, node, g_out):
    """Deconvolution's Relu: dx = max(dy, 0)."""
    return (e.op("Relu", [g_out[0]]),)
