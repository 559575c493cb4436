"""Table of cases for the Reduce* ops (axes as attribute or input, keepdims 0/1)."""

import pytest

from .harness import Case, check, node

X = {"x": (2, 3, 4)}
CASES = [
    Case("reduce_mean_spatial", [node("ReduceMean", ["x"], axes=[1, 2])], X),
    Case("reduce_mean_nokeep", [node("ReduceMean", ["x"], axes=[-1], keepdims=0)], X),
    Case("reduce_mean_all", [node("ReduceMean", ["x"], keepdims=0)], X),
    Case("reduce_sum_axis1", [node("ReduceSum", ["x"], axes=[1], keepdims=0)], X),
    Case("reduce_sum_keep", [node("ReduceSum", ["x"], axes=[0, 2])], X),
    Case("reduce_max", [node("ReduceMax", ["x"], axes=[2], keepdims=0)], X),
    Case("reduce_min", [node("ReduceMin", ["x"], axes=[1])], X),
    Case("reduce_l2", [node("ReduceL2", ["x"], axes=[1], keepdims=0)], X),
    Case("reduce_l1", [node("ReduceL1", ["x"], axes=[2])], X),
    Case("reduce_sum_square", [node("ReduceSumSquare", ["x"], axes=[0], keepdims=0)], X),
    Case("reduce_log_sum_exp", [node("ReduceLogSumExp", ["x"], axes=[1, 2], keepdims=0)], X),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
