"""Images in: loading photos with Pillow and turning them into the batch a model expects.

Loading applies the EXIF orientation, converts palette, grayscale, 16-bit and alpha images to 8-bit
RGB (alpha composited on white), and turns every decoding problem into one clear
:class:`~onnx_xai.support.errors.InputError` (Pillow's decompression-bomb limit included, and a caller's
``max_pixels``, read from the header before any pixel is decoded). A photo held in memory can be
decoded for its preprocessing (:func:`decode_for`): a JPEG much larger than the model needs is then
decoded reduced, as libjpeg can. Preprocessing
resizes the shorter side to ``size / crop`` and centre-crops ``size`` (the ImageNet evaluation
convention; ``crop=1`` keeps the whole shorter side), takes the model's channels (1: grayscale luma,
3: RGB, 4: RGBA), scales to [0, 1] and normalizes by a preset (``imagenet``, ``inception`` for [-1,
1], ``raw``) or an explicit mean and std, in the model's layout; models that take integer pixels
(their preprocessing is inside) get the pixel values as they are. :class:`Prepared` remembers where
the crop lies in the photo, so maps and boxes are mapped back to the original photo's pixels.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..support.errors import InputError

PRESETS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "raw": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
FITS = ("crop", "letterbox", "stretch")
PHOTO_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # model channels -> the Pillow mode that gives them
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_ORIENTATION = 0x0112  # the EXIF tag that says how a camera held the photo
_SWAPS = (5, 6, 7, 8)  # the orientations that turn a photo by a quarter: width and height swap


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """An 8-bit RGB Pillow image, upright (EXIF orientation applied), fully decoded; ``max_pixels``:
    an image of more refused from its header, before decoding (None: Pillow's own limit only).

    Raises:
        InputError: missing file, not an image, a truncated/corrupt one, or one over the limit.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(_not_a_photo(path))
    return _decoded(path, str(path), max_pixels)[0]


def decode_image(data: bytes, name: str = "the image", max_pixels: int | None = None) -> Image.Image:
    """:func:`load_image` for an encoded image held in memory (a served request's bytes)."""
    return _decoded(io.BytesIO(data), name, max_pixels)[0]


def decode_for(
    data: bytes,
    settings: dict,
    name: str = "the image",
    max_pixels: int | None = None,
    admit: Callable[[int], None] | None = None,
) -> Prepared:
    """``prepare(decode_image(data, name, max_pixels), **settings)`` (``settings``: :func:`prepare`'s
    arguments), decoding no more than it needs; ``admit`` is called with the pixels to decode right
    before decoding them (a budget may refuse by raising).

    For a fixed-size centre crop (a classifier's input), a JPEG at least twice the size :func:`prepare`
    resizes it to decodes at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, Pillow's ``draft``),
    never below that size: the input differs from a full decode's as resampling does, and a 13000 x
    13000 JPEG for a 224 x 224 input costs 2.6 Mpx, not 169. The :class:`Prepared` holds the reduced
    photo (pictures are drawn at its size) and the photo's own as ``full_size``: boxes, in and out,
    stay in the photo's pixels. Other fits keep the whole photo (a detector's boxes are drawn on it).
    ``max_pixels`` counts what decoding holds: the reduced size, or a progressive JPEG's whole, whose
    coefficients libjpeg keeps at any scale.

    Raises:
        InputError: not an image, a damaged one, or one over ``max_pixels`` (from its header).
    """
    photo, full = _decoded(io.BytesIO(data), name, max_pixels, _reducible(settings), admit)
    prepared = prepare(photo, **settings)
    if full != photo.size:
        prepared.full_size = full
    return prepared


def _decoded(
    source,
    name: str,
    max_pixels: int | None = None,
    least: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
    admit: Callable[[int], None] | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """The image upright in RGB and its upright size as encoded (more than the image's own when
    ``least``, the size needed from the upright size, let a JPEG decode reduced)."""
    try:
        with Image.open(source) as opened:
            full = opened.size
            if least is not None and opened.format == "JPEG":
                _draft(opened, least)
            pixels = _to_decode(opened, full)
            if max_pixels is not None and pixels > max_pixels:
                raise InputError(_too_large(name, full, pixels, max_pixels))
            if admit is not None:
                admit(pixels)
            opened.load()
            turn = opened.getexif().get(_ORIENTATION, 1)  # no turn: no copy
            upright = to_rgb(opened if turn in (0, 1) else ImageOps.exif_transpose(opened))
            return upright, (full[::-1] if turn in _SWAPS else full)
    except UnidentifiedImageError:
        raise InputError(f"{name} is not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{name} is damaged or truncated: {exc}") from None


def _reducible(settings: dict) -> Callable[[tuple[int, int]], tuple[int, int]] | None:
    """For a fixed-size centre crop, the size (W, H) :func:`prepare` resizes a photo of an upright
    size to (:func:`decode_for`); None for any other fit."""
    size, crop = settings.get("size"), settings.get("crop", 0.875)
    if size is None or settings.get("fit", "crop") != "crop":
        return None

    def resized(upright: tuple[int, int]) -> tuple[int, int]:
        width, height, _, _ = _placement(upright, size, crop, "crop")
        return width, height

    return resized


def _draft(jpeg: Image.Image, least: Callable[[tuple[int, int]], tuple[int, int]]) -> None:
    """The JPEG set to decode at 1/2, 1/4 or 1/8 of its size where it still covers ``least`` of its
    upright size (Pillow's draft picks the largest such scale; a turned photo's axes swapped)."""
    swapped = jpeg.getexif().get(_ORIENTATION, 1) in _SWAPS
    need = least(jpeg.size[::-1] if swapped else jpeg.size)
    jpeg.draft(None, need[::-1] if swapped else need)


def _to_decode(opened: Image.Image, full: tuple[int, int]) -> int:
    """The pixels decoding will hold: the (reduced) size, or a progressive JPEG's whole size, whose
    coefficients libjpeg keeps, 2 bytes a sample, at any scale (a 48 Mpx one took 142 MB at 1/8)."""
    width, height = full if opened.info.get("progressive") else opened.size
    return width * height


def _too_large(name: str, full: tuple[int, int], pixels: int, max_pixels: int) -> str:
    reduced = "" if pixels == full[0] * full[1] else f", {_mpx(pixels)} decoded reduced"
    size = f"{full[0]} x {full[1]} pixels ({_mpx(full[0] * full[1])}{reduced})"
    return f"{name} is {size}; at most {_mpx(max_pixels)}"


def _mpx(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} Mpx"


def _not_a_photo(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be a photo (never opened: a FIFO would block,
    a device never end)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return (
            f"no such image file: {path}"
            if isinstance(exc, FileNotFoundError)
            else f"cannot read {path}: {exc.strerror}"
        )
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    kind = next((word for test, word in kinds if test(mode)), "not a regular file")
    return f"{path} is {kind}, not an image file"


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: 16/32-bit grayscale rescaled, alpha composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def normalization(
    preset: str = "imagenet", mean=None, std=None, channels: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std from a preset, or explicit values (which win). A preset's RGB values
    are averaged for a grayscale model (ImageNet: 0.449 and 0.226) and for an alpha channel."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    base = [_for_channels(np.asarray(v, np.float32), channels) for v in PRESETS[preset]]
    mean = np.asarray(mean if mean is not None else base[0], np.float32).reshape(-1)
    std = np.asarray(std if std is not None else base[1], np.float32).reshape(-1)
    if mean.size not in (1, channels) or std.size not in (1, channels) or np.any(std <= 0):
        raise InputError(f"mean and std need 1 or {channels} values, std > 0")
    return mean, std


def _for_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """A preset's RGB values for a model with ``channels`` channels (their mean for gray/alpha)."""
    if channels == 3:
        return rgb
    return np.append(rgb, rgb.mean()) if channels == 4 else np.full(channels, rgb.mean(), np.float32)


@dataclass
class Prepared:
    """One photo made into a model input, with the crop that maps results back to the photo.

    ``crop``, :meth:`region` and :meth:`map_to_photo` are in ``photo``'s pixels, for drawing on it;
    :meth:`box_to_photo` and :meth:`box_to_input` in the photo's as sent: the same unless it was
    decoded reduced (``full_size``, :func:`decode_for`)."""

    array: np.ndarray  # (1, C, H, W) or (1, H, W, C) float32
    photo: Image.Image  # the original, upright RGB photo
    crop: tuple[float, float, float, float]  # the input's footprint in photo pixels (x0, y0, x1, y1)
    size: tuple[int, int]  # the input's (H, W)
    fit: str = "crop"  # how the photo met the input: crop, letterbox or stretch (images.prepare)
    full_size: tuple[int, int] | None = None  # (W, H) as sent, when ``photo`` holds it reduced (decode_for)

    def region(self) -> tuple[int, int, int, int]:
        """The input's footprint rounded to whole photo pixels (x0, y0, x1, y1), half-open."""
        width, height = self.photo.size
        x0, y0, x1, y1 = (int(round(v)) for v in self.crop)
        x0, y0 = max(x0, 0), max(y0, 0)
        return x0, y0, min(max(x1, x0 + 1), width), min(max(y1, y0 + 1), height)

    def map_to_photo(self, single_map: np.ndarray, levels: int | None = None) -> np.ndarray:
        """An ``(H, W)`` map over the input as a float map over the whole photo (zero outside); with
        ``levels``, a map in [0, 1] as uint8 levels 0..levels, resized as such (4x faster)."""
        width, height = self.photo.size
        fx0, fy0, fx1, fy1 = (int(round(v)) for v in self.crop)
        if fx0 >= 0 and fy0 >= 0 and fx1 <= width and fy1 <= height:  # inside the photo (a crop)
            fx0, fy0, fx1, fy1 = self.region()
        fx1, fy1 = max(fx1, fx0 + 1), max(fy1, fy0 + 1)
        if levels is None:
            source = Image.fromarray(single_map.astype(np.float32), mode="F")
        else:
            source = Image.fromarray(np.clip(np.rint(single_map * levels), 0, levels).astype(np.uint8), "L")
        resized = np.asarray(source.resize((fx1 - fx0, fy1 - fy0), Image.BILINEAR))
        canvas = np.zeros((height, width), resized.dtype)
        x0, y0, x1, y1 = max(fx0, 0), max(fy0, 0), min(fx1, width), min(fy1, height)
        canvas[y0:y1, x0:x1] = resized[
            y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0
        ]  # a letterbox's padding cut off
        return canvas

    def box_to_input(self, box) -> tuple[float, float, float, float]:
        """A (x0, y0, x1, y1) box in photo pixels as a box in the input's pixels."""
        x0, y0, x1, y1 = self.crop
        sx, sy = (x1 - x0) / self.size[1], (y1 - y0) / self.size[0]
        fx, fy = self._reduction()
        return (
            (box[0] / fx - x0) / sx,
            (box[1] / fy - y0) / sy,
            (box[2] / fx - x0) / sx,
            (box[3] / fy - y0) / sy,
        )

    def box_to_photo(self, box) -> tuple[int, int, int, int]:
        """A half-open box in input pixels as a half-open box in photo pixels."""
        x0, y0, x1, y1 = self.crop
        sx, sy = (x1 - x0) / self.size[1], (y1 - y0) / self.size[0]
        fx, fy = self._reduction()
        width, height = self.full_size or self.photo.size
        bx0, by0, bx1, by1 = box
        return (
            max(0, int(np.floor((x0 + bx0 * sx) * fx))),
            max(0, int(np.floor((y0 + by0 * sy) * fy))),
            min(width, int(np.ceil((x0 + bx1 * sx) * fx))),
            min(height, int(np.ceil((y0 + by1 * sy) * fy))),
        )

    def _reduction(self) -> tuple[float, float]:
        """The photo's pixels as sent per pixel of ``photo``, across and down (1 unless reduced)."""
        if self.full_size is None:
            return 1.0, 1.0
        return self.full_size[0] / self.photo.size[0], self.full_size[1] / self.photo.size[1]


def natural_size(photo: Image.Image, multiple: int = 32, longest: int = 960) -> tuple[int, int]:
    """(H, W) for a model that takes any size: the photo's own, its longer side at most ``longest``,
    both rounded to a multiple of ``multiple`` (the strides of fully convolutional nets)."""
    scale = min(1.0, longest / max(photo.size))
    width, height = (max(multiple, int(round(d * scale / multiple)) * multiple) for d in photo.size)
    return height, width


def prepare(
    photo: Image.Image,
    size: tuple[int, int] | None,
    layout: str = "NCHW",
    preset: str = "imagenet",
    mean=None,
    std=None,
    crop: float = 0.875,
    channels: int = 3,
    pixels: bool = False,
    fit: str = "crop",
) -> Prepared:
    """Resize the shorter side to ``size / crop``, centre-crop ``size`` (H, W), normalize.

    Args:
        photo: an RGB Pillow image (see :func:`load_image`).
        size: the model's input height and width; None for a model that takes any size: the whole
            photo at :func:`natural_size`, not cropped.
        layout: the model input's layout ("NCHW", "NHWC", any order of those letters).
        preset, mean, std: normalization (see :func:`normalization`).
        crop: fraction of the resized shorter side that the input covers (1 = no margin).
        channels: the model's channels: 1 (grayscale), 3 (RGB) or 4 (RGBA).
        pixels: give the pixel values 0..255 as they are (models with the preprocessing inside).
        fit: for a fixed ``size``, ``"crop"`` (the centre crop above), ``"letterbox"`` (the whole photo
            scaled to fit, centred, the rest filled with the normalization's mean colour, which the
            model sees as 0; 114 grey for raw pixels, as ultralytics pads) or ``"stretch"`` (the whole
            photo resized to ``size``, its aspect ratio lost).
    """
    if fit not in FITS:
        raise InputError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    if not 0 < crop <= 1:
        raise InputError("crop must be in (0, 1]")
    if channels not in PHOTO_MODES:
        raise InputError(
            f"the model takes {channels} channels; photos give 1 (grayscale), 3 (RGB) or 4 (RGBA)"
        )
    height, width = size if size is not None else natural_size(photo)
    resized_w, resized_h, left, top = _placement(
        photo.size, (height, width), crop, fit if size else "stretch"
    )
    m, s = normalization(preset, mean, std, channels)
    fill = np.full(channels, 114.0) if pixels else np.broadcast_to(m * 255.0, (channels,))
    canvas = _placed(photo, channels, (resized_w, resized_h, left, top), (width, height), fill)
    order = [("HWC").index(a) for a in layout.replace("N", "")]
    values = np.asarray(canvas).reshape(height, width, channels).transpose(order)
    array = np.empty(values.shape, np.float32)[None]  # one pass to floats in the layout, one to normalize
    array[0] = values
    if not pixels:  # (v / 255 - m) / s
        shape = [channels if a == "C" else 1 for a in layout.replace("N", "")]
        array[0] -= (m * 255.0).reshape(shape)
        array[0] /= (s * 255.0).reshape(shape)
    sx, sy = photo.size[0] / resized_w, photo.size[1] / resized_h
    footprint = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
    return Prepared(array, photo, footprint, (height, width), fit if size else "stretch")


def _placed(photo: Image.Image, channels: int, placement: tuple, size: tuple[int, int], fill) -> Image.Image:
    """The input's pixels: the photo resized by ``placement`` (:func:`_placement`) seen through the
    ``size`` (W, H) window. A window inside the resized photo (a crop) is resampled directly from
    its footprint in the photo, the same bilinear filter at the same scale without resizing the
    rest (2-3x faster)."""
    resized_w, resized_h, left, top = placement
    width, height = size
    mode = PHOTO_MODES[channels]
    source = photo if photo.mode == mode else photo.convert(mode)
    if left >= 0 and top >= 0 and left + width <= resized_w and top + height <= resized_h:
        sx, sy = photo.size[0] / resized_w, photo.size[1] / resized_h
        window = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
        return source.resize((width, height), Image.BILINEAR, box=window)
    canvas = Image.new(mode, (width, height), tuple(int(round(v)) for v in fill))
    canvas.paste(source.resize((resized_w, resized_h), Image.BILINEAR), (-left, -top))  # a letterbox
    return canvas


def _placement(photo_size: tuple[int, int], size: tuple[int, int], crop: float, fit: str) -> tuple[int, ...]:
    """The photo's resized (width, height) and the input window's (left, top) in it: negative where a
    letterbox pads."""
    (pw, ph), (height, width) = photo_size, size
    if fit == "stretch":
        return width, height, 0, 0
    if fit == "letterbox":
        scale = min(width / pw, height / ph)
        rw, rh = max(1, round(pw * scale)), max(1, round(ph * scale))
        return rw, rh, -((width - rw) // 2), -((height - rh) // 2)
    scale = max(height, width) / crop / min(pw, ph)
    rw, rh = max(width, round(pw * scale)), max(height, round(ph * scale))
    return rw, rh, (rw - width) // 2, (rh - height) // 2


def image_files(paths, exclude: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The files named, with folders expanded to the images they contain (sorted), each with its
    name for outputs: the file name, or its path inside the folder argument it was found in.
    Anything inside ``exclude`` (the output folder) is left out of folders."""
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if not p.is_dir():
            found.append((p, p.name))
            continue
        for f in sorted(p.rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not _inside(f, skip):
                found.append((f, f.relative_to(p).as_posix()))
    if not found:
        raise InputError(
            "no image files given (folders searched for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")"
        )
    return found


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and folder in path.resolve().parents
