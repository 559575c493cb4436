"""How ``onnx-xai audit`` audits a table's rows and a text encoder's texts (the photos' path is
:mod:`.audit`'s own): their flags made into :class:`~onnx_xai.audit.table_auditor.TableAuditOptions`
or :class:`~onnx_xai.audit.text_auditor.TextAuditOptions`, the run with a progress bar, and the
summary every audit prints: one line per method with its mean of each metric, and the paths
written. A photo's or a table's flag given to a text encoder is a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..support.errors import InputError
from .options import UsageError
from .text_options import check_text_usage, given_texts

SUMMARY_KEYS = ("deletion_auc", "insertion_auc", "road", "pointing_hit", "box_iou", "comprehensiveness",
                "sufficiency", "random_target_spearman")  # fmt: skip
NOT_FOR_TEXTS = tuple(
    (flag[2:].replace("-", "_"), flag)
    for flag in (
        "--background", "--boxes", "--metrics", "--sanity", "--randomization-steps", "--sanity-photos",
        "--curve-steps", "--deletion-fill", "--insertion-start", "--fill-value", "--blur-sigma",
        "--road-fractions", "--preset", "--mean", "--std", "--crop", "--fit", "--size", "--engine",
        "--address", "--actors", "--cpus-per-actor", "--target-layer",
    )
)  # fmt: skip


def bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="audit", disable=not sys.stderr.isatty(), file=sys.stderr)


def run_table(args: argparse.Namespace, ex, explainer_args: dict) -> int:
    """A table model's rows audited (:mod:`onnx_xai.audit.table_run`)."""
    from ..audit.table_run import audit_table

    opts, rows = _table_options(args, ex)
    explainer_args = {k: v for k, v in explainer_args.items() if k != "target_layer"}
    written = audit_table(args.model, rows, Path(args.out), opts, explainer_args, bar, ex)
    print(summary_lines(written["results.jsonl"]))
    print("wrote " + ", ".join(written.values()))
    return 0


def run_text(args: argparse.Namespace, ex, explainer_args: dict) -> int:
    """A text encoder's texts audited (:mod:`onnx_xai.audit.text_run`)."""
    from ..audit.text_auditor import TEXT_BINS, TEXT_METHODS, TextAuditOptions
    from ..audit.text_run import audit_texts
    from ..objectives.labels import parse_target, read_labels
    from ..text.explain import class_names
    from ..text.tokenizer import TextTokenizer

    check_text_usage(args, ex, NOT_FOR_TEXTS)
    texts = given_texts(args)
    tokenizer = TextTokenizer.load(args.tokenizer or args.model)
    labels = read_labels(args.labels, ex.num_classes) if args.labels else class_names(ex, tokenizer)
    if not args.methods:
        print(f"methods: {' '.join(TEXT_METHODS)} (a text's default; --methods to choose)")
    opts = TextAuditOptions(
        methods=list(dict.fromkeys(args.methods or TEXT_METHODS)),
        bins=sorted(set(args.bins or TEXT_BINS)),
        target=parse_target(args.target, labels, ex.num_classes),
        labels=labels,
        noise_seed=args.noise_seed,
        batch_size=args.batch_size,
        copies_per_run=16 * args.batch_size,
        report_texts=args.report_photos,
    )
    explainer_args = {k: v for k, v in explainer_args.items() if k != "target_layer"}
    written = audit_texts(args.model, texts, Path(args.out), opts, tokenizer, explainer_args, bar, ex)
    print(summary_lines(written["results.jsonl"]))
    print("wrote " + ", ".join(written.values()))
    return 0


def _table_options(args: argparse.Namespace, ex):
    """The :class:`~onnx_xai.audit.table_auditor.TableAuditOptions` the flags say, and the rows."""
    from ..audit.curves import Protocol
    from ..audit.table_auditor import TABLE_METRICS, TableAuditOptions
    from ..objectives.labels import parse_target, read_labels
    from ..tables.rows import read_rows

    if len(args.images) != 1:
        raise UsageError("a table model audits the rows of one file (.csv, .parquet or .npy)")
    if len(ex.inputs) > 1:
        raise InputError(
            f"this table model takes its columns as {len(ex.inputs)} inputs ({', '.join(ex.inputs)}): "
            "auditing such a model is not supported yet; explain its rows with onnx-xai explain"
        )
    if not args.background:
        raise UsageError(
            "a table audit needs --background ROWS: a removed feature is replaced by the background "
            "rows' values (and the SHAP methods draw from them)"
        )
    photo_only = [
        f for f, given in (("--boxes", args.boxes), ("--engine ray", args.engine == "ray")) if given
    ]
    if photo_only or "road" in (args.metrics or []):
        raise UsageError(
            f"{(photo_only or ['--metrics road'])[0]} is for photos; a table is audited here with "
            "--metrics deletion insertion"
        )
    columns = ex.input_shape[-1] if isinstance(ex.input_shape[-1], int) else None
    rows = read_rows(args.images[0], columns)
    background = read_rows(args.background, columns, rows.names)
    labels = read_labels(args.labels, ex.num_classes, ex.metadata) if ex.num_classes else []
    opts = TableAuditOptions(
        background=background,
        methods=list(dict.fromkeys(args.methods)) if args.methods else _table_methods(ex),
        target=parse_target(args.target, labels, ex.num_classes) if ex.num_classes else None,
        labels=labels,
        noise_seed=args.noise_seed,
        metrics=list(dict.fromkeys(args.metrics or TABLE_METRICS)),
        sanity=[s for s in args.sanity if s != "none"],
        protocol=Protocol(steps=args.curve_steps, noise_seed=args.noise_seed),
        randomization_steps=args.randomization_steps,
        sanity_rows=args.sanity_photos,
    )
    return opts, rows


def _table_methods(ex) -> list[str]:
    """The methods a table is audited with when none is named (:mod:`onnx_xai.tables.defaults`), said."""
    from ..tables.defaults import table_methods

    chosen, why = table_methods(ex, background=True, audit=True)
    print(f"methods: {', '.join(chosen)} ({why}; --methods to choose)")
    return chosen


def summary_lines(results: str) -> str:
    """One line per method: its mean of each metric over the photos (rows, texts)."""
    import json

    import numpy as np

    records = [json.loads(line) for line in Path(results).read_text(encoding="utf-8").splitlines()]
    keys = [k for k in SUMMARY_KEYS if any(k in r for r in records)]
    lines = []
    for method in dict.fromkeys(r["method"] for r in records):
        mine = [r for r in records if r["method"] == method]
        cells = [
            f"{k} {np.mean([float(r[k]) for r in mine if r.get(k) is not None]):.3f}"
            for k in keys
            if any(r.get(k) is not None for r in mine)
        ]
        lines.append(f"{method}: " + ", ".join(cells))
    return "\n".join(lines)
