"""Pretrained checkpoints shipped with advshield, found by their zoo name (or architecture) and dataset.

Layout: ``zoo/<dataset>/<name>.safetensors`` plus its ``.json`` card. The name is the file's stem: the
architecture for a plain classifier (``a-net``), more for the others (``a-net-robust``, ``cru-net-for-a-net``);
the card's ``architecture`` says which network the weights belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from advshield.checkpoint import load_model, read_card
from advshield.errors import CheckpointError


@dataclass(frozen=True)
class ZooEntry:
    """A checkpoint and its card: ``name`` is its id (the file's stem, what ``--target``, ``--defense`` and
    :func:`pretrained_path` accept), ``architecture`` the network it holds weights for."""

    path: Path
    card: dict

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def architecture(self) -> str:
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
    """The zoo checkpoint named ``name`` (its id), else a classifier of architecture ``name``."""
    hits = [e for e in list_checkpoints()
            if (e.name == name or (e.architecture == name and e.card.get("kind") != "defense"))
            and (dataset is None or e.dataset == dataset)]
    if not hits:
        have = ", ".join(f"{e.dataset}/{e.name}" for e in list_checkpoints()) or "none"
        raise CheckpointError(f"no pretrained {name!r}{' for ' + dataset if dataset else ''} in the zoo; available: {have}")
    if dataset is None and len(hits) > 1:  # e.g. a-net on MNIST and on Fashion-MNIST: the registered dataset first
        home = _registered_dataset(name)
        hits.sort(key=lambda e: e.dataset != home)
    hits.sort(key=lambda e: e.name != name)  # the file named so before another of that architecture (a-net-robust)
    return hits[0].path


def _registered_dataset(name: str) -> str | None:
    from advshield.models import MODELS

    return MODELS.entry(name).meta.get("dataset") if name in MODELS.names() else None


def load_pretrained(name: str, dataset: str | None = None, device="cpu"):
    """(model, card) of the zoo checkpoint ``name`` (its id, or an architecture: see :func:`pretrained_path`)."""
    return load_model(pretrained_path(name, dataset), device)


def resolve_checkpoint(spec: str, dataset: str | None = None) -> Path:
    """A path to a .safetensors file, or the name of a zoo model."""
    p = Path(spec)
    return p if p.suffix == ".safetensors" or p.exists() else pretrained_path(spec, dataset)
