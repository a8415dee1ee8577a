"""Checkpoints: weights as safetensors plus a JSON card; never a pickle.

``<name>.safetensors`` holds the tensors, ``<name>.json`` the card: the
architecture to rebuild, the dataset, training recipe, clean accuracy,
library versions and the SHA-256 of the weights file, checked on load.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from advshield.errors import CheckpointError
from advshield.io import atomic_write_bytes, atomic_write_json

CARD_VERSION = 1


def library_versions() -> dict[str, str]:
    import advshield

    return {"advshield": advshield.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def card_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], card: dict) -> dict:
    """Write tensors and their card atomically; returns the card as written."""
    path = Path(path)
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, blob)
    return save_card(path, card, hashlib.sha256(blob).hexdigest())


def save_card(path: str | Path, card: dict, sha256: str) -> dict:
    """Write the card of the (complete) tensors file ``path`` whose SHA-256 is ``sha256``; returns it as written."""
    path = Path(path)
    card = dict(card, format_version=CARD_VERSION, weights_file=path.name, sha256=sha256)
    atomic_write_json(card_path(path), card)  # card last: a card always points at complete weights
    return card


def read_card(path: str | Path) -> dict:
    cpath = card_path(path)
    try:
        card = json.loads(cpath.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{cpath}: card not found; every checkpoint needs its JSON card") from None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or not UTF-8
        raise CheckpointError(f"{cpath}: unreadable card ({type(exc).__name__}: {exc})") from None
    if not isinstance(card, dict) or "architecture" not in card:
        raise CheckpointError(f"{cpath}: card has no 'architecture' entry")
    return card


def load_tensors(path: str | Path, card: dict | None = None) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc.strerror or exc})") from None
    if card is not None and card.get("sha256") and hashlib.sha256(blob).hexdigest() != card["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 differs from its card; the file is truncated, corrupted or was "
                              "replaced")
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None
    return tensors


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model``, refusing any missing, unexpected or mis-shaped tensor."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"shape mismatch {shapes[:2]}" if shapes else ""]
        raise CheckpointError(f"{where} does not match architecture {type(model).__name__}: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(state)


def save_model(path: str | Path, model: torch.nn.Module, card: dict) -> dict:
    return save_tensors(path, model.state_dict(), dict(card, versions=library_versions()))


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a registered model from ``path`` and its card; returns (model, card)."""
    from advshield.device import fast_layout
    from advshield.models import create_model

    card = read_card(path)
    model = create_model(card["architecture"], **card.get("arch_kwargs", {}))
    load_weights(model, load_tensors(path, card), f"checkpoint {Path(path).name} (card says {card['architecture']})")
    return fast_layout(model.to(device), device).eval(), card
