"""The pictures the server sends: the PNG writer read back by Pillow, and the transparent overlay
laid over the photo against the picture drawn on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from onnx_xai.imaging.images import prepare
from onnx_xai.imaging.png import png_bytes
from onnx_xai.imaging.visuals import photo_layer, photo_picture


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    channels=st.sampled_from([3, 4]),
    seed=st.integers(0, 2**31 - 1),
    smooth=st.booleans(),
)
def test_png_bytes_read_back_to_the_same_pixels(height, width, channels, seed, smooth):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    if smooth:  # runs of equal rows and columns: the Up filter's zeros
        pixels = np.repeat(np.repeat(pixels[:1, :1], height, 0), width, 1)
    with Image.open(io.BytesIO(png_bytes(pixels))) as decoded:
        assert decoded.format == "PNG" and decoded.mode == ("RGB", "RGBA")[channels - 3]
        np.testing.assert_array_equal(np.asarray(decoded), pixels)


@settings(max_examples=20, deadline=None)
@given(
    height=st.integers(1, 30), width=st.integers(1, 30), colours=st.integers(1, 256), seed=st.integers(0, 99)
)
def test_palette_pngs_read_back_to_the_same_colours(height, width, colours, seed):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colours, 4), dtype=np.uint8)
    indexes = rng.integers(0, colours, (height, width), dtype=np.uint8)
    with Image.open(io.BytesIO(png_bytes(indexes, palette))) as decoded:
        np.testing.assert_array_equal(np.asarray(decoded.convert("RGBA")), palette[indexes])


def test_png_bytes_refuses_what_png_cannot_hold():
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="3 or 4"):
        png_bytes(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="indexes"):
        png_bytes(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4), np.uint8))


def _photo() -> Image.Image:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (12, 18, 3)).astype(np.uint8)
    return Image.fromarray(base).resize((180, 120), Image.BILINEAR)


@pytest.mark.parametrize("family, signed", [("cam", False), ("gradient", False), ("gradient", True)])
@pytest.mark.parametrize("fit", ["crop", "letterbox"])
def test_the_layer_laid_over_the_photo_is_the_picture(family, signed, fit):
    prepared = prepare(_photo(), (32, 32), fit=fit)
    rng = np.random.default_rng(5)
    single = rng.random((32, 32)).astype(np.float32)
    tint = rng.uniform(-1, 1, (32, 32)).astype(np.float32) if signed else None
    box = prepared.box_to_photo((4, 6, 20, 26))
    picture = np.asarray(photo_picture(prepared, family, single, tint, box), np.float64)
    layer = photo_layer(prepared, family, single, tint, box).convert("RGBA")
    laid = Image.alpha_composite(prepared.photo.convert("RGBA"), layer).convert("RGB")
    difference = np.abs(np.asarray(laid, np.float64) - picture)
    # rounding of the colour and its opacity (1 each); a CAM's map resized as 253 levels: one level
    # off is one step of jet, up to 4 of 255 in its steepest channel, half of it seen at alpha 0.5
    assert difference.max() <= (5.0 if family == "cam" else 3.0), difference.max()
    x0, y0, x1, y1 = prepared.region()
    outside = np.ones(difference.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (np.asarray(layer)[..., 3][outside] == 0).all()  # the photo untouched outside the input


def test_a_crop_samples_the_photo_as_resizing_then_cropping_would():
    photo = _photo().resize((601, 397), Image.BILINEAR)
    prepared = prepare(photo, (224, 224), preset="raw", pixels=True)
    scale = 224 / 0.875 / 397
    width, height = round(601 * scale), max(224, round(397 * scale))
    left, top = (width - 224) // 2, (height - 224) // 2
    reference = photo.resize((width, height), Image.BILINEAR).crop((left, top, left + 224, top + 224))
    difference = np.abs(prepared.array[0].transpose(1, 2, 0) - np.asarray(reference, np.float32))
    assert difference.max() <= 1.0 and (difference > 0).mean() < 0.05  # float scale vs integer size
