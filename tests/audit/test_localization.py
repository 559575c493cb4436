"""The pointing game, box IoU and the boxes file, against hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnx_xai.audit.localization import box_iou, boxes_for, pointing_hit, read_boxes
from onnx_xai.support.errors import InputError


def peak_at(y: int, x: int, shape=(40, 40)) -> np.ndarray:
    m = np.zeros(shape)
    m[y, x] = 1.0
    return m


def test_pointing_game_with_tolerance():
    box = np.array([[10, 10, 20, 20]], float)
    assert pointing_hit(peak_at(15, 15), box, tolerance=0)
    assert not pointing_hit(peak_at(25, 15), box, tolerance=0)  # centre 15.5, 25.5: outside
    assert pointing_hit(peak_at(25, 15), box, tolerance=6)  # 25.5 <= 20 + 6
    assert not pointing_hit(peak_at(27, 15), box, tolerance=6)  # 27.5 > 26
    assert pointing_hit(peak_at(2, 2), np.array([[30, 30, 35, 35], [0, 0, 3, 3]], float), tolerance=0)


def test_box_iou_by_hand():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], float)
    # with the second: intersection 5 x 5 = 25, union 100 + 100 - 25
    assert box_iou((10, 10, 20, 20), boxes) == pytest.approx(25 / 175)
    assert box_iou((0, 0, 10, 10), boxes) == pytest.approx(1.0)
    assert box_iou((50, 50, 60, 60), boxes) == 0.0 and box_iou((0, 0, 1, 1), np.zeros((0, 4))) == 0.0


def test_boxes_from_json_and_csv(tmp_path):
    j = tmp_path / "b.json"
    j.write_text('{"cat.jpg": [[1, 2, 30, 40]], "sub/dog.png": [[0, 0, 5, 5], [6, 6, 9, 9]]}')
    c = tmp_path / "b.csv"
    c.write_text("file,x0,y0,x1,y1\ncat.jpg,1,2,30,40\nsub/dog.png,0,0,5,5\nsub/dog.png,6,6,9,9\n")
    for path in (j, c):
        boxes = read_boxes(path)
        assert np.array_equal(boxes["cat.jpg"], [[1, 2, 30, 40]])
        assert boxes["sub/dog.png"].shape == (2, 4)
        assert boxes_for(boxes, Path("/photos/sub/dog.png"), "sub/dog.png").shape == (2, 4)
        assert boxes_for(boxes, Path("/elsewhere/cat.jpg"), "x/cat.jpg") is not None
        assert boxes_for(boxes, Path("/elsewhere/cow.jpg"), "cow.jpg") is None


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"a.jpg": [[1, 2, 3]]}', "four numbers"),
        ('{"a.jpg": [[5, 0, 1, 4]]}', "x0 < x1"),
        ('{"a.jpg": 3}', "expected"),
        ('{"a.jpg": [[0, 0, 1, ', "not valid JSON"),
        ("file,x,y\na.jpg,1,2\n", "header"),
        ("file,x0,y0,x1,y1\na.jpg,1,2,nan,4\n", "four numbers"),
    ],
)
def test_bad_boxes_files_are_one_line(tmp_path, text, words):
    path = tmp_path / "boxes.txt"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        read_boxes(path)
    assert words in str(e.value) and "\n" not in str(e.value)
