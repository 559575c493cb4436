"""VJP rules of the linear ops of audio front ends (DFT, STFT, CumSum): each gradient is the adjoint.

A complex tensor is ``[..., 2]`` (real, imaginary), a real one ``[..., 1]``. For a complex-linear map
``y = A x`` the real inner product ``Re <ybar, A x> = Re <A^H ybar, x>`` gives ``xbar = A^H ybar`` (its
real part for a real ``x``). A DFT matrix (forward ``W``, inverse ``conj(W) / n``) is symmetric, so
``A^H v = conj(A conj(v))``: the adjoint of a DFT is the same DFT between two conjugations. A one-sided
spectrum (RFFT) is the full one with rows dropped, so its adjoint first zero-pads the cotangent back to
``n`` bins (the emitted DFT's ``dft_length`` does it); the zero-padding or truncation of the input to
``dft_length`` is undone by slicing or zero-padding the result. IRFFT (``onesided=1, inverse=1``) maps
the one-sided spectrum ``z`` (``n // 2 + 1`` bins) to ``y[m] = (1/n) sum_k c_k Re(z_k e^{2 pi i k m/n})``
with ``c_k = 1`` at ``k = 0`` and ``k = n / 2``, else 2: its adjoint is ``zbar = (c / n) RFFT(ybar)``.
STFT is, per frame ``f``, the DFT of ``w * x[f hop : f hop + L]``: its adjoint is the per-frame adjoint
DFT times the window, overlap-added back onto the signal (``ScatterElements`` with ``reduction=add``).
CumSum multiplies by a triangular matrix of ones (strictly triangular when ``exclusive``), whose
transpose is the cumulative sum the other way: ``xbar = CumSum(ybar, exclusive, reverse = 1 - reverse)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ...support.errors import ModelError
from ..emitter import Emitter
from ..info import GraphInfo, attr
from ..registry import vjp
from ._shared import const_input

Form = TypeVar("Form")


@dataclass(frozen=True)
class DftForm:
    """A DFT node's statically known form: ``length`` is the input's size along ``axis`` and ``n`` the
    DFT size (None where only known at run time, which the rules allow only when nothing needs them)."""

    axis: int
    rank: int
    complex_input: bool
    inverse: bool
    onesided: bool
    length: int | None
    n: int | None
    given_n: bool


def _dft_axis(info: GraphInfo, node, rank: int) -> int | None:
    """The DFT axis, normalized; None when it is an input not known before run time."""
    if info.opset < 20:
        return int(attr(node, "axis", 1)) % rank
    value = const_input(info, node, 2)
    if value is None and len(node.input) > 2 and node.input[2]:
        return None
    return (-2 if value is None else int(value)) % rank


def dft_form(info: GraphInfo, node) -> DftForm | str:
    """The DFT node's form, or the one-line problem that keeps it from being differentiated."""
    shape = info.shape(node.input[0])
    if shape is None or shape[-1] not in (1, 2):
        return "unknown rank or complex dimension of the input"
    axis = _dft_axis(info, node, len(shape))
    if axis is None:
        return "axis not known before run time"
    given = len(node.input) > 1 and bool(node.input[1])
    given_n = const_input(info, node, 1)
    if given and given_n is None:
        return "dft_length not known before run time"
    size, complex_ = shape[axis], shape[-1] == 2
    length = size if isinstance(size, int) else None
    inverse, onesided = bool(attr(node, "inverse", 0)), bool(attr(node, "onesided", 0))
    if onesided and complex_ != inverse:
        return "one-sided DFT of a complex input" if complex_ else "one-sided inverse DFT of a real input"
    irfft = onesided and inverse
    n = int(given_n) if given_n is not None else length
    if irfft and length is not None and not given:
        n = 2 * (length - 1)
    form = DftForm(axis, len(shape), complex_, inverse, onesided, length, n, given)
    return _dft_length_problem(form) or form


def _dft_length_problem(f: DftForm) -> str:
    """What the input and DFT sizes keep from being differentiated ('' when nothing)."""
    if f.given_n and f.length is None:
        return "dft_length with an input size not known before run time"
    if f.onesided and f.inverse:
        if f.n is None:
            return "inverse one-sided DFT of an input size not known before run time"
        if f.length != f.n // 2 + 1:  # onnxruntime and the ONNX reference disagree there
            return f"inverse one-sided DFT of {f.length} bins, not dft_length // 2 + 1 = {f.n // 2 + 1}"
    return ""


def _dft_check(info, node, wants) -> list[str]:
    form = dft_form(info, node)
    return [form] if isinstance(form, str) else []


def _known(form: Form | str) -> Form:
    """A node's form, where a rule needs it (its check has refused the node otherwise)."""
    if isinstance(form, str):
        raise ModelError(form)
    return form


def emit_dft(
    e: Emitter, x: str, axis: int, n: str = "", inverse: bool = False, onesided: bool = False
) -> str:
    """A DFT node in the model's opset's form (``axis`` an attribute before 20, an input from 20)."""
    inv, one = int(inverse) or None, int(onesided) or None
    if e.opset >= 20:
        return e.op("DFT", [x, n, e.const(np.array(axis, np.int64))], inverse=inv, onesided=one)
    return e.op("DFT", [x, n] if n else [x], axis=axis, inverse=inv, onesided=one)


def _conj(e: Emitter, t: str, like: str) -> str:
    return e.op("Mul", [t, e.const(np.array([1.0, -1.0], e.np_dtype(like)))])


def _real(e: Emitter, t: str) -> str:
    return e.op("Slice", [t, e.ints([0]), e.ints([1]), e.ints([-1])])


def _fit(e: Emitter, t: str, axis: int, rank: int, have: int | None, want: int | None) -> str:
    """``t`` cut or zero-padded along ``axis`` from ``have`` to ``want`` elements."""
    if have is None or want is None or have == want:
        return t
    if have > want:
        return e.op("Slice", [t, e.ints([0]), e.ints([want]), e.ints([axis])])
    pads = [0] * (2 * rank)
    pads[rank + axis] = want - have
    return e.op("Pad", [t, e.ints(pads)])


def _scalar(e: Emitter, value: int) -> str:
    return e.const(np.array(value, np.int64))


def _size(e: Emitter, x: str, axis: int) -> str:
    """The size of ``x`` along ``axis`` at run time, a 0-d int64."""
    return e.op("Gather", [e.op("Shape", [x]), _scalar(e, axis)])


def _irfft_adjoint(e: Emitter, f: DftForm, x: str, dy: str) -> str:
    """zbar = (c / n) RFFT(ybar), c = 2 but at the DC and Nyquist bins."""
    n = int(f.n or 0)
    c = np.full(n // 2 + 1, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    weights = (c / n).reshape([-1] + [1] * (f.rank - 1 - f.axis)).astype(e.np_dtype(x))
    return e.op("Mul", [emit_dft(e, dy, f.axis, onesided=True), e.const(weights)])


@vjp("DFT", check=_dft_check)
def dft(e: Emitter, node, g_out):
    """DFT: dx = conj(DFT(conj(dy))), one-sided dy zero-padded; IRFFT: dz = RFFT(dy) * c / n."""
    f, x, dy = _known(dft_form(e.info, node)), node.input[0], g_out[0]
    if f.onesided and f.inverse:
        dx = _irfft_adjoint(e, f, x, dy)
    else:
        n = ""
        if f.onesided:  # the one-sided cotangent, zero-padded to n bins by the DFT itself
            n = _scalar(e, f.n) if f.n is not None else _size(e, x, f.axis)
        z = emit_dft(e, _conj(e, dy, x), f.axis, n, inverse=f.inverse)
        dx = _fit(e, _conj(e, z, x) if f.complex_input else _real(e, z), f.axis, f.rank, f.n, f.length)
    return (dx,) + (None,) * (len(node.input) - 1)


@dataclass(frozen=True)
class StftForm:
    """An STFT node's static form: the hop, the frame (DFT) length and the signal's last dimension."""

    hop: int
    frame: int
    channels: int  # 1 real, 2 complex
    rank: int  # 3, or 2 for a real signal without its last dimension (TorchScript's export)


def stft_form(info: GraphInfo, node) -> StftForm | str:
    """The STFT node's form, or the one-line problem that keeps it from being differentiated."""
    shape = info.shape(node.input[0])
    if shape is None or len(shape) not in (2, 3) or shape[2:] not in ((), (1,), (2,)):
        return "signal shape not [batch, length] or [batch, length, 1 or 2]"
    hop = const_input(info, node, 1)
    if hop is None:
        return "frame_step not known before run time"
    window = node.input[2] if len(node.input) > 2 else ""
    given = const_input(info, node, 3)
    if given is None and len(node.input) > 3 and node.input[3]:
        return "frame_length not known before run time"
    sizes = info.shape(window) if window else shape[1:2]  # the window's length, else the signal's
    frame = int(given) if given is not None else (sizes[0] if sizes else None)
    if not isinstance(frame, int):
        return "frame length not known before run time"
    return StftForm(int(hop), frame, 2 if shape[2:] == (2,) else 1, len(shape))


def _stft_check(info, node, wants) -> list[str]:
    form = stft_form(info, node)
    window = node.input[2] if len(node.input) > 2 else ""
    problems = [form] if isinstance(form, str) else []
    return problems + (["window depends on the input"] if window and wants(window) else [])


def _overlap_add(e: Emitter, frames: str, node, f: StftForm) -> str:
    """Sum frames [B, F, L, C] into a tensor shaped like the signal ([B, T, C] or [B, T]), frame i
    from sample i * hop on."""
    count = _size(e, node.output[0], 1)
    hop = _scalar(e, f.hop)
    starts = e.op("Range", [_scalar(e, 0), e.op("Mul", [count, hop]), hop])
    taps = e.const(np.arange(f.frame, dtype=np.int64).reshape(1, -1))
    index = e.op("Add", [e.unsqueeze(starts, [1]), taps])
    index = e.op("Reshape", [index, e.ints([1, -1, 1][: f.rank])])
    updates = e.op("Reshape", [frames, e.ints([0, -1, f.channels][: f.rank])])
    index = e.op("Expand", [index, e.op("Shape", [updates])])
    signal = node.input[0]
    return e.op("ScatterElements", [e.zeros_like(signal), index, updates], axis=1, reduction="add")


@vjp("STFT", check=_stft_check)
def stft(e: Emitter, node, g_out):
    """STFT: dx = overlap-add over the frames of window * conj(DFT(conj(dy))) (dy zero-padded)."""
    f, signal = _known(stft_form(e.info, node)), node.input[0]
    z = emit_dft(e, _conj(e, g_out[0], signal), 2, _scalar(e, f.frame))
    frames = _conj(e, z, signal) if f.channels == 2 else _real(e, z)
    window = node.input[2] if len(node.input) > 2 else ""
    if window:
        frames = e.op("Mul", [frames, e.unsqueeze(window, [1])])
    return (_overlap_add(e, frames, node, f),) + (None,) * (len(node.input) - 1)


@vjp("CumSum")
def cumsum(e: Emitter, node, g_out):
    """CumSum: dx = CumSum(dy) in the other direction, exclusive as it is."""
    reverse = None if attr(node, "reverse", 0) else 1
    exclusive = attr(node, "exclusive", 0) or None
    return (e.op("CumSum", [g_out[0], node.input[1]], exclusive=exclusive, reverse=reverse), None)
