"""VJP rules of dynamic int8 quantization: DynamicQuantizeLinear, MatMulInteger and ConvInteger.

``onnxruntime.quantization.quantize_dynamic`` writes each MatMul, Gemm and Conv with constant weights
as ``q, s, z = DynamicQuantizeLinear(x)``, ``p = MatMulInteger(q, w_q, z, w_z)`` (or ConvInteger),
``y = Cast(p, float) * (s * w_s)``: one activation scale per run, weights stored as integers. As for
QDQ models (:mod:`.quantize`), the rounding passes straight through: the model is differentiated as
its float computation ``y = x @ ((w_q - w_z) w_s)``, with the dequantized weights. To cross the
integer tensors, ``q`` and the int32 product ``p`` carry data (:data:`..info.QUANTIZING`) and their
cotangents are float32 tensors in *integer units*, the derivative with respect to the integer value
read as a real number, so that each op keeps its plain derivative: Cast(p) passes its cotangent to
``p`` (:func:`.elementwise.cast`), MatMulInteger and ConvInteger are MatMul and Conv of the centered
integers ``q - z``, and DynamicQuantizeLinear, where ``q = x / s + z`` (its range always covers the
data), divides by ``s``. Scale and zero point get no cotangent: under the estimator ``(q - z) s = x``
depends on neither, so the paths through them cancel. An input zero everywhere has no range;
onnxruntime then writes ``s = 1`` (the reference evaluator 1/255) and the gradient stays exact (the
division is guarded against the spec's 0). Checks refuse what would break the convention: an
integer read by other ops, or an input quantized by QuantizeLinear, whose cotangent is kept in
dequantized units. onnxruntime's fused forms (DynamicQuantizeMatMul, MatMulIntegerToFloat,
DynamicQuantizeLSTM) are ``com.microsoft`` ops, refused by name with the other domains.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..emitter import Emitter
from ..info import GraphInfo
from ..registry import vjp
from ._shared import unbroadcast
from .conv import conv

FLOAT = onnx.TensorProto.FLOAT
# Ops whose integer outputs carry cotangents in integer units (read by the Cast rule).
RAW_INTEGERS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"})
TINY = np.array(np.finfo(np.float32).tiny, np.float32)


def _optional(node, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _readers(info: GraphInfo, name: str, allowed: frozenset[str]) -> list[str]:
    """Problems of the nodes reading integer tensor ``name`` that are not ``allowed``, or are Casts
    to anything but float32 (the cotangent would stop there, or change units). Readers from another
    domain whose outputs carry data are on the path and refused by name there."""
    found = []
    for reader in info.consumers.get(name, []):
        if reader.domain not in ("", "ai.onnx") and any(info.carries_data(o) for o in reader.output if o):
            continue
        cast = reader.op_type == "Cast"
        if reader.op_type not in allowed or (cast and info.dtype(reader.output[0]) != FLOAT):
            found.append(f"{name!r} read by {'a Cast not to float32' if cast else reader.op_type}")
    return found


def _dynamic_quantize_check(info: GraphInfo, node, wants) -> list[str]:
    return _readers(info, node.output[0], frozenset({"MatMulInteger", "ConvInteger", "Cast"}))


@vjp("DynamicQuantizeLinear", check=_dynamic_quantize_check)
def dynamic_quantize_linear(e: Emitter, node, g_out):
    """DynamicQuantizeLinear: dx = dq / y_scale (straight-through; y_scale, y_zero_point get none)."""
    if g_out[0] is None:
        return (None,)
    return (e.op("Div", [g_out[0], e.op("Max", [node.output[1], e.const(TINY)])]),)


def _integer_check(info: GraphInfo, node, wants, roles: tuple[str, str]) -> list[str]:
    """What MatMulInteger and ConvInteger share: quantized inputs, zero points, the product's readers."""
    problems = _readers(info, node.output[0], frozenset({"Cast"}))
    for role, name in zip(roles, node.input[:2]):
        producer = info.producer.get(name)
        if wants(name) and (producer is None or producer.op_type != "DynamicQuantizeLinear"):
            problems.append(f"{role} not quantized by DynamicQuantizeLinear")
    for zero in node.input[2:4]:
        if zero and (info.rank(zero) or 0) > 1:
            problems.append(f"zero point {zero!r} of rank above 1")
    return problems


def _centered(e: Emitter, q: str, zero: str | None, axis: int) -> str:
    """The integers ``q - zero`` in float32; a 1-D ``zero`` runs along ``axis`` of ``q``."""
    value = e.op("Cast", [q], to=FLOAT)
    if zero is None:
        return value
    shift = e.op("Cast", [zero], to=FLOAT)
    rank = e.info.known_rank(q)
    if e.info.rank(zero) == 1 and axis % rank != rank - 1:
        shift = e.op("Reshape", [shift, e.ints([-1] + [1] * (rank - 1 - axis % rank))])
    return e.op("Sub", [value, shift])


def _swap_last_two(e: Emitter, x: str, rank: int) -> str:
    return e.op("Transpose", [x], perm=list(range(rank - 2)) + [rank - 1, rank - 2])


def _matmul_integer_check(info: GraphInfo, node, wants) -> list[str]:
    ranks = [r for r in (info.rank(n) for n in list(node.input[:2]) + [node.output[0]]) if r is not None]
    if len(ranks) < 3:
        return ["unknown operand rank"]
    return (["1-D operand"] if min(ranks[:2]) < 2 else []) + _integer_check(info, node, wants, ("A", "B"))


@vjp("MatMulInteger", check=_matmul_integer_check)
def matmul_integer(e: Emitter, node, g_out):
    """MatMulInteger: y = (a - za) @ (b - zb); da = dy @ (b - zb)^T, db = (a - za)^T @ dy, unbroadcast."""
    (dy,), (a, b), y = g_out, node.input[:2], node.output[0]
    da = db = None
    if e.wants(a):
        b_centered = _centered(e, b, _optional(node, 3), -1)
        da = unbroadcast(e, e.op("MatMul", [dy, _swap_last_two(e, b_centered, e.info.known_rank(b))]), a, y)
    if e.wants(b):
        a_centered = _centered(e, a, _optional(node, 2), -2)
        db = unbroadcast(e, e.op("MatMul", [_swap_last_two(e, a_centered, e.info.known_rank(a)), dy]), b, y)
    return (da, db) + (None,) * (len(node.input) - 2)


def _conv_integer_check(info: GraphInfo, node, wants) -> list[str]:
    problems = _integer_check(info, node, wants, ("x", "w"))
    w, w_zero = node.input[1], _optional(node, 3)
    if wants(w) or not info.is_const(w) or (w_zero is not None and not info.is_const(w_zero)):
        problems.append("weight or its zero point is not a constant")
    elif info.static_shape(w) is None:
        problems.append("weight shape unknown")
    if info.rank(node.input[0]) is None:
        problems.append("input rank unknown")
    return problems


@vjp("ConvInteger", check=_conv_integer_check)
def conv_integer(e: Emitter, node, g_out):
    """ConvInteger: y = Conv(x - zx, w - zw); dx = the Conv rule's dx with the weights w - zw."""
    x, w, w_zero = node.input[0], node.input[1], _optional(node, 3)
    centered = _centered(e, w, w_zero, 0)
    zero = np.zeros(1) if w_zero is None else e.info.const_value(w_zero)
    value = e.info.const_value(w)
    assert value is not None and zero is not None  # the check: constant weights and zero point
    shift = zero.reshape((-1,) + (1,) * (value.ndim - 1)) if zero.ndim == 1 else zero
    e.info.declare_constant(centered, (value.astype(np.float32) - shift).astype(np.float32))
    proxy = helper.make_node("Conv", [x, centered], [node.output[0]], name=node.name)
    proxy.attribute.extend(node.attribute)
    return (conv(e, proxy, g_out)[0],) + (None,) * (len(node.input) - 1)
