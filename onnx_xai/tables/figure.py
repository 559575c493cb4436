"""The summary figure of a table's attributions: mean |attribution| per feature, and a beeswarm.

Left, one bar per feature, the mean over the rows of its attribution's magnitude, largest first;
right, on the same rows, every row's attribution as a dot along a shared axis (zero marked), dots of
a feature spread vertically where they crowd (a beeswarm), coloured by the feature's value in that
row from low (blue) to high (red) within its column (grey where it is missing), as SHAP's summary
plot draws them. At most :data:`SHOWN` features, the largest; drawn with Pillow only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHOWN = 20
ROW, TOP, LABEL, BARS, SWARM, MARGIN = 26, 44, 150, 220, 420, 16
BLUE, RED, GREY, INK, AXIS = (30, 110, 230), (230, 30, 80), (170, 170, 170), (20, 20, 20), (200, 200, 200)


def summary(attributions: np.ndarray, values: np.ndarray, names, title: str) -> Image.Image:
    """The figure for ``attributions`` ``[N, F]`` of rows ``values`` ``[N, F]``, columns ``names``."""
    magnitude = np.abs(attributions).mean(axis=0)
    order = np.argsort(-magnitude, kind="stable")[:SHOWN]
    height = TOP + ROW * len(order) + MARGIN + 20
    image = Image.new("RGB", (LABEL + BARS + SWARM + 3 * MARGIN, height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    draw.text((MARGIN, 12), title, fill=INK, font=font)
    draw.text((LABEL + MARGIN, TOP - 16), "mean |attribution|", fill=INK, font=font)
    draw.text((LABEL + BARS + 2 * MARGIN, TOP - 16), "each row (blue: low value, red: high)", fill=INK)
    top = float(magnitude[order].max()) or 1.0
    reach = float(np.abs(attributions[:, order]).max()) or 1.0
    for k, feature in enumerate(order):
        y = TOP + k * ROW + ROW // 2
        draw.text((MARGIN, y - 6), str(names[feature])[:22], fill=INK, font=font)
        width = int((BARS - 10) * magnitude[feature] / top)
        draw.rectangle([LABEL + MARGIN, y - 7, LABEL + MARGIN + max(width, 1), y + 7], fill=BLUE)
        _swarm(draw, attributions[:, feature], values[:, feature], y, reach)
    bottom = TOP + ROW * len(order) + 4
    zero = _x(0.0, reach)
    draw.line([zero, TOP - 4, zero, bottom - 4], fill=AXIS)
    for value in (-reach, 0.0, reach):
        text = f"{value:.3g}"
        draw.text((_x(value, reach) - 3 * len(text), bottom), text, fill=INK, font=font)
    return image


def _x(value: float, reach: float) -> int:
    left = LABEL + BARS + 2 * MARGIN
    return int(left + SWARM / 2 + (SWARM / 2 - 6) * value / reach)


def _swarm(draw: ImageDraw.ImageDraw, found: np.ndarray, values: np.ndarray, y: int, reach: float) -> None:
    """One feature's dots: stacked up and down where they fall on the same pixel column."""
    known = values[np.isfinite(values)]
    low, high = (float(known.min()), float(known.max())) if known.size else (0.0, 0.0)
    taken: dict[int, int] = {}
    for a, v in zip(found, values):
        x = _x(float(a), reach)
        count = taken.get(x // 3, 0)
        taken[x // 3] = count + 1
        offset = ((count + 1) // 2) * (1 if count % 2 else -1) * 2
        if abs(offset) > ROW // 2 - 3:
            offset = (count % (ROW - 6)) - (ROW - 6) // 2
        colour = GREY if not np.isfinite(v) else _blend((v - low) / (high - low) if high > low else 0.5)
        draw.ellipse([x - 2, y + offset - 2, x + 2, y + offset + 2], fill=colour)


def _blend(t: float) -> tuple[int, int, int]:
    return tuple(int(round(b + (r - b) * t)) for b, r in zip(BLUE, RED))  # type: ignore[return-value]
