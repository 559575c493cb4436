"""The image pipeline: EXIF rotation, odd modes, layouts, normalization and mapping back to photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from onnx_xai.imaging.images import load_image, prepare
from onnx_xai.support.errors import InputError


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    top, bottom = np.asarray(loaded)[5, 10], np.asarray(loaded)[35, 10]
    assert top[0] > 200 and top[1] < 60 and bottom[0] < 60  # the stored left half is now on top


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA"])
def test_modes_become_8bit_rgb(tmp_path, mode):
    if mode == "I;16":
        image = Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16))
    elif mode == "P":
        image = Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode == "RGBA":
        image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    elif mode == "LA":
        image = Image.new("LA", (8, 8), (0, 255))
    else:
        image = Image.new("L", (8, 8), 77)
    path = tmp_path / f"im_{mode.replace(';', '')}.png"
    image.save(path)
    loaded = np.asarray(load_image(path))
    assert loaded.shape == (8, 8, 3) and loaded.dtype == np.uint8
    expected = {
        "L": (77, 77, 77),
        "RGBA": (255, 255, 255),
        "P": (10, 200, 30),
        "I;16": (128, 128, 128),
        "LA": (0, 0, 0),
    }[mode]
    np.testing.assert_allclose(loaded[0, 0], expected, atol=1)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="no such image"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "text.jpg")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged or truncated"):
        load_image(tmp_path / "cut.png")


def test_normalization_and_layouts():
    photo = Image.new("RGB", (30, 30), (128, 64, 255))
    nchw = prepare(photo, (16, 16), "NCHW", "imagenet").array
    nhwc = prepare(photo, (16, 16), "NHWC", "inception").array
    raw = prepare(photo, (16, 16), "NCHW", "raw").array
    assert nchw.shape == (1, 3, 16, 16) and nhwc.shape == (1, 16, 16, 3)
    rgb = np.array([128, 64, 255]) / 255.0
    np.testing.assert_allclose(
        nchw[0, :, 3, 3], (rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225], atol=1e-5
    )
    np.testing.assert_allclose(nhwc[0, 3, 3], rgb * 2 - 1, atol=1e-5)
    np.testing.assert_allclose(raw[0, :, 0, 0], rgb, atol=1e-6)
    explicit = prepare(photo, (16, 16), mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]).array
    np.testing.assert_allclose(explicit[0, :, 0, 0], (rgb - 0.5) / 0.25, atol=1e-5)


def test_maps_and_boxes_go_back_to_photo_pixels_on_a_non_square_photo():
    photo = Image.new("RGB", (400, 200))
    p = prepare(photo, (100, 100), crop=1.0)  # shorter side 200 -> 100: scale 1/2, crop x 50..150
    assert p.crop == pytest.approx((100.0, 0.0, 300.0, 200.0))
    assert p.box_to_photo((10, 20, 30, 40)) == (120, 40, 160, 80)
    assert p.box_to_photo((0, 0, 100, 100)) == (100, 0, 300, 200)
    single = np.zeros((100, 100), np.float32)
    single[20:40, 10:30] = 1.0
    full = p.map_to_photo(single)
    assert full.shape == (200, 400)
    assert full[:, :100].max() == 0 and full[:, 300:].max() == 0
    assert full[60, 140] == pytest.approx(1.0) and full[150, 250] == 0
