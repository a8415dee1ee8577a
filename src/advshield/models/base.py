"""Classifier base: input normalisation inside the model, named feature stages.

Every zoo model is a sequence of named stages (``conv1``, ``pool1``, ``fc1``,
``logits``...). :meth:`Classifier.features` returns the output of any of them,
which the propagation analysis and CMAG's feature-map reconstructor use.
Models return logits; the papers' final "Softmax" lives in the loss.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Sequence

import torch
from torch import nn

from advshield.errors import InputError
from advshield.registry import Registry

MODELS: Registry["Classifier"] = Registry("model")
register_model = MODELS.register

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """(x - mean) / std per channel; the first layer of every classifier."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Images in [0, 1] -> logits, through named stages."""

    def __init__(self, stages: Iterable[tuple[str, nn.Module]], input_shape: tuple[int, int, int],
                 num_classes: int, mean: Sequence[float], std: Sequence[float], last_conv: str | None = None):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std)
        self.stages = nn.Sequential(OrderedDict(stages))
        self.last_conv = last_conv

    @property
    def feature_names(self) -> list[str]:
        return list(self.stages._modules)

    def _check(self, x: torch.Tensor) -> None:
        # Cheap checks only (no device sync): range/NaN checks belong to the public entry points.
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"{type(self).__name__} expects images of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.stages(self.normalize(x))

    def features(self, x: torch.Tensor, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Outputs of the named stages (all of them when ``names`` is None)."""
        self._check(x)
        wanted = set(self.feature_names if names is None else names)
        unknown = wanted - set(self.feature_names)
        if unknown:
            raise InputError(f"unknown feature layer(s) {sorted(unknown)}; available: {self.feature_names}")
        out, h = {}, self.normalize(x)
        for name, stage in self.stages.named_children():
            h = stage(h)
            if name in wanted:
                out[name] = h
            if len(out) == len(wanted):
                break
        return out


def conv(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding), nn.ReLU(inplace=True))


def fc(fin: int, fout: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(fin, fout), nn.ReLU(inplace=True)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def create_model(name: str, **kwargs) -> Classifier:
    return MODELS.create(name, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
