"""Paper reproductions driven by validated YAML presets."""

from advshield.reproduce.preset import Preset, builtin_presets, load_preset
from advshield.reproduce.runner import reproduce

__all__ = ["Preset", "builtin_presets", "load_preset", "reproduce"]
