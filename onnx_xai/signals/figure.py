"""A signal's explanation as one picture: the signal over time with the attribution as a band beneath.

From the top: the title (the file, the class explained, its score, the method); one lane per channel
(at most :data:`SHOWN`, the rest counted), each the channel's line scaled to its own range with its
name; for audio, the spectrogram under the waveform (log power, SciPy's ``spectrogram``); then the
attribution over time as a coloured band, red for the class and blue against it for signed methods,
dark to bright yellow (``inferno``) from 0 to the largest for unsigned ones and the CAM family, each
pixel column the strongest value of the steps it covers (a band that is zero everywhere says so); a
time axis in seconds (at a WAV's rate, or the rate given) or steps; and a legend. Drawn with Pillow
only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..imaging.visuals import colormap

SHOWN = 12
WIDTH, LEFT, RIGHT, TOP = 1000, 90, 20, 40
BAND, SPECTRUM, AXIS_ROOM, LEGEND = 34, 130, 36, 26
INK, FAINT, LINE = (20, 20, 20), (215, 215, 215), (25, 60, 140)


def signal_figure(
    values: np.ndarray, channel_axis: int | None, over_time: np.ndarray, signed: bool, title: str,
    rate: int | None = None, names: list[str] | None = None, audio: bool = False,
) -> Image.Image:  # fmt: skip
    """The picture of one signal (``values`` in the model's layout, ``channel_axis`` None for a
    waveform) and its attribution ``over_time`` ``[T]`` (in [-1, 1] when ``signed``, else [0, 1])."""
    lanes = values[None] if channel_axis is None else np.moveaxis(values, channel_axis, 0)
    shown = lanes[:SHOWN]
    lane = 90 if len(shown) <= 3 else 56
    height = TOP + lane * len(shown) + (SPECTRUM if audio else 0) + BAND + AXIS_ROOM + LEGEND + 16
    image = Image.new("RGB", (WIDTH, height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    draw.text((LEFT, 12), title, fill=INK, font=font)
    y = TOP
    for k, series in enumerate(shown):
        name = names[k] if names and k < len(names) else ("waveform" if channel_axis is None else f"ch {k}")
        _lane(draw, np.asarray(series, np.float64), y, lane - 8, str(name)[:12], font)
        y += lane
    if len(lanes) > SHOWN:
        draw.text((8, y - 14), f"+{len(lanes) - SHOWN} more", fill=INK, font=font)
    if audio:
        image.paste(_spectrogram(lanes[0], rate, SPECTRUM - 10), (LEFT, y))
        draw.text((8, y + 4), "spectrogram", fill=INK, font=font)
        y += SPECTRUM
    image.paste(_band(over_time, signed), (LEFT, y))
    draw.text((8, y + 10), "attribution", fill=INK, font=font)
    if not np.any(over_time):
        draw.text(
            (LEFT + 8, y + 10), "zero everywhere: no evidence for the class", fill=(235, 235, 235), font=font
        )
    _time_axis(draw, y + BAND + 2, len(over_time), rate, font)
    _legend(image, draw, y + BAND + AXIS_ROOM, signed, font)
    return image


def _width() -> int:
    return WIDTH - LEFT - RIGHT


def _lane(draw: ImageDraw.ImageDraw, series: np.ndarray, top: int, height: int, name: str, font) -> None:
    """One channel's line, min-max scaled into its lane: every sample where they fit, else each pixel
    column's minimum and maximum (so spikes stay visible)."""
    draw.rectangle([LEFT, top, LEFT + _width(), top + height], outline=FAINT)
    draw.text((8, top + height // 2 - 6), name, fill=INK, font=font)
    low, high = float(series.min()), float(series.max())
    span = high - low or 1.0

    def y(value) -> float:
        return top + height - 2 - (height - 4) * (float(value) - low) / span

    if len(series) <= 2 * _width():
        xs = LEFT + _width() * np.arange(len(series)) / max(len(series) - 1, 1)
        points = [(float(x), y(v)) for x, v in zip(xs, series)]
    else:
        columns = np.array_split(series, _width())
        points = [(LEFT + k + 0.5, y(v)) for k, part in enumerate(columns) for v in (part.min(), part.max())]
    draw.line(points, fill=LINE, width=1)


def _per_pixel(values: np.ndarray, width: int) -> np.ndarray:
    """``values`` over ``width`` pixel columns: each column's strongest value (by magnitude) where
    there are more values than columns, else each column's nearest value."""
    if len(values) <= width:
        return values[np.minimum((np.arange(width) * len(values)) // width, len(values) - 1)]
    parts = np.array_split(values, width)
    return np.array([p[np.argmax(np.abs(p))] for p in parts])


def _band(over_time: np.ndarray, signed: bool) -> Image.Image:
    columns = _per_pixel(np.asarray(over_time, np.float64), _width())
    position = (columns + 1) / 2 if signed else columns
    table = colormap("coolwarm" if signed else "inferno")
    row = table[np.clip(np.rint(position * 255), 0, 255).astype(np.int64)]
    return Image.fromarray(np.repeat(row[None], BAND, axis=0).astype(np.uint8), "RGB")


def _spectrogram(waveform: np.ndarray, rate: int | None, height: int) -> Image.Image:
    from scipy.signal import spectrogram

    length = len(waveform)
    segment = int(min(256, max(16, length // 32)))
    _, _, power = spectrogram(np.asarray(waveform, np.float64), fs=rate or 1.0, nperseg=segment)
    logged = np.log10(power + 1e-12)
    low, high = np.percentile(logged, 5), logged.max()
    scaled = np.clip((logged - low) / (high - low or 1.0), 0, 1)[::-1]  # low frequencies at the bottom
    table = colormap("viridis")
    picture = Image.fromarray(table[np.rint(scaled * 255).astype(np.int64)].astype(np.uint8), "RGB")
    return picture.resize((_width(), height), Image.Resampling.BILINEAR)


def _time_axis(draw: ImageDraw.ImageDraw, top: int, length: int, rate: int | None, font) -> None:
    draw.line([LEFT, top, LEFT + _width(), top], fill=INK)
    for k in range(6):
        step = round(k * (length - 1) / 5)
        x = LEFT + _width() * step / max(length - 1, 1)
        draw.line([x, top, x, top + 4], fill=INK)
        text = f"{step / rate:.3g} s" if rate else str(step)
        draw.text((x - 3 * len(text), top + 6), text, fill=INK, font=font)
    draw.text((LEFT + _width() - 80, top + 20), "time (s)" if rate else "time step", fill=INK, font=font)


def _legend(image: Image.Image, draw: ImageDraw.ImageDraw, top: int, signed: bool, font) -> None:
    ramp = np.linspace(-1, 1, 160) if signed else np.linspace(0, 1, 160)
    table = colormap("coolwarm" if signed else "inferno")
    position = (ramp + 1) / 2 if signed else ramp
    row = table[np.rint(position * 255).astype(np.int64)]
    image.paste(Image.fromarray(np.repeat(row[None], 10, axis=0).astype(np.uint8), "RGB"), (LEFT, top + 4))
    said = "blue: against the class, red: for it" if signed else "dark: 0, bright: most important"
    draw.text((LEFT + 168, top + 2), said, fill=INK, font=font)
