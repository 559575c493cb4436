"""The VJP rules, one module per op family; importing this package registers all of them.

Besides the registry's rules (the true gradient), a method may run the sweep with another table:
:func:`rule_table` composes the named overlays over it, ``"windows"`` (MaxPool's scatter-free backward,
:mod:`.maxpool_windows`) and ``"guided"`` (guided backpropagation's ReLU, :mod:`.guided`); the default,
``"scatter"``, is the registry's own.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import CHECKS, RULES, STANDARD_DOMAINS, Rule, rule_key
from . import (  # noqa: F401
    activation,
    contrib,
    contrib_attention,
    contrib_decoder,
    contrib_gqa,
    conv,
    elementwise,
    integer,
    linear,
    ml,
    norm,
    pad,
    pool,
    quantize,
    recurrent,
    reduce,
    resize,
    sample,
    shape,
    spectral,
)
from .guided import deconv_relu, guided_relu
from .maxpool_windows import max_pool_by_windows

CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})
OVERLAYS: dict[str, dict[str, Rule]] = {
    "scatter": {},
    "windows": {"MaxPool": max_pool_by_windows},
    "guided": {"Relu": guided_relu},
    "deconv": {"Relu": deconv_relu},
}


def rule_table(*names: str) -> dict[str, Rule]:
    """The registered rules with the named overlays applied in order (a new dict: callers may change
    it); ``rule_table()`` is the true gradient's table."""
    unknown = [n for n in names if n not in OVERLAYS]
    if unknown:
        raise ValueError(f"unknown rule tables {unknown}; known: {', '.join(OVERLAYS)}")
    table = dict(RULES)
    for name in names:
        table |= OVERLAYS[name]
    return table


def supported_ops() -> list[str]:
    """The op types that have a rule, sorted."""
    return sorted(RULES)


def check_node(info, node, wants: Callable[[str], bool]) -> list[str]:
    """Problems that keep ``node`` from being differentiated (empty when it is fine)."""
    key = rule_key(node.op_type, node.domain)
    if node.domain not in STANDARD_DOMAINS and key not in RULES:
        return [f"op from non-standard domain {node.domain!r}"]
    if node.op_type in CONTROL_FLOW:
        return [
            "control flow is not supported (export the model with the branch resolved, e.g. by "
            "tracing instead of scripting)"
        ]
    if key not in RULES:
        return ["no VJP rule"]
    check = CHECKS.get(key)
    return check(info, node, wants) if check else []


def op_table() -> str:
    """The supported-op table in Markdown: op type, rule family and the rule's one-line math."""
    rows = ["| op | family | gradient |", "|---|---|---|"]
    for op_type in sorted(RULES):
        rule = RULES[op_type]
        family = rule.__module__.rsplit(".", 1)[-1]
        doc = (rule.__doc__ or "").strip().splitlines()[0].replace("|", "\\|") if rule.__doc__ else ""
        rows.append(f"| {op_type} | {family} | {doc} |")
    return "\n".join(rows)
