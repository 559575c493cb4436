"""Explaining a table's rows end to end: the methods on every row, written as one set of files.

Every row is explained with each method (one ``explain_many`` call: a shared run of the model, the
methods that take ``background`` given the background rows). Written into the output folder as one
set (:func:`onnx_xai.support.files.commit_set`: a rerun never leaves a mix, nothing is written outside it):
``attributions.csv`` (``row, method, feature, value``, and a ``base`` line per row and method where
the method has one), ``rows/<row>.json`` (the row's values, the model's prediction, the objective and
each method's attributions and base) and ``summary.<method>.png`` (:func:`.figure.summary`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.methods import get
from ..support.files import commit_set, output_folder
from .feeds import TableInputs, feature_names, feature_values
from .figure import summary
from .rows import Rows


@dataclass
class TableOptions:
    """How to explain a table's rows (the ``explain`` command's flags, as a value)."""

    methods: Sequence[str] = ("kernel_shap",)
    target: int | None = None
    background: Rows | None = None
    labels: list[str] = field(default_factory=list)
    noise_seed: int = 0
    figures: bool = True


def explain_rows(ex, rows: Rows, out: Path, opts: TableOptions, sha256: str) -> list[dict]:
    """Explain ``rows`` with each method and write the set (module docstring); the row records."""
    inputs = TableInputs.of(ex)
    x = inputs.feeds(rows)
    options = _options(opts, inputs)
    results = ex.explain_many(x, list(opts.methods), objective=opts.target, **options)
    predictions = next(iter(results.values())).output
    if predictions is None:
        predictions = ex.predict(x)
    names = {method: feature_names(ex, rows, r) for method, r in results.items()}
    records = [_record(i, rows, results, names, predictions, opts, sha256) for i in range(len(rows.values))]
    writers = {"attributions.csv": lambda path: path.write_text(_table(records), encoding="utf-8")}
    for record in records:
        text = json.dumps(record, indent=1)
        writers[f"rows/{record['row']}.json"] = lambda path, text=text: path.write_text(
            text, encoding="utf-8"
        )
    if opts.figures:
        for method, r in results.items():
            values = feature_values(rows, names[method])
            title = f"{method}: {len(rows.values)} rows"
            picture = summary(np.asarray(r.raw, np.float64), values, names[method], title)
            writers[f"summary.{method}.png"] = lambda path, p=picture: p.save(path, format="PNG")
    commit_set(output_folder(out), writers, [])
    return records


def _options(opts: TableOptions, inputs: TableInputs) -> dict:
    """``background`` (as the model's inputs) and ``noise_seed`` for the methods that take them."""
    taken = {name for m in opts.methods for name in get(m).Options.__dataclass_fields__}
    found: dict = {}
    if "background" in taken and opts.background is not None:
        found["background"] = inputs.feeds(opts.background)
    if "noise_seed" in taken:
        found["noise_seed"] = opts.noise_seed
    return found


def _record(
    i: int, rows: Rows, results: dict, names: dict, predictions, opts: TableOptions, sha256: str
) -> dict:
    first = next(iter(results.values()))
    target = int(first.targets[i])
    label = opts.labels[target] if 0 <= target < len(opts.labels) else None
    explanations = []
    for method, r in results.items():
        entry = {"method": method, "attributions": dict(zip(names[method], map(float, np.ravel(r.raw[i]))))}
        if r.base is not None:
            entry["base"] = float(np.ravel(r.base)[i])
        explanations.append(entry)
    return {
        "row": i,
        "model_sha256": sha256,
        "values": _values(rows, i),
        "prediction": np.asarray(predictions[i], np.float64).round(6).tolist(),
        "objective": {"kind": "class", "class": target, "label": label, "score": float(first.scores[i])},
        "explanations": explanations,
    }


def _values(rows: Rows, i: int) -> dict:
    """Row ``i``'s cells by column: numbers, text as written, None where missing."""
    found: dict = {}
    for k, name in enumerate(rows.names):
        if name in rows.text and rows.cells is not None:
            found[name] = str(rows.cells[i, k])
        else:
            found[name] = float(rows.values[i, k]) if np.isfinite(rows.values[i, k]) else None
    return found


def _table(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "method", "feature", "value"])
    for record in records:
        for entry in record["explanations"]:
            for feature, value in entry["attributions"].items():
                writer.writerow([record["row"], entry["method"], feature, repr(value)])
            if "base" in entry:
                writer.writerow([record["row"], entry["method"], "base", repr(entry["base"])])
    return buffer.getvalue()
