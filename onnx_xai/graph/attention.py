"""Where a transformer's last attention takes its input.

Attention is a MatMul of two tensors both computed from the image (queries times keys). Its queries
come from a linear layer (a MatMul or Gemm with constant weights, then a bias, a scale) applied to a
tensor that may have been rearranged first: transposed sequence-first (torch's
``nn.MultiheadAttention``), viewed as a map and cut into windows (Swin), rolled by a shift (exported
as Slice + Concat), padded. Walking back from the queries through the projection and those moves
reaches the tensor the block normalized for its attention: the last block's first LayerNorm, which
is the layer the transformer families' Grad-CAM convention explains (pytorch-grad-cam's ViT and Swin
recipes), whatever the layout it is kept in between blocks (tokens ``[N, L, C]`` or a map
``[N, H, W, C]``).
"""

from __future__ import annotations

from .info import GraphInfo
from .paths import dependents

MOVES = frozenset(
    {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Pad", "Slice", "Concat"}
)
PICKS = frozenset({"Gather", "Split"})  # one of q, k, v out of a fused projection
SCALES = frozenset({"Mul", "Div", "Add", "Sub"})  # by a constant: a bias, the 1/sqrt(d) scale
LINEAR = frozenset({"MatMul", "Gemm"})


def attention_mixers(info: GraphInfo, source: str) -> list[str]:
    """Outputs of MatMuls whose two operands are both computed from the input (attention), in
    topological order."""
    computed = dependents(info, [source])
    return [
        n.output[0] for n in info.nodes() if n.op_type == "MatMul" and all(i in computed for i in n.input)
    ]


def attention_input(info: GraphInfo, mixer: str, source: str) -> str | None:
    """The tensor the queries of attention ``mixer`` are projected from, before the moves that lay it
    out for the projection (see the module docstring); None when no linear projection is found. From
    ``weights @ v`` the walk goes back through the Softmax to ``q @ k^T`` and on to the queries."""
    computed = dependents(info, [source])
    name, projected = info.producer[mixer].input[0], False
    while name in info.producer:
        node = info.producer[name]
        data = [i for i in node.input if i in computed]
        if not projected and node.op_type in LINEAR and len(node.input) > 1 and info.is_weight(node.input[1]):
            name, projected = node.input[0], True
        elif not projected and (node.op_type in ("Softmax", "MatMul")):  # weights @ v: to q @ k^T, to q
            name = node.input[0]
        elif node.op_type in MOVES or (not projected and node.op_type in PICKS):
            name = data[0] if data else node.input[0]
        elif not projected and node.op_type in SCALES and len(data) == 1:
            name = data[0]
        else:
            break
    return name if projected else None
