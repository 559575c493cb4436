"""A segmenter and a YOLO-style detector in torch, for the seeded objectives.

- ``SegNet``: a strided backbone, an FPN-like decoder (bilinear Upsample, Concat with a skip), a 1x1
  head of class logits at half the input's resolution: ``[N, C, H/2, W/2]``.
- ``TinyYolo``: a backbone with strides 8, 16, 32, a neck (nearest Upsample, Concat), one head per
  scale giving box offsets decoded on a grid built from the feature map's own size (``arange``) and
  Sigmoid class scores, all scales concatenated along the candidates: ``[N, 4 + C, A]`` with boxes
  as ``cx, cy, w, h`` in input pixels, as YOLOv8 exports before NMS.

Both take any input size that is a multiple of 32 and randomize BatchNorm statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from ..conformance.nets import randomize_bn


def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class SegNet(nn.Module):
    def __init__(self, classes: int = 4):
        super().__init__()
        self.enc1, self.enc2, self.enc3 = block(3, 8, 2), block(8, 16, 2), block(16, 32, 2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.dec2, self.dec1 = block(32 + 16, 16), block(16 + 8, 16)
        self.head = nn.Conv2d(16, classes, 1)
        randomize_bn(self)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.up(self.enc3(e2)), e2], 1))
        return self.head(self.dec1(torch.cat([self.up(d2), e1], 1)))


class Head(nn.Module):
    """Box offsets and class scores of one scale, decoded on the feature map's grid."""

    def __init__(self, cin: int, classes: int, stride: int):
        super().__init__()
        self.stride, self.box, self.cls = stride, nn.Conv2d(cin, 4, 1), nn.Conv2d(cin, classes, 1)

    def forward(self, p):
        n, _, h, w = p.shape
        ys = torch.arange(h, dtype=p.dtype).view(1, 1, h, 1).expand(1, 1, h, w)
        xs = torch.arange(w, dtype=p.dtype).view(1, 1, 1, w).expand(1, 1, h, w)
        t = self.box(p)
        centre = (torch.sigmoid(t[:, :2]) * 2 - 0.5 + torch.cat([xs, ys], 1)) * self.stride
        size = torch.exp(t[:, 2:].clamp(max=4)) * self.stride
        out = torch.cat([centre, size, torch.sigmoid(self.cls(p))], 1)
        return out.flatten(2)


class TinyYolo(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.c3 = nn.Sequential(block(3, 8, 2), block(8, 16, 2), block(16, 16, 2))
        self.c4, self.c5 = block(16, 24, 2), block(24, 32, 2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.p4, self.p3 = block(32 + 24, 24), block(24 + 16, 16)
        self.heads = nn.ModuleList([Head(16, classes, 8), Head(24, classes, 16), Head(32, classes, 32)])
        randomize_bn(self)

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p4 = self.p4(torch.cat([self.up(c5), c4], 1))
        p3 = self.p3(torch.cat([self.up(p4), c3], 1))
        return torch.cat([head(p) for head, p in zip(self.heads, (p3, p4, c5))], 2)


NETS = {"segnet": SegNet, "yolo": TinyYolo}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return NETS[name]().eval()
