"""The propagation paper's five classifiers (perturbation-propagation.txt, Tables 3 and 6), for 32x32 input.

Each network's named stages are the representative layers of its Table 6 (the last layer of each
block), so ``advshield analyze propagation`` observes exactly those. The paper trained ImageNet-size
networks on 128x128 TinyImageNet; here every factory takes ``width`` (channels of the first stage)
and ``blocks`` (blocks per stage), defaulting to the paper's depths at reduced widths so that they
train on CIFAR-10; the registry meta says so. Stems use stride 1 (the paper also "adjusted the stride
size in the low level layers").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from advshield.models.base import CIFAR10_MEAN, CIFAR10_STD, Classifier, register_model
from advshield.models.cifar import DenseLayer, conv_bn, vgg_blocks

_CIFAR = dict(input_shape=(3, 32, 32), num_classes=10, mean=CIFAR10_MEAN, std=CIFAR10_STD)


def _flat_pool() -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


# --- VGG-19 (Table 6: 2, 2, 4, 4, 4 convs, then three FC layers) ---------------------------------
@register_model("vgg19", dataset="cifar10", paper="Simonyan & Zisserman 2015; propagation paper Table 6 (3 FCs)")
def vgg19(width: int = 64, fc: int = 512) -> Classifier:
    stages, cin = vgg_blocks(width), 8 * width
    stages += [("fc1", nn.Sequential(nn.Flatten(), nn.Linear(cin, fc), nn.ReLU(inplace=True))),
               ("fc2", nn.Sequential(nn.Linear(fc, fc), nn.ReLU(inplace=True))), ("logits", nn.Linear(fc, 10))]
    return Classifier(stages, last_conv="block5", **_CIFAR)


# --- ResNet V2-50 (pre-activation bottlenecks 3-4-6-3) ---------------------------------------------
class PreActBottleneck(nn.Module):
    """He et al. 2016b: BN-ReLU-1x1, BN-ReLU-3x3(stride), BN-ReLU-1x1(4x), identity or projection shortcut."""

    def __init__(self, cin: int, mid: int, stride: int = 1) -> None:
        super().__init__()
        cout = 4 * mid
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=False))
        self.body = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                                  nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid),
                                  nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1, bias=False))
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        return self.body(h) + (self.shortcut(h) if self.shortcut is not None else x)


@register_model("resnet-v2-50", dataset="cifar10", paper="He et al. 2016 (identity mappings); propagation paper")
def resnet_v2_50(width: int = 16, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> Classifier:
    stages: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(3, width, 3, 1, 1, bias=False)),
                                           ("pool1", nn.MaxPool2d(3, 1, 1))]  # keeps 32x32 (small input)
    cin = width
    for i, n in enumerate(blocks):
        mid = width * 2**i
        layer = [PreActBottleneck(cin if j == 0 else 4 * mid, mid, 2 if (j == 0 and i > 0) else 1) for j in range(n)]
        stages.append((f"block{i + 1}", nn.Sequential(*layer)))
        cin = 4 * mid
    stages += [("pool", nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), _flat_pool())),
               ("logits", nn.Linear(cin, 10))]
    return Classifier(stages, last_conv=f"block{len(blocks)}", **_CIFAR)


# --- SENet-154 (SE-ResNeXt bottlenecks 3-8-36-3, 64 groups) ----------------------------------------
class SEBottleneck(nn.Module):
    """Hu et al. 2018: grouped ResNeXt bottleneck with squeeze-and-excitation (reduction 16)."""

    def __init__(self, cin: int, mid: int, stride: int, groups: int) -> None:
        super().__init__()
        cout = 2 * mid
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride, groups=groups),
                                  conv_bn(mid, cout, 1, relu=False))
        squeeze = max(cout // 16, 4)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, squeeze, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(squeeze, cout, 1), nn.Sigmoid())
        self.shortcut = (conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return F.relu(h * self.se(h) + self.shortcut(x))


@register_model("senet-154", dataset="cifar10", paper="Hu et al. 2018; propagation paper Table 6")
def senet154(width: int = 16, blocks: tuple[int, ...] = (3, 8, 36, 3), groups: int = 8) -> Classifier:
    stem = nn.Sequential(conv_bn(3, width), conv_bn(width, width), conv_bn(width, 2 * width))  # 3 convs
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    cin = 2 * width
    for i, n in enumerate(blocks):
        mid = 2 * width * 2**i
        layer = [SEBottleneck(cin if j == 0 else 2 * mid, mid, 2 if (j == 0 and i > 0) else 1, groups)
                 for j in range(n)]
        stages.append((f"se{i + 1}", nn.Sequential(*layer)))
        cin = 2 * mid
    stages += [("pool", _flat_pool()), ("logits", nn.Linear(cin, 10))]
    return Classifier(stages, last_conv=f"se{len(blocks)}", **_CIFAR)


# --- Inception-ResNet V2 (stem, mixed_5b, 10 x Block35, mixed_6a, 20 x Block17, mixed_7a, 9+1 x Block8) ---
class _Branches(nn.Module):
    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class InceptionResidual(nn.Module):
    """Szegedy et al. 2017 Block35/17/8: parallel branches, 1x1 up-projection, scaled residual, ReLU."""

    def __init__(self, channels: int, branches: _Branches, branch_out: int, scale: float, relu: bool = True):
        super().__init__()
        self.branches, self.up = branches, nn.Conv2d(branch_out, channels, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.scale * self.up(self.branches(x))
        return F.relu(h) if self.relu else h


def _block35(c: int, w: int) -> InceptionResidual:
    return InceptionResidual(c, _Branches(conv_bn(c, w, 1), nn.Sequential(conv_bn(c, w, 1), conv_bn(w, w)),
                                          nn.Sequential(conv_bn(c, w, 1), conv_bn(w, w), conv_bn(w, w))), 3 * w, 0.17)


def _conv_rect(cin: int, cout: int, kh: int, kw: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, (kh, kw), 1, (kh // 2, kw // 2), bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _block17(c: int, w: int) -> InceptionResidual:
    return InceptionResidual(c, _Branches(conv_bn(c, w, 1), nn.Sequential(conv_bn(c, w, 1), _conv_rect(w, w, 1, 7),
                                                                          _conv_rect(w, w, 7, 1))), 2 * w, 0.10)


def _block8(c: int, w: int, relu: bool = True) -> InceptionResidual:
    return InceptionResidual(c, _Branches(conv_bn(c, w, 1), nn.Sequential(conv_bn(c, w, 1), _conv_rect(w, w, 1, 3),
                                                                          _conv_rect(w, w, 3, 1))), 2 * w, 0.20, relu)


def _reduction(cin: int, w: int) -> tuple[_Branches, int]:
    """mixed_6a / mixed_7a: stride-2 conv, stride-2 conv tower, max pool, concatenated."""
    return _Branches(conv_bn(cin, w, 3, 2), nn.Sequential(conv_bn(cin, w, 1), conv_bn(w, w), conv_bn(w, w, 3, 2)),
                     nn.MaxPool2d(3, 2, 1)), cin + 2 * w


@register_model("inception-resnet-v2", dataset="cifar10", paper="Szegedy et al. 2017; propagation paper Table 6")
def inception_resnet_v2(width: int = 16, blocks: tuple[int, int, int] = (10, 20, 9)) -> Classifier:
    w = width
    stages: list[tuple[str, nn.Module]] = [("conv1", conv_bn(3, w)), ("conv2", conv_bn(w, w)),
                                           ("conv3", conv_bn(w, 2 * w)), ("conv4", conv_bn(2 * w, 2 * w, 1)),
                                           ("conv5", conv_bn(2 * w, 4 * w))]
    c = 6 * w  # mixed_5b: three branches of 2w after a max pool
    stages.append(("mixed_5b", nn.Sequential(nn.MaxPool2d(3, 2, 1), _Branches(
        conv_bn(4 * w, 2 * w, 1), nn.Sequential(conv_bn(4 * w, w, 1), conv_bn(w, 2 * w)),
        nn.Sequential(nn.AvgPool2d(3, 1, 1), conv_bn(4 * w, 2 * w, 1))))))
    stages.append(("block35", nn.Sequential(*[_block35(c, w) for _ in range(blocks[0])])))
    red, c2 = _reduction(c, 2 * w)
    stages.append(("mixed_6a", red))
    stages.append(("block17", nn.Sequential(*[_block17(c2, 2 * w) for _ in range(blocks[1])])))
    red, c3 = _reduction(c2, 3 * w)
    stages.append(("mixed_7a", red))
    stages.append(("block8", nn.Sequential(*[_block8(c3, 3 * w) for _ in range(blocks[2])])))
    stages.append(("block8_last", _block8(c3, 3 * w, relu=False)))
    stages.append(("conv_pool", nn.Sequential(conv_bn(c3, 16 * w, 1), _flat_pool())))
    stages.append(("logits", nn.Linear(16 * w, 10)))
    return Classifier(stages, last_conv="block8_last", **_CIFAR)


# --- DenseNet-201 (6-12-48-32, growth 32) and the two modified heads of Table 7 -------------------
def _densenet201(growth: int, blocks: tuple[int, ...], head: str) -> Classifier:
    cin = 2 * growth
    stages: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(3, cin, 3, 1, 1, bias=False))]
    for i, n in enumerate(blocks):
        layers: list[nn.Module] = []
        for _ in range(n):
            layers.append(DenseLayer(cin, growth))
            cin += growth
        stages.append((f"dense{i + 1}", nn.Sequential(*layers)))
        if i < len(blocks) - 1:
            stages.append((f"transition{i + 1}", nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                                                               nn.Conv2d(cin, cin // 2, 1, bias=False),
                                                               nn.AvgPool2d(2))))
            cin //= 2
    final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
    if head == "conv":  # Table 7: avg pool(4) + FC replaced by one 4x4 convolution over the 4x4 map
        stages += [("final", final), ("logits", nn.Sequential(nn.Conv2d(cin, 10, 4), nn.Flatten()))]
    else:
        stages += [("pool", nn.Sequential(final, nn.AvgPool2d(4), nn.Flatten())), ("fc", nn.Linear(cin, 10))]
        if head == "prelu":  # Table 7: PReLU (alpha 0.25) after the last FC
            stages.append(("logits", nn.PReLU(init=0.25)))
    return Classifier(stages, last_conv=f"dense{len(blocks)}", **_CIFAR)


@register_model("densenet-201", dataset="cifar10", paper="Huang et al. 2017; propagation paper Table 6")
def densenet201(growth: int = 12, blocks: tuple[int, ...] = (6, 12, 48, 32)) -> Classifier:
    return _densenet201(growth, blocks, "fc")


@register_model("densenet-201-conv", dataset="cifar10", paper="propagation paper Table 7: final FC as a 4x4 conv")
def densenet201_conv(growth: int = 12, blocks: tuple[int, ...] = (6, 12, 48, 32)) -> Classifier:
    return _densenet201(growth, blocks, "conv")


@register_model("densenet-201-prelu", dataset="cifar10", paper="propagation paper Table 7: PReLU after the FC")
def densenet201_prelu(growth: int = 12, blocks: tuple[int, ...] = (6, 12, 48, 32)) -> Classifier:
    return _densenet201(growth, blocks, "prelu")
