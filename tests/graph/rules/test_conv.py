"""Table of cases for Conv and ConvTranspose: groups, strides, dilations, pads and auto_pad."""

import numpy as np
import pytest

from .harness import Case, check, node

R = np.random.default_rng(3)


def w(*shape):
    return R.normal(size=shape)


CASES = [
    Case("conv_plain", [node("Conv", ["x", "w"])], {"x": (2, 3, 6, 6)}, {"w": w(4, 3, 3, 3)}),
    Case(
        "conv_pad_bias",
        [node("Conv", ["x", "w", "b"], pads=[1, 1, 1, 1])],
        {"x": (1, 3, 5, 5)},
        {"w": w(4, 3, 3, 3), "b": w(4)},
    ),
    Case(
        "conv_asymmetric_pads",
        [node("Conv", ["x", "w"], pads=[0, 2, 1, 0])],
        {"x": (1, 2, 5, 6)},
        {"w": w(3, 2, 3, 2)},
    ),
    Case(
        "conv_stride2",
        [node("Conv", ["x", "w"], strides=[2, 2], pads=[1, 1, 1, 1])],
        {"x": (1, 3, 7, 8)},
        {"w": w(4, 3, 3, 3)},
    ),
    Case(
        "conv_stride3_uneven",
        [node("Conv", ["x", "w"], strides=[3, 2], pads=[1, 0, 0, 1])],
        {"x": (1, 2, 10, 9)},
        {"w": w(2, 2, 3, 3)},
    ),
    Case(
        "conv_dilated",
        [node("Conv", ["x", "w"], dilations=[2, 2], pads=[2, 2, 2, 2])],
        {"x": (1, 2, 7, 7)},
        {"w": w(3, 2, 3, 3)},
    ),
    Case(
        "conv_grouped",
        [node("Conv", ["x", "w"], group=2, pads=[1, 1, 1, 1])],
        {"x": (1, 4, 5, 5)},
        {"w": w(6, 2, 3, 3)},
    ),
    Case(
        "conv_depthwise",
        [node("Conv", ["x", "w"], group=4, pads=[1, 1, 1, 1])],
        {"x": (2, 4, 5, 5)},
        {"w": w(4, 1, 3, 3)},
    ),
    Case(
        "conv_depthwise_multiplier",
        [node("Conv", ["x", "w"], group=3, pads=[1, 1, 1, 1])],
        {"x": (1, 3, 5, 5)},
        {"w": w(6, 1, 3, 3)},
    ),
    Case(
        "conv_depthwise_stride2",
        [node("Conv", ["x", "w"], group=4, strides=[2, 2], pads=[2, 2, 2, 2])],
        {"x": (1, 4, 9, 9)},
        {"w": w(4, 1, 5, 5)},
    ),
    Case(
        "conv_grouped_dilated_strided",
        [node("Conv", ["x", "w"], group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 2, 1, 2])],
        {"x": (1, 4, 7, 7)},
        {"w": w(4, 2, 3, 3)},
    ),
    Case(
        "conv_same_upper",
        [node("Conv", ["x", "w"], auto_pad="SAME_UPPER", strides=[2, 2])],
        {"x": (1, 2, 7, 6)},
        {"w": w(3, 2, 4, 3)},
    ),
    Case(
        "conv_same_lower",
        [node("Conv", ["x", "w"], auto_pad="SAME_LOWER")],
        {"x": (1, 2, 5, 5)},
        {"w": w(3, 2, 2, 2)},
    ),
    Case(
        "conv_valid",
        [node("Conv", ["x", "w"], auto_pad="VALID", strides=[2, 2])],
        {"x": (1, 2, 7, 7)},
        {"w": w(3, 2, 3, 3)},
    ),
    Case("conv_pointwise", [node("Conv", ["x", "w"])], {"x": (2, 5, 3, 3)}, {"w": w(7, 5, 1, 1)}),
    Case(
        "conv_big_pad",
        [node("Conv", ["x", "w"], pads=[3, 3, 3, 3])],
        {"x": (1, 1, 4, 4)},
        {"w": w(2, 1, 3, 3)},
    ),
    Case(
        "conv_1d", [node("Conv", ["x", "w"], strides=[2], pads=[1, 1])], {"x": (2, 3, 9)}, {"w": w(4, 3, 3)}
    ),
    # Dynamic height and width: the strided backward is sized from the input at run time.
    Case(
        "conv_stride2_dynamic",
        [node("Conv", ["x", "w"], strides=[2, 2], pads=[1, 1, 1, 1])],
        {"x": (1, 3, 7, 8)},
        {"w": w(4, 3, 3, 3)},
        dynamic=True,
    ),
    Case(
        "conv_stride3_uneven_dynamic",
        [node("Conv", ["x", "w"], strides=[3, 2], pads=[1, 0, 0, 1])],
        {"x": (1, 2, 10, 9)},
        {"w": w(2, 2, 3, 3)},
        dynamic=True,
    ),
    Case(
        "conv_depthwise_stride2_dynamic",
        [node("Conv", ["x", "w"], group=4, strides=[2, 2], pads=[2, 2, 2, 2])],
        {"x": (1, 4, 9, 9)},
        {"w": w(4, 1, 5, 5)},
        dynamic=True,
    ),
    Case(
        "conv_same_upper_dynamic",
        [node("Conv", ["x", "w"], auto_pad="SAME_UPPER", strides=[2, 2])],
        {"x": (1, 2, 7, 6)},
        {"w": w(3, 2, 4, 3)},
        dynamic=True,
    ),
    Case(
        "conv_same_lower_strided_dynamic",
        [node("Conv", ["x", "w"], auto_pad="SAME_LOWER", strides=[2, 3])],
        {"x": (1, 2, 8, 7)},
        {"w": w(3, 2, 3, 2)},
        dynamic=True,
    ),
    Case(
        "conv_same_stride1_dynamic",
        [node("Conv", ["x", "w"], auto_pad="SAME_UPPER")],
        {"x": (1, 2, 5, 6)},
        {"w": w(3, 2, 2, 3)},
        dynamic=True,
    ),
    Case(
        "conv_transpose",
        [node("ConvTranspose", ["x", "w", "b"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 0])],
        {"x": (1, 3, 4, 4)},
        {"w": w(3, 2, 3, 3), "b": w(2)},
    ),
    Case(
        "conv_transpose_grouped",
        [node("ConvTranspose", ["x", "w"], group=2, dilations=[2, 1])],
        {"x": (1, 4, 3, 3)},
        {"w": w(4, 3, 2, 2)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
