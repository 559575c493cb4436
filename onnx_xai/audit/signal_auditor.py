"""The signal auditor: signals in, one record per signal and method out, scored by deletion and
insertion over time (Petsiuk et al. 2018's curves, with time windows for pixels) beside a random
ranking of the same windows.

A signal ``x`` (one sample in the model's layout: ``[C, T]``, ``[T, C]`` or a waveform ``[T]``) is cut
into ``W = min(segments, T)`` windows over time, the windows LIME and KernelSHAP take as features
(:func:`onnx_xai.runtime.methods.time_windows.time_segments`: step ``t`` belongs to window
``floor(t W / T)``; equal windows where ``W`` divides ``T``, else lengths differing by one step; one
window per time step when ``T <= segments``). Each method explains every signal
(``explain_many``) and its attribution gives each window ``w`` a score ``s_w``:

- the gradient family, perturbation methods and surrogates (``raw`` shaped like the input): a signed
  method's ``sum_{t in w} sum_c raw[c, t]`` (its evidence for the class, the sum of the signed map),
  an unsigned method's ``sum_{t in w} sum_c |raw[c, t]|`` (the magnitude its map shows);
- the CAM family (``raw [T']`` on the target layer's grid): the layer's map upsampled linearly to
  ``T`` (the map ``explain`` draws, before its min-max normalization), summed over the window.

The windows are ranked by ``s_w``, highest first, ties in the seeded random order of
:func:`.curves.ranking`; the random baseline (:data:`.features.RANDOM`) ranks them by uniform draws
seeded by ``(noise_seed, signal index)``. A *removed* window takes the baseline's values over all its
channels: 0 by default, a number, each channel's mean over time (``"mean"``, per signal, as
``explain``'s baseline) or a signal given. With ``o`` a ranking, ``R_k`` its first ``k`` windows and
``p(.)`` the explained class ``c``'s probability (the model's output where it ends in a Softmax or
Sigmoid, else the softmax of its logits), for ``k = 0 .. W``:

- **deletion**: ``D_k = p(x with R_k removed)``, from ``p(x)`` to ``p(baseline)``; its area over
  ``k / W`` by the trapezoid rule, ``deletion_auc = (sum_k D_k - (D_0 + D_W) / 2) / W``: lower is
  better;
- **insertion**: ``I_k = p(x with every window but R_k removed)``, from ``p(baseline)`` to ``p(x)``;
  ``insertion_auc`` the same area: higher is better.

Every copy of one signal (each ranking's steps, both curves; identical copies once, so the two ends
shared by every ranking are scored once) is scored in runs of at most ``copies_per_run`` copies; a
dynamically quantized model (``per_sample_runs``) is run one copy at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..runtime.maps import upsample
from ..runtime.methods import get, options_for
from ..runtime.methods.time_windows import channel_axis, time_segments
from ..support.errors import InputError
from .curves import Scorer, ranking
from .facts import model_facts
from .features import RANDOM, area, random_attribution

SIGNAL_METHODS = ("integrated_gradients", "gradient")
SIGNAL_METRICS = ("deletion", "insertion")
SEGMENTS = 20  # windows over time, as the surrogates' default for signals would be


@dataclass
class SignalAuditOptions:
    """What to audit on signals and how (the ``audit`` command's flags for a signal model)."""

    methods: Sequence[str] = SIGNAL_METHODS
    segments: int = SEGMENTS  # windows over time (one per step where T is shorter)
    baseline: Any = None  # what a removed window takes: None or 0, a number, "mean", an array like a signal
    metrics: Sequence[str] = SIGNAL_METRICS
    target: int | None = None  # a class index; None: each signal's top class
    labels: list[str] = field(default_factory=list)
    noise_seed: int = 0  # tie order, the random baseline, the methods' noise
    steps: int | None = None  # integrated gradients' points (None: the method's default)
    method_options: dict = field(default_factory=dict)  # occlusion's window, stride, per_channel
    batch_size: int = 8  # signals per explanation run
    copies_per_run: int = 128  # perturbed copies per run of the model
    report_signals: int = 48  # signals shown one by one in the report (the summary counts them all)


class SignalAuditor:
    """One Explainer of a signal model and what the audit needs of it: the methods' options, the
    scorer of copies, the baseline a removed window takes."""

    def __init__(self, explainer, model_path: str, opts: SignalAuditOptions):
        if explainer.kind != "signal" or not explainer.layout:
            raise InputError(f"this audit is for signals; the model's input is a {explainer.kind}")
        if len(explainer.output_shape) != 2:
            raise InputError(
                f"audit explains signal classifiers (an [N, K] output); {explainer.record.output!r} "
                f"has shape {list(explainer.output_shape)}"
            )
        unknown = sorted(set(opts.metrics) - set(SIGNAL_METRICS))
        if unknown or not opts.metrics:
            raise InputError(
                f"metrics for a signal: deletion, insertion (not {', '.join(unknown) or 'none'})"
            )
        if not opts.methods:
            raise InputError("give at least one method")
        if isinstance(opts.segments, bool) or not isinstance(opts.segments, int) or opts.segments < 1:
            raise InputError(f"segments is a whole number of windows, 1 or more, not {opts.segments!r}")
        self.ex, self.model_path, self.opts = explainer, model_path, opts
        self.layout = str(explainer.layout)
        self.time, self.channel = self.layout.index("T") - 1, channel_axis(self.layout)
        self.probabilities = explainer.record.score_kind in ("pre-softmax", "pre-sigmoid")
        self.per_run = 1 if explainer.record.per_sample_runs else max(1, opts.copies_per_run)
        self.options = method_options(opts)

    def windows(self, length: int) -> np.ndarray:
        """Each time step's window ``[T]`` (module docstring)."""
        return time_segments(length, self.opts.segments, None)

    def fill(self, signal: np.ndarray) -> np.ndarray:
        """What a removed window takes, shaped like ``signal`` (module docstring)."""
        value = self.opts.baseline
        x = signal.astype(np.float32)
        if value is None:
            return np.zeros_like(x)
        if isinstance(value, str):
            if value != "mean":
                raise InputError(f"baseline {value!r}: a number, an array like a signal, or 'mean'")
            return np.broadcast_to(x.mean(axis=self.time, keepdims=True), x.shape).copy()
        try:
            return np.broadcast_to(np.asarray(value, np.float32), x.shape).copy()
        except ValueError:
            raise InputError(
                f"the baseline has shape {list(np.shape(value))}, which does not fit a signal of "
                f"{list(x.shape)}"
            ) from None

    def probability(self, copies: np.ndarray, target: int) -> np.ndarray:
        """The class's probability for copies ``[n, ...]`` of one signal, :attr:`per_run` per run."""
        return Scorer(self.ex.predict, self.probabilities, self.ex.input_dtype, self.per_run)(copies, target)

    def model_facts(self) -> dict:
        curve = "model probability" if self.probabilities else "softmax of logits"
        return model_facts(self.ex, self.model_path, curve)

    def removed_to(self) -> str:
        value = self.opts.baseline
        if value is None or isinstance(value, str):
            return "0" if value is None else "each channel's mean over time, per signal"
        return f"{float(value):g}" if np.ndim(value) == 0 else f"a given signal {list(np.shape(value))}"

    def protocol(self) -> dict:
        """How the records were made, written with each of them."""
        return {
            "segments": self.opts.segments,
            "windows": "W = min(segments, T) windows over time: step t in window floor(t W / T)",
            "ranking": "the attribution summed over channels and each window (signed methods: the signed "
            "sum; unsigned: of |attribution|; the CAM family: the map upsampled to T), highest first; "
            "ties in a random order seeded by noise_seed",
            "random_baseline": "uniform draws seeded by (noise_seed, signal index)",
            "removed_to": self.removed_to(),
            "probability": "the model's output" if self.probabilities else "softmax of the logits",
            "area": "trapezoid over the fraction of windows removed (deletion) or put back (insertion)",
            "noise_seed": self.opts.noise_seed,
        }


def method_options(opts: SignalAuditOptions) -> dict:
    """The options of one ``explain_many`` call: the noise seed and integral's points, the methods'
    own options, the baseline to the methods that take one, the windows to the surrogates."""
    given = dict(opts.method_options)
    if opts.baseline is not None:
        given["baseline"] = opts.baseline
    given["segments"] = opts.segments
    taken = {name for m in opts.methods for name in get(m).Options.__dataclass_fields__}
    return options_for(opts.methods, opts.noise_seed, opts.steps) | {
        k: v for k, v in given.items() if k in taken
    }


@dataclass
class SignalAudit:
    """The audited signals (:class:`onnx_xai.signals.Signal`) and their records, signal by signal."""

    signals: list
    records: list  # one per signal and method, the random baseline's too


def audit_signal_list(auditor: SignalAuditor, signals: Sequence, tick=None) -> SignalAudit:
    """Explain the signals with each method, ``batch_size`` of one shape at a time, and score every
    ranking (module docstring); ``tick(n)`` is told of each ``n`` signals done."""
    signals = list(signals)
    found: list[list] = [[] for _ in signals]
    groups: dict[tuple, list[int]] = {}
    for k, s in enumerate(signals):
        groups.setdefault(s.values.shape, []).append(k)
    for group in groups.values():
        for start in range(0, len(group), auditor.opts.batch_size):
            batch = group[start : start + auditor.opts.batch_size]
            x = np.stack([signals[k].values for k in batch])
            results = auditor.ex.explain_many(
                x, list(dict.fromkeys(auditor.opts.methods)), objective=auditor.opts.target, **auditor.options
            )
            for row, k in enumerate(batch):
                found[k] = signal_records(auditor, signals[k], results, row, k)
                if tick is not None:
                    tick(1)
    return SignalAudit(signals, [r for records in found for r in records])


def signal_records(auditor: SignalAuditor, signal, results: dict, row: int, index: int) -> list[dict]:
    """Signal ``index`` (row ``row`` of ``results``): a record per method and the random baseline."""
    x = signal.values
    windows = auditor.windows(x.shape[auditor.time])
    count = int(windows.max()) + 1
    first = next(iter(results.values()))
    target, seed = int(first.targets[row]), auditor.opts.noise_seed
    scores = {m: window_scores(auditor, r, row, windows, count) for m, r in results.items()}
    scores[RANDOM] = random_attribution(count, seed, index)
    orders = {m: ranking(s, seed) for m, s in scores.items()}
    p, curves = time_curves(auditor, x, windows, list(orders.values()), target)
    labels = auditor.opts.labels
    facts = {
        "file": signal.path,
        "index": index,
        "target": target,
        "label": labels[target] if 0 <= target < len(labels) else str(target),
        "score": float(first.scores[row]),
        "probability": p,
        "length": int(x.shape[auditor.time]),
        "windows": count,
        "window_starts": np.flatnonzero(np.diff(windows, prepend=-1)).tolist(),
    }
    signed = {m: r.signed is not None for m, r in results.items()} | {RANDOM: False}
    return [
        _record(auditor, facts, m, signed[m], scores[m], orders[m], curves[r]) for r, m in enumerate(orders)
    ]


def window_scores(auditor: SignalAuditor, r, row: int, windows: np.ndarray, count: int) -> np.ndarray:
    """A method's score per window ``[W]`` from its explanation ``r`` of row ``row`` (module docstring)."""
    raw = np.asarray(r.raw[row], np.float64)
    length = windows.size
    if r.family == "cam":
        per_step = upsample(raw.reshape(1, 1, -1), 1, length)[0, 0].astype(np.float64)
    else:
        values = raw if r.signed is not None else np.abs(raw)
        per_step = values.sum(axis=auditor.channel) if auditor.channel is not None else values
    if per_step.shape != (length,):
        raise InputError(f"{r.method}'s attribution is {list(raw.shape)}; it has no value per time step")
    return np.bincount(windows, weights=per_step, minlength=count)


def time_curves(
    auditor: SignalAuditor, x: np.ndarray, windows: np.ndarray, orders: list, target: int
) -> tuple[float, list[dict]]:
    """``p(x)`` and, per ranking, its curves by metric (``[W + 1]`` each): every copy scored once."""
    count = int(windows.max()) + 1
    metrics = [m for m in SIGNAL_METRICS if m in auditor.opts.metrics]
    removed = np.zeros((len(orders), len(metrics), count + 1, count), bool)
    for r, order in enumerate(orders):
        for k in range(count + 1):
            for j, metric in enumerate(metrics):
                removed[r, j, k, order[:k] if metric == "deletion" else order[k:]] = True
    flat = np.concatenate([np.zeros((1, count), bool), removed.reshape(-1, count)])
    unique, where = np.unique(flat, axis=0, return_inverse=True)
    fill, shape = auditor.fill(x), [1] * x.ndim
    shape[auditor.time] = -1
    found = np.empty(len(unique))
    for start in range(0, len(unique), auditor.per_run):
        part = unique[start : start + auditor.per_run]
        steps = part[:, windows].reshape(len(part), *shape)  # [n, 1.., T, 1..] removed steps
        found[start : start + len(part)] = auditor.probability(np.where(steps, fill, x), target)
    probabilities = found[np.asarray(where).reshape(-1)]
    curves = probabilities[1:].reshape(removed.shape[:3])
    return float(probabilities[0]), [dict(zip(metrics, c)) for c in curves]


def _record(auditor: SignalAuditor, facts: dict, method: str, signed: bool, scores, order, curves) -> dict:
    """One signal x method record: the facts, the windows' scores and ranking, the curves asked for."""
    fractions = np.arange(facts["windows"] + 1) / facts["windows"]
    record = facts | {"method": method, "signed": signed}
    for metric, curve in curves.items():
        record[f"{metric}_auc"] = area(fractions, curve)
        record[f"{metric}_curve"] = curve.round(6).tolist()
    return record | {
        "fractions": fractions.round(6).tolist(),
        "window_scores": [float(f"{v:.6g}") for v in scores],
        "ranking": [int(w) for w in order],
        "protocol": auditor.protocol(),
    }
