"""A Scan whose body a rule emits through the emitter, as the recurrent ops' rules need it.

The body's nodes are recorded by the emitter like any other (names unique in the model, under
``xai/``; the body graph's name too), then sealed: an emitted constant the body reads becomes a
Constant node inside it, and any other tensor of the enclosing graph it reads (a weight such as a
recurrent matrix) is carried as an extra state passed on unchanged. OpenVINO 2026.4 cannot convert a
Scan whose body reads a computed tensor of the enclosing graph; carrying costs one copy of the tensor
a step on onnxruntime. Its Scan also miswires a body whose ``Add`` or ``Mul`` takes a step's input
first and the carried state second (measured: ``Add(x_t, c)`` wrong, ``Add(c, x_t)`` right), so the
rules write the carried operand first.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import helper

from ..emitter import Emitter

Body = Callable[[list[str], list[str]], tuple[list[str], list[str]]]


def scan(e: Emitter, like: str, states, elements, body: Body, n_out: int, reverse: bool, bools=()):
    """Emit a Scan over axis 0 of ``elements`` (all [T, B, k]; positions in ``bools`` are bool,
    the others of ``like``'s element type), carrying ``states`` ([B, k]); ``body(state names,
    element names) -> (new states, outputs)`` emits the body's nodes. Returns the final states and
    the stacked outputs [T, B, k], in time order (``reverse``: the Scan runs from T - 1 down)."""
    elem = e.info.dtype(like) or onnx.TensorProto.FLOAT
    state_in = [e.fresh("carry") for _ in states]
    element_in = [e.fresh("step") for _ in elements]
    outer, e.nodes = e.nodes, []
    try:
        new_states, outputs = body(state_in, element_in)
        e.nodes, captured = _sealed(e, e.nodes, state_in + element_in)
        inner = [name for _, name in captured]
        passed = [e.op("Identity", [name]) for name in inner]
        nodes = e.nodes
    finally:
        e.nodes = outer
    typed = [helper.make_tensor_value_info(n, elem, [None, None]) for n in state_in]
    typed += [helper.make_tensor_value_info(n, elem, None) for n in inner]
    typed += [
        helper.make_tensor_value_info(n, onnx.TensorProto.BOOL if i in bools else elem, [None, None])
        for i, n in enumerate(element_in)
    ]
    results = [helper.make_tensor_value_info(n, elem, [None, None]) for n in new_states]
    results += [helper.make_tensor_value_info(n, elem, None) for n in passed]
    results += [helper.make_tensor_value_info(n, elem, [None, None]) for n in outputs]
    graph = helper.make_graph(nodes, e.fresh("scan_body"), typed, results)
    carried = list(states) + [name for name, _ in captured]
    found = e.op_outputs(
        "Scan",
        carried + list(elements),
        len(carried) + n_out,
        body=graph,
        num_scan_inputs=len(elements),
        scan_input_directions=[1] * len(elements) if reverse else None,
        scan_output_directions=[1] * n_out if reverse else None,
    )
    return found[: len(states)], found[len(carried) :]


def _sealed(e: Emitter, nodes: list, defined: list[str]) -> tuple[list, list[tuple[str, str]]]:
    """The body's nodes reading nothing from the enclosing graph: each emitted constant they read
    becomes a Constant node in the body, each other tensor (a weight) a carried state passed on
    unchanged. Returns the nodes and the (outer, inner) names of the carried tensors."""
    constants = {t.name: t for t in e.initializers}
    known = set(defined) | {o for n in nodes for o in n.output}
    free = list(dict.fromkeys(i for n in nodes for i in n.input if i and i not in known))
    rename = {name: e.fresh("captured") for name in free}
    for node in nodes:
        node.input[:] = [rename.get(i, i) for i in node.input]
    head = [
        helper.make_node(
            "Constant", [], [rename[n]], name=e.fresh("n_constant"), value=_unnamed(constants[n])
        )
        for n in free
        if n in constants
    ]
    return head + nodes, [(n, rename[n]) for n in free if n not in constants]


def _unnamed(tensor: onnx.TensorProto) -> onnx.TensorProto:
    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    copy.name = ""
    return copy
