"""``onnx-xai explain`` on a signal model: the flags of signal files, the files read, explained and
written (:mod:`onnx_xai.signals.run`), and a line per file said.

A signal model (a float ``[N, C, T]``, ``[N, T, C]`` or waveform ``[N, T]`` input) explains ``.npy``,
``.csv`` and ``.wav`` files (:mod:`onnx_xai.signals.files`). Without ``--method`` it gets Grad-CAM
where the model has a target layer, else integrated gradients, and says which. ``--sample-rate``
resamples WAV files to the model's rate; ``--window``/``--stride`` set occlusion's window over time;
``--baseline`` is what integrated gradients start from and occlusion puts in place of a window.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..support.errors import InputError
from .options import UsageError, at_least


def add_signal_flags(p: argparse.ArgumentParser, auditing: bool = False) -> None:
    """The flags of signal files and the methods' windows and baseline (``auditing``: also the audit's
    windows, ``--segments``, and the baseline as what a removed window becomes)."""
    g = p.add_argument_group("signal models (time series, sensor data, audio)")
    g.add_argument(
        "--sample-rate",
        type=at_least(1),
        metavar="HZ",
        help="WAV files resampled to this rate (default: as recorded); .npy and .csv files recorded at it "
        "(their time axis in seconds)",
    )
    g.add_argument(
        "--window", type=at_least(1), metavar="STEPS", help="occlusion's window over time (default 16)"
    )
    g.add_argument(
        "--stride", type=at_least(1), metavar="STEPS", help="occlusion's step over time (default 8)"
    )
    g.add_argument(
        "--per-channel", action="store_true", help="occlusion: slide the window over each channel alone"
    )
    g.add_argument(
        "--baseline",
        metavar="zero|mean|FILE.npy",
        help="what integrated gradients start from and occlusion fills in"
        + (" (and, in an audit, what a removed window becomes)" if auditing else "")
        + ": zero (default), each channel's mean over time, or a signal shaped like the input",
    )
    if auditing:
        g.add_argument(
            "--segments",
            type=at_least(1),
            metavar="W",
            help="audit: the windows over time that deletion and insertion remove, one per time step in "
            "a shorter signal; LIME's and KernelSHAP's features too (default 20)",
        )


def run_signal(args: argparse.Namespace, ex) -> int:
    """Explain the signal files the arguments give (module docstring)."""
    from ..objectives.labels import parse_target, read_labels
    from ..signals import SignalOptions, explain_signals, read_signal
    from ..support.files import sha256_of

    if not args.images:
        raise UsageError("a signal model explains files: give .npy, .csv or .wav files")
    if args.background:
        raise UsageError("--background is for tables; this model takes signals")
    signals = [
        read_signal(str(p), ex.layout, ex.input_shape, ex.input_dtype, args.sample_rate) for p in args.images
    ]
    labels = read_labels(args.labels, ex.num_classes, ex.metadata) if ex.num_classes else []
    opts = SignalOptions(
        methods=args.method or _default_methods(ex),
        target=parse_target(args.target, labels, ex.num_classes) if ex.num_classes else None,
        labels=labels,
        noise_seed=args.noise_seed,
        steps=args.steps,
        method_options=method_options(args),
        figures=not args.no_overlays,
    )
    out = Path(args.out)
    records = explain_signals(ex, signals, out, opts, sha256_of(args.model))
    for record in records:
        what = record["label"] if record["label"] is not None else f"class {record['target']}"
        print(f"{record['file']}: {what} ({record['score']:.4g}) -> {out / Path(record['file']).name}.*")
    return 0


def _default_methods(ex) -> list[str]:
    if ex.target_layer is not None:
        print("methods: gradcam (the model has a target layer; --method to choose)")
        return ["gradcam"]
    print("methods: integrated_gradients (no [N, C, T] target layer for the CAM family; --method to choose)")
    return ["integrated_gradients"]


def method_options(args: argparse.Namespace) -> dict:
    """Occlusion's window, stride and channels, and the baseline, where the flags give them."""
    found: dict = {}
    if args.window is not None:
        found["window"] = args.window
    if args.stride is not None:
        found["stride"] = args.stride
    if args.per_channel:
        found["per_channel"] = True
    if args.baseline is not None:
        found["baseline"] = _baseline(args.baseline)
    return found


def _baseline(given: str):
    if given in ("zero", "mean"):
        return 0.0 if given == "zero" else "mean"
    if not given.endswith(".npy"):
        raise UsageError(f"--baseline is zero, mean or a .npy file, not {given!r}")
    try:
        values = np.load(given, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"--baseline {given} is not a readable .npy array ({exc})") from None
    if values.dtype.kind not in "fiu" or not np.isfinite(values).all():
        raise InputError(f"--baseline {given} must hold finite numbers")
    return values.astype(np.float32)
