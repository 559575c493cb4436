"""Pictures out: colormap LUTs, heatmap overlays with boxes, and a side-by-side sheet of methods.

The colormaps are 256-entry lookup tables interpolated from a few anchor colours (viridis and
inferno from matplotlib's published anchors, coolwarm (diverging, for signed attributions) from
Moreland's, jet from its piecewise-linear definition), so there is no matplotlib dependency.
CAM-family maps are blended over the photo as heatmaps; gradient-family maps, which are speckled
pixel by pixel, light the photo where they are important and dim it elsewhere (a spotlight, as
PAIR's grayscale masks), signed ones tinted red (positive) and blue (negative). Everything is drawn
with Pillow.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_ANCHORS = {
    "viridis": [
        "#440154",
        "#482878",
        "#3e4a89",
        "#31688e",
        "#26828e",
        "#1f9e89",
        "#35b779",
        "#6dcd59",
        "#b4de2c",
        "#fde725",
    ],
    "inferno": [
        "#000004",
        "#1b0c41",
        "#4a0c6b",
        "#781c6d",
        "#a52c60",
        "#cf4446",
        "#ed6925",
        "#fb9b06",
        "#f7d13d",
        "#fcffa4",
    ],
    "coolwarm": ["#3b4cc0", "#6788ee", "#9abbff", "#c9d7f0", "#edd1c2", "#f7a889", "#e26952", "#b40426"],
}
COLORMAPS = ("jet", "viridis", "inferno")  # the CLI's choices; "coolwarm" draws signed maps


def colormap(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table."""
    t = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        rgb = np.stack([np.clip(1.5 - np.abs(4 * t - c), 0, 1) for c in (3, 2, 1)], axis=1)
    elif name in _ANCHORS:
        anchors = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in _ANCHORS[name]]) / 255.0
        positions = np.linspace(0.0, 1.0, len(anchors))
        rgb = np.stack([np.interp(t, positions, anchors[:, c]) for c in range(3)], axis=1)
    else:
        raise ValueError(f"unknown colormap {name!r}; choose from {', '.join(COLORMAPS + ('coolwarm',))}")
    return np.round(rgb * 255).astype(np.uint8)


def heatmap(values: np.ndarray, cmap: str = "jet") -> Image.Image:
    """An RGB picture of a map with values in [0, 1] (Pillow applies the colormap as a palette:
    6x faster than indexing the table in numpy on a 640 x 480 photo)."""
    picture = Image.fromarray(np.clip(np.rint(values * 255), 0, 255).astype(np.uint8), "L")
    picture.putpalette(_palette(cmap))
    return picture.convert("RGB")


@functools.lru_cache(maxsize=8)
def _palette(cmap: str) -> bytes:
    return colormap(cmap).tobytes()


def overlay(
    photo: Image.Image,
    values: np.ndarray,
    cmap: str = "jet",
    alpha: float = 0.5,
    box: tuple[int, int, int, int] | None = None,
    region: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    """The photo with the map (same size as the photo, values in [0, 1]) blended over it, only inside
    ``region`` (x0, y0, x1, y1) when given (the part of the photo the model saw), and the box drawn."""
    photo = photo.convert("RGB")
    return _framed(photo, Image.blend(photo, heatmap(values, cmap), alpha), box, region)


def spotlight(
    photo: Image.Image,
    values: np.ndarray,
    signed: np.ndarray | None = None,
    box: tuple[int, int, int, int] | None = None,
    region: tuple[int, int, int, int] | None = None,
) -> Image.Image:
    """The photo lit where ``values`` (importance in [0, 1]) is high, dimmed to 20 % where it is
    zero (the top third of the importance fully lit); ``signed`` maps in [-1, 1] tint it red and
    blue; inside ``region``, with the box drawn, as :func:`overlay`."""
    photo = photo.convert("RGB")
    kept, added = _spotlight_terms(values, signed)
    mixed = np.asarray(photo, np.float32) * kept[..., None] + added
    lit = Image.fromarray(np.clip(np.round(mixed), 0, 255).astype(np.uint8))
    return _framed(photo, lit, box, region)


def _spotlight_terms(values: np.ndarray, signed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The spotlight as ``photo * kept + added``: the share of the photo kept per pixel (20 % to all
    of it, less where a signed map tints) and the tint's colour added."""
    kept = 0.2 + 0.8 * np.clip(values * 1.5, 0, 1)
    if signed is None:
        return kept, np.zeros((*values.shape, 3), np.float32)
    tint = np.clip(np.abs(signed) * 1.5, 0, 1) * 0.6
    added = np.asarray(heatmap((signed + 1) / 2, "coolwarm"), np.float32) * tint[..., None]
    return kept * (1 - tint), added


def _framed(photo: Image.Image, blended: Image.Image, box, region) -> Image.Image:
    """``blended`` inside ``region`` of the photo (all of it without one), the box drawn in white."""
    if region is not None:
        framed = photo.copy()
        framed.paste(blended.crop(region), region[:2])
        blended = framed
    return outline(blended, box, (255, 255, 255))


def outline(
    picture: Image.Image, box: tuple[int, int, int, int] | None, colour: tuple[int, int, int] = (0, 230, 64)
) -> Image.Image:
    """The picture with a half-open (x0, y0, x1, y1) box drawn on it in place (nothing without one)."""
    if box is not None and box[2] > box[0] and box[3] > box[1]:
        width = max(2, round(min(picture.size) / 150))
        ImageDraw.Draw(picture).rectangle(
            [box[0], box[1], box[2] - 1, box[3] - 1], outline=colour, width=width
        )
    return picture


def photo_picture(
    prepared,
    family: str,
    single_map: np.ndarray,
    signed: np.ndarray | None,
    box,
    cmap: str = "jet",
    alpha: float = 0.5,
) -> Image.Image:
    """The whole photo of a :class:`~onnx_xai.imaging.images.Prepared` input with one method's map over the
    part the input covers: a heatmap for the CAM family, a spotlight (signed maps tinted) for the
    gradient family; ``box`` in photo pixels, or None."""
    if family == "cam":
        return overlay(prepared.photo, prepared.map_to_photo(single_map), cmap, alpha, box, prepared.region())
    tint = prepared.map_to_photo(signed) if signed is not None else None
    return spotlight(prepared.photo, prepared.map_to_photo(single_map), tint, box, prepared.region())


def photo_layer(
    prepared,
    family: str,
    single_map: np.ndarray,
    signed: np.ndarray | None,
    box,
    cmap: str = "jet",
    alpha: float = 0.5,
) -> Image.Image:
    """What :func:`photo_picture` draws over the photo, as a transparent picture of the photo's size
    (RGBA; a palette for the CAM family, 253 heat levels, clear, and the two box colours, and for an
    unsigned spotlight, black at each opacity and the two box colours): laid
    over the photo (alpha compositing, as a browser stacks two images) it gives the picture, to
    within rounding. The boxes are drawn opaque."""
    x0, y0, x1, y1 = region = prepared.region()
    if family == "cam":  # a palette picture: a quarter of the bytes of RGBA to encode
        heat = prepared.map_to_photo(single_map, levels=_HEAT_LEVELS - 1)
        levels = np.full(heat.shape, _CLEAR, np.uint8)
        levels[y0:y1, x0:x1] = heat[y0:y1, x0:x1]
        layer = Image.fromarray(levels, "P")
        layer.putpalette(_layer_palette(cmap, alpha), rawmode="RGBA")
        return outline(layer, box, (255, 255, 255))
    values = prepared.map_to_photo(single_map)
    if signed is None:  # black at the spotlight's opacity: a palette of opacities, a quarter of the bytes
        dim = np.zeros(values.shape, np.uint8)
        dim[y0:y1, x0:x1] = np.rint((1.0 - _spotlight_terms(values[y0:y1, x0:x1], None)[0]) * 255)
        layer = Image.fromarray(dim, "P")
        layer.putpalette(_dim_palette(), rawmode="RGBA")
        return outline(layer, box, (255, 255, 255))
    kept, added = _spotlight_terms(values, prepared.map_to_photo(signed))
    shown = 1.0 - kept
    colour = added / np.maximum(shown, 1e-6)[..., None]
    layer = Image.fromarray(np.clip(np.rint(colour), 0, 255).astype(np.uint8)).convert("RGBA")
    opacity = Image.new("L", prepared.photo.size, 0)
    opacity.paste(Image.fromarray(np.rint(shown * 255).astype(np.uint8)).crop(region), region)
    layer.putalpha(opacity)
    return outline(layer, box, (255, 255, 255))


_HEAT_LEVELS = 253  # a CAM layer's palette: the heat levels, then clear, white and green (the boxes)
_CLEAR = _HEAT_LEVELS


@functools.lru_cache(maxsize=8)
def _layer_palette(cmap: str, alpha: float) -> bytes:
    heat = colormap(cmap)[np.rint(np.linspace(0, 255, _HEAT_LEVELS)).astype(int)]
    colours = np.zeros((256, 4), np.uint8)
    colours[:_HEAT_LEVELS, :3], colours[:_HEAT_LEVELS, 3] = heat, int(round(alpha * 255))
    colours[_CLEAR + 1] = (255, 255, 255, 255)
    colours[_CLEAR + 2] = (0, 230, 64, 255)  # outline's default colour
    return colours.tobytes()


@functools.lru_cache(maxsize=1)
def _dim_palette() -> bytes:
    """An unsigned spotlight layer's palette: index k is black at opacity k / 255 (the spotlight
    dims to 20 %, so opacities stop at 204), then white and green (the boxes)."""
    colours = np.zeros((256, 4), np.uint8)
    colours[:254, 3] = np.arange(254)
    colours[254] = (255, 255, 255, 255)
    colours[255] = (0, 230, 64, 255)  # outline's default colour
    return colours.tobytes()


def sheet(photo: Image.Image, panels: list[tuple[str, Image.Image]], height: int = 320) -> Image.Image:
    """The photo and the titled panels side by side, each scaled to ``height`` pixels."""
    font = ImageFont.load_default()
    tiles = [("input", photo)] + list(panels)
    scaled = [
        (title, im.resize((max(1, round(im.size[0] * height / im.size[1])), height))) for title, im in tiles
    ]
    bar, gap = 22, 6
    total = sum(im.size[0] for _, im in scaled) + gap * (len(scaled) + 1)
    canvas = Image.new("RGB", (total, height + bar + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for title, im in scaled:
        canvas.paste(im, (x, bar))
        draw.text((x, 4), title, fill=(0, 0, 0), font=font)
        x += im.size[0] + gap
    return canvas
