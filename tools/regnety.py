"""A torch definition of RegNet-Y-400MF (Radosavovic et al. 2020, torchvision's layout and init),
random weights, for the precision study of ``precision.py``.

Widths 48, 104, 208, 440 and depths 1, 3, 6, 6; group width 8; squeeze-excitation to a quarter of
the block's input width with a Sigmoid gate; torchvision's initialisation (Kaiming-normal convs,
BatchNorm at the identity, Linear N(0, 0.01)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, reduced, 1), nn.Conv2d(reduced, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class YBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, group_width: int = 8):
        super().__init__()
        self.f = nn.Sequential(
            *_conv_bn(cin, cout),
            nn.ReLU(),
            *_conv_bn(cout, cout, 3, stride, cout // group_width),
            nn.ReLU(),
            SqueezeExcite(cout, int(round(0.25 * cin))),
            *_conv_bn(cout, cout),
        )
        self.proj = nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else None

    def forward(self, x):
        return F.relu(self.f(x) + (x if self.proj is None else self.proj(x)))


class RegNetY400MF(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, 32, 3, 2), nn.ReLU())
        blocks, cin = [], 32
        for width, depth in zip((48, 104, 208, 440), (1, 3, 6, 6)):
            for i in range(depth):
                blocks.append(YBlock(cin, width, 2 if i == 0 else 1))
                cin = width
        self.trunk = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.trunk(self.stem(x)), 1), 1))


def regnet_y_400mf() -> nn.Module:
    torch.manual_seed(0)
    return RegNetY400MF().eval()
