"""Small torch classifiers covering the layer patterns of real CNNs, for conformance tests.

Each net exposes ``target`` (the module whose output is the conventional Grad-CAM layer, which the
rewriter must find by itself) and ``cam_weight`` (the head's [K, C] weight when the head is GAP ->
linear, else None). Random init, eval mode; BatchNorm statistics are randomized so that inference-mode
BN is not the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def randomize_bn(net: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNetish(nn.Module):
    """Residual blocks with BN, strided and dilated convs, MaxPool stem, GAP -> Linear head."""

    def __init__(self, classes=7):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 5, 2, 2, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2)
        self.layer3 = BasicBlock(16, 16, dilation=2)
        self.fc = nn.Linear(16, classes)
        self.target = self.layer3
        randomize_bn(self)

    @property
    def cam_weight(self):
        return self.fc.weight

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(s))))


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MobileNetish(nn.Module):
    """Depthwise (stride 1 and 2), grouped convs, ReLU6, Hardswish, SiLU, SE with a GAP inside the
    body, explicit asymmetric zero padding, ShuffleNet channel shuffle and split, Flatten -> Dropout
    -> Linear head."""

    def __init__(self, classes=6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw1 = nn.Sequential(
            nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish()
        )
        self.se = SqueezeExcite(16)
        self.dw2 = nn.Sequential(
            nn.Conv2d(16, 32, 5, 2, 0, groups=16, bias=False), nn.BatchNorm2d(32), nn.SiLU()
        )
        self.grouped = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=4), nn.BatchNorm2d(16), nn.ReLU())
        self.last = nn.Sequential(nn.Conv2d(32, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(24, classes))
        self.target = self.last
        randomize_bn(self)

    @property
    def cam_weight(self):
        return self.head[2].weight

    def forward(self, x):
        x = self.se(self.dw1(self.stem(x)))
        x = self.dw2(F.pad(x, (1, 2, 1, 2)))  # TensorFlow-style "same" padding, as EfficientNet-Lite
        x = channel_shuffle(x, 2)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.grouped(b)], dim=1)
        x = self.last(x)
        return self.head(F.adaptive_avg_pool2d(x, 1))


class DenseInception(nn.Module):
    """Dense Concat blocks, Inception branches with ceil_mode pooling, AvgPool, Softmax output."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU())
        self.dense1, self.dense2 = nn.Conv2d(8, 4, 3, 1, 1), nn.Conv2d(12, 4, 3, 1, 1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.b1 = nn.Conv2d(16, 8, 1)
        self.b3 = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, 1, 1))
        self.b5 = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 5, 1, 2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), nn.Conv2d(16, 4, 1))
        self.avg = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.mix = nn.Sequential(nn.Conv2d(24, 24, 3, 1, 1), nn.BatchNorm2d(24), nn.ReLU())
        self.fc = nn.Linear(24, classes)
        self.target, self.logits_module = self.mix, self.fc
        randomize_bn(self)

    @property
    def cam_weight(self):
        return self.fc.weight

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, F.relu(self.dense1(x))], 1)
        x = torch.cat([x, F.relu(self.dense2(x))], 1)
        x = self.pool(x)
        x = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)
        x = self.mix(self.avg(F.relu(x)))
        return torch.softmax(self.fc(x.mean((2, 3))), dim=1)


class VGGish(nn.Module):
    """Conv/ReLU/MaxPool features, Flatten -> Linear -> ReLU -> Dropout -> Linear (no CAM)."""

    def __init__(self, classes=4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, 1, 1),
            nn.LeakyReLU(0.1),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, classes)
        )
        self.target = self.features
        self.cam_weight = None

    def forward(self, x):
        return self.classifier(self.features(x))


class ConvNeXtBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, 1, 3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.up, self.down = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.down(F.gelu(self.up(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtish(nn.Module):
    """Patchify stem, ConvNeXt blocks (depthwise 7x7, LayerNorm, GELU, channels-last Linear), a
    LayerNorm in the head (so no CAM)."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.blocks = nn.Sequential(ConvNeXtBlock(16), ConvNeXtBlock(16))
        self.norm, self.fc = nn.LayerNorm(16), nn.Linear(16, classes)
        self.target = self.blocks
        self.cam_weight = None

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(self.norm(x.mean((2, 3))))


NETS = {
    "resnet": ResNetish,
    "mobilenet": MobileNetish,
    "dense_inception": DenseInception,
    "vgg": VGGish,
    "convnext": ConvNeXtish,
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return NETS[name]().eval()
