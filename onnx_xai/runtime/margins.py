"""A tree ensemble's score in margin space: the trees' sum before their post-transform.

When a model's explained output comes from a tree ensemble (the record's score kind ``margin``), its
score for class ``t`` is the ensemble's margin for that class, computed from the trees' attributes
(:class:`onnx_xai.graph.trees.TreeModel`, held to onnxruntime's own arithmetic by the tests), as
SHAP's ``TreeExplainer`` explains a model's ``raw`` output: a log-odds before a LOGISTIC, the class
scores before a SOFTMAX, the average of the trees' values for a random forest (whose output is that
average). A two-class ensemble that keeps one margin ``s`` for class 1 gives class 0 ``-s`` (or, for
a random forest writing ``[1 - s, s]``, ``1 - s``), the score onnxruntime writes for it before any
post-transform. Reading the ensemble imports ``onnx``; a model whose trees cannot be mapped back to
its input's columns keeps the score the graph computes, and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..support.errors import InputError, ModelError


class TreeScores:
    """The margins of the tree ensemble behind a model's output (module docstring)."""

    def __init__(self, tree):
        self.tree = tree

    @classmethod
    def read(cls, model, output: str) -> tuple[TreeScores | None, str]:
        """The ensemble behind ``output`` of ``model`` (a path, bytes or proto), or None and why."""
        from ..graph.model_io import load_model
        from ..graph.trees import read_ensemble

        proto, _ = load_model(model)
        try:
            return cls(read_ensemble(proto, output)), ""
        except ModelError as exc:
            return None, str(exc)

    def column(self, target: int) -> tuple[int, float, float]:
        """Class ``target``'s margin as ``sign * margins[:, column] + offset``."""
        scores = self.tree.scores
        if target in scores.classes:
            return scores.classes.index(target), 1.0, 0.0
        if scores.binary is not None and target == 0 and scores.classes == (1,):
            return 0, -1.0, 1.0 if scores.binary.startswith("[1 - s") else 0.0
        raise InputError(f"class {target} has no margin in this ensemble (its classes: {scores.classes})")

    def scores(self, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each row's margin for its class ``targets[i]`` (float64)."""
        margins = self.tree.margins(x)
        found = np.empty(len(x))
        for t in np.unique(targets):
            column, sign, offset = self.column(int(t))
            rows = targets == t
            found[rows] = sign * margins[rows, column] + offset
        return found


class EnsembleMargins:
    """The margins of the ensemble behind a model's explained output, read on first use: None for a
    model whose score is not a margin, or whose trees cannot be read (then :meth:`note` says why)."""

    def __init__(self, source, record: Callable[[], Any]):
        self._source, self._record = source, record  # the model, and its rewrite record when asked
        self._read: tuple[TreeScores | None, str] | None = None

    def get(self) -> TreeScores | None:
        if not self._wanted:
            return None
        if self._read is None:
            self._read = TreeScores.read(self._source, self._record().output)
        return self._read[0]

    @property
    def _wanted(self) -> bool:
        return self._record().score_kind == "margin"

    def required(self) -> TreeScores:
        """The margins, or an error saying why the trees cannot be read (one line)."""
        found = self.get()
        if found is None:
            raise InputError(f"the trees of this model cannot be read: {self._why()}")
        return found

    def score_kind(self) -> str:
        """The score kind explained: the record's, or ``output`` where the margin cannot be read."""
        return "output" if self._wanted and self.get() is None else self._record().score_kind

    def note(self) -> str | None:
        """Why the score is the ensemble's output as given, not its margin (None when it is the margin)."""
        if not self._wanted or self.get() is not None:
            return None
        return f"scored on the ensemble's output as given (post-transform included): {self._why()}"

    def _why(self) -> str:
        return self._read[1] if self._read is not None else ""
