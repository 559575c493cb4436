"""Guided backpropagation (Springenberg et al. 2015): the rule table with the ReLU rule replaced.

Through a ReLU, guided backprop passes only positive cotangents where the input was positive,
``dx = [x > 0] * max(dy, 0)``, as Captum's ``GuidedBackprop`` does (it overrides ReLU modules only,
so ReLU6/Clip and the other activations keep their ordinary rules here too). The sweep takes the
table as an argument (:func:`onnx_xai.graph.rules.rule_table` with ``"guided"``); the
registry keeps the true gradient's rules.
"""

from __future__ import annotations

from ..emitter import Emitter


def guided_relu(e: Emitter, node, g_out):
    """Guided Relu: dx = [y > 0] * max(dy, 0)."""
    y = node.output[0]
    zero = e.scalar(0.0, like=y)
    mask = e.cast_like(e.op("Greater", [y, zero]), y)
    return (e.op("Mul", [e.op("Relu", [g_out[0]]), mask]),)
