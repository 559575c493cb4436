"""Features, one abstraction over kinds of input: a photo's superpixels removed to a baseline and a
table's columns removed to each background row, as copies of the point and back to its shape;
checked element by element against the definitions written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from onnx_xai.runtime.features import Columns, Superpixels, table_columns
from onnx_xai.support.errors import InputError

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("layout", ["CHW", "HWC"])
def test_superpixels_remove_to_the_baseline_and_spread_over_channels(layout):
    mask = RNG.integers(0, 5, size=(4, 6))
    mask[0, 0] = 4  # every feature present
    chw = RNG.normal(size=(3, 4, 6)).astype(np.float32)
    sample = chw if layout == "CHW" else np.moveaxis(chw, 0, -1)
    features = Superpixels(sample, mask, layout.index("C"), baseline=-0.5)
    z = RNG.integers(0, 2, size=(7, features.count))
    copies, others = features.copies(z)
    assert features.count == 5 and features.draws == 1 and others == {} and features.labels() is None
    for k in range(len(z)):
        for c in range(3):
            for h in range(4):
                for w in range(6):
                    kept = z[k, mask[h, w]]
                    got = copies[k, c, h, w] if layout == "CHW" else copies[k, h, w, c]
                    assert got == (chw[c, h, w] if kept else -0.5)
    values = RNG.normal(size=5)
    spread = features.spread(values)
    assert spread.shape == sample.shape
    per_pixel = spread[0] if layout == "CHW" else spread[..., 0]
    np.testing.assert_array_equal(per_pixel, values[mask].astype(np.float32))


def test_columns_remove_to_each_background_row_over_several_inputs():
    x, ages = RNG.normal(size=(3, 2)).astype(np.float32), RNG.normal(size=(3, 1))
    background = {"X": RNG.normal(size=(4, 2)), "age": RNG.normal(size=(4, 1))}
    columns = table_columns(x, 1, background, {"age": ages}, "X", "kernel_shap")
    assert (columns.count, columns.draws, columns.labels()) == (3, 4, ["X[0]", "X[1]", "age"])
    z = np.array([[1, 0, 1], [0, 1, 0]])
    first, others = columns.copies(z)
    assert first.shape == (8, 2) and others["age"].shape == (8, 1)
    for k in range(2):
        for m in range(4):
            row = k * 4 + m
            want = [
                x[1, 0] if z[k, 0] else background["X"][m, 0],
                x[1, 1] if z[k, 1] else background["X"][m, 1],
            ]
            np.testing.assert_array_equal(first[row], np.float32(want))
            assert others["age"][row, 0] == (ages[1, 0] if z[k, 2] else background["age"][m, 0])
    only, _ = columns.background()
    np.testing.assert_array_equal(only, background["X"].astype(np.float32))


@pytest.mark.parametrize(
    "background,message",
    [
        (None, "needs background="),
        (np.zeros((4, 3)), r"want \[rows, 2\]"),
        (np.full((2, 2), np.inf), "not finite"),
        ({"age": np.zeros((4, 1))}, "no rows for 'X'"),
    ],
)
def test_a_bad_background_is_refused_in_one_line(background, message):
    with pytest.raises(InputError, match=message):
        table_columns(np.zeros((2, 2), np.float32), 0, background, {}, "X", "kernel_shap")


def test_a_single_column_block_is_named_by_its_input():
    columns = Columns(["a", "b"], [np.zeros(1), np.zeros(2)], [np.zeros((3, 1)), np.zeros((3, 2))])
    assert columns.labels() == ["a", "b[0]", "b[1]"]
