"""Model randomization on the ONNX file (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A *layer* is a node that holds learned parameters (Conv, ConvTranspose, Gemm, MatMul, the
normalizations' scale and bias, PRelu's slope), with the constant tensors it reads: initializers or
``Constant`` outputs, also through ``DequantizeLinear``/``Cast``/``Identity``/``Transpose`` (quantized and
float16 exports); a MatMul's bias ``Add`` belongs to it. Running statistics (BatchNormalization's mean
and variance) are kept. Layers are ordered from the output down (reverse topological order).

Cascading randomization re-draws the parameters of the top layer, then of the top two, and so on: each
tensor from a normal distribution with its own mean and standard deviation (integer tensors rounded and
clipped to their type), seeded. Layers are split into at most ``steps`` groups, one more group each
step (one layer per step when there are fewer layers than steps). If the maps were faithful to what
the model learned, they should lose their likeness to the original maps as the model loses its weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEIGHTED = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "InstanceNormalization": (1, 2),
    "GroupNormalization": (1, 2),
    "PRelu": (1,),
    "ConvInteger": (1,),
    "MatMulInteger": (1,),
}
THROUGH = {"DequantizeLinear", "Cast", "Identity", "Transpose"}


@dataclass(frozen=True)
class Layer:
    node: str  # the node's name (or its first output when unnamed)
    op_type: str
    tensors: tuple  # the constant tensors randomizing it re-draws


def parameter_layers(model) -> list:
    """Every layer with parameters, top (nearest the output) first."""
    graph = model.graph
    constants = {t.name for t in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    producers = {o: n for n in graph.node for o in n.output}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    layers, taken = [], set()
    for node in graph.node:
        if node.op_type not in WEIGHTED:
            continue
        wanted = [node.input[i] for i in WEIGHTED[node.op_type] if i < len(node.input) and node.input[i]]
        if node.op_type == "MatMul":
            wanted += [i for c in consumers.get(node.output[0], []) if c.op_type == "Add" for i in c.input]
        found = [t for name in wanted for t in _sources(name, constants, producers)]
        tensors = tuple(dict.fromkeys(t for t in found if t not in taken))
        if tensors:
            taken.update(tensors)
            layers.append(Layer(node.name or node.output[0], node.op_type, tensors))
    return layers[::-1]


def _sources(name: str, constants: set, producers: dict) -> list:
    """The constant tensors a node input is computed from through value-preserving ops."""
    if name in constants and not (name in producers and producers[name].op_type != "Constant"):
        return [name]
    node = producers.get(name)
    if node is None or node.op_type not in THROUGH:
        return []
    return _sources(node.input[0], constants, producers)


def groups(layers: list, steps: int) -> list:
    """The layers in at most ``steps`` contiguous groups, top first."""
    return [
        list(g) for g in np.array_split(np.array(layers, dtype=object), min(steps, len(layers))) if len(g)
    ]


def randomized(model, tensors: set, noise_seed: int):
    """A copy of ``model`` with the named constant tensors re-drawn (module docstring)."""
    import onnx
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    rng = np.random.default_rng(noise_seed)
    for init in copy.graph.initializer:
        if init.name in tensors:
            init.CopyFrom(numpy_helper.from_array(_redraw(numpy_helper.to_array(init), rng), init.name))
    for node in copy.graph.node:
        if node.op_type == "Constant" and node.output[0] in tensors:
            for attr in node.attribute:
                if attr.name == "value":
                    attr.t.CopyFrom(
                        numpy_helper.from_array(_redraw(numpy_helper.to_array(attr.t), rng), attr.t.name)
                    )
    return copy


def _redraw(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    floats = values.astype(np.float64)
    drawn = rng.normal(floats.mean(), floats.std(), size=values.shape) if values.size else floats
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        drawn = np.clip(np.round(drawn), info.min, info.max)
    return drawn.astype(values.dtype)
