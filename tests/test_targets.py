"""The seed helpers on outputs whose right answer can be read off by hand."""

from __future__ import annotations

import numpy as np
import pytest

from onnx_xai.objectives.seeds import (
    DetectionLayout,
    class_seed,
    dense_seed,
    detection_seed,
    iou,
    segmentation_seed,
)
from onnx_xai.support.errors import InputError


def test_class_seed_resolves_the_top_class():
    seed, chosen = class_seed(np.array([[0.1, 3.0, 0.2], [2.0, 0.0, 1.0]]), [-1, 2])
    np.testing.assert_array_equal(seed, [[0, 1, 0], [0, 0, 1]])
    assert [c["class"] for c in chosen] == [1, 2]


def test_segmentation_seed_is_the_class_where_it_wins():
    out = np.zeros((1, 3, 2, 2))
    out[0, 1, 0, :] = 5  # class 1 wins the top row
    seed, chosen = segmentation_seed(out, category=1)
    np.testing.assert_array_equal(seed[0, 1], [[1, 1], [0, 0]])
    assert seed[0, [0, 2]].sum() == 0 and chosen[0]["pixels"] == 2
    boxed, _ = segmentation_seed(out, category=1, box=(1, 0, 2, 2))
    np.testing.assert_array_equal(boxed[0, 1], [[0, 1], [0, 0]])


def yolo_output() -> np.ndarray:
    """Three candidates (anchors last, cx cy w h then 2 class scores)."""
    boxes = np.array([[10, 10, 4, 4], [30, 30, 10, 10], [11, 11, 4, 4]], np.float32)  # cx, cy, w, h
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.6]], np.float32)
    return np.concatenate([boxes, scores], 1).T[None]  # [1, 6, 3]


def test_detection_seed_picks_by_class_box_and_index():
    out = yolo_output()
    seed, chosen = detection_seed(out, category=1)
    assert chosen[0]["candidate"] == 1 and seed[0, 5, 1] == 1 and seed.sum() == 1
    _, near = detection_seed(out, category=1, box=(9, 9, 13, 13))  # only candidates 0 and 2 overlap
    assert near[0]["candidate"] == 2 and near[0]["box"] == [9.0, 9.0, 13.0, 13.0]
    _, by_index = detection_seed(out, candidate=0)
    assert by_index[0]["class"] == 0
    first = DetectionLayout(anchors_last=False)
    seed_first, _ = detection_seed(out.transpose(0, 2, 1), category=1, layout=first)
    np.testing.assert_array_equal(seed_first, seed.transpose(0, 2, 1))
    with pytest.raises(InputError, match="no candidate's box overlaps the region"):
        detection_seed(out, category=0, box=(50, 50, 60, 60))


def test_iou_by_hand():
    np.testing.assert_allclose(
        iou(np.array([0, 0, 2, 2.0]), np.array([[1, 1, 3, 3.0], [0, 0, 2, 2]])), [1 / 7, 1.0]
    )


def test_dense_seed_takes_the_largest_region_or_a_box():
    out = np.zeros((1, 1, 6, 6))
    out[0, 0, 0:2, 0:2] = 0.9  # 4 pixels
    out[0, 0, 3:6, 2:5] = 0.8  # 9 pixels: the largest
    seed, chosen = dense_seed(out)
    assert seed.sum() == 9 and chosen[0]["box"] == [2, 3, 5, 6]
    boxed, _ = dense_seed(out, box=(0, 0, 2, 2))
    assert boxed.sum() == 4
    with pytest.raises(InputError, match="no region"):
        dense_seed(out, threshold=0.95)
