"""Deep image restoration model (deep-image-restoration.txt, Tables 1-2).

Conv encoder (stride-2 convs, no pooling, batch norm), a dense bottleneck
(2048 features on MNIST, 4096 on CIFAR-10) and a conv-transpose decoder. The
tables leave two things open, which we settle as follows:
* MNIST: the decoder grows 2 -> 4 -> 8 -> 16 -> 32; the paper's three final
  Conv2D(1, 3x3) layers are taken with "valid" padding for the first two so the
  output is 28 x 28 (32 -> 30 -> 28), the last one "same". Their ReLUs are left
  out: a ReLU on a single-channel map that starts negative everywhere never
  receives a gradient again, and we saw untrained networks stuck that way.
* The tables end in ReLU (+ batch norm); a restored image must lie in [0, 1],
  so the last layer is a 3x3 convolution followed by a sigmoid (a clip would
  leave an untrained network with zero gradient wherever it starts outside).
"""

from __future__ import annotations

import torch
from torch import nn

from advshield.defenses.base import register_defense
from advshield.defenses.restorer import Restorer
from advshield.errors import InputError


def _conv(cin, cout, stride=1, padding=1):
    return [nn.Conv2d(cin, cout, 3, stride, padding), nn.ReLU()]


def _deconv(cin, cout, stride):
    # "same" padding for a 3x3 transposed conv: stride 2 doubles the size, stride 1 keeps it.
    return [nn.ConvTranspose2d(cin, cout, 3, stride, 1, output_padding=stride - 1), nn.ReLU()]


class DeepImageRestoration(Restorer):
    def __init__(self, in_channels: int = 1, image_size: int = 28, dropout: float = 0.2) -> None:
        super().__init__(in_channels, image_size, dropout=dropout)
        if (in_channels, image_size) == (1, 28):  # Table 1
            enc = [(64, 2), (128, 2), (256, 2), (512, 2)]   # 28 -> 14 -> 7 -> 4 -> 2
            self.code_shape = (512, 2, 2)
            dec = (_deconv(512, 512, 2) + _deconv(512, 512, 1) + _deconv(512, 256, 2) + [nn.BatchNorm2d(256)]
                   + _deconv(256, 128, 2) + _deconv(128, 128, 1) + [nn.BatchNorm2d(128)]
                   + _deconv(128, 64, 2) + _deconv(64, 64, 1) + [nn.BatchNorm2d(64)]
                   + [nn.Conv2d(64, 1, 3, 1, 0), nn.Conv2d(1, 1, 3, 1, 0), nn.Conv2d(1, 1, 3, 1, 1)])
        elif image_size == 32:  # Table 2
            enc = [(64, 2), (128, 2), (256, 2)]              # 32 -> 16 -> 8 -> 4
            self.code_shape = (256, 4, 4)
            dec = (_deconv(256, 256, 2) + _deconv(256, 256, 1) + [nn.BatchNorm2d(256)]
                   + _deconv(256, 128, 2) + _deconv(128, 128, 1) + [nn.BatchNorm2d(128)]
                   + _deconv(128, 64, 2) + _deconv(64, 64, 1) + [nn.BatchNorm2d(64)]
                   + [nn.ConvTranspose2d(64, in_channels, 3, 1, 1)])
        else:
            raise InputError(f"the deep image restoration model has variants for 1x28x28 and Cx32x32 images, "
                             f"not {in_channels}x{image_size}x{image_size}")
        layers, cin = [], in_channels
        for cout, _ in enc:
            layers += _conv(cin, cout, 2) + _conv(cout, cout) + [nn.BatchNorm2d(cout)]
            cin = cout
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout))
        code = self.code_shape[0] * self.code_shape[1] * self.code_shape[2]
        self.dense = nn.Linear(code, code)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        h = self.dense(self.encoder(x)).view(-1, *self.code_shape)
        return torch.sigmoid(self.decoder(h))


@register_defense("dir", kind="restorer", paper="Deep image restoration (deep-image-restoration.txt, Tables 1-2)")
def deep_image_restoration(in_channels: int = 1, image_size: int = 28, dropout: float = 0.2) -> DeepImageRestoration:
    return DeepImageRestoration(in_channels, image_size, dropout)
