"""VJP rules of the com.microsoft ops that onnxruntime's transformer optimizer and model builder write for
decoder-only language models (Llama, Qwen, Phi, Mistral), keyed as :mod:`.contrib` says: RotaryEmbedding
and MatMulNBits here, GroupQueryAttention in :mod:`.contrib_gqa` (which turns its query and key by
:func:`rotate` too). RotaryEmbedding turns each pair of features ``(a, b)`` of a head's first ``R``
features (``R`` twice the caches' width; halves ``[:R/2], [R/2:R]`` or interleaved neighbours) by the
angle of its position, ``(a cos - b sin, b cos + a sin)``; the rest pass unchanged. A rotation's
transpose is the rotation by minus the angle, so the input's cotangent is the output's turned back.
As onnxruntime 1.32's CPU kernel reads it (measured): a 3-D input is ``[B, S, hidden]`` in heads of
``hidden / num_heads`` (of ``R`` when num_heads is 0), a 4-D one ``[B, N, S, H]``; 1-D position ids
``[1]`` give the first position, 2-D ones ``[B, S]`` every position; ``scale`` changes nothing.
MatMulNBits multiplies by a weight stored in blocks of ``block_size`` along K, each block's 2, 4 or 8
bit integers ``q`` (packed low bits first) read back as ``(q - zero_point) * scale``; its rule rebuilds
``W^T [N, K]`` from the packed constants with standard ops (BitShift, Mod, Cast; onnxruntime folds
them once when the session starts, and the file keeps the packed weights) and gives ``dA = dY W^T``,
the gradient of the op's definition (the int8 arithmetic of ``accuracy_level`` 4 is the kernel's).
Refused, each in one phrase: RotaryEmbedding's packed batching, inputs of other ranks, caches that
depend on the input; MatMulNBits' other bit widths, a ``g_idx`` that reorders the blocks or sits
beside packed zero points (the CPU kernel then reads none: measured), prepacked or empty weights, and
weights, scales, zero points or bias that depend on the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..emitter import Emitter
from ..info import attr
from ..registry import vjp
from .contrib import ms, weights_check

INT64 = onnx.TensorProto.INT64
UINT8 = onnx.TensorProto.UINT8
END = int(np.iinfo(np.int64).max)
BITS = (2, 4, 8)


def optional_input(node, index: int) -> str:
    """The node's input at ``index``, or "" where it is absent."""
    return node.input[index] if len(node.input) > index else ""


def dim(e: Emitter, x: str, axis: int) -> str:
    """Dimension ``axis`` of ``x`` at run time, a 0-d int64."""
    return e.op("Gather", [e.op("Shape", [x]), e.const(np.array(axis, np.int64))])


def steps(e: Emitter, length: str) -> str:
    """0, 1, ..., length - 1 (int64)."""
    return e.op("Range", [e.const(np.array(0, np.int64)), length, e.const(np.array(1, np.int64))])


@dataclass(frozen=True)
class Rotation:
    """The angles of a rotary embedding, laid out against a 4-D tensor viewed as pairs of features:
    ``cos`` and ``sin`` broadcast to ``[.., 2, R/2]`` (halves) or ``[.., R/2, 2]`` (interleaved);
    ``width`` is ``R`` (1-D int64)."""

    cos: str
    sin: str
    width: str
    interleaved: bool


def rotation(e: Emitter, caches: tuple[str, str], positions: str, head_axis: int, interleaved: bool):
    """The :class:`Rotation` at ``positions`` (int64 ``[B or 1, S]``) for a tensor whose heads lie
    along ``head_axis`` (1: ``[B, N, S, H]``, 2: ``[B, S, N, H]``)."""
    pair_axis = 4 if interleaved else 3
    cos, sin = (e.unsqueeze(e.op("Gather", [cache, positions]), [head_axis, pair_axis]) for cache in caches)
    half = e.op("Slice", [e.op("Shape", [caches[0]]), e.ints([1]), e.ints([2])])
    return Rotation(cos, sin, e.op("Mul", [half, e.ints([2])]), interleaved)


def rotate(e: Emitter, x: str, turn: Rotation, like: str, inverse: bool = False) -> str:
    """``x`` (4-D, features last) with its first ``R`` features turned by ``turn``'s angles, or by
    minus them (``inverse``: the transpose, which takes a cotangent back)."""
    part = e.op("Slice", [x, e.ints([0]), turn.width, e.ints([-1])])
    rest = e.op("Slice", [x, turn.width, e.ints([END]), e.ints([-1])])
    axis = -1 if turn.interleaved else -2
    pairs = e.op("Reshape", [part, e.ints([0, 0, 0, -1, 2] if turn.interleaved else [0, 0, 0, 2, -1])])
    a, b = (e.t(e.op("Slice", [pairs, e.ints([i]), e.ints([i + 1]), e.ints([axis])]), like) for i in (0, 1))
    cos, sin = e.t(turn.cos, like), e.t(e.op("Neg", [turn.sin]) if inverse else turn.sin, like)
    turned = e.op("Concat", [a * cos - b * sin, b * cos + a * sin], axis=axis)
    return e.op("Concat", [e.op("Reshape", [turned, e.ints([0, 0, 0, -1])]), rest], axis=-1)


# -- RotaryEmbedding ------------------------------------------------------------------------------------
def rank_problems(info, name: str, role: str, ranks: tuple[int, ...]) -> list[str]:
    """``["<role> of rank r"]`` (or of unknown rank) unless ``name``'s rank is one of ``ranks``."""
    rank = info.rank(name)
    if rank is None:
        return [f"{role} of unknown rank"]
    return [] if rank in ranks else [f"{role} of rank {rank}"]


def _rotary_check(info, node, wants) -> list[str]:
    problems = weights_check(2, 3)(info, node, wants)
    problems += rank_problems(info, node.input[0], "input", (3, 4))
    problems += rank_problems(info, node.input[1], "position_ids", (1, 2))
    return problems + (
        ["is_packed_batching=1 (ragged batches)"] if attr(node, "is_packed_batching", 0) else []
    )


def _rotary_positions(e: Emitter, node, length: str) -> str:
    """Every position, int64 ``[B or 1, S]``: 2-D ids as they are, 1-D ones ``[start]`` counted on."""
    ids = e.op("Cast", [node.input[1]], to=INT64)
    if e.info.known_rank(node.input[1]) == 2:
        return ids
    return e.unsqueeze(e.op("Add", [steps(e, length), ids]), [0])


def _heads_view(e: Emitter, node, x: str, width: str) -> str:
    """A 3-D input ``[B, S, hidden]`` viewed as ``[B, S, N, H]``."""
    heads = attr(node, "num_heads", 0)
    if heads:
        return e.op("Reshape", [x, e.ints([0, 0, heads, -1])])
    return e.op("Reshape", [x, e.op("Concat", [e.ints([0, 0, -1]), width], axis=0)])


@vjp(ms("RotaryEmbedding"), check=_rotary_check)
def rotary_embedding(e: Emitter, node, g_out):
    """RotaryEmbedding: d input = the output's cotangent turned back (each pair by minus its angle)."""
    x = node.input[0]
    flat = e.info.known_rank(x) == 3
    positions = _rotary_positions(e, node, dim(e, x, 1 if flat else 2))
    caches = (node.input[2], node.input[3])
    turn = rotation(e, caches, positions, 2 if flat else 1, bool(attr(node, "interleaved", 0)))
    g = _heads_view(e, node, g_out[0], turn.width) if flat else g_out[0]
    dx = rotate(e, g, turn, x, inverse=True)
    return (e.op("Reshape", [dx, e.ints([0, 0, -1])]) if flat else dx,) + (None,) * (len(node.input) - 1)


# -- MatMulNBits ----------------------------------------------------------------------------------------
def _g_idx_problems(info, node) -> list[str]:
    """A ``g_idx`` (deprecated) is read where it maps row k of W to block ``k // block_size``, without
    packed zero points (beside which onnxruntime 1.32's CPU kernel reads none: measured)."""
    name, zero = optional_input(node, 4), optional_input(node, 3)
    if not name:
        return []
    g_idx, k, block = info.const_value(name), attr(node, "K"), attr(node, "block_size")
    if g_idx is None or g_idx.shape != (k,) or (g_idx != np.arange(k) // block).any():
        return ["g_idx input reordering the blocks"]
    return ["g_idx input beside packed zero_points"] if zero and info.dtype(zero) == UINT8 else []


def _nbits_check(info, node, wants) -> list[str]:
    problems = weights_check(1, 2, 3, 5)(info, node, wants)
    bits, zero = attr(node, "bits", 4), optional_input(node, 3)
    problems += [] if bits in BITS else [f"bits={bits} (2, 4 and 8 are read)"]
    problems += _g_idx_problems(info, node)
    if attr(node, "weight_prepacked", 0):
        problems.append(f"weight_prepacked={attr(node, 'weight_prepacked')} (an execution provider's layout)")
    if zero and not info.dtype(zero):
        problems.append("zero_points of unknown type")
    shape = info.static_shape(node.input[1])
    return problems + (["an empty B (an omitted projection)"] if shape is not None and 0 in shape else [])


def _unpacked(e: Emitter, packed: str, bits: int, rows: int) -> str:
    """Bytes ``[rows, ...]`` -> their ``bits``-wide integers ``[rows, m]`` (uint8), the low bits first."""
    flat = e.op("Reshape", [packed, e.ints([rows, -1])])
    if bits == 8:
        return flat
    per, size = 8 // bits, e.const(np.array(2**bits, np.uint8))
    parts = []
    for i in range(per):
        shifted = (
            e.op("BitShift", [flat, e.const(np.array(i * bits, np.uint8))], direction="RIGHT") if i else flat
        )
        parts.append(e.unsqueeze(e.op("Mod", [shifted, size]) if i < per - 1 else shifted, [2]))
    return e.op("Reshape", [e.op("Concat", parts, axis=2), e.ints([rows, -1])])


def _zero_point(e: Emitter, node, blocks: int) -> str:
    """Each block's zero point ``[N, blocks, 1]`` in the scales' type: packed integers, floats, or the
    default ``2^(bits - 1)``."""
    zero, scales, n, bits = optional_input(node, 3), node.input[2], attr(node, "N"), attr(node, "bits", 4)
    if not zero:
        return e.scalar(float(2 ** (bits - 1)), scales)
    if e.info.dtype(zero) == UINT8:
        zero = e.op("Slice", [_unpacked(e, zero, bits, n), e.ints([0]), e.ints([blocks]), e.ints([1])])
        zero = e.cast_like(zero, scales)
    return e.op("Reshape", [zero, e.ints([n, blocks, 1])])


def dequantized_transpose(e: Emitter, node) -> str:
    """``W^T [N, K]`` of a MatMulNBits node, in its scales' float type: block ``j`` of row ``n`` is
    ``(q - zero_point[n, j]) * scales[n, j]``, the padding past K dropped."""
    packed, scales = node.input[1], node.input[2]
    n, k, bits, block = attr(node, "N"), attr(node, "K"), attr(node, "bits", 4), attr(node, "block_size")
    blocks = -(-k // block)
    q = e.op("Reshape", [_unpacked(e, packed, bits, n), e.ints([n, blocks, block])])
    centred = e.t(e.cast_like(q, scales), scales) - _zero_point(e, node, blocks)
    w = centred * e.op("Reshape", [scales, e.ints([n, blocks, 1])])
    return e.op("Slice", [e.op("Reshape", [w, e.ints([n, -1])]), e.ints([0]), e.ints([k]), e.ints([1])])


@vjp(ms("MatMulNBits"), check=_nbits_check)
def mat_mul_n_bits(e: Emitter, node, g_out):
    """MatMulNBits: dA = dY W^T, W dequantized from its packed blocks by the op's definition."""
    return (e.op("MatMul", [g_out[0], dequantized_transpose(e, node)]),) + (None,) * (len(node.input) - 1)
