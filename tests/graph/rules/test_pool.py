"""Table of cases for MaxPool (both backwards), AveragePool and the global pools (overlapping windows,
ceil_mode, ties)."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from onnx_xai.graph.assemble import vjp_model
from onnx_xai.graph.rules import rule_table

from .harness import Case, build, check, node

X = {"x": (2, 3, 7, 7)}
CASES = [
    Case(
        "maxpool_overlapping",
        [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        X,
    ),
    Case(
        "maxpool_nonoverlapping",
        [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])],
        {"x": (1, 2, 6, 6)},
    ),
    Case(
        "maxpool_ceil",
        [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        {"x": (1, 2, 8, 8)},
    ),
    Case("maxpool_stride1", [node("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], X),
    Case("maxpool_dilated", [node("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])], X),
    Case(
        "maxpool_same_upper",
        [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
        X,
    ),
    Case(
        "avgpool_plain",
        [node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])],
        {"x": (1, 2, 6, 6)},
    ),
    Case(
        "avgpool_pad_include",
        [
            node(
                "AveragePool",
                ["x"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            )
        ],
        X,
    ),
    Case(
        "avgpool_pad_exclude",
        [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        X,
    ),
    Case(
        "avgpool_ceil",
        [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        {"x": (1, 2, 8, 8)},
    ),
    Case("avgpool_stride1", [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], X),
    # Dynamic height and width: divisors and the backward's size come from the input at run time.
    Case(
        "avgpool_pad_exclude_dynamic",
        [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        X,
        dynamic=True,
    ),
    Case(
        "avgpool_pad_include_dynamic",
        [
            node(
                "AveragePool",
                ["x"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            )
        ],
        X,
        dynamic=True,
    ),
    Case(
        "avgpool_ceil_dynamic",
        [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        {"x": (1, 2, 8, 8)},
        dynamic=True,
    ),
    Case(
        "avgpool_same_upper_dynamic",
        [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
        X,
        dynamic=True,
    ),
    Case(
        "maxpool_overlapping_dynamic",
        [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        X,
        dynamic=True,
    ),
    Case("global_average_pool", [node("GlobalAveragePool", ["x"])], X),
    Case("global_max_pool", [node("GlobalMaxPool", ["x"])], X),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)


WINDOWS = rule_table("windows")


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith("maxpool")], ids=lambda c: c.name)
def test_scatter_free_maxpool_rule(case):
    """The alternative MaxPool backward (window masks, no ScatterElements) on the same table."""
    for opset in case.opsets():
        check(case, opset, rules=WINDOWS)


@pytest.mark.parametrize("kernel,stride,pad,ceil", [(3, 2, 1, 0), (2, 2, 0, 0), (3, 2, 0, 1), (3, 1, 1, 0)])
def test_both_maxpool_backwards_break_ties_as_torch(kernel, stride, pad, ceil):
    """With many tied maxima (small integers), both backwards route each window's cotangent to its
    first maximum, as torch's max_pool2d does (float64 autograd)."""
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.integers(0, 3, (2, 3, 9, 9)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.max_pool2d(xt, kernel, stride, pad, ceil_mode=bool(ceil))
    ybar = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(ybar))
    model = build(
        Case(
            "ties",
            [
                node(
                    "MaxPool",
                    ["x"],
                    kernel_shape=[kernel] * 2,
                    strides=[stride] * 2,
                    pads=[pad] * 4,
                    ceil_mode=ceil,
                )
            ],
            {"x": x.shape},
        ),
        17,
        np.float32,
    )
    for rules in (None, WINDOWS):
        session = ort.InferenceSession(
            vjp_model(model, "y", ["x"], rules=rules).SerializeToString(), providers=["CPUExecutionProvider"]
        )
        got = session.run(["xai_grad/x"], {"x": x.astype(np.float32), "xai_seed": ybar.astype(np.float32)})[0]
        np.testing.assert_allclose(got, xt.grad.numpy(), atol=1e-5)
