"""CRU-Net: clipped residual U-Net (cru-net.txt, Section 4, Fig. 2, Eqs. 10-11).

The paper fixes the building blocks but not the widths; we take a base width of
32 (doubling at every downscaling) and as many levels as halve the image while
it stays >= 7 pixels (28 -> 14 -> 7 on MNIST, 32 -> 16 -> 8 on CIFAR-10).
"""

from __future__ import annotations

import torch
from torch import nn

from advshield.defenses.base import register_defense
from advshield.defenses.restorer import Restorer, clip01


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class DenoisingBlock(nn.Module):
    """3x3 conv halving the maps, two 3x3 convs, a 3x3 conv over [first, last] (the paper's block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.reduce = _conv(channels, half)
        self.body = nn.Sequential(_conv(half, half), _conv(half, half))
        self.merge = _conv(2 * half, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.reduce(x)
        return self.merge(torch.cat([first, self.body(first)], 1))


def _blocks(channels: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[DenoisingBlock(channels) for _ in range(n)])


class CRUNet(Restorer):
    """Restored = clip(F(x) + x, 0, 1) (Eq. 11), F a U-Net of denoising blocks with LeakyReLU everywhere."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32, levels: int | None = None,
                 blocks: int = 2) -> None:
        if levels is None:
            levels = 0
            while image_size % 2 ** (levels + 1) == 0 and image_size // 2 ** (levels + 1) >= 7:
                levels += 1
        super().__init__(in_channels, image_size, width=width, levels=levels, blocks=blocks)
        widths = [width * 2**i for i in range(levels + 1)]
        self.stem = _conv(in_channels, width)
        self.encoder = nn.ModuleList(_blocks(c, blocks) for c in widths[:-1])
        self.down = nn.ModuleList(_conv(c, 2 * c, stride=2) for c in widths[:-1])  # stride-2 conv, maps doubled
        self.bottleneck = _blocks(widths[-1], blocks)
        self.up = nn.ModuleList(nn.Sequential(nn.ConvTranspose2d(2 * c, c, 2, 2), nn.LeakyReLU(0.2))
                                for c in widths[:-1])
        self.smooth = nn.ModuleList(_conv(2 * c, c) for c in widths[:-1])  # 3x3 conv over [skip, upsampled]
        self.decoder = nn.ModuleList(_blocks(c, blocks) for c in widths[:-1])
        self.head = nn.Conv2d(width, in_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.encoder, self.down):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for i in reversed(range(len(skips))):
            h = self.smooth[i](torch.cat([skips[i], self.up[i](h)], 1))
            h = self.decoder[i](h)
        return clip01(self.head(h) + x, self.training)  # Eq. 11: global residual, clipped to [0, 1]


@register_defense("cru-net", kind="restorer", paper="CRU-Net (cru-net.txt, Eq. 11, Fig. 2)")
def cru_net(in_channels: int = 1, image_size: int = 28, width: int = 32, levels: int | None = None,
            blocks: int = 2) -> CRUNet:
    return CRUNet(in_channels, image_size, width, levels, blocks)
