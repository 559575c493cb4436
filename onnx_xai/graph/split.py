"""A rewritten model cut at its target layer: a body up to the layer and a head from it.

ReciproCAM, ViT-ReciproCAM and Ablation-CAM change the target layer's activation and read the
score again, on many changed copies of one activation: they need the model from that layer on, not
the whole model. From a rewritten model (whatever its output sets: only the forward part is kept)
:func:`split` cuts two graphs along a *boundary*: the layer's tensor, and every tensor that carries
data into the head without depending on the layer (a block's skip connection around it: in a
transformer the residual stream beside the LayerNorm that is the target). The *body* takes the
model's inputs and gives the score (and the classes used) and the boundary's tensors. The *head*
takes the boundary's tensors and the objective input (``xai_target`` or ``xai_seed``) and gives the
score and the model's output it is read from. Shape arithmetic is never cut (a shape computed in
the body would carry the body's batch size into the head): the head recomputes it, from the model's
input where it reads it (``Shape`` of the image), which is then also an input of the head. Weights
are shared with the original model (the same initializers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import helper

from ..support.errors import ModelError
from . import contract as c
from .assemble import prune
from .info import GraphInfo, outer_scope_names
from .paths import dependents


@dataclass
class Split:
    """The two graphs and the boundary between them (the layer's tensor first)."""

    body: onnx.ModelProto
    head: onnx.ModelProto
    boundary: list[str]


def split(model: onnx.ModelProto, layer: str, output: str, image: str, also: Sequence[str] = ()) -> Split:
    """The body and the head of a rewritten ``model`` at the tensor ``layer`` (module docstring);
    ``image``: the model's image input; ``also``: tensors the body gives too (a patch embedding
    whose shape tells a token grid known only at run time)."""
    graph = model.graph
    if layer not in {o for n in graph.node for o in n.output}:
        raise ModelError(f"the target layer {layer!r} is not a tensor the model computes")
    info = GraphInfo(model)
    wanted = list(dict.fromkeys([c.SCORE, output]))
    head_nodes, crossed = _head(info, layer, image, set(wanted))
    if layer not in crossed:
        raise ModelError(f"the score does not depend on the target layer {layer!r}")
    boundary = [layer] + sorted(crossed - {layer})
    crossing = [
        helper.make_tensor_value_info(t, info.dtype(t) or onnx.TensorProto.FLOAT, _dims(info, t))
        for t in boundary
    ]
    returned = [c.SCORE] + ([c.TARGET_USED] if c.TARGET_USED in {o.name for o in graph.output} else [])
    extra = [
        helper.make_tensor_value_info(t, info.dtype(t), _dims(info, t)) for t in also if t not in boundary
    ]
    body = _cut(model, list(graph.node), list(graph.input), [*_outputs(graph, returned), *crossing, *extra])
    read = {i for n in head_nodes for i in list(n.input) + outer_scope_names(n)}
    inputs = crossing + [i for i in graph.input if i.name in read]
    return Split(body, _cut(model, head_nodes, inputs, _outputs(graph, wanted)), boundary)


def _head(info: GraphInfo, layer: str, image: str, wanted: set[str]) -> tuple[list[onnx.NodeProto], set[str]]:
    """The nodes from the boundary to ``wanted``, in order, and the boundary's tensors: the layer, and
    the tensors carrying the image's data that do not depend on the layer."""
    after = dependents(info, [layer])
    data = dependents(info, [image]) - {image}
    needed, boundary, kept = set(wanted), set(), []
    for node in reversed(info.graph.node):
        if not needed.intersection(node.output):
            continue
        kept.append(node)
        for name in list(node.input) + outer_scope_names(node):
            if not name or name in info.initializers:
                continue
            if name == layer or (name in data and name not in after):
                boundary.add(name)  # cut: the layer, or data arriving from beside it
            else:
                needed.add(name)
    return kept[::-1], boundary


def _dims(info: GraphInfo, name: str) -> list | None:
    shape = info.shape(name)
    return None if shape is None else [d if isinstance(d, int) else None for d in shape]


def _outputs(graph: onnx.GraphProto, names: Sequence[str]) -> list[onnx.ValueInfoProto]:
    declared = {o.name: o for o in graph.output}
    return [declared[name] for name in names]


def _cut(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> onnx.ModelProto:
    """A model of the nodes the ``outputs`` need, fed by ``inputs``, with the initializers they read."""
    given = {i.name for i in inputs}
    kept = _fed(nodes, {o.name for o in outputs}, given)
    used = {i for n in kept for i in list(n.input) + outer_scope_names(n)}
    graph = helper.make_graph(
        kept,
        model.graph.name,
        [i for i in inputs if i.name in used or i.name in {o.name for o in outputs}],
        outputs,
        [t for t in model.graph.initializer if t.name in used and t.name not in given],
    )
    cut = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    cut.functions.extend(model.functions)
    return cut


def _fed(nodes: list[onnx.NodeProto], outputs: set[str], given: set[str]) -> list[onnx.NodeProto]:
    """:func:`.assemble.prune` that stops at the tensors the graph is ``given`` as inputs."""
    return prune([n for n in nodes if given.isdisjoint(n.output) or outputs.intersection(n.output)], outputs)
