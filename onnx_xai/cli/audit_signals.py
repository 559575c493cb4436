"""How ``onnx-xai audit`` audits a signal model's files (``.npy``, ``.csv``, ``.wav``, read as ``explain``
reads them): the signal flags (:func:`.signal_options.add_signal_flags`: ``--sample-rate``,
``--window``, ``--stride``, ``--per-channel``, ``--baseline``, and the audit's ``--segments``) made into
:class:`~onnx_xai.audit.signal_auditor.SignalAuditOptions`, the run with a progress bar, and the
summary every audit prints. A photo's, a table's or a text's flag given to a signal model, and a
signal flag given to any other model, is a usage error in one line (exit status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .audit_inputs import NOT_FOR_TEXTS, bar, summary_lines
from .options import UsageError
from .signal_options import method_options

SIGNAL_FLAGS = (
    ("sample_rate", "--sample-rate"), ("window", "--window"), ("stride", "--stride"),
    ("per_channel", "--per-channel"), ("baseline", "--baseline"), ("segments", "--segments"),
)  # fmt: skip
ALLOWED = (
    "--target-layer",
    "--metrics",
    "--sanity",
)  # a signal's CAM layer; metrics and sanity checked alone
TAKES = {"image": "photos", "table": "a table's rows", "tokens": "texts", "tensor": "tensors"}


def refuse_signal_flags(args: argparse.Namespace, kind: str) -> None:
    """A signal flag given to a model that takes no signal is a usage error."""
    for name, flag in SIGNAL_FLAGS:
        if getattr(args, name, None) not in (None, False):
            raise UsageError(f"{flag} is for signal models; this model takes {TAKES.get(kind, kind)}")


def run_signal_audit(args: argparse.Namespace, ex, explainer_args: dict) -> int:
    """A signal model's files audited (:mod:`onnx_xai.audit.signal_run`)."""
    from ..audit.signal_run import audit_signals

    _check_usage(args)
    opts = _options(args, ex)
    files = list(args.images)
    written = audit_signals(
        args.model, files, Path(args.out), opts, explainer_args, bar, ex, sample_rate=args.sample_rate
    )
    print(summary_lines(written["results.jsonl"]))
    print("wrote " + ", ".join(written.values()))
    return 0


def _check_usage(args: argparse.Namespace) -> None:
    """Files for a signal model, and no flag of photos, tables or texts."""
    if args.bins:
        raise UsageError("--bins is for texts; this model's input is a signal")
    defaults = getattr(args, "flag_defaults", {})
    for name, flag in NOT_FOR_TEXTS:
        value = getattr(args, name, None)
        if flag not in ALLOWED and value not in (None, False) and value != defaults.get(name):
            raise UsageError(f"{flag} is for photos and tables, not signals")
    if "road" in (args.metrics or []):
        raise UsageError(
            "--metrics road is for photos; a signal is audited with --metrics deletion insertion"
        )
    if args.sanity != defaults.get("sanity", args.sanity) and args.sanity != ["none"]:
        raise UsageError("--sanity is for photos and tables: the sanity checks are not run for signals")
    if not args.images:
        raise UsageError("a signal model audits files: give .npy, .csv or .wav files")


def _options(args: argparse.Namespace, ex):
    """The :class:`~onnx_xai.audit.signal_auditor.SignalAuditOptions` the flags say."""
    from ..audit.signal_auditor import SEGMENTS, SIGNAL_METRICS, SignalAuditOptions
    from ..objectives.labels import parse_target, read_labels

    labels = read_labels(args.labels, ex.num_classes, ex.metadata) if ex.num_classes else []
    given = method_options(args)
    return SignalAuditOptions(
        methods=list(dict.fromkeys(args.methods)) if args.methods else _default_methods(ex),
        segments=args.segments or SEGMENTS,
        baseline=given.pop("baseline", None),
        metrics=list(dict.fromkeys(args.metrics or SIGNAL_METRICS)),
        target=parse_target(args.target, labels, ex.num_classes) if ex.num_classes else None,
        labels=labels,
        noise_seed=args.noise_seed,
        method_options=given,
        batch_size=args.batch_size,
        copies_per_run=16 * args.batch_size,
        report_signals=args.report_photos,
    )


def _default_methods(ex) -> list[str]:
    """Integrated gradients and the gradient, and Grad-CAM where the model has a target layer, said."""
    from ..audit.signal_auditor import SIGNAL_METHODS

    chosen = list(SIGNAL_METHODS) + (["gradcam"] if ex.target_layer is not None else [])
    print(f"methods: {' '.join(chosen)} (a signal's default; --methods to choose)")
    return chosen
