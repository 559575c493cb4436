"""The VJP rule of GRU (:mod:`.recurrent_common` has the shared machinery and the sequence lengths).

Per step, with ``x W^T`` split in the order z, r, h, activations f and g (their inputs clipped when
``clip`` is set): ``z = f(x Wz^T + h_prev Rz^T + Wbz + Rbz)``, ``r`` likewise, ``n = g(x Wh^T +
(r h_prev) Rh^T + Rbh + Wbh)``, or with ``linear_before_reset`` ``n = g(x Wh^T + r q + Wbh)``,
``q = h_prev Rh^T + Rbh``, and ``h = (1 - z) n + z h_prev``. Backward, with ``dh`` the step's hidden
cotangent: ``dp_z = dh (h_prev - n) f'_z``, ``dp_h = dh (1 - z) g'_n``; without linear_before_reset
``s = dp_h Rh``, ``dp_r = s h_prev f'_r`` and ``dh_prev = dh z + [dp_z dp_r] Rzr + s r`` (two MatMuls a
step); with it ``dp_r = dp_h q f'_r`` and ``dh_prev = dh z + [dp_z dp_r (dp_h r)] R`` (one MatMul; the
body outputs ``dh`` and the gates' cotangents are formed for all steps at once). A skipped step has
``z = 1`` and zero coefficients, so it passes ``dh`` on.
"""

from __future__ import annotations

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from .recurrent_activations import gated
from .recurrent_common import (
    Backward,
    Direction,
    Recurrence,
    backward_scan,
    keep,
    part,
    projected,
    recurrent_check,
    recurrent_vjp,
    zeros,
)


@vjp("GRU", check=recurrent_check)
def gru(e: Emitter, node, g_out):
    """GRU: dX = (gate cotangents) W; d initial_h carried back by a reverse-time Scan."""
    return recurrent_vjp(e, node, g_out, _cell)


def _biases(e: Emitter, dr: Direction, size: int, linear: bool) -> tuple[str | None, str | None]:
    """The bias added to ``x W^T`` [3H] and, with linear_before_reset, Rbh [H] (None without B)."""
    if dr.bias is None:
        return None, None
    wb, rb = part(e, dr.bias, 0, 3 * size), part(e, dr.bias, 1, 3 * size)
    both = e.op("Add", [wb, rb])
    if not linear:
        return both, None
    return e.op("Concat", [part(e, both, 0, 2 * size), part(e, wb, 2, size)], axis=0), part(e, rb, 2, size)


def _cell(e: Emitter, seq: Recurrence, dr: Direction, g_out: list) -> Backward:
    size, like, clip = seq.hidden, seq.like, seq.clip
    f_act, g_act = seq.acts[dr.index]
    linear = bool(attr(seq.node, "linear_before_reset", 0))
    input_bias, rbh = _biases(e, dr, size, linear)
    xw = projected(e, seq, dr, input_bias)
    r_zr, r_h = part(e, dr.r, 0, 2 * size, axis=0), part(e, dr.r, 2, size, axis=0)
    hzr = e.op("MatMul", [dr.hprev, e.op("Transpose", [r_zr])])
    z, z_slope = gated(e, f_act, e.op("Add", [part(e, xw, 0, size), part(e, hzr, 0, size)]), clip, like)
    r, r_slope = gated(e, f_act, e.op("Add", [part(e, xw, 1, size), part(e, hzr, 1, size)]), clip, like)
    hr = e.op("MatMul", [dr.hprev if linear else e.op("Mul", [r, dr.hprev]), e.op("Transpose", [r_h])])
    q = e.op("Add", [hr, rbh]) if rbh else hr
    n_in = e.op("Add", [part(e, xw, 2, size), e.op("Mul", [r, q]) if linear else q])
    n, n_slope = gated(e, g_act, n_in, clip, like)
    a_z = (e.t(dr.hprev, like) - n) * z_slope
    a_h = (1.0 - e.t(z, like)) * n_slope
    a_r = a_h * q * r_slope if linear else e.t(dr.hprev, like) * r_slope
    direct = keep(e, seq, z, 1.0)
    if linear:
        return _linear_backward(e, seq, dr, [a_z.name, a_r.name, a_h.name], r, direct)
    return _reset_backward(e, seq, dr, [a_z.name, a_r.name, a_h.name], r, direct, (r_zr, r_h))


def _linear_backward(e: Emitter, seq: Recurrence, dr: Direction, a: list[str], r: str, direct: str):
    """linear_before_reset: one MatMul by R a step; the gates' cotangents formed after the Scan."""
    a_z, a_r, a_h = a
    through_r = keep(e, seq, e.op("Concat", [a_z, a_r, e.op("Mul", [a_h, r])], axis=-1), 0.0)

    def body(dh: str, rest: list[str], steps: list[str]):
        spread = e.op("Mul", [e.op("Concat", [dh, dh, dh], axis=-1), steps[0]])
        return [e.op("MatMul", [spread, dr.r])], [e.op("Identity", [dh])]

    carry = dr.dyh or zeros(e, seq)
    (dh0,), (dhs,) = backward_scan(e, seq, dr, [carry], [through_r], body, direct)
    through_w = keep(e, seq, e.op("Concat", a, axis=-1), 0.0)
    return Backward(e.op("Mul", [e.op("Concat", [dhs, dhs, dhs], axis=-1), through_w]), dh0)


def _reset_backward(e: Emitter, seq, dr: Direction, a: list[str], r: str, direct: str, rs: tuple[str, str]):
    """Reset before the linear map: ``s = dp_h Rh`` and ``dp_r = s a_r`` need a second MatMul."""
    r_zr, r_h = rs
    elements = [keep(e, seq, x, 0.0) for x in a] + [r]

    def body(dh: str, rest: list[str], steps: list[str]):
        a_z, a_r, a_h, r_t = steps
        dp_z, dp_h = e.op("Mul", [dh, a_z]), e.op("Mul", [dh, a_h])
        s = e.op("MatMul", [dp_h, r_h])
        dp_r = e.op("Mul", [s, a_r])
        back = e.op("MatMul", [e.op("Concat", [dp_z, dp_r], axis=-1), r_zr])
        return [e.op("Add", [back, e.op("Mul", [s, r_t])])], [e.op("Concat", [dp_z, dp_r, dp_h], axis=-1)]

    carry = dr.dyh or zeros(e, seq)
    (dh0,), (grads,) = backward_scan(e, seq, dr, [carry], elements, body, direct)
    return Backward(grads, dh0)
