"""Audits: faithfulness metrics, sanity checks and a self-contained HTML report for an ONNX classifier.

``onnx_xai.audit.audit(model, photos, out, AuditOptions(...))`` explains photos with the methods
asked for, scores every map (deletion, insertion, ROAD; the pointing game and box IoU against given
boxes) beside baseline maps that know nothing of the model, runs the sanity checks (cascading
randomization of the ONNX file's weights, a random class), and writes ``results.jsonl``,
``maps.npz`` and ``report.html``. A table model's rows are audited the same way by
:func:`.table_run.audit_table` (curves over features removed to background rows, a random ranking
beside the methods, the randomization of weights, trees and linear models: ``attributions.npz`` in
place of ``maps.npz``), and a text encoder's texts by :func:`.text_run.audit_texts` (ERASER's
comprehensiveness and sufficiency over bins of the top tokens, beside a random ranking). The metric
functions are usable on their own (:mod:`.curves`,
:mod:`.features`, :mod:`.localization`, :mod:`.similarity`).
"""

from .auditor import METRICS, SANITY, AuditOptions
from .curves import Protocol, Scorer, deletion, insertion, road

__all__ = [
    "METRICS",
    "SANITY",
    "AuditOptions",
    "Protocol",
    "Scorer",
    "audit",
    "deletion",
    "insertion",
    "road",
]


def __getattr__(name: str):
    if name == "audit":
        from .run import audit

        return audit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
