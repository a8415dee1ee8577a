"""Pretrained checkpoints shipped with advshield, found by architecture and dataset.

Layout: ``zoo/<dataset>/<architecture>.safetensors`` plus its ``.json`` card.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from advshield.checkpoint import load_model, read_card
from advshield.errors import CheckpointError


@dataclass(frozen=True)
class ZooEntry:
    path: Path
    card: dict

    @property
    def name(self) -> str:
        return self.card["architecture"]

    @property
    def dataset(self) -> str:
        return self.card.get("dataset", "?")


def zoo_root() -> Path:
    return Path(str(resources.files("advshield.zoo")))


def list_checkpoints(*dirs: str | Path) -> list[ZooEntry]:
    """Checkpoints in the zoo and in ``dirs`` (searched recursively), each with its card."""
    out = []
    for base in (zoo_root(), *map(Path, dirs)):
        for p in sorted(Path(base).rglob("*.safetensors")):
            try:
                out.append(ZooEntry(p, read_card(p)))
            except CheckpointError:
                continue
    return out


def pretrained_path(name: str, dataset: str | None = None) -> Path:
    hits = [e for e in list_checkpoints()
            if (e.path.stem == name or (e.name == name and e.card.get("kind") != "defense"))
            and (dataset is None or e.dataset == dataset)]
    if not hits:
        have = ", ".join(f"{e.dataset}/{e.name}" for e in list_checkpoints()) or "none"
        raise CheckpointError(f"no pretrained {name!r}{' for ' + dataset if dataset else ''} in the zoo; available: {have}")
    if dataset is None and len(hits) > 1:  # e.g. a-net on MNIST and on Fashion-MNIST: the registered dataset first
        home = _registered_dataset(name)
        hits.sort(key=lambda e: e.dataset != home)
    hits.sort(key=lambda e: e.path.stem != name)  # the file named so before another of that architecture (a-net-robust)
    return hits[0].path


def _registered_dataset(name: str) -> str | None:
    from advshield.models import MODELS

    return MODELS.entry(name).meta.get("dataset") if name in MODELS.names() else None


def load_pretrained(name: str, dataset: str | None = None, device="cpu"):
    """(model, card) of the zoo checkpoint for architecture ``name``."""
    return load_model(pretrained_path(name, dataset), device)


def resolve_checkpoint(spec: str, dataset: str | None = None) -> Path:
    """A path to a .safetensors file, or the name of a zoo model."""
    p = Path(spec)
    return p if p.suffix == ".safetensors" or p.exists() else pretrained_path(spec, dataset)
