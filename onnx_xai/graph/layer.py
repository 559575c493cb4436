"""The target layer: the tensor CAM-family methods explain, and how it reads as ``[N, K, h, w]``.

CNNs: the candidates are the 4-D tensors every path from the input to the score crosses, after the
first convolution (before it they are the preprocessed image), with more than one channel (a
one-channel map is a dense output's own logit map) and before the global spatial collapse
(the first of them whose spatial size is 1 x 1, or a flatten to [N, K]); the default is the last, the
input of the head's pooling after the BN/ReLU of the last conv (ResNet ``layer4``, VGG
``features``). Each candidate is read in its own layout (:mod:`.layout`), so a channels-last
tensor of a TensorFlow export explains the same as its channels-first twin.

Vision transformers: when the last 4-D tensor is a patch embedding whose grid (h, w) is followed by
token sequences ``[N, prefix + h*w, C]`` mixed by attention (a MatMul of two computed tensors), the
default is the normalized tokens that feed the last attention's projections (the last block's first
LayerNorm, as in pytorch-grad-cam's ViT recipe, found as the input of the last linear layer on
tokens before that attention, so a LayerNorm spelled out in elementwise ops is found too; a linear
layer on the sequence-first ``[T, N, C]`` transpose of the tokens, as torch's
``nn.MultiheadAttention`` exports, counts as one on the tokens), read without the special tokens
(class, distillation, registers: as many as the sequence holds beyond the patches) and reshaped to
the patch grid. A grid known only at run time (position embeddings resized to the input's grid) is
read then from the patch embedding's shape, the tokens before the last h*w dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..support.errors import ModelError
from .attention import attention_input, attention_mixers
from .contract import LayerView
from .info import GraphInfo, attr
from .layout import NCHW, NCT, NTC, spatial_axes
from .paths import ancestors, dependents, dominators, reaches

TOKENS = "tokens"
CONVOLUTIONS = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger"})
MAX_PREFIX = 8  # class, distillation and register tokens before the patch tokens


@dataclass(frozen=True)
class TokenGrid:
    """A vision transformer's patch grid: the patch-embedding tensor, the grid and token count (None
    when the grid is known only at run time)."""

    patches: str
    grid: tuple[int, int] | None
    tokens: int | None
    mixer: str  # output of the last attention MatMul (both operands computed from the input)

    @property
    def prefix(self) -> int | None:
        return None if self.grid is None or self.tokens is None else self.tokens - self.grid[0] * self.grid[1]

    def holds(self, info: GraphInfo, name: str) -> bool:
        """Whether ``name`` is a token sequence of this grid (``[N, tokens, C]``; at a run-time grid,
        ``[N, T, C]`` with T symbolic)."""
        if self.grid is None or self.tokens is None:
            shape = info.shape(name)
            return shape is not None and len(shape) == 3 and not isinstance(shape[1], int)
        return _token_count(info, name, self.grid[0] * self.grid[1]) == self.tokens

    def view(self, info: GraphInfo, name: str) -> LayerView:
        first = _sequence_first(info, name)
        if self.grid is None:
            return LayerView(name, TOKENS, None, None, self.patches, sequence_first=first)
        return LayerView(name, TOKENS, self.prefix, self.grid, sequence_first=first)


def candidates(
    info: GraphInfo, source: str, score: str, layouts: dict[str, str], limit: int = 10
) -> list[LayerView]:
    """Target-layer candidates, the default first (see the module docstring)."""
    doms = [d for d in dominators(info, source, score) if d != score]  # a map's output explains nothing
    spatial = _spatial_candidates(info, doms, layouts)[:limit]
    grid = token_grid(info, source, doms, layouts)
    windowed = _windowed_attention_layer(info, source, score, layouts)
    if windowed is not None and (grid is None or not grid.holds(info, windowed.name)):
        return ([windowed] + [v for v in spatial if v.name != windowed.name])[:limit]
    if grid is None:
        return spatial
    tokens = [grid.view(info, n) for n in _token_tensors(info, doms, grid)]
    return (tokens + spatial)[:limit]


def convention(views: list[LayerView], named: bool, attention: str | None) -> str:
    """Which convention chose the target layers, in words (``inspect`` prints it); ``attention``: the
    tensor the model's last attention normalizes (:func:`.attention.attention_input`), if any."""
    if named:
        return "named by the user"
    if len(views) > 1:
        return (
            f"multi-scale detector: the {len(views)} neck outputs feeding the head, one per scale, each "
            "on a path of its own to the candidates (the CAM family fuses their maps)"
        )
    view = views[0]
    if view.layout == TOKENS:
        grid = (
            f"the {view.grid[0]}x{view.grid[1]} token grid"
            if view.grid
            else "the patch grid read at run time"
        )
        dropped = "its special tokens dropped" if view.prefix != 0 else "no special tokens"
        return (
            "vision transformer: the last block's first LayerNorm (the tokens entering the last attention's "
            f"projections), {dropped}, on {grid}"
        )
    if attention is not None and view.name == attention:
        return (
            "windowed-attention transformer: the last block's first LayerNorm (the map entering the last "
            f"attention's windows), read {view.layout}"
        )
    if view.layout in (NCT, NTC):
        return "signal: the last feature map [N, C, T'] every path crosses, before the collapse over time"
    cnn = "the last feature map before the head's global pooling (after the last conv's BN/ReLU)"
    if attention is not None:
        return (
            f"no transformer convention matched (the last attention's input {attention!r} is not a token "
            f"grid or a map of the patch grid): {cnn}; name another with --target-layer"
        )
    return f"CNN: {cnn}"


def default_layer(info: GraphInfo, source: str, score: str, layouts: dict[str, str]) -> LayerView:
    found = candidates(info, source, score, layouts, limit=1)
    if not found:
        raise ModelError(
            "found no 4-D activation that every path from the input to the score passes "
            "through; name one with target_layer"
        )
    return found[0]


def _spatial_size(info: GraphInfo, name: str, layout: str) -> list:
    shape = info.shape(name)
    return [shape[a] for a in spatial_axes(layout)] if shape is not None else [None, None]


def _spatial_candidates(info: GraphInfo, doms: list[str], layouts: dict[str, str]) -> list[LayerView]:
    """4-D tensors after the first convolution (before it, tensors are the preprocessed image) and
    before the global spatial collapse (after it, nothing is a map)."""
    convolved = dependents(info, [n.output[0] for n in info.nodes() if n.op_type in CONVOLUTIONS])
    found = []
    for name in doms[1:]:
        if info.rank(name) == 2 or (name in layouts and _spatial_size(info, name, layouts[name]) == [1, 1]):
            break
        if (
            info.rank(name) == 4
            and info.is_float(name)
            and name in layouts
            and name in convolved
            and _channels(info, name, layouts[name]) != 1
        ):
            found.append(LayerView(name, layouts[name]))
    return found[::-1]


def _channels(info: GraphInfo, name: str, layout: str):
    """The channel count of a 4-D tensor (a one-channel map is a dense output itself, which the CAM
    family cannot explain by channels)."""
    return info.known_shape(name)[layout.index("C")]


def token_grid(info: GraphInfo, source: str, doms: list[str], layouts: dict[str, str]) -> TokenGrid | None:
    """The patch grid of a vision transformer, or None for other models."""
    patches = [d for d in doms if info.rank(d) == 4 and layouts.get(d) == NCHW]
    mixers = attention_mixers(info, source)
    if not patches or patches[-1] == source or not mixers:
        return None
    size = [d for d in info.known_shape(patches[-1])[2:] if isinstance(d, int)]
    feeding = ancestors(info, mixers[-1])
    if len(size) != 2:  # a grid known at run time: tokens of a symbolic count feed the attention
        runtime = TokenGrid(patches[-1], None, None, mixers[-1])
        after = doms[doms.index(patches[-1]) + 1 :]
        return runtime if any(d in feeding and runtime.holds(info, d) for d in after) else None
    counts = [
        _token_count(info, d, size[0] * size[1]) for d in doms[doms.index(patches[-1]) + 1 :] if d in feeding
    ]
    known = [c for c in counts if c]
    return TokenGrid(patches[-1], (size[0], size[1]), known[-1], mixers[-1]) if known else None


def _token_count(info: GraphInfo, name: str, patches: int) -> int | None:
    """The token count of a sequence ``[N, T, C]`` (or ``[T, N, C]``) of ``patches`` tokens after at
    most :data:`MAX_PREFIX` special ones; else None."""
    shape = info.shape(name)
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int):
        return None
    count = shape[0] if _sequence_first(info, name) else shape[1]
    return count if isinstance(count, int) and 0 <= count - patches <= MAX_PREFIX else None


def _sequence_first(info: GraphInfo, name: str) -> bool:
    """Tokens laid out ``[T, N, C]``: a fixed first axis and the (freed, symbolic) batch second."""
    shape = info.shape(name)
    return (
        shape is not None and len(shape) == 3 and isinstance(shape[0], int) and not isinstance(shape[1], int)
    )


def _windowed_attention_layer(
    info: GraphInfo, source: str, score: str, layouts: dict[str, str]
) -> LayerView | None:
    """A transformer whose only convolution is its patch embedding but whose tokens do not keep the
    patch grid's count (Swin: windows, patch merging): the tensor its last attention normalizes,
    a map in its layout (torchvision's ``[N, H, W, C]``) or tokens ``[N, L, C]`` on the patch grid
    halved as often as L says (Hugging Face's); None for other models."""
    mixers = attention_mixers(info, source)
    on_path = dependents(info, [source]) & ancestors(info, score)
    convolutions = [n for n in info.nodes() if n.op_type in CONVOLUTIONS and n.output[0] in on_path]
    if not mixers or len(convolutions) != 1:
        return None
    name = attention_input(info, mixers[-1], source)
    if name is None or not reaches(info, name, score):
        return None
    if info.rank(name) == 4 and name in layouts:
        return LayerView(name, layouts[name])
    patches = convolutions[0].output[0]
    size = info.known_shape(patches)[2:] if patches in layouts and layouts[patches] == NCHW else None
    count = (info.shape(name) or [None, None])[1] if info.rank(name) == 3 else None
    height, width = size if size is not None else (None, None)
    if not (isinstance(count, int) and isinstance(height, int) and isinstance(width, int)):
        return None
    for halvings in range(6):
        grid = (height >> halvings, width >> halvings)
        if grid[0] * grid[1] == count and grid[0] << halvings == height and grid[1] << halvings == width:
            return LayerView(name, TOKENS, 0, grid)
    return None


def _token_tensors(info: GraphInfo, doms: list[str], grid: TokenGrid) -> list[str]:
    """Token sequences that feed the last attention, last first: the inputs of its projections
    (and earlier ones: linear layers with constant weights on tokens, the normalized tokens of each
    block, whether LayerNormalization is one op or spelled out), then the residual stream."""
    feeding = ancestors(info, grid.mixer)

    def tokens(name: str) -> bool:
        return name in feeding and grid.holds(info, name)

    projected = [
        _batch_first(info, n.input[0])
        for n in info.nodes()
        if n.op_type in ("MatMul", "Gemm")
        and info.is_weight(n.input[1])
        and tokens(_batch_first(info, n.input[0]))
    ]
    stream = [d for d in doms if tokens(d)]
    return list(dict.fromkeys(projected[::-1] + stream[::-1]))


def _batch_first(info: GraphInfo, name: str) -> str:
    """The batch-first tokens ``[N, T, C]`` behind a sequence-first ``[T, N, C]`` transpose of them
    (torch's ``nn.MultiheadAttention`` exported by TorchScript projects its input that way), else
    ``name`` itself."""
    node = info.producer.get(name)
    if node is not None and node.op_type == "Transpose" and list(attr(node, "perm") or []) == [1, 0, 2]:
        return node.input[0]
    return name


def view_of(info: GraphInfo, name: str, source: str, score: str, layouts: dict[str, str]) -> LayerView:
    """How a target layer named by the user reads as [N, K, h, w] (unknown 4-D layouts as NCHW)."""
    if name not in info.producer:
        raise ModelError(f"the model has no tensor named {name!r} produced by a node")
    rank = info.rank(name)
    if rank == 4 and info.is_float(name):
        return LayerView(name, layouts.get(name, NCHW))
    if rank == 3 and info.is_float(name) and layouts.get(name) in (NCT, NTC):
        return LayerView(name, layouts[name])  # a signal's feature map
    grid = token_grid(info, source, dominators(info, source, score), layouts) if rank == 3 else None
    if grid is not None and grid.holds(info, name):
        return grid.view(info, name)
    raise ModelError(
        f"target layer {name!r} has shape {info.shape(name)}: it must be a 4-D float tensor, "
        "a vision transformer's token sequence [N, prefix + h*w, C], or a signal's [N, C, T] map"
    )


def check_layer(info: GraphInfo, view: LayerView, source: str, score: str) -> None:
    if not reaches(info, source, view.name) or not reaches(info, view.name, score):
        raise ModelError(f"target layer {view.name!r} does not lie between the input and the score")
