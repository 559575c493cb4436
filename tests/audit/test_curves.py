"""Deletion, insertion and ROAD against hand computations on a model written in numpy.

The "model" scores the mean of a 2 x 2 corner of a 1-channel 4 x 4 image: a map that ranks those
four pixels first must beat its reversal on every metric, and a random map lands in between.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnx_xai.audit.curves import Protocol, Scorer, _area, deletion, insertion, ranking, road
from onnx_xai.audit.imputation import NEIGHBOURS, linear_impute

CORNER = (slice(0, 2), slice(0, 2))


def corner_model(batch: np.ndarray) -> np.ndarray:
    """Probabilities [p, 1 - p] with p = the mean of the top-left 2 x 2 corner (values in [0, 1])."""
    p = batch[:, 0][:, CORNER[0], CORNER[1]].mean(axis=(1, 2))
    return np.stack([p, 1 - p], axis=1)


IMAGE = np.ones((1, 4, 4))
GOOD = np.zeros((4, 4))
GOOD[CORNER] = 1.0
GOOD += np.arange(16).reshape(4, 4) * 1e-3  # a strict order: no ties
SCORE = Scorer(corner_model, probabilities=True, batch_size=3)


def test_deletion_curve_by_hand():
    # 4 steps of 4 pixels: the corner goes in the first step, so p = 1, 0, 0, 0, 0
    auc, curve = deletion(SCORE, IMAGE, GOOD, 0, Protocol(steps=4))
    assert np.allclose(curve, [1, 0, 0, 0, 0])
    assert auc == pytest.approx((0.5 * (1 + 0)) / 4)


def test_insertion_curve_by_hand():
    # constant start 0: the corner comes back first
    auc, curve = insertion(SCORE, IMAGE, GOOD, 0, Protocol(steps=4, insertion_start="constant"))
    assert np.allclose(curve, [0, 1, 1, 1, 1])
    assert auc == pytest.approx(0.875)
    # reversed map: the corner (the 4 highest values reversed are last) returns in the last step
    auc_rev, curve_rev = insertion(SCORE, IMAGE, -GOOD, 0, Protocol(steps=4, insertion_start="constant"))
    assert np.allclose(curve_rev, [0, 0, 0, 0, 1]) and auc_rev == pytest.approx(0.125)


def test_relevant_first_beats_reversal_and_random_lands_between():
    protocol = Protocol(steps=16)
    good = deletion(SCORE, IMAGE, GOOD, 0, protocol)[0]
    bad = deletion(SCORE, IMAGE, -GOOD, 0, protocol)[0]
    randoms = [
        deletion(SCORE, IMAGE, np.random.default_rng(s).random((4, 4)), 0, protocol)[0] for s in range(20)
    ]
    assert good < np.mean(randoms) < bad
    good_in = insertion(SCORE, IMAGE, GOOD, 0, Protocol(steps=16, insertion_start="constant"))[0]
    bad_in = insertion(SCORE, IMAGE, -GOOD, 0, Protocol(steps=16, insertion_start="constant"))[0]
    assert good_in > bad_in


def test_area_is_the_trapezoid_rule():
    assert _area(np.array([0.0, 1.0, 0.5])) == pytest.approx((0.5 * (0 + 1) + 0.5 * (1 + 0.5)) / 2)


def test_constant_map_ranks_in_a_seeded_random_order():
    a, b = ranking(np.zeros((8, 8)), 0), ranking(np.zeros((8, 8)), 0)
    assert np.array_equal(a, b) and sorted(a) == list(range(64))
    assert not np.array_equal(a, np.arange(64))  # not raster order
    assert not np.array_equal(a, ranking(np.zeros((8, 8)), 1))


def test_softmax_scorer_and_integer_inputs():
    logits = np.array([[1.0, 2.0, 0.5]])
    scorer = Scorer(lambda b: logits, probabilities=False)
    expected = np.exp(2.0) / np.exp(logits).sum()
    assert scorer(np.zeros((1, 1, 2, 2)), 1)[0] == pytest.approx(expected)
    pixels = Scorer(lambda b: b.reshape(len(b), -1).astype(np.float64), probabilities=True, dtype=np.uint8)
    assert np.array_equal(pixels.cast(np.array([[-3.0, 2.6, 300.0]])), np.array([[0, 3, 255]], np.uint8))


def test_linear_imputation_solves_the_neighbour_equations():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 9, 11))
    removed = rng.random((9, 11)) < 0.4
    removed[0, 0] = removed[4, 5] = True  # a corner (renormalized weights) and an inner pixel
    out = linear_impute(image, removed, noise=0.0)
    assert np.array_equal(out[:, ~removed], image[:, ~removed])
    for y, x in zip(*np.nonzero(removed)):
        weights = [(w, y + dy, x + dx) for dy, dx, w in NEIGHBOURS if 0 <= y + dy < 9 and 0 <= x + dx < 11]
        expected = sum(w * out[:, yy, xx] for w, yy, xx in weights) / sum(w for w, _, _ in weights)
        assert np.allclose(out[:, y, x], expected, atol=1e-10)


def test_imputation_noise_is_seeded_and_only_on_removed_pixels():
    image = np.zeros((1, 6, 6))
    removed = np.zeros((6, 6), bool)
    removed[2:4, 2:4] = True
    out = linear_impute(image, removed, 0.01, np.random.default_rng(3))
    assert np.count_nonzero(out) == 4 and 0.001 < np.abs(out).max() < 0.05


def test_road_prefers_the_relevant_map():
    # a smooth image so imputation can "restore" nothing of the corner's value but the neighbours'
    image = np.zeros((1, 4, 4))
    image[0][CORNER] = 1.0
    protocol = Protocol(road_fractions=(0.25, 0.5), road_noise=0.0)
    good = road(SCORE, image, GOOD, 0, protocol)
    bad = road(SCORE, image, -GOOD, 0, protocol)
    assert good["road_morf"] < bad["road_morf"] and good["road_lerf"] >= bad["road_lerf"]
    assert good["road"] == pytest.approx(good["road_lerf"] - good["road_morf"])
    assert good["road_lerf"] == pytest.approx(1.0)  # the least relevant 25 % / 50 % never touch the corner


def test_layouts_give_the_same_curve():
    rng = np.random.default_rng(1)
    image = rng.random((3, 5, 6))
    saliency = rng.random((5, 6))

    def model(layout):
        def predict(batch):
            chw = batch if layout == "NCHW" else np.transpose(batch, (0, 3, 1, 2))
            p = chw[:, 1, :2, :3].mean(axis=(1, 2))
            return np.stack([p, 1 - p], 1)

        return Scorer(predict, True)

    nchw = deletion(model("NCHW"), image, saliency, 0, Protocol(steps=6), "NCHW")[1]
    nhwc = deletion(model("NHWC"), np.transpose(image, (1, 2, 0)), saliency, 0, Protocol(steps=6), "NHWC")[1]
    assert np.allclose(nchw, nhwc)
