"""Vision transformers as their libraries write them, re-implemented small (torchvision, timm and
transformers are too heavy for CI): torchvision's ViT, whose ``nn.MultiheadAttention`` TorchScript
exports sequence-first (``[T, N, C]``), and a DINOv2-style ViT with register tokens whose attention
is ``scaled_dot_product_attention`` (dynamo guards its softmax with ``Where(IsNaN)``), and a ViT
whose patch grid is known only at run time (its position embedding resized to the input's grid).

Each net's ``target`` is the layer its family's convention explains (the last block's first
LayerNorm) and ``to_nchw`` reads it as ``[N, K, h, w]`` without the special tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nets import FormNet


class TorchvisionBlock(nn.Module):
    """torchvision's ``EncoderBlock``: ln_1 -> MultiheadAttention (batch first) -> residual, ln_2 ->
    MLP -> residual."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class Tokens(FormNet):
    """Shared: patch embedding (8 x 8 patches of a 32 x 32 input), ``prefix`` special tokens first,
    the target read without them on the 4 x 4 grid."""

    prefix = 1

    def to_nchw(self, activation):
        tokens = activation[:, self.prefix :]
        n, t, c = tokens.shape
        side = int(round(t**0.5))
        return tokens.reshape(n, side, side, c).permute(0, 3, 1, 2)


class TorchvisionViT(Tokens):
    """torchvision's ``VisionTransformer``: conv_proj, class token, position embedding, encoder
    blocks, final LayerNorm, head on the class token."""

    def __init__(self, classes: int = 5, dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, 8, 8)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embedding = nn.Parameter(torch.randn(1, 17, dim) * 0.5)
        self.layers = nn.Sequential(*[TorchvisionBlock(dim, heads) for _ in range(depth)])
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.target = self.layers[-1].ln_1

    def forward(self, x):
        tokens = self.conv_proj(x).reshape(x.shape[0], self.conv_proj.out_channels, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


class SdpaBlock(nn.Module):
    """A timm/DINOv2 block whose attention is ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj, self.heads = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, c))
        return x + self.mlp(self.norm2(x))


class RegistersViT(Tokens):
    """DINOv2 with registers: the position embedding added to the class and patch tokens, then four
    register tokens inserted after the class token; a linear head on the class token."""

    prefix = 5

    def __init__(self, classes: int = 5, dim: int = 32, depth: int = 2, heads: int = 2, registers: int = 4):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.register_tokens = nn.Parameter(torch.randn(1, registers, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.5)
        self.blocks = nn.Sequential(*[SdpaBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.target = self.blocks[-1].norm1

    def forward(self, x):
        n = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1) + self.pos_embed
        x = torch.cat([x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]], dim=1)
        return self.head(self.norm(self.blocks(x))[:, 0])


class RuntimeGridViT(Tokens):
    """A ViT taking any input size: the position embedding stored for a 4 x 4 grid is resized
    (bicubic, as DINOv2's ``interpolate_pos_encoding``) to the grid of the input at run time."""

    def __init__(self, classes: int = 5, dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.5)
        self.blocks = nn.Sequential(*[SdpaBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.target = self.blocks[-1].norm1

    def forward(self, x):
        patches = self.patch_embed(x)
        n, c, h, w = patches.shape
        stored = self.pos_embed[:, 1:].reshape(1, 4, 4, c).permute(0, 3, 1, 2)
        grid = F.interpolate(stored, size=(h, w), mode="bicubic", align_corners=False)
        pos = torch.cat([self.pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        x = torch.cat([self.cls_token.expand(n, -1, -1), patches.flatten(2).transpose(1, 2)], dim=1) + pos
        return self.head(self.norm(self.blocks(x))[:, 0])


NETS = {"vit_torchvision": TorchvisionViT, "vit_registers": RegistersViT, "vit_runtime_grid": RuntimeGridViT}


class WindowAttention(nn.Module):
    """Swin's (shifted) window attention on an ``[N, H, W, C]`` map: roll, partition into windows of
    ``window`` x ``window`` tokens, attention with a learned bias per head and pair, reverse, roll back."""

    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__()
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.randn(heads, window * window, window * window) * 0.1)
        self.heads, self.window, self.shift = heads, window, shift

    def forward(self, x):
        n, h, w, c = x.shape
        s, k = self.window, self.shift
        if k:
            x = torch.roll(x, shifts=(-k, -k), dims=(1, 2))
        windows = x.reshape(n, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        qkv = self.qkv(windows).reshape(windows.shape[0], s * s, 3, self.heads, c // self.heads)
        q, kk, v = qkv.permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ kk.transpose(-2, -1) * (c // self.heads) ** -0.5 + self.bias, dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(-1, s * s, c))
        x = out.reshape(n, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)
        return torch.roll(x, shifts=(k, k), dims=(1, 2)) if k else x


class SwinBlock(nn.Module):
    """A Swin block on ``[N, H, W, C]`` (torchvision's layout), or on tokens ``[N, H*W, C]`` viewed as
    a map around the attention (Hugging Face's): norm1 -> window attention -> residual, norm2 -> MLP."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, side: int | None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, shift)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.side = side  # tokens: the map's side; None: the input is the map itself

    def forward(self, x):
        y = self.norm1(x)
        if self.side is not None:
            y = self.attn(y.reshape(y.shape[0], self.side, self.side, -1)).reshape(x.shape)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2 x 2 neighbours concatenated (4C), normalized, projected to 2C: the grid halves."""

    def __init__(self, dim: int, side: int | None):
        super().__init__()
        self.norm, self.reduction, self.side = (
            nn.LayerNorm(4 * dim),
            nn.Linear(4 * dim, 2 * dim, bias=False),
            side,
        )

    def forward(self, x):
        grid = x if self.side is None else x.reshape(x.shape[0], self.side, self.side, -1)
        parts = [grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]]
        merged = self.reduction(self.norm(torch.cat(parts, -1)))
        return merged if self.side is None else merged.reshape(x.shape[0], -1, merged.shape[-1])


class Swin(FormNet):
    """Swin on a 32 x 32 input: 4 x 4 patches (an 8 x 8 grid of 16 channels), a stage of a plain and
    a shifted block with windows of 4, patch merging (4 x 4, 32 channels), a stage of two blocks, the
    final norm, average pooling and a linear head. ``tokens``: Hugging Face's layout, ``[N, L, C]``
    between blocks (the grid lost to the sequence); else torchvision's ``[N, H, W, C]``."""

    def __init__(self, classes: int = 5, tokens: bool = False):
        super().__init__()
        self.tokens = tokens
        self.patch_embed, self.embed_norm = nn.Conv2d(3, 16, 4, 4), nn.LayerNorm(16)
        first, last = (8, 4) if tokens else (None, None)
        self.stage1 = nn.Sequential(SwinBlock(16, 2, 4, 0, first), SwinBlock(16, 2, 4, 2, first))
        self.merge = PatchMerging(16, first)
        self.stage2 = nn.Sequential(SwinBlock(32, 2, 4, 0, last), SwinBlock(32, 2, 4, 0, last))
        self.norm, self.head = nn.LayerNorm(32), nn.Linear(32, classes)
        self.target = self.stage2[-1].norm1

    def to_nchw(self, activation):
        if activation.dim() == 3:
            n, t, c = activation.shape
            side = int(round(t**0.5))
            activation = activation.reshape(n, side, side, c)
        return activation.permute(0, 3, 1, 2)

    def forward(self, x):
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        if self.tokens:
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        x = self.norm(self.stage2(self.merge(self.stage1(x))))
        pooled = x.mean(1) if self.tokens else x.mean((1, 2))
        return self.head(pooled)


class SwinTorchvision(Swin):
    def __init__(self, classes: int = 5):
        super().__init__(classes, tokens=False)


class SwinHuggingFace(Swin):
    def __init__(self, classes: int = 5):
        super().__init__(classes, tokens=True)


NETS |= {"swin_torchvision": SwinTorchvision, "swin_hf": SwinHuggingFace}


class SequenceFirstBlock(nn.Module):
    """OpenAI CLIP's ``ResidualAttentionBlock`` on sequence-first tokens ``[T, N, C]``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class SequenceFirstViT(Tokens):
    """OpenAI CLIP's vision tower: patches, class embedding, ln_pre, blocks on ``[T, N, C]`` (the
    tokens permuted before and after), ln_post on the class token, a projection, a linear head."""

    def __init__(self, classes: int = 5, dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, dim, 8, 8, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(dim) * 0.5)
        self.positional_embedding = nn.Parameter(torch.randn(17, dim) * 0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.blocks = nn.Sequential(*[SequenceFirstBlock(dim, heads) for _ in range(depth)])
        self.proj, self.head = nn.Parameter(torch.randn(dim, 16) * 0.2), nn.Linear(16, classes)
        self.target = self.blocks[-1].ln_1

    def to_nchw(self, activation):
        return super().to_nchw(activation.permute(1, 0, 2))

    def forward(self, x):
        x = self.conv1(x).reshape(x.shape[0], self.conv1.out_channels, -1).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + self.positional_embedding
        x = self.blocks(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.head(self.ln_post(x[:, 0]) @ self.proj)


NETS |= {"vit_sequence_first": SequenceFirstViT}


class DistilledViT(Tokens):
    """DeiT distilled: a class and a distillation token (both before the patches, the position
    embedding over all 18), two heads averaged."""

    prefix = 2

    def __init__(self, classes: int = 5, dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 18, dim) * 0.5)
        self.blocks = nn.Sequential(*[SdpaBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head, self.head_dist = nn.Linear(dim, classes), nn.Linear(dim, classes)
        self.target = self.blocks[-1].norm1

    def forward(self, x):
        n = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(n, -1, -1), self.dist_token.expand(n, -1, -1), tokens], 1)
        x = self.norm(self.blocks(x + self.pos_embed))
        return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2


NETS |= {"vit_distilled": DistilledViT}
