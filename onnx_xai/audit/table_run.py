"""``audit`` for a table model: the rows audited (:mod:`.table_auditor`), the sanity checks on the first
rows, and ``results.jsonl``, ``attributions.npz`` and ``report.html`` written as one set.

The sanity checks are the photos' (:mod:`.sanity`) on the rows' attributions: cascading
randomization of what the model learned (:mod:`.learned`: initializer weights, a tree ensemble's
leaves from the last tree back, a linear model's coefficients), and, for a model with several
classes, a random class. A check that cannot run says why in one line, in the results and the
report. As for photos (:mod:`.finish`), nothing is written until every row is done, and the files are
moved into ``out`` together (:func:`onnx_xai.support.files.commit_set`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..support.files import commit_set, output_folder
from ..tables.rows import Rows
from .finish import KNOWN_OUTPUTS, attach_sanity, json_lines, save_npz
from .learned import NOTHING, learned_layers, randomized_learned
from .sanity import ATTRIBUTIONS, cascading_randomization, random_target_check
from .table_auditor import TableAudit, TableAuditOptions, TableAuditor, audit_rows

OUTPUTS = ("results.jsonl", "attributions.npz", "report.html")


def audit_table(
    model: str,
    rows: Rows,
    out: Path,
    opts: TableAuditOptions,
    explainer_args: dict | None = None,
    progress: Callable | None = None,
    explainer=None,
) -> dict:
    """Audit ``rows`` on the table ``model``; returns the paths written, by name.

    ``explainer_args`` go to every :class:`~onnx_xai.Explainer` made (threads, backend, input and
    output names); ``explainer``: one already made on ``model`` with them; ``progress(total)``
    returns a progress bar (``update``, ``close``).
    """
    from ..runtime import Explainer

    explainer_args = dict(explainer_args or {})
    auditor = TableAuditor(explainer or Explainer(model, **explainer_args), model, opts)
    steps = opts.randomization_steps + 1 if "randomization" in opts.sanity else 0
    bar = progress(len(rows.values) + steps) if progress else None
    try:
        audit = audit_rows(auditor, rows, bar.update if bar else None)
        sanity = table_sanity(auditor, audit, explainer_args, bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    attach_sanity(audit.done, sanity)
    return write_table_outputs(Path(out), auditor, audit, sanity)


def table_sanity(auditor: TableAuditor, audit: TableAudit, explainer_args: dict, tick=None) -> dict:
    """The sanity checks on the first ``sanity_rows`` rows (module docstring)."""
    opts, ex = auditor.opts, auditor.ex
    count = min(opts.sanity_rows, len(audit.done))
    if not opts.sanity or count == 0:
        return {}
    x = audit.rows.values[:count].astype(ex.input_dtype)
    targets = audit.targets[:count]
    original = {m: audit.raws[m][:count] for m in opts.methods}
    result: dict = {"files": [r.file for r in audit.done[:count]]}
    if "random_target" in opts.sanity:
        classes = ex.num_classes or int(ex.predict(x[:1]).shape[-1])
        if classes < 2:
            result["random_target_skipped"] = "the model has one output: there is no other class to explain"
        elif classes == 2 and _one_score(ex, np.concatenate([x, auditor.background.astype(x.dtype)])):
            result["random_target_skipped"] = (
                "the two classes' scores add up to a constant (class 0's is -s or 1 - s of class 1's): "
                "one class's attributions are the other's, negated"
            )
        else:
            noise_seed = opts.protocol.noise_seed
            others, methods = random_target_check(
                ex, x, opts.methods, targets, original, classes, noise_seed, auditor.options, ATTRIBUTIONS
            )
            result["random_target"] = {"targets": others.tolist(), "methods": methods}
    if "randomization" in opts.sanity:
        result |= _randomization(auditor, x, targets, original, explainer_args, tick)
    return result


def _one_score(ex, x: np.ndarray) -> bool:
    """Whether a two-class model's class scores add up to the same constant on every row of ``x``."""
    first, second = ex.scores(x, 0), ex.scores(x, 1)
    total, scale = first + second, max(1.0, float(np.abs(first).max()), float(np.abs(second).max()))
    return float(np.ptp(total)) <= 1e-5 * scale


def _randomization(auditor: TableAuditor, x, targets, original: dict, explainer_args: dict, tick) -> dict:
    """Cascading randomization of the model's learned values, or why it cannot run."""
    from ..graph.model_io import load_model
    from ..runtime import Explainer

    opts = auditor.opts
    model = load_model(auditor.model_path)[0]
    if any(p.key == "onnx_xai" for p in model.metadata_props):
        return {"randomization_skipped": "a rewritten model: give the original to re-draw its weights"}
    layers = learned_layers(model)
    if not layers:
        return {"randomization_skipped": NOTHING}
    steps = cascading_randomization(
        model, lambda m: Explainer(m, **explainer_args), x, opts.methods, targets, original,
        opts.randomization_steps, opts.protocol.noise_seed, auditor.options, tick,
        likeness=ATTRIBUTIONS, layers=layers, randomize=randomized_learned,
    )  # fmt: skip
    return {"randomization": steps, "randomized": _what(layers)}


def _what(layers: list) -> str:
    """What the cascade re-draws, in a few words for the report."""
    trees = sum(layer.op_type.startswith("TreeEnsemble") for layer in layers)
    if trees == len(layers):
        return (
            f"the leaf values of the {trees} trees (the last tree first; each tree's from its own mean "
            "and standard deviation, its splits kept)"
        )
    kept = ", a tree's splits kept" if trees else ""
    return f"the learned values of {len(layers)} layers (each from its own mean and standard deviation{kept})"


def write_table_outputs(out: Path, auditor: TableAuditor, audit: TableAudit, sanity: dict) -> dict:
    """``results.jsonl``, ``attributions.npz`` and ``report.html`` in ``out``, as one set."""
    from .report import render_table

    out = output_folder(Path(out))
    records = [r for row in audit.done for r in row.records]
    lines = json_lines(records)
    html = render_table(auditor.model_facts(audit.rows), auditor.opts, audit, records, sanity)
    writers = {
        "results.jsonl": lambda path: path.write_text(lines, encoding="utf-8"),
        "attributions.npz": lambda path: save_npz(path, attribution_arrays(audit)),
        "report.html": lambda path: path.write_text(html, encoding="utf-8"),
    }
    commit_set(out, writers, KNOWN_OUTPUTS)
    return {name: str(out / name) for name in writers}


def attribution_arrays(audit: TableAudit) -> dict:
    """What ``attributions.npz`` holds: the rows, their feature names and classes, and per method
    (``baseline_random`` included) ``<method>/raw`` ``[N, F]`` and, where it has one, ``<method>/base``."""
    arrays = {
        "rows": audit.rows.values,
        "features": np.array(audit.rows.names),
        "targets": audit.targets,
    }
    for method, raw in audit.raws.items():
        arrays[f"{method}/raw"] = raw.astype(np.float32)
    for method, base in audit.bases.items():
        arrays[f"{method}/base"] = base.astype(np.float32)
    return arrays
