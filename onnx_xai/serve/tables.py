"""Serving a table model: rows in, each row's prediction and its attributions per column out.

A request's instances are rows: lists of values in the model's column order, or objects keyed by
column name (``{"age": 41, "income": 3.2e4}``; the names are the background file's header, or
``x0, x1 ...``); a missing, unknown or non-numeric column is a one-line 400. A table split over
several inputs (scikit-learn's converters write a data frame so: one input per column, strings
included) takes its columns as :mod:`onnx_xai.tables.feeds` names them (an input's name, or
``name[j]`` for an input of several columns), text for a string input and numbers for the others;
the background file is read the same way, and KernelSHAP explains every column of every input.
``:explain`` answers, per row, one entry per method: the class explained (target, label, score),
the attribution of each column by name, and the base where the method has one (SHAP's expected
value), the methods that take ``background`` given the server's ``--background`` rows. Costs and
deadlines are those of photos (:mod:`.admission`): KernelSHAP's coalitions times the background rows
count as runs. The V2 protocol's infer takes a split table as one tensor per input, by name.
"""

from __future__ import annotations

import math

import numpy as np

from ..runtime.inputs import ONNXRUNTIME_TYPES
from ..runtime.methods import get
from ..tables.feeds import TableInputs
from ..tables.rows import Rows, read_rows
from .requests import BadRequest, Instance


class TableFacts:
    """A served table model's columns (names in order) and background rows (an array ``[M, F]``,
    every input by name for a split table, or None), read once at load."""

    def __init__(self, ex, background_path: str | None):
        self.inputs, self.explained = TableInputs.of(ex), ex.input_name
        self.dtype = np.dtype(ex.input_dtype)
        self.background: np.ndarray | dict | None = None
        if self.inputs.single:
            width = ex.input_shape[-1]
            fixed = width if isinstance(width, int) else None
            self.names = tuple(f"x{k}" for k in range(fixed or 0))
            if background_path is not None:
                found = read_rows(background_path, fixed)
                self.names, self.background = found.names, found.values
            return
        self.names = tuple(c for names in self.inputs.columns.values() for c in names)
        if background_path is not None:
            self.background = self.inputs.feeds(self.inputs.read(background_path, self.names))

    def read(self, payload: dict, max_instances: int) -> list[Instance]:
        """The request's rows as model inputs, one instance each."""
        found = payload.get("instances", payload.get("inputs"))
        if not isinstance(found, list) or not found:
            raise BadRequest('the body needs "instances": a non-empty list of rows')
        if len(found) > max_instances:
            raise BadRequest(f"{len(found)} instances in one request; at most {max_instances}")
        if self.inputs.single:
            return [Instance(_row(item, k, self.names, self.dtype)) for k, item in enumerate(found)]
        rows = _split_rows(found, self.names)
        self._refuse_text(rows)
        feeds = self.inputs.feeds(rows)
        assert isinstance(feeds, dict)  # several inputs: every one by name
        return self._instances(feeds)

    def _refuse_text(self, rows: Rows) -> None:
        """A cell that is not a number, in a column a number input reads: one line naming both."""
        for name, columns in self.inputs.columns.items():
            if self.inputs.types[name] == "tensor(string)":
                continue
            for column in (c for c in columns if c in rows.text):
                assert rows.cells is not None
                k = next(k for k, v in enumerate(rows.values[:, rows.column(column)]) if not np.isfinite(v))
                raise BadRequest(
                    f"instance {k}: column {column!r} holds {rows.cells[k, rows.column(column)]!r}, "
                    f"not a number (the model's input {name!r} takes numbers)"
                )

    def read_tensors(self, given: dict[str, np.ndarray], max_instances: int) -> list[Instance]:
        """A split table's rows from the V2 protocol's tensors, one per input by name."""
        wanted = list(self.inputs.columns)
        if sorted(given) != sorted(wanted):
            said = ", ".join(given) or "none"
            raise BadRequest(
                f"the model takes the input tensors {', '.join(wanted)}; the request gives {said}"
            )
        feeds, count = {}, len(np.atleast_1d(next(iter(given.values()))))
        for name in wanted:
            value = np.asarray(given[name])
            value = value[:, None] if value.ndim == 1 else value
            width = len(self.inputs.columns[name])
            if value.ndim != 2 or value.shape != (count, width):
                raise BadRequest(f"input {name!r} must be [{count}, {width}], not {list(value.shape)}")
            feeds[name] = _typed(value, self.inputs.types[name], name)
        if count > max_instances:
            raise BadRequest(f"{count} instances in one request; at most {max_instances}")
        return self._instances(feeds)

    def _instances(self, feeds: dict[str, np.ndarray]) -> list[Instance]:
        count = len(feeds[self.explained])
        return [
            Instance(
                feeds[self.explained][k : k + 1],
                others={n: v[k : k + 1] for n, v in feeds.items() if n != self.explained},
            )
            for k in range(count)
        ]


def _typed(value: np.ndarray, kind: str, name: str) -> np.ndarray:
    """A V2 tensor as the input's element type: text (bytes decoded) or numbers."""
    if kind == "tensor(string)":
        decode = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])
        return decode(value)
    try:
        return value.astype(ONNXRUNTIME_TYPES.get(kind, np.float32))
    except (TypeError, ValueError):
        raise BadRequest(f"input {name!r} takes numbers ({kind})") from None


def _in_order(item, k: int, names: tuple[str, ...]):
    """An instance given as an object by column name, as a row in the columns' order (any other
    instance as it is)."""
    if not isinstance(item, dict):
        return item
    unknown = sorted(set(item) - set(names))
    missing = [n for n in names if n not in item]
    if unknown or missing:
        said = f"unknown column(s) {unknown}" if unknown else f"no value for column {missing[0]!r}"
        raise BadRequest(f"instance {k}: {said}; columns: {', '.join(names)}")
    return [item[n] for n in names]


def _row(item, k: int, names: tuple[str, ...], dtype: np.dtype) -> np.ndarray:
    item = _in_order(item, k, names)
    if not isinstance(item, list) or len(item) != len(names):
        raise BadRequest(f"instance {k} must be a row of {len(names)} numbers (or an object by column name)")
    values = []
    for name, value in zip(names, item):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadRequest(f"instance {k}: column {name!r} holds {value!r}, not a finite number")
        values.append(value)
    return np.asarray([values], dtype=dtype if dtype.kind == "f" else np.float32)


def _split_rows(found: list, names: tuple[str, ...]) -> Rows:
    """A split table's instances as :class:`~onnx_xai.tables.rows.Rows` (every cell as given, text
    kept), for :meth:`~onnx_xai.tables.feeds.TableInputs.feeds` to convert per input."""
    cells, values, text = [], [], set()
    for k, item in enumerate(found):
        item = _in_order(item, k, names)
        if not isinstance(item, list) or len(item) != len(names):
            raise BadRequest(
                f"instance {k} must be a row of {len(names)} values (or an object by column name)"
            )
        row = []
        for name, value in zip(names, item):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise BadRequest(f"instance {k}: column {name!r} holds {value!r}, not a number or text")
            number = value if not isinstance(value, str) else _number(value)
            if number is None or not math.isfinite(number):
                text.add(name)
            row.append(np.nan if number is None else number)
        values.append(row)
        cells.append([str(v) for v in item])
    return Rows(
        np.asarray(values, np.float64), names, True, np.asarray(cells, dtype=object), tuple(sorted(text)),
        "the request's instances",
    )  # fmt: skip


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def explain_rows(ex, batch: np.ndarray, params, facts: TableFacts, labels, held: dict) -> list:
    """Each row's output and its entries (module docstring); ``held``: a split table's other inputs."""
    options: dict = {}
    taken = {name for m in params.methods for name in get(m).Options.__dataclass_fields__}
    if "background" in taken and facts.background is not None:
        given = facts.background
        options["background"] = given.astype(batch.dtype) if isinstance(given, np.ndarray) else given
    results = ex.explain_many(
        batch, list(params.methods), objective=params.target, extra_inputs=held, **options
    )
    outputs = next(iter(results.values())).output
    outputs = outputs if outputs is not None and len(outputs) == len(batch) else ex.predict(batch, **held)
    names = facts.names if facts.inputs.single else None
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
                "attributions": dict(zip(_named(r, names, ex.input_name), map(float, np.ravel(r.raw[i])))),
            }
            if r.base is not None:
                entry["base"] = float(np.ravel(r.base)[i])
            entries.append(entry)
        answers.append((outputs[i], entries))
    return answers


def _named(r, names: tuple[str, ...] | None, explained: str) -> list[str]:
    """An attribution's column names: the table's, the explanation's own (KernelSHAP over every
    input of a split table), or the explained input's columns."""
    if names is not None:
        return list(names)
    if r.features is not None:
        return list(r.features)
    width = r.raw.shape[-1] if r.raw.ndim == 2 else 1
    return [explained] if width == 1 else [f"{explained}[{j}]" for j in range(width)]
