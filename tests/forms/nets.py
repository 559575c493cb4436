"""Small torch nets in the forms production exports take: channels-last (TensorFlow/Keras through
tf2onnx), dynamic spatial size with a Paddle-style Shape/Concat head, a channel-shuffle net, a
ConvNeXt-style LayerNorm head, a vision transformer, baked uint8 preprocessing, a multi-label
Sigmoid head, a grayscale net and a RegNet-Y-style net with squeeze-excitation.

Every net exposes what the reference computations need:
- ``target``: the module whose output is the conventional Grad-CAM layer; ``to_nchw(output)`` reads
  it as ``[N, K, h, w]`` (a permute for channels-last tensors, token grid for transformers);
- ``score_module`` (only where the net ends in a Softmax or Sigmoid): the module whose output is the
  explained score, taken before it;
- ``cam_weight``: the ``[K, C]`` head weight when the head is global average pooling -> linear;
- ``input_layout``, ``channels``, ``pixels`` (uint8 nets take raw pixels; ``float_forward`` is the
  same function on float pixels, which autograd differentiates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..conformance.nets import randomize_bn


def conv_bn_relu(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class FormNet(nn.Module):
    """Defaults shared by the form nets (NCHW float input, 3 channels, no Softmax, no CAM)."""

    input_layout = "NCHW"
    channels = 3
    pixels = False
    cam_weight = None

    def to_nchw(self, activation: torch.Tensor) -> torch.Tensor:
        return activation

    def float_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class GapLinear(FormNet):
    """``features`` (the target layer) -> global average pooling -> Flatten -> Linear ``fc``."""

    def __init__(self, features: nn.Module, channels: int, classes: int):
        super().__init__()
        self.features, self.fc = features, nn.Linear(channels, classes)
        self.target = self.features
        randomize_bn(self)

    @property
    def cam_weight(self):
        return self.fc.weight

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class DenseSoftmax(FormNet):
    """``features`` (the target layer) and a Keras/Paddle-style head on the pooled vector: MatMul by
    a [C, K] weight, Add, Softmax (the score is taken at ``dense``, before the Softmax)."""

    def __init__(self, features: nn.Module, channels: int, classes: int):
        super().__init__()
        self.features = features
        self.weight = nn.Parameter(torch.randn(channels, classes) * 0.3)
        self.bias = nn.Parameter(torch.randn(classes) * 0.1)
        self.dense = nn.Identity()
        self.target, self.score_module = self.features, self.dense
        randomize_bn(self)

    @property
    def cam_weight(self):
        return self.weight.t()

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.dense(pooled @ self.weight + self.bias), dim=-1)


class KerasNHWC(DenseSoftmax):
    """tf2onnx's pattern: NHWC input -> Transpose -> NCHW convs -> Transpose back -> ReduceMean over
    axes 1, 2 -> MatMul -> Add -> Softmax."""

    input_layout = "NHWC"

    def __init__(self, classes: int = 5):
        super().__init__(
            nn.Sequential(conv_bn_relu(3, 8, 2), conv_bn_relu(8, 16, 2), conv_bn_relu(16, 16)), 16, classes
        )

    def forward(self, x):
        return self.head(self.features(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).mean((1, 2)))


class MinimalNHWC(FormNet):
    """NHWC input -> Transpose -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""

    input_layout = "NHWC"

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU())
        self.fc = nn.Linear(8, classes)
        self.target = self.conv

    @property
    def cam_weight(self):
        return self.fc.weight

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.conv(x.permute(0, 3, 1, 2)), 1), 1))


class HardSE(nn.Module):
    """PaddleOCR/MobileNetV3 squeeze-excitation: GAP -> 1x1 -> ReLU -> 1x1 -> HardSigmoid -> Mul."""

    def __init__(self, c: int):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.b(F.relu(self.a(F.adaptive_avg_pool2d(x, 1)))))


class PaddleDynamic(DenseSoftmax):
    """Any input size: strided and depthwise convs, average pooling, SE, and Paddle's head
    GlobalAveragePool -> Reshape(x, Concat(Slice(Shape(x)), C)) -> MatMul -> Add -> Softmax."""

    def __init__(self, classes: int = 3):
        super().__init__(
            nn.Sequential(
                conv_bn_relu(3, 8, 2),
                nn.Conv2d(8, 8, 3, 2, 1, groups=8),
                nn.Hardswish(),
                nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                HardSE(8),
                nn.Conv2d(8, 16, 1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
            ),
            16,
            classes,
        )

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.head(pooled.reshape(pooled.shape[:1] + (16,)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        half = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(),
            nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(),
        )

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((a, self.branch(b)), dim=1), 2)


class ShuffleNetV2ish(FormNet):
    """ShuffleNetV2 units (view/transpose/view channel shuffle, chunk), strided stem and max pooling,
    1x1 conv, global mean, Linear; exported with dynamic height and width."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, 16, 2), nn.MaxPool2d(3, 2, 1))
        self.units = nn.Sequential(ShuffleUnit(16), ShuffleUnit(16))
        self.last = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.fc = nn.Linear(24, classes)
        self.target = self.last
        randomize_bn(self)

    @property
    def cam_weight(self):
        return self.fc.weight

    def forward(self, x):
        return self.fc(self.last(self.units(self.stem(x))).mean([2, 3]))


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first LayerNorm, exported as Transpose -> LayerNormalization -> Transpose."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtHead(FormNet):
    """A ConvNeXt-style head: GlobalAveragePool -> LayerNorm2d -> Flatten -> Linear (no CAM)."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16))
        self.block = nn.Sequential(nn.Conv2d(16, 16, 7, 1, 3, groups=16), nn.GELU(), nn.Conv2d(16, 24, 1))
        self.norm, self.fc = LayerNorm2d(24), nn.Linear(24, classes)
        self.target = self.block

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(self.block(self.stem(x)), 1)
        return self.fc(torch.flatten(self.norm(pooled), 1))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(FormNet):
    """ViT: patch-embedding Conv (8x8 patches of a 32x32 input: a 4x4 grid), class token, position
    embedding, pre-norm blocks, final LayerNorm, Linear on the class token."""

    def __init__(self, classes: int = 5, dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.5)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.target = self.blocks[-1].norm1

    def to_nchw(self, activation):
        tokens = activation[:, 1:]
        n, t, c = tokens.shape
        side = int(round(t**0.5))
        return tokens.reshape(n, side, side, c).permute(0, 3, 1, 2)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class PixelsNHWC(GapLinear):
    """Edge export with the preprocessing baked in: uint8 [N, H, W, 3] -> Cast -> Sub/Div -> Transpose
    -> convs -> GlobalAveragePool -> Linear."""

    input_layout = "NHWC"
    pixels = True

    def __init__(self, classes: int = 4):
        super().__init__(nn.Sequential(conv_bn_relu(3, 8, 2), conv_bn_relu(8, 16, 2)), 16, classes)
        self.register_buffer("mean", torch.tensor([123.7, 116.3, 103.5]))
        self.register_buffer("std", torch.tensor([58.4, 57.1, 57.4]))

    def float_forward(self, x):
        return super().forward(((x - self.mean.to(x.dtype)) / self.std.to(x.dtype)).permute(0, 3, 1, 2))

    def forward(self, x):
        return self.float_forward(x.float())


class SigmoidHead(GapLinear):
    """A multi-label head: GlobalAveragePool -> Linear -> Sigmoid."""

    def __init__(self, classes: int = 6):
        super().__init__(nn.Sequential(conv_bn_relu(3, 8, 2), conv_bn_relu(8, 16)), 16, classes)
        self.score_module = self.fc

    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class Grayscale(GapLinear):
    """One input channel (X-rays, documents): convs -> GlobalAveragePool -> Linear."""

    channels = 1

    def __init__(self, classes: int = 3):
        super().__init__(nn.Sequential(conv_bn_relu(1, 8, 2), conv_bn_relu(8, 8)), 8, classes)


class FixedBatch(FormNet):
    """Exported with a static batch of 4 and a Reshape target that hard-codes it (x.view(4, -1))."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(conv_bn_relu(3, 8, 2), nn.MaxPool2d(2))
        self.fc = nn.Linear(8 * 8 * 8, classes)
        self.target = self.features
        randomize_bn(self)

    def forward(self, x):
        return self.fc(self.features(x).view(x.shape[0], -1))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, reduced, 1), nn.Conv2d(reduced, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.b(F.relu(self.a(F.adaptive_avg_pool2d(x, 1)))))


class YBlock(nn.Module):
    """RegNet-Y's block: 1x1 -> grouped 3x3 (strided) -> SE with Sigmoid -> 1x1, residual, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int = 8):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.b = conv_bn_relu(cout, cout, stride, cout // group_width)
        self.se = SqueezeExcite(cout, max(1, cin // 4))
        self.c = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        y = self.c(self.se(self.b(self.a(x))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class RegNetYish(GapLinear):
    """RegNet-Y-style: stem, Y blocks with SE gates (Sigmoid), GAP -> Linear."""

    def __init__(self, classes: int = 10):
        trunk = nn.Sequential(YBlock(16, 24, 2), YBlock(24, 24, 1), YBlock(24, 48, 2), YBlock(48, 48, 1))
        super().__init__(nn.Sequential(conv_bn_relu(3, 16, 2), trunk), 48, classes)
        self.target = trunk


class Smooth(GapLinear):
    """No kinks (SiLU, GELU, average pooling): float16 gradients can be compared with float64 ones
    without ReLU or max-pooling decisions that float16 rounding flips (a flipped decision moves a
    whole gradient path, in torch's own float16 as much as in any runtime)."""

    def __init__(self, classes: int = 5):
        super().__init__(
            nn.Sequential(
                nn.Conv2d(3, 8, 3, 2, 1),
                nn.BatchNorm2d(8),
                nn.SiLU(),
                nn.Conv2d(8, 8, 3, 1, 1, groups=8),
                nn.GELU(),
                nn.AvgPool2d(2),
                nn.Conv2d(8, 16, 1),
                nn.BatchNorm2d(16),
                nn.SiLU(),
            ),
            16,
            classes,
        )


NETS = {
    "keras_nhwc": KerasNHWC,
    "minimal_nhwc": MinimalNHWC,
    "paddle_dynamic": PaddleDynamic,
    "shufflenet": ShuffleNetV2ish,
    "convnext_head": ConvNeXtHead,
    "vit": TinyViT,
    "uint8_pixels": PixelsNHWC,
    "sigmoid_head": SigmoidHead,
    "grayscale": Grayscale,
    "fixed_batch": FixedBatch,
    "regnety": RegNetYish,
    "smooth": Smooth,
}


def build(name: str) -> FormNet:
    from .transformer_nets import NETS as TRANSFORMERS

    torch.manual_seed(0)
    return {**NETS, **TRANSFORMERS}[name]().eval()
