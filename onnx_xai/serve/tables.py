"""Serving a table model: rows in, each row's prediction and its attributions per column out.

A request's instances are rows: lists of numbers in the model's column order, or objects keyed by
column name (``{"age": 41, "income": 3.2e4}``; the names are the background file's header, or
``x0, x1 ...``); a missing, unknown or non-numeric column is a one-line 400. ``:explain`` answers,
per row, one entry per method: the class explained (target, label, score), the attribution of each
column by name, and the base where the method has one (SHAP's expected value), the methods that take
``background`` given the server's ``--background`` rows. Costs and deadlines are those of photos
(:mod:`.admission`): KernelSHAP's coalitions times the background rows count as runs.
"""

from __future__ import annotations

import math

import numpy as np

from ..runtime.methods import get
from .requests import BadRequest, Instance


def rows(payload: dict, names: tuple[str, ...], dtype, max_instances: int) -> list[Instance]:
    """The request's rows as model inputs ``[1, columns]``."""
    found = payload.get("instances", payload.get("inputs"))
    if not isinstance(found, list) or not found:
        raise BadRequest('the body needs "instances": a non-empty list of rows')
    if len(found) > max_instances:
        raise BadRequest(f"{len(found)} instances in one request; at most {max_instances}")
    return [Instance(_row(item, k, names, np.dtype(dtype))) for k, item in enumerate(found)]


def _row(item, k: int, names: tuple[str, ...], dtype: np.dtype) -> np.ndarray:
    if isinstance(item, dict):
        unknown = sorted(set(item) - set(names))
        missing = [n for n in names if n not in item]
        if unknown or missing:
            said = f"unknown column(s) {unknown}" if unknown else f"no value for column {missing[0]!r}"
            raise BadRequest(f"instance {k}: {said}; columns: {', '.join(names)}")
        item = [item[n] for n in names]
    if not isinstance(item, list) or len(item) != len(names):
        raise BadRequest(f"instance {k} must be a row of {len(names)} numbers (or an object by column name)")
    values = []
    for name, value in zip(names, item):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadRequest(f"instance {k}: column {name!r} holds {value!r}, not a finite number")
        values.append(value)
    return np.asarray([values], dtype=dtype if dtype.kind == "f" else np.float32)


def explain_rows(ex, batch: np.ndarray, params, background: np.ndarray | None, names, labels) -> list:
    """Each row's output and its entries (module docstring)."""
    options: dict = {}
    taken = {name for m in params.methods for name in get(m).Options.__dataclass_fields__}
    if "background" in taken and background is not None:
        options["background"] = background.astype(batch.dtype)
    results = ex.explain_many(batch, list(params.methods), objective=params.target, **options)
    outputs = next(iter(results.values())).output
    outputs = outputs if outputs is not None and len(outputs) == len(batch) else ex.predict(batch)
    answers = []
    for i in range(len(batch)):
        entries = []
        for method, r in results.items():
            target = int(r.targets[i])
            entry = {
                "method": method,
                "target": target,
                "label": labels[target] if labels and 0 <= target < len(labels) else None,
                "score": round(float(r.scores[i]), 6),
                "attributions": {n: float(v) for n, v in zip(names, np.ravel(r.raw[i]))},
            }
            if r.base is not None:
                entry["base"] = float(np.ravel(r.base)[i])
            entries.append(entry)
        answers.append((outputs[i], entries))
    return answers
