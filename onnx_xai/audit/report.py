"""``report.html``: one self-contained file (pictures embedded, charts inline SVG, no network).

The page is a Jinja2 template (``templates/report.html.j2``); this module turns the audit's records
into what it shows: the model and protocol, the summary table (each metric's mean over photos or rows
per method, baselines beside them, the best of each column marked), the mean deletion and insertion
curves, the randomization curves, and then the photos one by one (:func:`render`), for a table each
feature's mean |attribution| per method (:func:`render_table`), for texts ERASER's
comprehensiveness and sufficiency curves and each text's tokens coloured by each method
(:func:`render_texts`), or for signals the curves over time windows and each signal's windows
coloured by each method (:func:`render_signals`). What differs between them is said in :class:`Words`.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .. import __version__
from .baselines import BASELINES
from .charts import line_chart
from .features import RANDOM

# (record key, heading, which is better: "low", "high" or "zero" (nearest zero: a correlation))
COLUMNS = (
    ("deletion_auc", "Deletion AUC", "low"),
    ("insertion_auc", "Insertion AUC", "high"),
    ("road_morf", "ROAD MoRF", "low"),
    ("road_lerf", "ROAD LeRF", "high"),
    ("road", "ROAD gap", "high"),
    ("comprehensiveness", "Comprehensiveness", "high"),
    ("sufficiency", "Sufficiency", "low"),
    ("pointing_hit", "Pointing game", "high"),
    ("box_iou", "Box IoU", "high"),
    ("random_target_spearman", "Random-class ρ", "zero"),
    ("randomized_spearman", "Randomized-model ρ", "zero"),
)


FEATURES_SHOWN = 50  # a table's features listed by mean |attribution| in the report


@dataclass(frozen=True)
class Words:
    """What a report says of its samples: photos and pixels, or rows and features."""

    kind: str  # "photo", "table", "text" or "signal"
    title: str
    sample: str  # what one sample is called
    unit: str  # what the curves remove
    score: str  # what the curves read
    y_range: tuple[float, float] | None  # the curves' vertical range (None: the data's)
    measures: tuple[tuple[str, str], ...]  # the sanity checks' two (measure, name)
    heading: str  # the two measures, short, as the randomization table's columns say them
    result: str  # what a method gives per sample
    # the charts of the records' curves: (record key, title, x label); () for deletion and insertion
    curves: tuple[tuple[str, str, str], ...] = ()


PHOTOS = Words(
    kind="photo",
    title="Saliency audit",
    sample="photo",
    unit="pixels",
    score="target probability",
    y_range=(0.0, 1.0),
    measures=(("spearman", "Spearman rank correlation"), ("ssim", "SSIM")),
    heading="ρ / SSIM",
    result="map",
)
TABLES = Words(
    kind="table",
    title="Attribution audit",
    sample="row",
    unit="features",
    score="mean score over the background",
    y_range=None,
    measures=(
        ("spearman", "Spearman rank correlation of |attribution|"),
        ("spearman_signed", "Spearman rank correlation"),
    ),
    heading="ρ of |a| / ρ",
    result="attribution",
)


TEXTS = Words(
    kind="text",
    title="Token attribution audit",
    sample="text",
    unit="tokens",
    score="drop of the class probability",
    y_range=None,
    measures=(),
    heading="",
    result="token scores",
    curves=(
        (
            "comprehensiveness_curve",
            "Comprehensiveness: most relevant tokens removed first (higher is better)",
            "fraction of tokens removed (the top k %)",
        ),
        (
            "sufficiency_curve",
            "Sufficiency: only the most relevant tokens kept (lower is better)",
            "fraction of tokens kept (the top k %)",
        ),
    ),
)


SIGNALS = Words(
    kind="signal",
    title="Attribution audit over time",
    sample="signal",
    unit="time windows",
    score="target probability",
    y_range=(0.0, 1.0),
    measures=(),
    heading="",
    result="attribution",
)


def render(model: dict, opts, photos: Sequence, records: list, sanity: dict, failures: Sequence = ()) -> str:
    methods = list(opts.methods) + list(BASELINES)
    return _page(
        PHOTOS, model, records, sanity, methods, opts.methods, len(photos),
        photos=[photo_view(p, methods) for p in photos if p.pictures], failures=list(failures),
    )  # fmt: skip


def render_table(model: dict, opts, audit, records: list, sanity: dict) -> str:
    """A table audit's page (:mod:`.table_run`): ``audit`` is its :class:`~.table_auditor.TableAudit`."""
    methods = list(opts.methods) + [RANDOM]
    return _page(
        TABLES, model, records, sanity, methods, opts.methods, len(audit.rows.values),
        features=feature_view(audit, list(opts.methods)), randomized=sanity.get("randomized"),
        random_target_skipped=sanity.get("random_target_skipped"),
    )  # fmt: skip


def render_texts(model: dict, opts, audit, sanity: dict) -> str:
    """A text audit's page (:mod:`.text_run`): ``audit`` is its :class:`~.text_auditor.TextAudit`."""
    methods = list(dict.fromkeys(opts.methods)) + [RANDOM]
    return _page(
        TEXTS, model, audit.records, sanity, methods, opts.methods, len(audit.texts),
        texts=text_view(audit, opts.report_texts),
    )  # fmt: skip


def render_signals(model: dict, methods: list, records: list, view: dict, sanity: dict) -> str:
    """A signal audit's page (:mod:`.signal_run`): ``view`` its signals as
    :func:`.signal_run.signal_view` shows them."""
    return _page(
        SIGNALS, model, on_one_grid(records), sanity, list(methods) + [RANDOM], methods, view["total"],
        signals=view,
    )  # fmt: skip


def on_one_grid(records: list) -> list:
    """Records whose curves have different numbers of steps (signals of different lengths) with their
    curves interpolated linearly onto the finest one's fractions, so that their means can be drawn."""
    sizes = {len(r["fractions"]) for r in records if "fractions" in r}
    if len(sizes) < 2:
        return records
    grid = np.linspace(0, 1, max(sizes))
    curves = ("deletion_curve", "insertion_curve")
    return [
        r
        | {k: np.interp(grid, r["fractions"], r[k]).tolist() for k in curves if k in r}
        | {"fractions": grid.tolist()}
        for r in records
    ]


def _page(
    words: Words, model: dict, records: list, sanity: dict, methods: list, explained, count: int, **more
) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("onnx_xai.audit", "templates"),
        autoescape=select_autoescape(["j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    columns, rows = summary(records, methods)
    return env.get_template("report.html.j2").render(
        words=asdict(words),
        model=model,
        protocol=records[0]["protocol"] if records else {},
        version=__version__,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        columns=columns,
        rows=rows,
        photo_count=count,
        methods=methods,
        curves=curve_charts(records, methods, words),
        randomization=randomization_view(sanity, explained, words),
        random_target=sanity.get("random_target"),
        skipped=sanity.get("randomization_skipped"),
        **({"photos": [], "failures": []} | more),
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
        rows.append({"method": method, "baseline": method.startswith("baseline_"), "cells": cells})
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


def curve_charts(records: list, methods: list, words: Words = PHOTOS) -> list:
    """The mean deletion and insertion curve of each method (a curve's fractions are its records')."""
    charts = []
    for key, title, x_label in words.curves or (
        ("deletion_curve", f"Deletion: most relevant {words.unit} removed first (lower is better)", ""),
        ("insertion_curve", f"Insertion: most relevant {words.unit} put back first (higher is better)", ""),
    ):
        series = []
        for method in methods:
            mine = [r for r in records if r["method"] == method and key in r]
            if mine:
                mean = np.mean(np.array([r[key] for r in mine], np.float64), axis=0)
                xs = mine[0].get("fractions") or np.linspace(0, 1, len(mean)).tolist()
                series.append((method, xs, mean.tolist()))
        if series:
            x_label = x_label or f"fraction of {words.unit}"
            charts.append(line_chart(title, x_label, words.score, series, words.y_range))
    return charts


def randomization_view(sanity: dict, methods: Sequence[str], words: Words = PHOTOS) -> dict | None:
    steps = sanity.get("randomization")
    if not steps:
        return None
    layers = [s["layers"] for s in steps]
    charts = []
    for measure, name in words.measures:
        series = [(m, layers, [_mean(s["methods"][m][measure]) for s in steps]) for m in methods]
        low = (
            -0.2 if measure == "spearman" and words.kind == "photo" else (0.0 if measure == "ssim" else -1.0)
        )
        charts.append(
            line_chart(
                f"Cascading randomization: {name} with the original {words.result}",
                "layers re-drawn (top down)",
                name,
                series,
                (low, 1.0),
            )
        )
    table = [
        {
            "step": s["step"],
            "layers": s["layers"],
            "down_to": s["down_to"] or "none (the model itself)",
            "values": [tuple(_mean(s["methods"][m][k]) for k, _ in words.measures) for m in methods],
        }
        for s in steps
    ]
    return {"charts": charts, "table": table, "methods": list(methods), "photos": len(sanity["files"])}


def feature_view(audit, methods: list) -> dict:
    """Each feature's mean |attribution| per method, the first method's largest first (at most
    :data:`FEATURES_SHOWN` of them)."""
    means = {m: np.abs(audit.raws[m]).mean(axis=0) for m in methods}
    order = np.argsort(-means[methods[0]], kind="stable")[:FEATURES_SHOWN]
    return {
        "methods": methods,
        "total": len(audit.rows.names),
        "rows": [
            {"name": audit.rows.names[k], "values": [float(means[m][k]) for m in methods]} for k in order
        ],
    }


def text_view(audit, limit: int) -> dict:
    """The first ``limit`` texts of a text audit, each with every method's tokens coloured by its
    scores (the colours of :mod:`onnx_xai.text.page`) and each method's figures, the random
    baseline's beside them."""
    records: dict = {}
    for r in audit.records:
        records.setdefault(r["index"], {})[r["method"]] = r
    shown = []
    for i in range(min(limit, len(audit.texts))):
        mine = records[i]
        first = mine[RANDOM]
        rows = [
            {"method": m, "signed": e.signed, "record": mine[m], "tokens": token_view(e, i)}
            for m, e in audit.explanations.items()
        ]
        rows.append({"method": RANDOM, "signed": False, "record": mine[RANDOM], "tokens": []})
        facts = {k: first[k] for k in ("index", "label", "target", "probability", "truncated", "text")}
        shown.append(facts | {"methods": rows})
    return {"texts": shown, "total": len(audit.texts)}


def token_view(explanation, i: int) -> list[dict]:
    """Text ``i``'s tokens as the template draws them: the text shown, a space before it where the
    text has one (or beside a special token), its background colour and its score."""
    from ..text.page import colour, largest

    scores, special, spans = explanation.scores[i], explanation.special[i], explanation.spans[i]
    top = largest(scores, special)
    tokens = []
    for k, token in enumerate(explanation.shown(i)):
        (r, g, b), alpha = colour(float(scores[k]), top, explanation.signed)
        gap = k > 0 and (spans[k][0] > spans[k - 1][1] or special[k] or special[k - 1])
        tokens.append(
            {
                "text": token,
                "special": bool(special[k]),
                "space": bool(gap),
                "background": f"rgba({r},{g},{b},{alpha:.3f})",
                "score": float(scores[k]),
            }
        )
    return tokens


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
