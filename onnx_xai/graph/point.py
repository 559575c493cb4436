"""A rewrite fed at its point: integer ids explained at their embedding take the embedding itself.

Integrated gradients, SmoothGrad, GradientSHAP and DeepLIFT move the explained point along a path or
add noise to it; for ids explained at their embedding (as Captum's layer methods on
``word_embeddings``) the point is the lookup's output, which no input feeds. The fed copy of the
analysis removes that lookup (the Gather reading the ``[V, D]`` table) and makes its output the graph
input :data:`~onnx_xai.graph.contract.POINT`, of the lookup's type and shape; the ids stay an input for
whatever else reads them (positions, masks, shapes). Everything downstream, the score and the
gradients at the point, is unchanged: a fed run on the ids' own embedding gives the ids' run.
"""

from __future__ import annotations

import dataclasses

import onnx
from onnx import helper

from ..support.errors import InputError
from . import contract as c
from .info import GraphInfo


def fed_at_point(a):
    """A copy of the analysis ``a`` (:class:`~onnx_xai.graph.augment.Analysis`) whose embedding
    lookup is replaced by the input :data:`~onnx_xai.graph.contract.POINT` (module docstring)."""
    if not a.embedded:
        raise InputError("only ids explained at their embedding are fed at their point")
    model = onnx.ModelProto()
    model.CopyFrom(a.model)
    graph = model.graph
    lookup = next(k for k, node in enumerate(graph.node) if a.source in node.output)
    del graph.node[lookup]
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == a.source:
                node.input[k] = c.POINT
    for output in graph.output:
        if output.name == a.source:  # the embedding was also an output: it is now the point itself
            graph.node.append(helper.make_node("Identity", [c.POINT], [a.source]))
    table = a.info.producer[a.source].input[0]
    if not any(table in node.input for node in graph.node):  # the embedding table, read by nothing now
        kept = [t for t in graph.initializer if t.name != table]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    dims = [d if isinstance(d, int) else str(d) for d in a.info.known_shape(a.source)]
    graph.input.append(helper.make_tensor_value_info(c.POINT, a.info.dtype(a.source), dims))
    return dataclasses.replace(a, model=model, info=GraphInfo(model), source=c.POINT)
