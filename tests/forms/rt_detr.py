"""An RT-DETR detector written construct by construct from the paper (Zhao et al., "DETRs Beat
YOLOs on Real-time Object Detection", 2024) and the exported decoder's behaviour, small enough for CI.

What the real decoder does, and this one with it (no ``detach`` in eval mode):
- three levels of a backbone, each through an input projection (a 1x1 convolution without bias and
  a BatchNorm), flattened and concatenated into one token sequence;
- anchors per level (cell centres, sizes doubling per level) in logit space ``log(a / (1 - a))``,
  those too close to the border set to ``inf``, the tokens multiplied by the valid mask;
- ``enc_output`` (Linear + LayerNorm), a score head, the ``topk`` of each token's best class score
  choosing the queries through a flattened batch index (values unused), the chosen anchors added to a
  3-layer box MLP and passed through a Sigmoid;
- decoder layers: self-attention with the query position (an MLP of the reference boxes), then
  multi-scale deformable attention: the value split by the levels' sizes (read from the tensors, so
  computed in the graph), bilinear ``grid_sample`` with zeros padding and ``align_corners=False``,
  sampling locations = box centre + offsets / points x box size x 0.5 (some outside the map), one
  softmax over levels x points; box refinement through ``inverse_sigmoid`` (clamps at 0, 1 and
  ``eps``, ``log(x1 / x2)``); the last layer's Sigmoid boxes and class scores, ``[N, Q, 4 + C]``.

The anchors' border margin is wider than the paper's 0.01 (0.04: the outer ring of the 16 x 16
level of a 128-pixel input) so that this small input has invalid (``inf``) anchors, as a 640-pixel
input has on its largest map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class DeformableAttention(nn.Module):
    """Multi-scale deformable attention over the flattened levels."""

    def __init__(self, dim: int, heads: int, levels: int, points: int):
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.offsets = nn.Linear(dim, heads * levels * points * 2)
        self.weights = nn.Linear(dim, heads * levels * points)
        self.value_proj, self.output_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        with torch.no_grad():  # offsets of a few cells, so that some points leave the map
            self.offsets.weight.normal_(0, 0.5)
            self.offsets.bias.uniform_(-2, 2)

    def forward(self, query, boxes, value, shapes):
        n, q, dim = query.shape
        h_, per = self.heads, dim // self.heads
        value = self.value_proj(value).view(n, -1, h_, per)
        offsets = self.offsets(query).view(n, q, h_, self.levels, self.points, 2)
        weights = self.weights(query).view(n, q, h_, self.levels * self.points).softmax(-1)
        centre, size = boxes[:, :, None, None, None, :2], boxes[:, :, None, None, None, 2:]
        grids = 2 * (centre + offsets / self.points * size * 0.5) - 1
        per_head = value.permute(0, 2, 3, 1).flatten(0, 1)  # [n * heads, per, tokens]
        parts = per_head.split([h * w for h, w in shapes], dim=-1)
        sampled = []
        for level, (h, w) in enumerate(shapes):
            v = parts[level].reshape(n * h_, per, h, w)
            g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [n * heads, q, points, 2]
            sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
        stacked = torch.cat(sampled, -1)  # [n * heads, per, q, levels * points]
        weights = weights.transpose(1, 2).reshape(n * h_, 1, q, self.levels * self.points)
        out = (stacked * weights).sum(-1).view(n, dim, q).transpose(1, 2)
        return self.output_proj(out)


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, levels: int, points: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = DeformableAttention(dim, heads, levels, points)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = mlp([dim, 2 * dim, dim])

    def forward(self, x, boxes, memory, shapes, position):
        q = k = x + position
        x = self.norm1(x + self.self_attn(q, k, x, need_weights=False)[0])
        x = self.norm2(x + self.cross_attn(x + position, boxes, memory, shapes))
        return self.norm3(x + self.ffn(x))


class RtDetr(nn.Module):
    """Backbone to three levels (strides 8, 16, 32), the hybrid encoder left out (a neck is
    ordinary convolutions), the query selection and the decoder as described above."""

    def __init__(self, classes: int = 3, dim: int = 32, heads: int = 4, queries: int = 12, layers: int = 2):
        super().__init__()
        torch.manual_seed(35)
        widths, self.queries, self.margin = [3, 8, 16, 16, 24, 32], queries, 0.04
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU())
            for a, b in zip(widths, widths[1:])
        )
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w, dim, 1, bias=False), nn.BatchNorm2d(dim)) for w in widths[-3:]
        )
        self.enc_output = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.enc_score, self.enc_box = nn.Linear(dim, classes), mlp([dim, dim, dim, 4])
        self.query_pos = mlp([4, 2 * dim, dim])
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, 3, 2) for _ in range(layers))
        self.box_heads = nn.ModuleList(mlp([dim, dim, dim, 4]) for _ in range(layers))
        self.score_head = nn.Linear(dim, classes)
        for bn in self.modules():
            if isinstance(bn, nn.BatchNorm2d):  # statistics as if trained on something
                bn.running_mean.uniform_(-0.2, 0.2), bn.running_var.uniform_(0.5, 2.0)

    def anchors(self, shapes, like: torch.Tensor):
        found = []
        for level, (h, w) in enumerate(shapes):
            ys, xs = torch.meshgrid(torch.arange(h).to(like), torch.arange(w).to(like), indexing="ij")
            centres = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], -1).view(1, h * w, 2)
            found.append(torch.cat([centres, torch.full_like(centres, 0.05 * 2.0**level)], -1))
        a = torch.cat(found, 1)
        valid = ((a > self.margin) & (a < 1 - self.margin)).all(-1, keepdim=True)
        return torch.log(a / (1 - a)).masked_fill(~valid, float("inf")), valid

    def forward(self, x):
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        feats = [proj(f) for proj, f in zip(self.input_proj, levels[-3:])]
        shapes = [f.shape[2:] for f in feats]
        memory = torch.cat([f.flatten(2).permute(0, 2, 1) for f in feats], 1)
        anchors, valid = self.anchors(shapes, memory)
        encoded = self.enc_output(valid.to(memory) * memory)  # the decoder reads the unmasked tokens
        n = x.shape[0]
        top = torch.topk(self.enc_score(encoded).max(-1).values, self.queries, dim=1).indices.view(-1)
        batch = torch.arange(n).unsqueeze(-1).repeat(1, self.queries).view(-1)
        chosen = encoded[batch, top].view(n, self.queries, -1)
        boxes = (self.enc_box(chosen) + anchors[:, top].view(n, self.queries, -1)).sigmoid()
        out = chosen
        for i, layer in enumerate(self.layers):
            out = layer(out, boxes, memory, shapes, self.query_pos(boxes))
            boxes = torch.sigmoid(self.box_heads[i](out) + inverse_sigmoid(boxes))
        return torch.cat([boxes, self.score_head(out).sigmoid()], -1)
