"""A table's columns as the model's inputs, and the names its attributions are given under.

A model with one input takes every column of the file, in order (``[N, F]``). A model that takes a
table split over several inputs (scikit-learn's converters write a data frame so: one input per
column, strings included) takes each input from the file's column of the same name, or, for an
input of ``k`` columns, from the columns ``name[0] ... name[k-1]``; each converted to the input's
element type: text for a string input (the cell as written), numbers for a numeric one (a cell that
is not one is refused in one line naming the column and row). Columns no input reads are reported,
never dropped silently. An attribution's columns are named as the explanation says
(``Explanation.features``, KernelSHAP over every input), else by the explained input's columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.inputs import ONNXRUNTIME_TYPES
from ..support.errors import InputError
from .rows import Rows, read_rows


@dataclass(frozen=True)
class TableInputs:
    """Where each of the model's inputs is in a file's columns (names, per input, in order)."""

    columns: dict[str, tuple[str, ...]]  # input name -> the columns it takes
    types: dict[str, str]  # input name -> its element type as onnxruntime says it
    single: bool  # one input taking every column
    width: int | None = None  # the one input's columns, when the model fixes them

    @classmethod
    def of(cls, ex) -> TableInputs:
        """The model's table inputs (column names are fixed when a file is read: :meth:`for_rows`)."""
        inputs = ex.inputs
        types = {name: kind for name, (_, kind) in inputs.items()}
        if len(inputs) == 1:
            width = next(iter(inputs.values()))[0][-1]
            return cls({}, types, True, width if isinstance(width, int) else None)
        return cls({name: _columns(name, shape) for name, (shape, _) in inputs.items()}, types, False)

    def read(self, path, names: tuple[str, ...] | None = None) -> Rows:
        """A file's rows for this model: checked against the one input's width, or, for several
        inputs, with text allowed (a string input's column); ``names``: put in that order."""
        if self.single:
            return read_rows(path, self.width, names)
        return read_rows(path, None, names, text=True)

    def unread(self, rows: Rows) -> list[str]:
        """The file's columns no input takes (none for a one-input model)."""
        used = {c for names in self.columns.values() for c in names}
        return [] if self.single else [n for n in rows.names if n not in used]

    def read_like(self, path, rows: Rows) -> Rows:
        """Another file's rows (a background) with the columns of ``rows`` the model reads, in order."""
        unread = self.unread(rows)
        return self.read(path, tuple(n for n in rows.names if n not in unread))

    def feeds(self, rows: Rows) -> np.ndarray | dict[str, np.ndarray]:
        """The rows as the model's inputs: one array, or every input by name (module docstring)."""
        if self.single:
            kind = next(iter(self.types.values()))
            return rows.values.astype(ONNXRUNTIME_TYPES.get(kind, np.float32))
        source = rows.source
        if not rows.named:
            raise InputError(
                f"{source} has no column names, and the model takes several inputs "
                f"({', '.join(self.columns)}): give a CSV or Parquet file with a header"
            )
        return {name: self._input(name, rows, source) for name in self.columns}

    def _input(self, name: str, rows: Rows, source: str) -> np.ndarray:
        wanted = self.columns[name]
        missing = [c for c in wanted if c not in rows.names]
        if missing:
            raise InputError(
                f"{source} has no column {missing[0]!r} for the model's input {name!r} "
                f"(it takes: {', '.join(c for cols in self.columns.values() for c in cols)})"
            )
        index = [rows.column(c) for c in wanted]
        kind = self.types[name]
        if kind == "tensor(string)":
            if rows.cells is None:
                raise InputError(
                    f"{source}: the model's input {name!r} takes text; the file holds numbers only"
                )
            return np.ascontiguousarray(rows.cells[:, index]).astype(object)
        for column in wanted:
            if column in rows.text:
                _refuse_text(rows, column, name, source)
        dtype = ONNXRUNTIME_TYPES.get(kind)
        if dtype is None:
            raise InputError(f"the model's input {name!r} is {kind}: a table's columns cannot fill it")
        values = rows.values[:, index]
        if np.dtype(dtype).kind in "iu":
            if not np.isfinite(values).all() or (values != np.round(values)).any():
                raise InputError(f"{source}: the model's input {name!r} takes whole numbers")
        return values.astype(dtype)


def feature_names(ex, rows: Rows, found) -> list[str]:
    """The names of an explanation's columns: its own (``features``), else the explained input's."""
    if found.features is not None:
        return list(found.features)
    shape = ex.inputs[ex.input_name][0]
    if len(ex.inputs) == 1:
        return list(rows.names)
    return list(_columns(ex.input_name, shape))


def feature_values(rows: Rows, names: list[str]) -> np.ndarray:
    """Each row's value of the columns ``names`` (NaN for text and for a name not in the file)."""
    found = np.full((len(rows.values), len(names)), np.nan)
    for k, name in enumerate(names):
        if name in rows.names:
            found[:, k] = rows.values[:, rows.column(name)]
    return found


def _columns(name: str, shape) -> tuple[str, ...]:
    width = shape[-1] if len(shape) == 2 else 1
    if len(shape) > 2:
        raise InputError(
            f"the model's input {name!r} has shape {list(shape)}: a table's inputs are [N, columns]"
        )
    if not isinstance(width, int) or width == 1:
        return (name,)
    return tuple(f"{name}[{j}]" for j in range(width))


def _refuse_text(rows: Rows, column: str, name: str, source: str) -> None:
    assert rows.cells is not None
    cells = rows.cells[:, rows.column(column)]
    row = next(r for r, cell in enumerate(cells) if not _number(cell))
    raise InputError(
        f"{source}: column {column!r} holds {str(cells[row])!r} in row {row + 1}, not a number "
        f"(the model's input {name!r} takes numbers)"
    )


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.lower() in ("", "na", "null")
    return True
