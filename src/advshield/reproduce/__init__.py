"""Paper reproductions driven by validated YAML presets, one subpackage per kind: restoration (CRU-Net, DIR,
DKN), detection (CMAG with MagNet and Defense-GAN) and propagation (NE-D / COS-D per layer)."""

from advshield.reproduce.core import builtin_presets, load_preset
from advshield.reproduce.restoration.preset import Preset
from advshield.reproduce.restoration.runner import reproduce

__all__ = ["Preset", "builtin_presets", "load_preset", "reproduce"]
