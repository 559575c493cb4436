"""Explaining signal files end to end: each method on every signal, written as one set of files.

Signals of one shape are explained as one batch (``explain_many``: one shared run, then each
method's runs); a model that takes signals of any length explains files of different lengths in
separate batches. Written into the output folder as one set
(:func:`onnx_xai.support.files.commit_set`: a rerun never leaves a mix, nothing is written outside
it): ``<file>.json`` per signal (the file, the model's SHA-256, the shape and layout, the sample rate,
the class explained, its label and score, and per method the attribution over time (``over_time``,
``[T]``: the map the figure draws) and the raw attribution, shaped like the signal, or on the target
layer's grid for the CAM family) and ``<file>.<method>.png`` (:func:`.figure.signal_figure`, unless
``figures`` is off). Output names are the file names, repeats made unique as for photos.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.methods import options_for
from ..support.files import commit_set, output_folder
from ..support.names import unique_names
from .figure import signal_figure
from .files import Signal


@dataclass
class SignalOptions:
    """How to explain signals (the ``explain`` command's flags, as a value)."""

    methods: Sequence[str] = ("integrated_gradients",)
    target: int | None = None
    labels: list[str] = field(default_factory=list)
    noise_seed: int = 0
    steps: int | None = None
    method_options: dict = field(default_factory=dict)  # occlusion's window and stride, a baseline
    figures: bool = True


def explain_signals(ex, signals: Sequence[Signal], out: Path, opts: SignalOptions, sha256: str) -> list[dict]:
    """Explain ``signals`` with each method and write the set (module docstring); the records."""
    names = unique_names([Path(s.path).name for s in signals])
    records: list[dict] = [{} for _ in signals]
    writers: dict[str, Callable] = {}
    for batch in _same_shapes(signals):
        x = np.stack([signals[k].values for k in batch])
        options = options_for(opts.methods, opts.noise_seed, opts.steps) | _taken(opts)
        results = ex.explain_many(x, list(opts.methods), objective=opts.target, **options)
        for row, k in enumerate(batch):
            records[k] = _record(signals[k], ex.layout, results, row, opts, sha256)
            if opts.figures:
                writers |= _figures(signals[k], names[k], ex.layout, results, row, records[k])
    for name, record in zip(names, records):
        text = json.dumps(record, indent=1)
        writers[f"{name}.json"] = lambda path, text=text: path.write_text(text, encoding="utf-8")
    commit_set(output_folder(out), writers, [])
    return records


def _same_shapes(signals: Sequence[Signal]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for k, s in enumerate(signals):
        groups.setdefault(s.values.shape, []).append(k)
    return list(groups.values())


def _taken(opts: SignalOptions) -> dict:
    """The method options given that some method of the call takes."""
    from ..runtime.methods import get

    taken = {name for m in opts.methods for name in get(m).Options.__dataclass_fields__}
    return {name: value for name, value in opts.method_options.items() if name in taken}


def _record(signal: Signal, layout: str, results: dict, row: int, opts: SignalOptions, sha256: str) -> dict:
    first = next(iter(results.values()))
    target = int(first.targets[row])
    return {
        "file": signal.path,
        "model_sha256": sha256,
        "shape": list(signal.values.shape),
        "layout": layout[1:],
        "sample_rate": signal.rate,
        "channels": signal.channels,
        "target": target,
        "label": opts.labels[target] if 0 <= target < len(opts.labels) else None,
        "score": float(first.scores[row]),
        "explanations": [
            {
                "method": method,
                "family": r.family,
                "over_time": np.round(_over_time(r, row), 6).tolist(),
                "raw": np.asarray(r.raw[row], np.float32).tolist(),
            }
            for method, r in results.items()
        ],
    }


def _over_time(r, row: int) -> np.ndarray:
    """The attribution over time the figure draws: the signed map of signed methods, else the map."""
    return np.asarray(r.signed[row] if r.signed is not None else r.maps[row], np.float64)


def _figures(signal: Signal, name: str, layout: str, results: dict, row: int, record: dict) -> dict:
    channel = layout.index("C") - 1 if "C" in layout else None
    found: dict[str, Callable] = {}
    for method, r in results.items():
        what = record["label"] if record["label"] is not None else f"class {record['target']}"
        title = f"{Path(signal.path).name}: {what} (score {record['score']:.4g}), {method}"
        picture = signal_figure(
            signal.values.astype(np.float64), channel, _over_time(r, row), r.signed is not None, title,
            signal.rate, signal.channels, signal.audio,
        )  # fmt: skip
        found[f"{name}.{method}.png"] = lambda path, p=picture: p.save(path, format="PNG")
    return found
