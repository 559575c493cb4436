"""Rows of a table read from a file: CSV (a header allowed), Parquet (through pyarrow) or ``.npy``.

A CSV's first line is its header when one of its cells is not a number; the columns are then named
by it, else ``x0, x1 ...``; Parquet columns are named by the file; an ``.npy`` holds a 2-D array.
The rows must have as many columns as the model's input (its last dimension, when the model fixes
it): a file with another count, or a cell that is not a number, is refused in one line naming the
column (and the row, for a cell). Read with ``text=True`` (for a model that takes some columns as
strings, :mod:`.feeds`), a column may hold text: its values are then NaN, and every cell is kept as
written (``cells``), so a category ``"1"`` stays ``"1"``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..support.errors import InputError

FORMATS = (".csv", ".parquet", ".npy")


@dataclass(frozen=True)
class Rows:
    """A table's rows (``values`` ``[N, F]`` float64) and its column names (``named``: from the file,
    else ``x0, x1 ...``)."""

    values: np.ndarray
    names: tuple[str, ...]
    named: bool = True
    cells: np.ndarray | None = None  # [N, F] str, each cell as written (read with text=True)
    text: tuple[str, ...] = ()  # the columns holding text (read with text=True)
    source: str = "the rows"  # where they were read from, for messages

    def column(self, name: str) -> int:
        return self.names.index(name)


def read_rows(
    path: str | Path, columns: int | None = None, names: tuple[str, ...] | None = None, text: bool = False
) -> Rows:
    """The rows of ``path``, checked against the ``columns`` the model takes (None: any) and, when
    ``names`` are given (another file's, the columns the model was explained with), against them;
    ``text``: columns may hold text (module docstring)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"{path}: rows are read from {', '.join(FORMATS)} files")
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    reader = {".csv": _csv, ".parquet": _parquet, ".npy": _npy}[path.suffix.lower()]
    rows = reader(path, text)
    if len(rows.values) == 0:
        raise InputError(f"{path} holds no rows")
    if columns is not None and rows.values.shape[1] != columns:
        raise InputError(f"{path} has {rows.values.shape[1]} columns; the model takes {columns}")
    if names is not None and rows.named and rows.names != names:
        missing = [n for n in names if n not in rows.names]
        if missing:
            raise InputError(f"{path} lacks the column {missing[0]!r} (columns: {', '.join(names)})")
        order = [rows.names.index(n) for n in names]
        cells = rows.cells[:, order] if rows.cells is not None else None
        rows = Rows(rows.values[:, order], names, True, cells, tuple(n for n in names if n in rows.text))
    return replace(rows, source=str(path))


def _csv(path: Path, text: bool) -> Rows:
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = [line for line in csv.reader(f) if line and any(cell.strip() for cell in line)]
    if not lines:
        raise InputError(f"{path} is empty")
    header = None if all(_is_number(cell) for cell in lines[0]) else [c.strip() for c in lines[0]]
    body = lines[1:] if header else lines
    width = len(header or lines[0])
    names = tuple(header) if header else _numbered(width)
    for r, line in enumerate(body):
        if len(line) != width:
            raise InputError(f"{path}: row {r + 1} has {len(line)} cells; the header has {width}")
    cells = np.array([[cell.strip() for cell in line] for line in body], dtype=str).reshape(len(body), width)
    values = np.empty((len(body), width))
    words = []
    for k in range(width):
        if text and not all(_is_number(cell) for cell in cells[:, k]):
            values[:, k], words = np.nan, words + [names[k]]
            continue
        for r, cell in enumerate(cells[:, k]):
            values[r, k] = _number(cell, path, names[k], r + 1)
    return Rows(values, names, header is not None, cells if text else None, tuple(words))


def _numbered(width: int) -> tuple[str, ...]:
    return tuple(f"x{k}" for k in range(width))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip().lower() in ("", "na", "null")
    return True


def _number(cell: str, path: Path, column: str, row: int) -> float:
    text = cell.strip()
    if text == "" or text.lower() in ("nan", "na", "null"):
        return float("nan")  # a missing value: tree ensembles route it, others refuse it later
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path}: column {column!r} holds {text!r} in row {row}, not a number") from None


def _parquet(path: Path, text: bool) -> Rows:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    columns, cells, words = [], [], []
    for name, column in zip(table.column_names, table.columns):
        found = column.to_numpy(zero_copy_only=False)
        cells.append(np.array(["" if v is None else str(v) for v in found], dtype=str))
        try:
            columns.append(np.asarray(found, np.float64))
        except (TypeError, ValueError):
            if not text:
                raise InputError(f"{path}: column {name!r} holds {column.type}, not numbers") from None
            columns.append(np.full(len(found), np.nan))
            words.append(name)
    kept = np.stack(cells, axis=1) if text else None
    return Rows(np.stack(columns, axis=1), tuple(table.column_names), True, kept, tuple(words))


def _npy(path: Path, text: bool) -> Rows:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if values.ndim != 2 or values.dtype.kind not in "fiub":
        raise InputError(f"{path} holds {values.dtype} {list(values.shape)}; want numbers [rows, columns]")
    return Rows(values.astype(np.float64), _numbered(values.shape[1]), named=False)
