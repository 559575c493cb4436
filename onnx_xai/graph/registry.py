"""The registry of vector-Jacobian-product rules, one per ONNX op type: a plain value.

**Rule contract.** A rule is ``rule(e, node, grads_out) -> tuple[str | None, ...]``: ``e`` is the
:class:`~onnx_xai.graph.emitter.Emitter`, ``node`` the forward ``NodeProto``, ``grads_out`` one
cotangent tensor name per node output (``None`` where no gradient reaches that output; at least one
is set). It returns one entry per node input, in input order: the name of the cotangent of that input,
or ``None`` where no gradient flows (shape tensors, indices, running statistics) or where the input
does not depend on the differentiated input (``e.wants(name)`` is False), so that no work is emitted
for constants. Rules emit standard ``ai.onnx`` ops valid at ``e.opset`` through the emitter only.

**Keys.** A rule is registered under its op type in the standard domains (``ai.onnx``,
``ai.onnx.ml``) and under ``domain.op_type`` in any other (:func:`rule_key`): com.microsoft's
``Attention`` is not ai.onnx's ``Attention``, and an op of a domain without rules is refused as such.

A rule may come with a ``check(info, node, wants) -> list[str]`` that returns the unsupported
attributes or inputs of a node (each a short phrase); the gradient builder calls every check on the
path before emitting anything, and reports all problems in one error.

This module imports nothing of the package: the rule families (:mod:`onnx_xai.graph.rules`) fill
:data:`RULES` and :data:`CHECKS` when they are imported, and the package that imports them offers the
named tables (:func:`onnx_xai.graph.rules.rule_table`).
"""

from __future__ import annotations

from collections.abc import Callable

Rule = Callable[..., tuple]
Check = Callable[..., list]

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
RULES: dict[str, Rule] = {}
CHECKS: dict[str, Check] = {}


def rule_key(op_type: str, domain: str = "") -> str:
    """The registry's key of an op: its type in a standard domain, ``domain.op_type`` in another."""
    return op_type if domain in STANDARD_DOMAINS else f"{domain}.{op_type}"


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
