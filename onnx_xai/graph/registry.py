"""The registry of vector-Jacobian-product rules, one per ONNX op type.

**Rule contract.** A rule is ``rule(e, node, grads_out) -> tuple[str | None, ...]``: ``e`` is the
:class:`~onnx_xai.graph.emitter.Emitter`, ``node`` the forward ``NodeProto``, ``grads_out`` one
cotangent tensor name per node output (``None`` where no gradient reaches that output; at least one
is set). It returns one entry per node input, in input order: the name of the cotangent of that input,
or ``None`` where no gradient flows (shape tensors, indices, running statistics) or where the input
does not depend on the differentiated input (``e.wants(name)`` is False), so that no work is emitted
for constants. Rules emit standard ``ai.onnx`` ops valid at ``e.opset`` through the emitter only.

A rule may come with a ``check(info, node, wants) -> list[str]`` that returns the unsupported
attributes or inputs of a node (each a short phrase); the gradient builder calls every check on the
path before emitting anything, and reports all problems in one error.
"""
from __future__ import annotations

from collections.abc import Callable

import onnx

Rule = Callable[..., tuple]
Check = Callable[..., list]

RULES: dict[str, Rule] = {}
CHECKS: dict[str, Check] = {}
CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})


def vjp(*op_types: str, check: Check | None = None):
    """Register a function as the VJP rule of the given op types; registering an op twice raises."""
    def register(fn: Rule) -> Rule:
        for op_type in op_types:
            if op_type in RULES:
                raise ValueError(f"a VJP rule for {op_type!r} is already registered")
            RULES[op_type] = fn
            if check is not None:
                CHECKS[op_type] = check
        return fn
    return register


def supported_ops() -> list[str]:
    """The op types that have a rule, sorted."""
    _load_rules()
    return sorted(RULES)


def rule_table() -> dict[str, Rule]:
    """The registered rules, op type -> rule (a copy: callers may swap rules in it)."""
    _load_rules()
    return dict(RULES)


def check_node(info, node: onnx.NodeProto, wants: Callable[[str], bool]) -> list[str]:
    """Problems that keep ``node`` from being differentiated (empty when it is fine)."""
    _load_rules()
    if node.domain not in ("", "ai.onnx"):
        return [f"op from non-standard domain {node.domain!r}"]
    if node.op_type in CONTROL_FLOW:
        return ["control flow is not supported (export the model with the branch resolved, e.g. by "
                "tracing instead of scripting)"]
    if node.op_type not in RULES:
        return ["no VJP rule"]
    check = CHECKS.get(node.op_type)
    return check(info, node, wants) if check else []


def _load_rules() -> None:
    from . import rules  # noqa: F401  (importing the package registers every family)


def op_table() -> str:
    """The supported-op table in Markdown: op type, rule family and the rule's one-line math."""
    _load_rules()
    rows = ["| op | family | gradient |", "|---|---|---|"]
    for op_type in sorted(RULES):
        rule = RULES[op_type]
        family = rule.__module__.rsplit(".", 1)[-1]
        doc = (rule.__doc__ or "").strip().splitlines()[0].replace("|", "\\|") if rule.__doc__ else ""
        rows.append(f"| {op_type} | {family} | {doc} |")
    return "\n".join(rows)
