"""Defenses: modules mapping images to images (preprocessing and restoration)."""

from advshield.defenses import cru_net, generative, image_restoration, kernel_network, preprocessing, unet  # noqa: F401,E501  (registers)
from advshield.defenses.base import DEFENSES, Defense, apply_with_bpda, is_restorer, register_defense
from advshield.defenses.restorer import Restorer, load_defense, restorer_kwargs, save_defense

__all__ = ["DEFENSES", "Defense", "Restorer", "apply_with_bpda", "is_restorer", "load_defense", "register_defense",
           "restorer_kwargs", "save_defense"]
