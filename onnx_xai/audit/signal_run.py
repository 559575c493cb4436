"""``audit`` for a signal model: the signals audited by deletion and insertion over time
(:mod:`.signal_auditor`), and ``results.jsonl`` and ``report.html`` written as one set.

Signals are given as files (``.npy``, ``.csv``, ``.wav``, read as ``explain`` reads them:
:func:`onnx_xai.signals.read_signal`) or as :class:`onnx_xai.signals.Signal` values. The sanity checks
(model randomization, a random class) are not run for signals in this version; the report says so in
one line. As for the other kinds, nothing is written until every signal is done, and the files are
moved into ``out`` together (:func:`onnx_xai.support.files.commit_set`), replacing a previous audit's
set (its ``maps.npz`` or ``attributions.npz`` removed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..support.errors import InputError
from ..support.files import commit_set, output_folder
from .features import RANDOM
from .finish import KNOWN_OUTPUTS, json_lines
from .signal_auditor import SignalAudit, SignalAuditOptions, SignalAuditor, audit_signal_list

OUTPUTS = ("results.jsonl", "report.html")
NOT_RUN = "the sanity checks are not run for signals in this version"


def audit_signals(
    model: str,
    signals: Sequence,
    out: Path,
    opts: SignalAuditOptions | None = None,
    explainer_args: dict | None = None,
    progress: Callable | None = None,
    explainer=None,
    sample_rate: int | None = None,
) -> dict:
    """Audit ``signals`` on the signal model ``model``; returns the paths written, by name.

    Args:
        model: the ``.onnx`` file.
        signals: file paths (``.npy``, ``.csv``, ``.wav``) or :class:`onnx_xai.signals.Signal` values,
            each one signal in the model's layout without the batch axis.
        out: the output folder (created if missing).
        opts: methods, windows, baseline, class, seed (:class:`~.signal_auditor.SignalAuditOptions`).
        explainer_args: what the :class:`~onnx_xai.Explainer` made gets (threads, backend, names).
        progress: ``progress(total)`` returns a progress bar (``update``, ``close``).
        explainer: one already made on ``model`` with ``explainer_args``.
        sample_rate: WAV files resampled to this rate (None: as recorded).

    Raises:
        InputError: a model that takes no signal, a file that is not one or does not fit the model,
            an unknown method; nothing is written then.
    """
    from ..runtime import Explainer
    from ..signals.files import read_signal

    ex = explainer or Explainer(model, **dict(explainer_args or {}))
    auditor = SignalAuditor(ex, model, opts or SignalAuditOptions())
    signals = [signals] if isinstance(signals, (str, Path)) else list(signals)
    if not signals:
        raise InputError("give at least one signal")
    signals = [
        read_signal(str(s), auditor.layout, ex.input_shape, ex.input_dtype, sample_rate)
        if isinstance(s, (str, Path))
        else s
        for s in signals
    ]
    bar = progress(len(signals)) if progress else None
    try:
        audit = audit_signal_list(auditor, signals, bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return write_signal_outputs(Path(out), auditor, audit)


def write_signal_outputs(out: Path, auditor: SignalAuditor, audit: SignalAudit) -> dict:
    """``results.jsonl`` and ``report.html`` in ``out``, as one set."""
    from .report import render_signals

    out = output_folder(Path(out))
    lines = json_lines(audit.records, ascii_only=False)
    methods = list(dict.fromkeys(auditor.opts.methods))
    view = signal_view(audit, methods + [RANDOM], auditor.opts.report_signals)
    html = render_signals(
        auditor.model_facts(), methods, audit.records, view, {"randomization_skipped": NOT_RUN}
    )
    writers = {
        "results.jsonl": lambda path: path.write_text(lines, encoding="utf-8"),
        "report.html": lambda path: path.write_text(html, encoding="utf-8"),
    }
    commit_set(out, writers, KNOWN_OUTPUTS)
    return {name: str(out / name) for name in writers}


def signal_view(audit: SignalAudit, methods: list, limit: int) -> dict:
    """The first ``limit`` signals as the report shows them: per method its windows' scores as a strip
    of cells (red for the class and blue against it for signed methods, amber for the others, each
    against the signal's largest |score| for that method; none for the random baseline) and its
    figures."""
    from ..text.page import colour

    records: dict = {}
    for r in audit.records:
        records.setdefault(r["index"], {})[r["method"]] = r
    shown = []
    for i in range(min(limit, len(audit.signals))):
        mine = records[i]
        first = mine[methods[0]]
        rows = []
        for m in methods:
            record = mine[m]
            scores = np.asarray(record["window_scores"], np.float64)
            top = float(np.abs(scores).max()) if scores.size else 0.0
            cells = []
            for w, score in enumerate(scores if m != RANDOM else []):
                (red, green, blue), alpha = colour(float(score), top, record["signed"])
                cells.append({"background": f"rgba({red},{green},{blue},{alpha:.3f})", "score": float(score),
                              "start": record["window_starts"][w]})  # fmt: skip
            rows.append({"method": m, "record": record, "cells": cells, "baseline": m == RANDOM})
        facts = {
            k: first[k] for k in ("index", "file", "label", "target", "probability", "length", "windows")
        }
        shown.append(facts | {"methods": rows})
    return {"signals": shown, "total": len(audit.signals)}
