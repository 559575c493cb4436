"""VJP rules of matrix products: MatMul, Gemm and two-operand Einsum."""

from __future__ import annotations

import numpy as np

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from ._shared import unbroadcast


def _swap_last_two(e: Emitter, x: str) -> str:
    rank = e.info.known_rank(x)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return e.op("Transpose", [x], perm=perm)


def _matmul_check(info, node, wants) -> list[str]:
    ranks = [info.rank(n) for n in list(node.input) + [node.output[0]]]
    if any(r is None for r in ranks):
        return ["unknown operand rank"]
    return ["1-D operand"] if min(ranks[:2]) < 2 else []


def _times_weight_transposed(e: Emitter, dy: str, a: str, b: str, y: str) -> str:
    """``dy @ b^T`` for a 2-D weight ``b`` as a Gemm with ``transB`` on ``dy``'s rows: the runtime
    packs ``b`` once, as it is, where a Transpose of it would be folded into a second copy of the
    weight (GPT-2 small: 340 MB more per gradient graph, and its packed copy)."""
    if e.info.known_rank(y) == 2:  # dy has y's shape
        return e.op("Gemm", [dy, b], transB=1)
    rows = e.op("Reshape", [dy, e.const([-1, e.info.static_dim(b, 1)], np.int64)])
    return e.op("Reshape", [e.op("Gemm", [rows, b], transB=1), e.op("Shape", [a])])


def _matrix_weight(e: Emitter, a: str, b: str) -> bool:
    """Whether ``b`` is a 2-D weight of static shape and ``a`` of rank 2 or more (``a``'s gradient
    then has ``a``'s shape)."""
    shape = e.info.static_shape(b)
    return e.info.is_weight(b) and shape is not None and len(shape) == 2 and (e.info.rank(a) or 0) >= 2


@vjp("MatMul", check=_matmul_check)
def matmul(e: Emitter, node, g_out):
    """MatMul: da = unbroadcast(dy @ b^T) (a Gemm on dy's rows for a 2-D weight), db = unbroadcast(a^T @ dy).

    The Gemm (:func:`_times_weight_transposed`) reads the weight as it is, with no transposed copy.
    """
    (dy,), (a, b), y = g_out, node.input, node.output[0]
    da = db = None
    if e.wants(a) and _matrix_weight(e, a, b):
        da = _times_weight_transposed(e, dy, a, b, y)
    elif e.wants(a):
        da = unbroadcast(e, e.op("MatMul", [dy, _swap_last_two(e, b)]), a, y)
    if e.wants(b):
        db = unbroadcast(e, e.op("MatMul", [_swap_last_two(e, a), dy]), b, y)
    return da, db


def _gemm_check(info, node, wants) -> list[str]:
    """What keeps a Gemm node from being differentiated."""
    return (
        []
        if len(node.input) < 3 or not wants(node.input[2]) or info.rank(node.input[2]) is not None
        else ["unknown rank of C"]
    )


@vjp("Gemm", check=_gemm_check)
def gemm(e: Emitter, node, g_out):
    """Gemm: y = alpha a' b' + beta c; da = alpha dy b'^T (transposed back), db likewise, dc = beta dy."""
    (dy,), y = g_out, node.output[0]
    a, b = node.input[:2]
    c = node.input[2] if len(node.input) > 2 else ""
    alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
    ta, tb = attr(node, "transA", 0), attr(node, "transB", 0)
    da = db = dc = None
    if e.wants(a):
        da = (
            e.op("Gemm", [b, dy], alpha=alpha, transA=tb, transB=1)
            if ta
            else e.op("Gemm", [dy, b], alpha=alpha, transB=1 - tb)
        )
    if e.wants(b):
        db = (
            e.op("Gemm", [dy, a], alpha=alpha, transA=1, transB=ta)
            if tb
            else e.op("Gemm", [a, dy], alpha=alpha, transA=1 - ta)
        )
    if c and e.wants(c):
        scaled = e.op("Mul", [dy, e.scalar(beta, like=y)]) if beta != 1.0 else dy
        dc = unbroadcast(e, scaled, c, y)
    return (da, db, dc)[: len(node.input)]


def _einsum_terms(node) -> tuple[list[str], str]:
    equation = attr(node, "equation").replace(" ", "")
    lhs, _, out = equation.partition("->")
    return lhs.split(","), out


def _einsum_check(info, node, wants) -> list[str]:
    terms, out = _einsum_terms(node)
    if "->" not in attr(node, "equation"):
        return ["implicit-output equation"]
    if len(terms) != 2:
        return [f"{len(terms)} operands (only 2 are supported)"]
    problems = []
    for i, term in enumerate(terms):
        letters = term.replace("...", "")
        other = terms[1 - i].replace("...", "") + out.replace("...", "")
        if len(set(letters)) != len(letters):
            problems.append(f"repeated index in {term!r}")
        if wants(node.input[i]) and any(ch not in other for ch in letters):
            problems.append(f"index summed away within operand {term!r}")
    return problems


@vjp("Einsum", check=_einsum_check)
def einsum(e: Emitter, node, g_out):
    """Einsum 'A,B->Y': dA = einsum('Y,B->A', dy, B), dB = einsum('A,Y->B', A, dy)."""
    (dy,), (a, b) = g_out, node.input
    (ta, tb), out = _einsum_terms(node)
    da = e.op("Einsum", [dy, b], equation=f"{out},{tb}->{ta}") if e.wants(a) else None
    db = e.op("Einsum", [a, dy], equation=f"{ta},{out}->{tb}") if e.wants(b) else None
    return da, db
