"""Line charts for the report as data: series scaled to an SVG canvas, ticks, a legend.

The template draws them (a Jinja macro writes the ``<svg>``); this module only places points, so that
no markup is assembled in Python. Colours are fixed per series position (Okabe-Ito, readable by
colour-blind readers); baselines are drawn dashed in grey.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
    "#882255",
    "#44AA99",
    "#999933",
    "#AA4499",
    "#117733",
    "#332288",
)
BASELINE_COLOUR = "#8c8c8c"
DASHES = ("6 4", "2 3", "9 3 2 3")  # one per baseline, so the three grey lines stay apart
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 520, 300, 52, 150, 28, 44


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[tuple[str, Sequence, Sequence]],
    y_range: tuple[float, float] | None = None,
) -> dict:
    """A chart of ``(name, xs, ys)`` series (None values leave gaps) for the template's macro."""
    xs = np.array([x for _, sx, _ in series for x in sx], np.float64)
    ys = np.array([y for _, _, sy in series for y in sy if y is not None], np.float64)
    x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    y0, y1 = y_range or ((float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y):
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    lines, colour, dash = [], iter(PALETTE * 4), iter(DASHES * 8)
    for name, sx, sy in series:
        baseline = name.startswith("baseline_")
        segments, current = [], []
        for x, y in zip(sx, sy):
            if y is None or not np.isfinite(y):
                segments, current = segments + [current] if current else segments, []
                continue
            current.append(f"{px(x):.1f},{py(min(max(y, y0), y1)):.1f}")
        segments += [current] if current else []
        lines.append(
            {
                "name": name,
                "colour": BASELINE_COLOUR if baseline else next(colour),
                "dash": next(dash) if baseline else None,
                "segments": [" ".join(s) for s in segments],
            }
        )
    for i, line in enumerate(lines):
        line["legend_y"] = TOP + 8 + 16 * i
    return {
        "title": title,
        "x_label": x_label,
        "y_label": y_label,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "top": TOP,
        "right": WIDTH - RIGHT,
        "bottom": HEIGHT - BOTTOM,
        "lines": lines,
        "x_ticks": [(px(v), _tick(v)) for v in np.linspace(x0, x1, 5)],
        "y_ticks": [(py(v), _tick(v)) for v in np.linspace(y0, y1, 5)],
    }


def _tick(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.2g}"
