"""``report.html``: one self-contained file (pictures embedded, charts inline SVG, no network).

The page is a Jinja2 template (``templates/report.html.j2``); this module turns the audit's records
into what it shows: the model and protocol, the summary table (each metric's mean over photos per
method, baselines beside them, the best of each column marked), the mean deletion and insertion
curves, the randomization curves and the photos one by one.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Sequence

import numpy as np

from .. import __version__
from .baselines import BASELINES
from .charts import line_chart

# (record key, heading, which is better: "low", "high" or "zero" (nearest zero: a correlation))
COLUMNS = (
    ("deletion_auc", "Deletion AUC", "low"),
    ("insertion_auc", "Insertion AUC", "high"),
    ("road_morf", "ROAD MoRF", "low"),
    ("road_lerf", "ROAD LeRF", "high"),
    ("road", "ROAD gap", "high"),
    ("pointing_hit", "Pointing game", "high"),
    ("box_iou", "Box IoU", "high"),
    ("random_target_spearman", "Random-class ρ", "zero"),
    ("randomized_spearman", "Randomized-model ρ", "zero"),
)


def render(model: dict, opts, photos: Sequence, records: list, sanity: dict, failures: Sequence = ()) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("onnx_xai.audit", "templates"),
        autoescape=select_autoescape(["j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    methods = list(opts.methods) + list(BASELINES)
    columns, rows = summary(records, methods)
    return env.get_template("report.html.j2").render(
        model=model,
        protocol=records[0]["protocol"] if records else {},
        version=__version__,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        columns=columns,
        rows=rows,
        photo_count=len(photos),
        methods=methods,
        curves=curve_charts(records, methods),
        randomization=randomization_view(sanity, opts.methods),
        random_target=sanity.get("random_target"),
        skipped=sanity.get("randomization_skipped"),
        photos=[photo_view(p, methods) for p in photos if p.pictures],
        failures=list(failures),
    )


def summary(records: list, methods: list) -> tuple[list, list]:
    """The columns that have values, and per method its mean of each, with the best marked."""
    present = [c for c in COLUMNS if any(_value(r, c[0]) is not None for r in records)]
    rows = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        cells = []
        for key, _, _ in present:
            values = [float(_value(r, key)) for r in mine if _value(r, key) is not None]
            cells.append({"value": float(np.mean(values)) if values else None, "n": len(values)})
        rows.append({"method": method, "baseline": method in BASELINES, "cells": cells})
    for j, (_, _, better) in enumerate(present):
        values = [row["cells"][j]["value"] for row in rows if row["cells"][j]["value"] is not None]
        if values:
            rank = {"low": lambda v: v, "high": lambda v: -v, "zero": abs}[better]
            best = min(rank(v) for v in values)
            for row in rows:
                value = row["cells"][j]["value"]
                row["cells"][j]["best"] = value is not None and rank(value) == best
    return [{"key": k, "heading": h, "better": b} for k, h, b in present], rows


def _value(record: dict, key: str):
    """A record's figure for a column; ``randomized_spearman`` is the last randomization step's."""
    if key == "randomized_spearman":
        steps = record.get("randomization_spearman")
        return steps[-1] if steps else None
    return record.get(key)


def curve_charts(records: list, methods: list) -> list:
    charts = []
    for key, title in (
        ("deletion_curve", "Deletion: most relevant pixels removed first (lower is better)"),
        ("insertion_curve", "Insertion: most relevant pixels put back first (higher is better)"),
    ):
        series = []
        for method in methods:
            curves = [r[key] for r in records if r["method"] == method and key in r]
            if curves:
                mean = np.mean(np.array(curves, np.float64), axis=0)
                series.append((method, np.linspace(0, 1, len(mean)), mean.tolist()))
        if series:
            charts.append(line_chart(title, "fraction of pixels", "target probability", series, (0.0, 1.0)))
    return charts


def randomization_view(sanity: dict, methods: Sequence[str]) -> dict | None:
    steps = sanity.get("randomization")
    if not steps:
        return None
    layers = [s["layers"] for s in steps]
    charts = []
    for measure, name in (("spearman", "Spearman rank correlation"), ("ssim", "SSIM")):
        series = [(m, layers, [_mean(s["methods"][m][measure]) for s in steps]) for m in methods]
        charts.append(
            line_chart(
                f"Cascading randomization: {name} with the original map",
                "layers re-drawn (top down)",
                name,
                series,
                (-0.2 if measure == "spearman" else 0.0, 1.0),
            )
        )
    table = [
        {
            "step": s["step"],
            "layers": s["layers"],
            "down_to": s["down_to"] or "none (the model itself)",
            "values": [(_mean(s["methods"][m]["spearman"]), _mean(s["methods"][m]["ssim"])) for m in methods],
        }
        for s in steps
    ]
    return {"charts": charts, "table": table, "methods": list(methods), "photos": len(sanity["files"])}


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def photo_view(photo, methods: list) -> dict:
    by_method = {r["method"]: r for r in photo.records}
    first = photo.records[0]
    return {
        "file": photo.file,
        "label": first["label"],
        "target": first["target"],
        "probability": first["probability"],
        "photo": _data_uri(photo.pictures["photo"]),
        "panels": [
            {
                "method": m,
                "picture": _data_uri(photo.pictures[m]),
                "deletion": by_method[m].get("deletion_auc"),
                "insertion": by_method[m].get("insertion_auc"),
                "road": by_method[m].get("road"),
                "baseline": m in BASELINES,
            }
            for m in methods
            if m in photo.pictures
        ],
    }


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
