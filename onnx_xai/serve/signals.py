"""Serving a signal model: signals in, each one's prediction and its attribution over time out.

A request's instances are signals: an array in the model's layout without the batch axis (``[C, T]``,
``[T, C]`` or ``[T]``, as ``{"instances": [[[...], ...]]}`` or ``{"values": ...}`` objects), or a WAV
file in base64 (``{"wav_b64": "..."}``: PCM scaled to [-1, 1) as the command line reads it, never
resampled); each is checked against the model's declared input as a file is
(:mod:`onnx_xai.signals.files`), and a signal that does not fit is a one-line 400. ``:explain``
answers, per signal, one entry per method: the class explained (target, label, score) and the
attribution over time ``over_time`` (``[T]``: the signed map of signed methods, else the map), and
the raw attribution on request (``"raw": true``). Signals of one shape share a run; costs and
deadlines are those of photos and rows.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from ..signals.files import signal_from, wav_samples
from .requests import BadRequest, Instance


class SignalFacts:
    """What a served signal model's requests are read against."""

    def __init__(self, ex, labels: list[str]):
        self.ex, self.labels = ex, labels

    def read(self, payload: dict, max_instances: int) -> list[Instance]:
        """The request's signals as the model's inputs, one instance each (module docstring)."""
        found = payload.get("instances", payload.get("inputs"))
        if not isinstance(found, list) or not found:
            raise BadRequest('the body needs "instances": a non-empty list of signals')
        if len(found) > max_instances:
            raise BadRequest(f"{len(found)} instances in one request; at most {max_instances}")
        return [Instance(self._signal(item, k)[None]) for k, item in enumerate(found)]

    def _signal(self, item, k: int) -> np.ndarray:
        ex, name = self.ex, f"instance {k}"
        if isinstance(item, dict) and "wav_b64" in item:
            try:
                data = base64.b64decode(str(item["wav_b64"]), validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"{name}: wav_b64 is not base64") from None
            samples, rate = wav_samples(io.BytesIO(data), name)
            return signal_from(
                name, samples, ex.layout, ex.input_shape, ex.input_dtype, rate, audio=True
            ).values
        values = item.get("values") if isinstance(item, dict) else item
        if not isinstance(values, list):
            raise BadRequest(f'{name} must be an array, {{"values": [...]}} or {{"wav_b64": "..."}}')
        return signal_from(name, values, ex.layout, ex.input_shape, ex.input_dtype).values

    def answer(self, ex, batch: np.ndarray, params, held: dict) -> list:
        """Each signal's output and its entries, one per method."""
        results = ex.explain_many(batch, list(params.methods), objective=params.target, extra_inputs=held)
        first = next(iter(results.values()))
        outputs = first.output if first.output is not None and len(first.output) == len(batch) else None
        outputs = outputs if outputs is not None else ex.predict(batch, **held)
        return [
            (outputs[i], [self._entry(m, r, i, params) for m, r in results.items()])
            for i in range(len(batch))
        ]

    def _entry(self, method: str, r, i: int, params) -> dict:
        target = int(r.targets[i])
        over_time = r.signed[i] if r.signed is not None else r.maps[i]
        entry = {
            "method": method,
            "target": target,
            "label": self.labels[target] if 0 <= target < len(self.labels) else None,
            "score": round(float(r.scores[i]), 6),
            "over_time": [round(float(v), 5) for v in over_time],
        }
        if params.raw:
            entry["raw"] = np.asarray(r.raw[i], np.float32).tolist()
        return entry
