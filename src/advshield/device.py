"""Device selection: cuda, then mps, then cpu, unless the user says otherwise."""

from __future__ import annotations

import torch

from advshield.errors import AdvShieldError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(name: str = "auto") -> torch.device:
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES[1:]:
        raise AdvShieldError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
    if base == "cuda" and not torch.cuda.is_available():
        raise AdvShieldError("device 'cuda' was asked for but no CUDA GPU is available")
    if base == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise AdvShieldError("device 'mps' was asked for but MPS is not available")
    return torch.device(name)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where ``module`` lives: its first parameter's device, else its first buffer's, else the CPU (a module
    with neither, such as a fixed function, runs wherever its input is)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def fast_layout(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """Store conv weights channels-last on the CPU, where oneDNN convolutions run faster that way.

    Measured on 2 CPU cores: input gradients through A-net / B-net 1.6x faster, a width-32 CRU-Net forward
    1.3x, its training step 1.1x. Outputs keep their shapes (only strides change); checkpoints are written
    contiguous either way. GPUs keep the default layout (not measured there).
    """
    if torch.device(device).type == "cpu":
        module.to(memory_format=torch.channels_last)
    return module
