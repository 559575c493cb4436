"""The table auditor: a table's rows in, one record per row and method out, with the attributions.

Every row is explained with each method in one ``explain_many`` (the methods that take
``background`` get the background rows, as ``explain`` gives them), a random attribution is added
beside the methods (:data:`.features.RANDOM`, a random ranking of the features), and every
attribution is scored by its deletion and insertion curves over features, removed to the background
rows (:mod:`.features`). The photo auditor (:mod:`.auditor`) is the same shape for photos; both finish
with the same sanity checks (:mod:`.sanity`) and report (:mod:`.report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..runtime.methods import get
from ..support.errors import InputError
from ..tables.rows import Rows
from .auditor import SANITY
from .curves import Protocol, ranking
from .facts import model_facts
from .features import RANDOM, RowScorer, counts, ends, feature_curves, random_attribution

TABLE_METRICS = ("deletion", "insertion")
TOP_FEATURES = 10  # the most relevant features each record names
SCORES = {
    "logit": "the output itself",
    "pre-softmax": "the logit before the Softmax",
    "pre-sigmoid": "the logit before the Sigmoid",
    "pre-probit": "the margin before the PROBIT",
    "margin": "the trees' margin before their post-transform",
}


@dataclass
class TableAuditOptions:
    """What to audit on a table and how (the ``audit`` command's flags for a table model)."""

    background: Rows  # what removed features are replaced by, and what the SHAP methods draw from
    methods: Sequence[str] = ("kernel_shap",)
    target: int | None = None  # a class index; None: each row's top-1 class
    labels: list[str] = field(default_factory=list)
    noise_seed: int = 0  # tie order, the random baseline, re-drawn weights, the methods' noise
    metrics: Sequence[str] = TABLE_METRICS
    sanity: Sequence[str] = SANITY
    protocol: Protocol = field(default_factory=Protocol)  # its steps and noise_seed apply to tables
    randomization_steps: int = 8
    sanity_rows: int = 8
    batch_rows: int = 8192  # perturbed rows per run of the model


class TableAuditor:
    """One Explainer of a table model and what the audit needs of it: the scorer, the methods' options."""

    def __init__(self, explainer, model_path: str, opts: TableAuditOptions):
        if explainer.kind != "table":
            raise InputError(f"this audit is for tables; the model's input is a {explainer.kind}")
        unknown = sorted(set(opts.metrics) - set(TABLE_METRICS))
        if unknown:
            raise InputError(f"{', '.join(unknown)} has no meaning for a table; metrics: deletion, insertion")
        self.ex, self.model_path, self.opts = explainer, model_path, opts
        self.scorer = RowScorer(explainer, opts.batch_rows)
        self.background = opts.background.values
        self.options = method_options(
            opts.methods, self.background.astype(explainer.input_dtype), opts.noise_seed
        )

    def model_facts(self, rows: Rows) -> dict:
        kind = self.ex.record.score_kind
        curve = f"mean score ({SCORES.get(kind, kind)}) over the background"
        features = {"features": len(rows.names), "background_rows": len(self.background)}
        return model_facts(self.ex, self.model_path, curve, **features)


def method_options(methods: Sequence[str], background: np.ndarray, noise_seed: int) -> dict:
    """``background`` and ``noise_seed`` for the methods that take them."""
    taken = {name for m in methods for name in get(m).Options.__dataclass_fields__}
    found = {"background": background, "noise_seed": noise_seed}
    return {k: v for k, v in found.items() if k in taken}


@dataclass
class RowAudit:
    """One row's records (one per method, the random baseline's too); ``file`` names the row
    (``row 3``) where the sanity results name their samples."""

    file: str
    records: list


@dataclass
class TableAudit:
    """The audited rows: their values, the explained classes, the records and the attributions."""

    rows: Rows
    targets: np.ndarray
    done: list  # RowAudit per row
    raws: dict  # method -> [N, F] float64 (the random baseline's too)
    bases: dict  # method -> [N], for the methods that have a base


def audit_rows(auditor: TableAuditor, rows: Rows, tick=None) -> TableAudit:
    """Explain every row with each method and score each attribution by its curves (module docstring);
    ``tick(n)`` is told of each ``n`` rows done."""
    opts, ex = auditor.opts, auditor.ex
    x = rows.values.astype(ex.input_dtype)
    results = ex.explain_many(x, list(opts.methods), objective=opts.target, **auditor.options)
    first = results[opts.methods[0]]
    targets = np.asarray(first.targets, np.int64)
    raws = {m: np.asarray(r.raw, np.float64).reshape(len(x), -1) for m, r in results.items()}
    raws[RANDOM] = np.stack(
        [random_attribution(x.shape[1], opts.protocol.noise_seed, i) for i in range(len(x))]
    )
    bases = {m: np.asarray(r.base, np.float64).reshape(-1) for m, r in results.items() if r.base is not None}
    done = []
    for i in range(len(x)):
        facts = {"row": i, "target": int(targets[i]), "score": float(first.scores[i])}
        scored = ends(auditor.scorer, rows.values[i], auditor.background, facts["target"])
        records = [
            _record(auditor, rows, facts | {"method": m}, raws[m][i], bases.get(m), scored) for m in raws
        ]
        done.append(RowAudit(f"row {i}", records))
        if tick is not None:
            tick(1)
    return TableAudit(rows, targets, done, raws, bases)


def _record(
    auditor: TableAuditor, rows: Rows, facts: dict, attribution: np.ndarray, base, scored: tuple
) -> dict:
    """One row x method record: the facts, the most relevant features, the curves asked for."""
    opts, i, target = auditor.opts, facts["row"], facts["target"]
    labels = opts.labels
    order = ranking(np.abs(attribution), opts.protocol.noise_seed)[:TOP_FEATURES]
    record = {
        "row": i,
        "method": facts["method"],
        "target": target,
        "label": labels[target] if 0 <= target < len(labels) else str(target),
        "score": facts["score"],
        "top_features": [rows.names[k] for k in order],
    }
    if base is not None:
        record["base"] = float(base[i])
    if set(opts.metrics) & {"deletion", "insertion"}:
        steps, noise_seed = opts.protocol.steps, opts.protocol.noise_seed
        curves = feature_curves(
            auditor.scorer, rows.values[i], auditor.background, attribution, target, steps, noise_seed, scored
        )
        for metric in ("deletion", "insertion"):
            if metric in opts.metrics:
                record[f"{metric}_auc"] = curves[f"{metric}_auc"]
                record[f"{metric}_curve"] = curves[f"{metric}_curve"]
        record["fractions"] = curves["fractions"]
    record["protocol"] = describe(auditor, len(rows.names))
    return record


def describe(auditor: TableAuditor, features: int) -> dict:
    """The curves' protocol, written with every record."""
    protocol = auditor.opts.protocol
    return {
        "steps": len(counts(features, protocol.steps)) - 1,
        "ranking": "|attribution|, ties in a seeded random order",
        "removed_to": "background rows",
        "background_rows": len(auditor.background),
        "score": auditor.ex.record.score_kind,
        "noise_seed": protocol.noise_seed,
    }
