"""Table of cases for MaxPool, AveragePool and the global pools (overlapping windows, ceil_mode)."""
import pytest

from .harness import Case, check, node

X = {"x": (2, 3, 7, 7)}
CASES = [
    Case("maxpool_overlapping", [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], X),
    Case("maxpool_nonoverlapping", [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])],
         {"x": (1, 2, 6, 6)}),
    Case("maxpool_ceil", [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
         {"x": (1, 2, 8, 8)}),
    Case("maxpool_stride1", [node("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], X),
    Case("maxpool_dilated", [node("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])], X),
    Case("maxpool_same_upper", [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                      auto_pad="SAME_UPPER")], X),
    Case("avgpool_plain", [node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])],
         {"x": (1, 2, 6, 6)}),
    Case("avgpool_pad_include", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                      pads=[1, 1, 1, 1], count_include_pad=1)], X),
    Case("avgpool_pad_exclude", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                      pads=[1, 1, 1, 1])], X),
    Case("avgpool_ceil", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
         {"x": (1, 2, 8, 8)}),
    Case("avgpool_stride1", [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], X),
    # Dynamic height and width: divisors and the backward's size come from the input at run time.
    Case("avgpool_pad_exclude_dynamic", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                              pads=[1, 1, 1, 1])], X, dynamic=True),
    Case("avgpool_pad_include_dynamic", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                              pads=[1, 1, 1, 1], count_include_pad=1)], X, dynamic=True),
    Case("avgpool_ceil_dynamic", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
         {"x": (1, 2, 8, 8)}, dynamic=True),
    Case("avgpool_same_upper_dynamic", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                             auto_pad="SAME_UPPER")], X, dynamic=True),
    Case("maxpool_overlapping_dynamic", [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                              pads=[1, 1, 1, 1])], X, dynamic=True),
    Case("global_average_pool", [node("GlobalAveragePool", ["x"])], X),
    Case("global_max_pool", [node("GlobalMaxPool", ["x"])], X),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
