"""Turning an emitter's recorded nodes into a new, valid ModelProto.

The forward graph is kept as it is (its weights shared, never duplicated); the emitted nodes are
appended, then pruned to those the requested outputs need, so a graph asked only for Grad-CAM carries
no input-gradient work (onnxruntime runs every node of a graph whatever outputs are fetched).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper

from .autodiff import backward
from .emitter import Emitter
from .info import GraphInfo, outer_scope_names


def prune(nodes: Sequence[onnx.NodeProto], needed_outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes, in order, that some name in ``needed_outputs`` transitively depends on (through
    their inputs and what their subgraphs read)."""
    needed, kept = set(needed_outputs), []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in list(node.input) + outer_scope_names(node) if i)
    return kept[::-1]


def unshared_weights(model: onnx.ModelProto, prefix: str = "xai/") -> onnx.ModelProto:
    """The model with a private copy of every initializer that both a forward node and a node the
    rewrite added read. Sharing is what keeps a rewritten file the size of the original, but
    OpenVINO's CPU plugin (2026.4) re-lays out, in place, the weights of a grouped Conv or a MatMul
    for its own kernels, and another consumer of the same constant (the backward's ConvTranspose
    or Transpose) then reads the re-laid-out copy: gradients off by 100 %. Modified in place."""
    graph = model.graph
    backward = [n for n in graph.node if n.name.startswith(prefix)]
    forward_reads = {i for n in graph.node if not n.name.startswith(prefix) for i in n.input}
    shared = {
        t.name: t
        for t in graph.initializer
        if t.name in forward_reads and any(t.name in n.input for n in backward)
    }
    for name, tensor in shared.items():
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = f"{prefix}copy/{name}"
        graph.initializer.append(copy)
        for node in backward:
            node.input[:] = [copy.name if i == name else i for i in node.input]
    return model


def forward_only(model: onnx.ModelProto, prefix: str = "xai_") -> onnx.ModelProto:
    """A rewritten model's own forward: its original outputs, without the inputs, outputs and nodes
    the rewrite added (a seeded rewrite cannot run without a seed of the output's shape)."""
    graph = model.graph
    outputs = [o for o in graph.output if not o.name.startswith(prefix)]
    nodes = prune(list(graph.node), {o.name for o in outputs})
    used = {i for n in nodes for i in list(n.input) + outer_scope_names(n)}
    pruned = helper.make_graph(
        nodes,
        graph.name,
        [i for i in graph.input if not i.name.startswith(prefix)],
        outputs,
        [t for t in graph.initializer if t.name in used],
    )
    forward = helper.make_model(pruned, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    forward.functions.extend(model.functions)
    return forward


def build_model(
    info: GraphInfo,
    e: Emitter,
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    keep_forward_outputs: bool = True,
) -> onnx.ModelProto:
    """A copy of the model with the emitted nodes, the extra inputs and the given outputs.

    Args:
        info: facts of the forward model (``info.model`` is not modified).
        e: the emitter holding the new nodes and constants.
        inputs: extra graph inputs (e.g. ``xai_target``).
        outputs: extra graph outputs, each produced by a forward or emitted node.
        keep_forward_outputs: keep the model's own outputs first.
    """
    model = onnx.ModelProto()
    model.CopyFrom(info.model)
    graph = model.graph
    wanted = {o.name for o in outputs} | ({o.name for o in graph.output} if keep_forward_outputs else set())
    emitted = prune(e.nodes, wanted)
    used = {i for n in emitted for i in n.input}
    graph.node.extend(emitted)
    graph.initializer.extend(t for t in e.initializers if t.name in used)
    graph.input.extend(inputs)
    if not keep_forward_outputs:
        del graph.output[:]
    graph.output.extend(outputs)
    return model


def value_info(info: GraphInfo, name: str, like: str, shape=None) -> onnx.ValueInfoProto:
    """An output declaration named ``name`` with the element type (and shape) of tensor ``like``."""
    dims = info.shape(like) if shape is None else shape
    return helper.make_tensor_value_info(name, info.dtype(like), list(dims) if dims is not None else None)


def vjp_model(model: onnx.ModelProto, output: str, wrt: Sequence[str], rules=None) -> onnx.ModelProto:
    """A model that also takes ``xai_seed`` (shaped like ``output``) and returns its VJP.

    The outputs ``xai_grad/<name>`` hold seed-weighted gradients ``sum(seed * d output / d name)`` for
    each ``name`` in ``wrt``: the building block of every explanation, and what the rule tests check
    against finite differences.
    """
    info = GraphInfo(model)
    e = Emitter(info)
    seed = e.reserve("xai_seed")
    grads = backward(e, output, seed, list(wrt), rules=rules)
    outputs = []
    for name in wrt:
        out = e.reserve(f"xai_grad/{name}")
        grad = grads[name]
        if grad is None:
            e.op("Mul", [name, e.scalar(0.0, like=name)], out=[out])
        else:
            e.op("Identity", [grad], out=[out])
        outputs.append(value_info(info, out, name))
    return build_model(info, e, [value_info(info, seed, output)], outputs, keep_forward_outputs=True)
