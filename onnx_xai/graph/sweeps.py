"""The sweeps of the methods that are not the plain gradient, each published as its own output set.

- ``relevance``: LRP, the sweep seeded with the score itself and run with a composite's relevance
  rules (:mod:`.rules.relevance`);
- ``deeplift``: DeepLIFT's multipliers on a batch of inputs and their references, seeded on the
  inputs' half, the activations rescaled (:mod:`.rules.deeplift`);
- ``fullgrad``: FullGrad's bias gradients: one sweep to the output of every layer with a bias
  (convolutions, BatchNorms), each layer's ``|bias * gradient|`` scaled to [0, 1] per channel (as
  pytorch-grad-cam scales them) and summed over its channels, ``[N, h, w]`` per layer, published
  as ``xai_fullgrad_1`` ... in the order of the graph, beside the input gradient.
"""

from __future__ import annotations

import numpy as np
import onnx

from . import contract as c
from .autodiff import backward
from .emitter import Emitter
from .paths import path_nodes
from .publish import as_float32, input_gradient, publish
from .rules import rule_table
from .rules.deeplift import deeplift_table, halves
from .rules.relevance import Composite, first_linear_layer, relevance_table


def relevance(e: Emitter, a, seed: str, composite: Composite) -> onnx.ValueInfoProto:
    """LRP's relevance of each input value (:mod:`.rules.relevance`): the sweep seeded with the
    score itself where the objective's seed is (``seed * score``)."""
    first = first_linear_layer(path_nodes(a.info, [a.source], a.score.name))
    table = relevance_table(composite, first)
    start = e.op("Mul", [seed, a.score.name])
    relevance = backward(e, a.score.name, start, [a.source], rules=table)[a.source]
    return publish(e, c.RELEVANCE, input_gradient(e, a, relevance), list(a.info.known_shape(a.image)))


def deeplift(e: Emitter, a, seed: str) -> onnx.ValueInfoProto:
    """DeepLIFT's multipliers of the input (:mod:`.rules.deeplift`), the sweep seeded on the batch's
    first half (the inputs; the second holds their references)."""
    first, second = halves(e, seed)
    on_inputs = e.op("Concat", [first, e.op("Mul", [second, e.scalar(0.0, like=a.score.name)])], axis=0)
    multipliers = backward(e, a.score.name, on_inputs, [a.source], rules=deeplift_table())[a.source]
    return publish(e, c.DEEPLIFT, input_gradient(e, a, multipliers), list(a.info.known_shape(a.image)))


def fullgrad(e: Emitter, a, seed: str, maxpool: str) -> list[onnx.ValueInfoProto]:
    """The input gradient and each bias layer's scaled ``|bias * gradient|`` summed over its
    channels (module docstring)."""
    layers = bias_layers(a)
    wrt = [name for name, _ in layers] + [a.source]
    grads = backward(e, a.score.name, seed, wrt, rules=rule_table(maxpool))
    shape = list(a.info.known_shape(a.image))
    outs = [publish(e, c.FULLGRAD_INPUT, input_gradient(e, a, grads[a.source]), shape)]
    for k, (name, bias) in enumerate(layers, start=1):
        gradient = grads.get(name)
        if gradient is None:
            continue
        dims = a.info.shape(name) or (None,) * 4
        weighted = e.op(
            "Abs", [e.op("Mul", [gradient, e.const(bias.reshape(1, -1, 1, 1).astype(e.np_dtype(name)))])]
        )
        low = e.op("Sub", [weighted, e.reduce("ReduceMin", weighted, [2, 3])])
        scaled = e.op(
            "Div", [low, e.op("Add", [e.reduce("ReduceMax", low, [2, 3]), e.scalar(1e-7, like=name)])]
        )
        summed = e.reduce("ReduceSum", scaled, [1], keepdims=False)
        map_shape = [dims[0], dims[2], dims[3]]
        outs.append(publish(e, f"{c.FULLGRAD}_{k}", as_float32(e, summed, name), map_shape))
    return outs


def bias_layers(a) -> list[tuple[str, np.ndarray]]:
    """The outputs of the 4-D convolutions and BatchNorms on the path that add a bias, with it (a
    BatchNorm's: ``B - mean * scale / sqrt(var + eps)``), in the order of the graph."""
    found = []
    for node in path_nodes(a.info, [a.source], a.score.name):
        if a.info.rank(node.output[0]) != 4:
            continue
        values = [a.info.const_value(name) if name else None for name in node.input]
        if node.op_type == "Conv" and len(values) > 2 and values[2] is not None:
            found.append((node.output[0], np.asarray(values[2], np.float64)))
        elif node.op_type == "BatchNormalization" and all(v is not None for v in values[1:5]):
            scale, shift, mean, var = (np.asarray(v, np.float64) for v in values[1:5])
            eps = next((att.f for att in node.attribute if att.name == "epsilon"), 1e-5)
            found.append((node.output[0], shift - mean * scale / np.sqrt(var + eps)))
    return found
