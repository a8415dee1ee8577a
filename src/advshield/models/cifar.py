"""CIFAR-10 target classifiers sized for 32x32x3 input.

The papers use "pre-trained" DenseNet/MobileNet (CRU-Net, DIR), VGG-19 and
ResNet-18 (DKN, DIR transfer) without further detail; we use the common CIFAR
variants: stride-1 stems, no initial max-pool, global average pooling.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from advshield.models.base import CIFAR10_MEAN, CIFAR10_STD, Classifier, register_model

_CIFAR = dict(input_shape=(3, 32, 32), num_classes=10, mean=CIFAR10_MEAN, std=CIFAR10_STD)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _head(features: int) -> list[tuple[str, nn.Module]]:
    return [("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())), ("logits", nn.Linear(features, 10))]


class BasicBlock(nn.Module):
    """He et al. 2016 basic residual block; 1x1-conv shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, relu=False))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def _resnet(widths: list[int], blocks: list[int]) -> list[tuple[str, nn.Module]]:
    stages: list[tuple[str, nn.Module]] = [("stem", conv_bn(3, widths[0]))]
    cin = widths[0]
    for i, (w, n) in enumerate(zip(widths, blocks)):
        layer = [BasicBlock(cin if j == 0 else w, w, 2 if (j == 0 and i > 0) else 1) for j in range(n)]
        stages.append((f"layer{i + 1}", nn.Sequential(*layer)))
        cin = w
    return stages + _head(cin)


@register_model("resnet18", dataset="cifar10", paper="He et al. 2016, CIFAR variant (DKN black-box target)")
def resnet18(width: int = 64) -> Classifier:
    """ResNet-18 for CIFAR: 3x3 stem, 4 stages of 2 basic blocks (64-128-256-512: 11.2 M parameters at the default
    ``width``; the zoo's CPU-trained copy uses width 16)."""
    return Classifier(_resnet([width, 2 * width, 4 * width, 8 * width], [2, 2, 2, 2]), last_conv="layer4", **_CIFAR)


@register_model("resnet20", dataset="cifar10", paper="He et al. 2016, Sec. 4.2 CIFAR ResNet-20")
def resnet20() -> Classifier:
    """ResNet-20 for CIFAR: 3 stages of 3 basic blocks (16-32-64), 0.27 M parameters; CPU-trainable zoo model."""
    return Classifier(_resnet([16, 32, 64], [3, 3, 3]), last_conv="layer3", **_CIFAR)


@register_model("vgg19-bn", dataset="cifar10", paper="Simonyan & Zisserman 2015, CIFAR variant (DKN white-box target)")
def vgg19_bn(width: int = 64) -> Classifier:
    """VGG-19 with batch norm for CIFAR: 16 3x3 convs in 5 blocks (64-128-256-512-512 channels at the default
    ``width``; the zoo's CPU-trained copy uses width 16), each block + MaxPool(2), one FC(8 width -> 10)."""
    stages = vgg_blocks(width)
    return Classifier(stages + [("flatten", nn.Flatten()), ("logits", nn.Linear(8 * width, 10))], last_conv="block5",
                      **_CIFAR)


def vgg_blocks(width: int) -> list[tuple[str, nn.Module]]:
    """VGG-19's five conv blocks (2, 2, 4, 4, 4 convs with BN, each block ending in MaxPool(2))."""
    cfg = [[width] * 2, [2 * width] * 2, [4 * width] * 4, [8 * width] * 4, [8 * width] * 4]
    stages, cin = [], 3
    for i, block in enumerate(cfg):
        layers: list[nn.Module] = []
        for w in block:
            layers.append(conv_bn(cin, w))
            cin = w
        stages.append((f"block{i + 1}", nn.Sequential(*layers, nn.MaxPool2d(2))))
    return stages


class InvertedResidual(nn.Module):
    """MobileNet-V2 block (Sandler et al. 2018): 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, hidden, 1)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, relu=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


@register_model("mobilenetv2", dataset="cifar10", paper="Sandler et al. 2018, CIFAR variant (CRU-Net M-net, DIR)")
def mobilenetv2() -> Classifier:
    """MobileNet-V2 for 32x32: the ImageNet table with stride 1 in the stem and the second stage, 2.2 M parameters."""
    # (expansion, out channels, repeats, stride)
    cfg = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    stages: list[tuple[str, nn.Module]] = [("stem", conv_bn(3, 32))]
    cin = 32
    for i, (t, c, n, s) in enumerate(cfg):
        blocks = [InvertedResidual(cin if j == 0 else c, c, s if j == 0 else 1, t) for j in range(n)]
        stages.append((f"block{i + 1}", nn.Sequential(*blocks)))
        cin = c
    stages.append(("conv_last", conv_bn(320, 1280, 1)))
    return Classifier(stages + _head(1280), last_conv="conv_last", **_CIFAR)


class DenseLayer(nn.Module):
    """DenseNet-BC bottleneck layer: BN-ReLU-1x1(4k)-BN-ReLU-3x3(k), output concatenated to the input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True),
                                  nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.body(x), x], 1)


@register_model("densenet", dataset="cifar10", paper="Huang et al. 2017, DenseNet-BC for CIFAR (CRU-Net D-net, DIR)")
def densenet(blocks: tuple[int, ...] = (6, 12, 24, 16), growth: int = 12, reduction: float = 0.5) -> Classifier:
    """DenseNet-121 layout with growth rate 12 for 32x32 ("densenet_cifar"), about 1.0 M parameters."""
    cin = 2 * growth
    stages: list[tuple[str, nn.Module]] = [("stem", nn.Conv2d(3, cin, 3, padding=1, bias=False))]
    for i, n in enumerate(blocks):
        layers: list[nn.Module] = []
        for _ in range(n):
            layers.append(DenseLayer(cin, growth))
            cin += growth
        if i < len(blocks) - 1:
            cout = int(math.floor(cin * reduction))
            layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2)]
            cin = cout
        else:
            layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        stages.append((f"dense{i + 1}", nn.Sequential(*layers)))
    return Classifier(stages + _head(cin), last_conv=f"dense{len(blocks)}", **_CIFAR)
