"""LinearClassifier and Normalizer as onnxruntime computes them, in float64, for the reference evaluator.

onnxruntime computes the ``ai.onnx.ml`` ops in float32 whatever the input (the spec's outputs are
``tensor(float)``), so finite differences cannot run on it; the ONNX reference implementations run in
float64 but differ from onnxruntime where it matters. LinearClassifier with one coefficient row and
two class labels: onnxruntime writes ``[1 - s, s]`` (NONE, SOFTMAX, SOFTMAX_ZERO) and ``[1 - p, p]``
with ``p = sigmoid(s)`` (LOGISTIC), the reference ``[-s, s]`` and ``softmax([-s, s])`` (and builds
them in float32); with one row and no labels onnxruntime writes the raw score unless PROBIT;
SOFTMAX_ZERO leaves the scores within 1e-7 of zero out of its sum. Normalizer MAX: onnxruntime (and the
spec) divide by the row's maximum, the reference by its largest magnitude; a row whose norm is 0 is
passed unchanged, not divided by 1e-30. The classes below follow onnxruntime (its 1.32), and
``tests/graph/rules/test_ml.py`` checks that they agree with it to float32 precision.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.ops.aionnxml._op_run_aionnxml import OpRunAiOnnxMl
from scipy import special

BAND = 1e-7  # onnxruntime's SOFTMAX_ZERO: a score within this of 0 is left out of the sum
WINITZKI_A = 0.147


def probit(s: np.ndarray) -> np.ndarray:
    """sqrt(2) erfinv(2s - 1) with onnxruntime's approximation of erfinv (Winitzki, a = 0.147)."""
    u = 2 * s - 1
    log_w = np.log((1 - u) * (1 + u))
    v = 2 / (np.pi * WINITZKI_A) + 0.5 * log_w
    return np.sqrt(2) * np.sign(u) * np.sqrt(-v + np.sqrt(v * v - log_w / WINITZKI_A))


def softmax_zero(s: np.ndarray) -> np.ndarray:
    off = np.abs(s) > BAND
    top = s.max(axis=1, keepdims=True)
    shifted = np.where(off, np.exp(s - top), s * np.exp(-top))
    return shifted / np.where(off, shifted, 0).sum(axis=1, keepdims=True)


TRANSFORMS = {
    "NONE": lambda s: s,
    "LOGISTIC": special.expit,
    "SOFTMAX": lambda s: special.softmax(s, axis=1),
    "SOFTMAX_ZERO": softmax_zero,
    "PROBIT": probit,
}


class LinearClassifier(OpRunAiOnnxMl):
    def _run(
        self,
        x,
        classlabels_ints=None,
        classlabels_strings=None,
        coefficients=None,
        intercepts=None,
        multi_class=None,  # noqa: ARG002 - no effect, in onnxruntime as in the spec's reference
        post_transform=None,
    ):
        rows_x = x.reshape(1, -1) if x.ndim == 1 else x
        rows, features = len(intercepts), rows_x.shape[1]
        w = np.asarray(coefficients, np.float64)[: rows * features].reshape(rows, features)
        s = rows_x.astype(np.float64) @ w.T + np.asarray(intercepts, np.float64)
        labels = list(classlabels_ints or classlabels_strings or [])
        post = post_transform or "NONE"
        if rows == 1 and len(labels) == 2:
            p = special.expit(s) if post == "LOGISTIC" else s
            scores, picked = np.concatenate([1 - p, p], axis=1), (s[:, 0] > 0).astype(np.int64)
        else:
            scores = s if rows == 1 and post != "PROBIT" else TRANSFORMS[post](s)
            picked = (s[:, 0] > 0).astype(np.int64) if rows == 1 else s.argmax(axis=1)
        label = np.array([labels[i] for i in picked]) if labels else picked
        return label, scores.astype(x.dtype if x.dtype == np.float64 else np.float32)


class Normalizer(OpRunAiOnnxMl):
    def _run(self, x, norm=None):
        if norm == "MAX":
            n = x.max(axis=-1, keepdims=True)
        elif norm == "L1":
            n = np.abs(x).sum(axis=-1, keepdims=True)
        else:
            n = np.sqrt((x * x).sum(axis=-1, keepdims=True))
        return (np.where(n == 0, x, x / np.where(n == 0, 1, n)),)


OPS = [LinearClassifier, Normalizer]
