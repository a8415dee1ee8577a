"""Purification by a trained generative model, taken from a saved detector checkpoint (``advshield detect``
writes ``detector.safetensors``): MagNet's reformer (Meng & Chen 2017) and Defense-GAN's reconstruction
(Samangouei et al. 2018) as defenses, so they are evaluated like every other defense.

    advshield evaluate --target a-net --defense magnet-reformer --defense-param checkpoint=<run>/detector.safetensors
"""

from __future__ import annotations

from pathlib import Path

import torch

from advshield.checkpoint import load_tensors, read_card
from advshield.defenses.base import Defense, register_defense
from advshield.errors import CheckpointError


def _parts(checkpoint: str | Path, kinds: tuple[str, ...], prefix: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The card of a detector checkpoint of one of ``kinds`` and its tensors under ``prefix`` (prefix removed)."""
    card = read_card(checkpoint)
    if card.get("kind") != "detector" or card.get("detector") not in kinds:
        raise CheckpointError(f"{checkpoint}: holds {card.get('detector') or card.get('architecture')!r}, not one "
                              f"of {', '.join(kinds)} (train one with advshield detect)")
    tensors = load_tensors(checkpoint, card)
    return card, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


@register_defense("magnet-reformer", kind="reformer", paper="MagNet (Meng & Chen 2017), reformer")
def magnet_reformer(checkpoint: str) -> Defense:
    """The autoencoder of a saved MagNet detector (``magnet-error`` or ``magnet-divergence``): differentiable."""
    from advshield.detectors.magnet import MagNetAutoencoder, MagNetReformer

    card, state = _parts(checkpoint, ("magnet-error", "magnet-divergence"), "autoencoder.")
    ae = MagNetAutoencoder(card["image_shape"][0], activation="relu")
    ae.load_state_dict(state)
    return MagNetReformer(ae).eval()


@register_defense("defense-gan-reconstruction", kind="reformer", paper="Defense-GAN (Samangouei et al. 2018), reconstruction")
def defense_gan_reconstruction(checkpoint: str) -> Defense:
    """G(z*) of a saved Defense-GAN detector's generator and latent search: randomised (restarts), BPDA."""
    from advshield.detectors.defense_gan import DefenseGANReconstruction, Generator, Projection

    card, state = _parts(checkpoint, ("defense-gan",), "generator.")
    gen = Generator(tuple(card["image_shape"]))
    gen.load_state_dict(state)
    return DefenseGANReconstruction(gen, Projection(**card["projection"])).eval()


__all__ = ["defense_gan_reconstruction", "magnet_reformer"]
