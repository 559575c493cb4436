"""Upsampling against torch, normalization, and boxes on synthetic maps with known blobs."""

import numpy as np
import pytest
import torch

from onnx_xai.runtime.maps import box, boxes, normalize, upsample


@pytest.mark.parametrize(
    "src,dst", [((7, 7), (224, 224)), ((3, 5), (17, 9)), ((8, 8), (8, 8)), ((6, 4), (3, 2))]
)
def test_upsample_matches_torch_bilinear(src, dst):
    maps = np.random.default_rng(0).standard_normal((2,) + src).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.tensor(maps)[:, None], size=dst, mode="bilinear", align_corners=False
    )[:, 0].numpy()
    np.testing.assert_allclose(upsample(maps, *dst), expected, rtol=1e-5, atol=1e-6)


def test_normalize_per_sample_and_constant_maps():
    maps = np.stack([np.arange(6.0).reshape(2, 3), np.full((2, 3), 7.0)])
    out = normalize(maps)
    np.testing.assert_allclose(out[0], np.arange(6.0).reshape(2, 3) / 5)
    assert np.all(out[1] == 0) and out.dtype == np.float32


def test_box_of_the_largest_blob_is_exact_and_half_open():
    m = np.zeros((20, 30))
    m[2:5, 3:9] = 1.0  # 18 pixels, the brightest
    m[10:18, 12:25] = 0.5  # 104 pixels, the largest above 20 %
    m[0, 29] = 0.1  # below threshold
    assert box(m) == (12, 10, 25, 18)
    assert box(m, threshold=0.6) == (3, 2, 9, 5)


def test_diagonal_neighbours_are_connected():
    m = np.zeros((6, 6))
    for i in range(4):
        m[1 + i, 1 + i] = 1.0
    assert box(m) == (1, 1, 5, 5)


def test_empty_map_gives_empty_box():
    assert boxes(np.zeros((2, 4, 4))).tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]
