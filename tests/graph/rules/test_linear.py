"""Table of cases for MatMul, Gemm and Einsum."""

import numpy as np
import pytest

from .harness import Case, check, node

R = np.random.default_rng(2)
CASES = [
    Case("matmul_2d", [node("MatMul", ["a", "b"])], {"a": (3, 4), "b": (4, 5)}),
    Case("matmul_batched_broadcast", [node("MatMul", ["a", "b"])], {"a": (2, 1, 3, 4), "b": (3, 4, 5)}),
    Case(
        "matmul_channels_last_linear",
        [node("MatMul", ["a", "w"])],
        {"a": (2, 3, 3, 4)},
        {"w": R.normal(size=(4, 6))},
    ),
    Case("gemm_plain", [node("Gemm", ["a", "b", "c"])], {"a": (3, 4), "b": (4, 5), "c": (5,)}),
    Case(
        "gemm_trans_alpha_beta",
        [node("Gemm", ["a", "b", "c"], alpha=0.5, beta=2.0, transA=1, transB=1)],
        {"a": (4, 3), "b": (5, 4), "c": (3, 1)},
    ),
    Case("gemm_transA", [node("Gemm", ["a", "b"], transA=1)], {"a": (4, 3), "b": (4, 5)}),
    Case(
        "gemm_head",
        [node("Gemm", ["a", "w", "bias"], transB=1)],
        {"a": (2, 6)},
        {"w": R.normal(size=(3, 6)), "bias": R.normal(size=(3,))},
    ),
    Case(
        "einsum_matmul",
        [node("Einsum", ["a", "b"], equation="ij,jk->ik")],
        {"a": (3, 4), "b": (4, 5)},
        min_opset=12,
    ),
    Case(
        "einsum_batched",
        [node("Einsum", ["a", "b"], equation="bij,bjk->bik")],
        {"a": (2, 3, 4), "b": (2, 4, 5)},
        min_opset=12,
    ),
    Case(
        "einsum_channels",
        [node("Einsum", ["a", "w"], equation="nchw,dc->ndhw")],
        {"a": (2, 3, 2, 2)},
        {"w": R.normal(size=(4, 3))},
        min_opset=12,
    ),
    Case(
        "einsum_ellipsis",
        [node("Einsum", ["a", "b"], equation="...ij,...jk->...ik")],
        {"a": (2, 3, 4), "b": (2, 4, 5)},
        min_opset=12,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
