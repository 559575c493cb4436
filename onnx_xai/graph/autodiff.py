"""Reverse-mode autodiff over an ONNX graph: the sweep that applies the VJP rules.

Only the nodes that lie between the differentiated tensors and the score are visited: a node is on
the path when one of its inputs depends on a ``wrt`` tensor (through tensors that carry data, see
:mod:`.paths`) and the score depends on one of its outputs. Everything on the path is checked first,
and every node without a rule or with an unsupported attribute is reported in one error. The sweep
then visits the path in reverse order, sums the cotangents that reach a tensor from several
consumers, and calls one rule per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from ..support.errors import RuleContractError, UnsupportedModelError
from .emitter import Emitter
from .paths import ancestors, dependents, path_nodes
from .registry import Rule, rule_key
from .rules import check_node, rule_table, supported_ops


def describe(node: onnx.NodeProto) -> str:
    return f"{node.name or node.output[0]!r} ({node.op_type})"


def check_path(e: Emitter, nodes: Sequence[onnx.NodeProto]) -> None:
    """Raise one error listing every node on the path that cannot be differentiated."""
    problems = path_problems(e, nodes)
    if problems:
        raise UnsupportedModelError(problems, supported_ops())


def path_problems(e: Emitter, nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """Every node on the path that cannot be differentiated, described with its problem."""
    problems: list[str] = []
    unknown_shapes: list[str] = []
    for node in nodes:
        for problem in check_node(e.info, node, e.wants):
            entry = describe(node) if problem == "no VJP rule" else f"{describe(node)}: {problem}"
            (unknown_shapes if problem.startswith("unknown") else problems).append(entry)
    # Shapes go unknown downstream of an op that shape inference cannot see through (often the very
    # op without a rule): report those only when nothing else is wrong.
    return problems or unknown_shapes


def prepare_path(e: Emitter, score: str, wrt: Sequence[str]) -> list[onnx.NodeProto]:
    """The nodes to differentiate, with ``e.wanted`` set to the tensors that need cotangents."""
    e.wanted = {*(dependents(e.info, wrt) & ancestors(e.info, score)), *wrt}
    return path_nodes(e.info, wrt, score)


def backward(
    e: Emitter, score: str, seed: str, wrt: Sequence[str], rules: Mapping[str, Rule] | None = None
) -> dict[str, str | None]:
    """Emit the gradient of ``score`` (seeded with cotangent ``seed``) with respect to ``wrt``.

    Args:
        e: the emitter of the rewrite.
        score: forward tensor whose cotangent is ``seed``.
        seed: tensor name of d(objective)/d(score), same shape as ``score``.
        wrt: forward tensors to differentiate with respect to.
        rules: the rule table (op type -> rule); default the registry's. Guided backprop passes the
            registry's with the ReLU rule replaced.

    Returns:
        A map from each ``wrt`` name to its cotangent tensor name, or None when the score does not
        depend on it.

    Raises:
        UnsupportedModelError: listing every node on the path that has no rule or an unsupported
            attribute.
    """
    rules = rules if rules is not None else rule_table()
    nodes = prepare_path(e, score, wrt)
    check_path(e, nodes)
    grads: dict[str, str] = {score: seed}
    for node in reversed(nodes):
        grads_out = [grads.get(o) if o else None for o in node.output]
        if all(g is None for g in grads_out):
            continue
        e.context = f"vjp of {node.op_type} {node.name or node.output[0]!r}"
        grads_in = rules[rule_key(node.op_type, node.domain)](e, node, grads_out)
        if len(grads_in) != len(node.input):  # the rule contract (registry), checked under python -O too
            raise RuleContractError(
                f"the VJP rule of {node.op_type} returned {len(grads_in)} cotangents "
                f"for {len(node.input)} inputs"
            )
        for name, g in zip(node.input, grads_in):
            if g is None or not e.wants(name):
                continue
            grads[name] = e.op("Add", [grads[name], g]) if name in grads else g
    e.context = ""
    return {w: grads.get(w) for w in wrt}


def undo_moves(e: Emitter, moves: Sequence[onnx.NodeProto], grad: str) -> str:
    """Carry a cotangent back through data moves (Transpose, Reshape, ...) with their rules: from the
    first float tensor of an integer input back to the input's own shape and layout."""
    for node in reversed(moves):
        e.context = f"vjp of {node.op_type} {node.name or node.output[0]!r}"
        grad = rule_table()[node.op_type](e, node, [grad])[0]
    e.context = ""
    return grad
