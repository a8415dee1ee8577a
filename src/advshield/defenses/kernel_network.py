"""Defense Kernel Network (defense-kernel-network.txt, Sec. 3.2, Eq. 3, Fig. 1).

A network predicts K = C x m x m channels, read as m^2 per-pixel kernels D^i (each C x H x W). The
input, zero-padded by m // 2, is cropped into the m^2 shifted images I_c^i, and the output is

    I_h = 1/m^2 * sum_i D^i (.) I_c^i                                   (Eq. 3)

with (.) the per-pixel product. The paper's backbone follows its ref. [15] (kernel-prediction
denoising, a U-Net); we use our U-Net trunk. The paper leaves I_h unclipped; we clip it to [0, 1]
(straight-through while training) so that every defense maps images to images. MNIST is
zero-padded from 28 to 32 before the network, as in the paper, and cropped back after.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from advshield.defenses.base import register_defense
from advshield.defenses.restorer import Restorer, clip01
from advshield.defenses.unet import UNet


class DefenseKernelNetwork(Restorer):
    def __init__(self, in_channels: int = 1, image_size: int = 28, m: int = 5, width: int = 32,
                 levels: int = 3) -> None:
        super().__init__(in_channels, image_size, m=m, width=width, levels=levels)
        if m < 1 or m % 2 == 0:
            raise ValueError(f"kernel size m must be odd and positive, got {m}")
        self.m = m
        self.pad = (-image_size) % 2**levels  # 28 -> 32 for MNIST (the paper's zero padding)
        self.backbone = UNet(in_channels, image_size + self.pad, width, levels)
        self.backbone.head = head = nn.Conv2d(width, in_channels * m * m, 1)  # the m^2 per-pixel kernels
        with torch.no_grad():  # start near the identity: the centre kernel m^2, the others 0
            head.weight.mul_(0.1)
            head.bias.zero_()
            head.bias.view(in_channels, m * m)[:, m * m // 2] = float(m * m)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, m^2, H, W): the per-pixel kernels D^i predicted for ``x``."""
        n, c, h, w = x.shape
        p = self.pad
        xp = F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2)) if p else x
        d = self.backbone.head(self.backbone.trunk(xp))
        if p:
            d = d[..., p // 2:p // 2 + h, p // 2:p // 2 + w]
        return d.reshape(n, c, self.m * self.m, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        n, c, h, w = x.shape
        crops = F.unfold(x, self.m, padding=self.m // 2).reshape(n, c, self.m * self.m, h, w)  # the I_c^i
        return clip01((self.kernels(x) * crops).mean(2), self.training)  # Eq. 3


@register_defense("dkn", kind="restorer", paper="Defense kernel network (defense-kernel-network.txt, Eq. 3)")
def dkn(in_channels: int = 1, image_size: int = 28, m: int = 5, width: int = 32, levels: int = 3
        ) -> DefenseKernelNetwork:
    return DefenseKernelNetwork(in_channels, image_size, m, width, levels)
