"""Table of cases for data-movement ops and Resize."""

import numpy as np
import pytest

from .harness import Case, check, node

R = np.random.default_rng(5)
I64 = np.int64
CASES = [
    Case("flatten", [node("Flatten", ["x"], axis=1)], {"x": (2, 3, 2, 2)}),
    Case("reshape", [node("Reshape", ["x", "s"])], {"x": (2, 3, 4)}, {"s": np.array([0, -1, 2], I64)}),
    Case("squeeze", [node("Squeeze", ["x"], axes=[2, 3])], {"x": (2, 3, 1, 1)}),
    Case("unsqueeze", [node("Unsqueeze", ["x"], axes=[0, 3])], {"x": (2, 3)}),
    Case("transpose", [node("Transpose", ["x"], perm=[0, 2, 3, 1])], {"x": (2, 3, 4, 5)}),
    Case("transpose_default", [node("Transpose", ["x"])], {"x": (2, 3, 4)}),
    Case(
        "top_k", [node("TopK", ["x", "k"], ["y", "i"], axis=1)], {"x": (2, 7, 3)}, {"k": np.array([3], I64)}
    ),
    Case(
        "top_k_smallest_last_axis",
        [node("TopK", ["x", "k"], ["v", "i"], largest=0), node("Mul", ["v", "v"])],
        {"x": (2, 3, 6)},
        {"k": np.array([2], I64)},
    ),
    Case(
        "concat",
        [node("Concat", ["a", "b", "c"], axis=1)],
        {"a": (2, 1, 3), "b": (2, 4, 3)},
        {"c": R.normal(size=(2, 2, 3))},
    ),
    Case("concat_negative_axis", [node("Concat", ["a", "a"], axis=-1)], {"a": (2, 3)}),
    Case(
        "split_attr",
        [
            node("Split", ["x"], ["p", "q"], axis=1, split=[1, 3]),
            node("Mul", ["p", "two"], "p2"),
            node("Concat", ["q", "p2"], axis=1),
        ],
        {"x": (2, 4, 3)},
        {"two": np.array(2.0)},
        max_opset=12,
    ),
    Case(
        "split_one_output_used",
        [node("Split", ["x"], ["p", "q", "r"], axis=2), node("Mul", ["q", "q"])],
        {"x": (2, 2, 6)},
        max_opset=17,
    ),
    Case(
        "split_num_outputs",
        [node("Split", ["x"], ["p", "q"], axis=1, num_outputs=2), node("Sub", ["p", "q"])],
        {"x": (2, 4, 3)},
        min_opset=18,
    ),
    Case(
        "slice_step1",
        [node("Slice", ["x", "st", "en", "ax"])],
        {"x": (2, 5, 6)},
        {"st": np.array([1, -4], I64), "en": np.array([4, 100], I64), "ax": np.array([1, 2], I64)},
    ),
    Case(
        "slice_negative_steps",
        [node("Slice", ["x", "st", "en", "ax", "sp"])],
        {"x": (2, 5, 6)},
        {
            "st": np.array([-1, 0], I64),
            "en": np.array([-6, 6], I64),
            "ax": np.array([1, 2], I64),
            "sp": np.array([-2, 2], I64),
        },
    ),
    Case(
        "gather_repeated",
        [node("Gather", ["x", "i"], axis=1)],
        {"x": (2, 4, 3)},
        {"i": np.array([[0, 3], [-1, 0]], I64)},
        min_opset=16,
    ),
    Case(
        "gather_unique_old_opset",
        [node("Gather", ["x", "i"], axis=0)],
        {"x": (4, 3)},
        {"i": np.array([2, 0], I64)},
        max_opset=15,
    ),
    Case(
        "gather_elements",
        [node("GatherElements", ["x", "i"], axis=1)],
        {"x": (2, 3)},
        {"i": np.array([[0, 0, 2], [1, 2, 1]], I64)},
        min_opset=16,
    ),
    # RT-DETR's query selection: the TopK of each token's best score (its values unused) picks rows
    # of the flattened batch through indices computed in the graph (n * tokens + index).
    Case(
        "gather_rows_chosen_by_top_k_indices",
        [
            node("ReduceMax", ["x"], "best", axes=[2], keepdims=0),
            node("TopK", ["best", "k"], ["unused", "chosen"], axis=1),
            node("Shape", ["x"], "shape"),
            node("Gather", ["shape", "zero"], "n", axis=0),
            node("Gather", ["shape", "one"], "tokens", axis=0),
            node("Range", ["zero", "n", "one"], "batch"),
            node("Unsqueeze", ["batch"], "column", axes=[1]),
            node("Mul", ["column", "tokens"], "offsets"),
            node("Add", ["chosen", "offsets"], "flat"),
            node("Reshape", ["flat", "all"], "rows"),
            node("Reshape", ["x", "table"], "x2"),
            node("Gather", ["x2", "rows"], "picked", axis=0),
            node("Mul", ["picked", "picked"]),
        ],
        {"x": (2, 6, 3)},
        {
            "k": np.array([3], I64),
            "zero": np.array(0, I64),
            "one": np.array(1, I64),
            "all": np.array([-1], I64),
            "table": np.array([-1, 3], I64),
        },
        min_opset=16,
    ),
    # the deformable attention's value split by the levels' sizes, computed from tensors' sizes
    Case(
        "split_computed_sizes",
        [
            node("Size", ["level0"], "s0"),
            node("Size", ["level1"], "s1"),
            node("Reshape", ["s0", "all"], "r0"),
            node("Reshape", ["s1", "all"], "r1"),
            node("Concat", ["r0", "r1"], "sizes", axis=0),
            node("Split", ["x", "sizes"], ["p", "q"], axis=2),
            node("Mul", ["p", "p"], "p2"),
            node("Concat", ["q", "p2"], axis=2),
        ],
        {"x": (2, 3, 10)},
        {"level0": np.zeros((2, 3)), "level1": np.zeros(4), "all": np.array([-1], I64)},
        min_opset=13,
    ),
    Case("expand", [node("Expand", ["x", "s"])], {"x": (3, 1)}, {"s": np.array([2, 3, 4], I64)}),
    Case("tile", [node("Tile", ["x", "r"])], {"x": (2, 3)}, {"r": np.array([2, 3], I64)}),
    Case(
        "pad_constant",
        [node("Pad", ["x", "p"])],
        {"x": (1, 2, 3, 3)},
        {"p": np.array([0, 0, 1, 2, 0, 1, 2, 0], I64)},
    ),
    Case(
        "pad_negative",
        [node("Pad", ["x", "p", "v"])],
        {"x": (1, 2, 4, 4)},
        {"p": np.array([0, 0, -1, 2, 0, 0, 1, -2], I64), "v": np.array(0.5)},
    ),
    Case(
        "pad_axes",
        [node("Pad", ["x", "p", "", "ax"])],
        {"x": (1, 2, 3, 3)},
        {"p": np.array([1, 2, 0, 1], I64), "ax": np.array([2, 3], I64)},
        min_opset=18,
    ),
    Case("depth_to_space_dcr", [node("DepthToSpace", ["x"], blocksize=2)], {"x": (1, 8, 2, 3)}),
    Case("depth_to_space_crd", [node("DepthToSpace", ["x"], blocksize=2, mode="CRD")], {"x": (2, 8, 2, 3)}),
    Case("space_to_depth", [node("SpaceToDepth", ["x"], blocksize=2)], {"x": (1, 2, 4, 6)}),
    Case(
        "resize_nearest_scales",
        [node("Resize", ["x", "", "sc"], mode="nearest")],
        {"x": (1, 2, 3, 4)},
        {"sc": np.array([1, 1, 2, 2], np.float32)},
        min_opset=13,
    ),
    Case(
        "resize_linear_half_pixel",
        [node("Resize", ["x", "", "sc"], mode="linear")],
        {"x": (1, 2, 3, 4)},
        {"sc": np.array([1, 1, 2.5, 1.5], np.float32)},
        min_opset=13,
    ),
    Case(
        "resize_linear_align_corners_sizes",
        [node("Resize", ["x", "", "", "sz"], mode="linear", coordinate_transformation_mode="align_corners")],
        {"x": (1, 2, 3, 4)},
        {"sz": np.array([1, 2, 7, 5], I64)},
        min_opset=13,
    ),
    Case(
        "resize_downsample_asymmetric",
        [node("Resize", ["x", "roi", "sc"], mode="nearest", coordinate_transformation_mode="asymmetric")],
        {"x": (1, 1, 6, 6)},
        {"roi": np.zeros(0, np.float32), "sc": np.array([1, 1, 0.5, 0.5], np.float32)},
    ),
    # Dynamic height and width: the interpolation matrices are the runtime's resize of an identity.
    Case(
        "resize_nearest_scales_dynamic",
        [node("Resize", ["x", "", "sc"], mode="nearest")],
        {"x": (1, 2, 3, 4)},
        {"sc": np.array([1, 1, 2, 2], np.float32)},
        min_opset=13,
        dynamic=True,
    ),
    Case(
        "resize_linear_half_pixel_dynamic",
        [node("Resize", ["x", "", "sc"], mode="linear")],
        {"x": (2, 2, 3, 4)},
        {"sc": np.array([1, 1, 2.5, 1.5], np.float32)},
        min_opset=13,
        dynamic=True,
    ),
    Case(
        "resize_cubic_sizes_dynamic",
        [node("Resize", ["x", "", "", "sz"], mode="cubic", coordinate_transformation_mode="align_corners")],
        {"x": (1, 2, 3, 4)},
        {"sz": np.array([1, 2, 7, 5], I64)},
        min_opset=13,
        dynamic=True,
    ),
    Case(
        "resize_downsample_asymmetric_dynamic",
        [node("Resize", ["x", "roi", "sc"], mode="nearest", coordinate_transformation_mode="asymmetric")],
        {"x": (1, 1, 6, 6)},
        {"roi": np.zeros(0, np.float32), "sc": np.array([1, 1, 0.5, 0.5], np.float32)},
        dynamic=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case):
    for opset in case.opsets():
        check(case, opset)
