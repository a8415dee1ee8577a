"""Defenses: modules mapping images to images (preprocessing and restoration)."""

from advshield.defenses import preprocessing  # noqa: F401  (registers)
from advshield.defenses.base import DEFENSES, Defense, apply_with_bpda, register_defense

__all__ = ["DEFENSES", "Defense", "apply_with_bpda", "register_defense"]
