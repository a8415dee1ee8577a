"""The run context: what every experiment starts from, built once.

Device (and the torchrun process group), data root, adversarial-set store, seed and log live
here; :meth:`RunContext.load_target` resolves a zoo name or checkpoint and
:meth:`RunContext.load_data` a dataset split, so no experiment repeats that preamble.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from advshield.checkpoint import load_model, read_card
from advshield.data import ImageDataset, check_classes, load_dataset
from advshield.defenses import DEFENSES, Defense, is_restorer, load_defense
from advshield.device import select_device
from advshield.distributed import DistContext, init_distributed, local_device
from advshield.errors import InputError
from advshield.user_modules import as_defense, is_user_spec, load_user_module, module_identity, module_sha256
from advshield.zoo import resolve_checkpoint


@dataclass
class Target:
    """A loaded classifier and its card (architecture, dataset, SHA-256 of the weights)."""

    model: torch.nn.Module
    card: dict
    name: str  # what the user gave: a zoo name or a checkpoint path

    @property
    def sha256(self) -> str:
        return self.card["sha256"]

    @property
    def architecture(self) -> str:
        return self.card["architecture"]

    @property
    def dataset(self) -> str | None:
        return self.card.get("dataset")


@dataclass
class RunContext:
    """Where and how an experiment runs; see :meth:`create`."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    data_root: str | None = None
    store: Path = Path("runs/adversarial")
    seed: int = 0
    dist: DistContext = field(default_factory=DistContext)
    batch_size: int = 250
    log: Callable[[str], None] = print
    requested_device: str = "auto"  # as the user named it: recorded in cards and passed to training configs
    progress: Callable[[str, int, int], None] | None = None  # (what, done, total): a progress bar, on a terminal
    _targets: dict = field(default_factory=dict, repr=False)
    _restorers: dict = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, device: str | torch.device = "auto", *, distributed: bool = False,
               store: str | Path = "runs/adversarial", **kw) -> "RunContext":
        """Pick the device (``auto``: cuda, mps, cpu); with ``distributed``, join torchrun's process group."""
        dev = device if isinstance(device, torch.device) else select_device(device)
        dist = DistContext()
        if distributed:
            dist = init_distributed(dev)
            dev = local_device(dev, dist)
        return cls(device=dev, store=Path(store), dist=dist, requested_device=str(device), **kw)

    def load_target(self, name: str, dataset: str | None = None, weights: str | Path | None = None) -> Target:
        """A classifier (loaded once per context, in eval mode on the device): a zoo name, a checkpoint, or the
        user's own ``package.module:factory`` with optional ``weights`` (safetensors or a plain state dict)."""
        key = (str(name), dataset, str(weights))
        if key not in self._targets:
            if is_user_spec(name):
                model = load_user_module(name, weights).to(self.device)
                card = {"architecture": type(model).__name__, "sha256": module_sha256(model), "dataset": dataset,
                        "source": name, "weights": Path(weights).name if weights else None}
            else:
                if weights is not None:
                    raise InputError(f"--weights goes with a package.module:factory target, not {name!r}")
                model, card = load_model(resolve_checkpoint(str(name), dataset), self.device)
            self._targets[key] = Target(model, card, str(name))
        return self._targets[key]

    def dataset_of(self, target: Target, dataset: str | None = None) -> str:
        """``dataset`` if given, else the one the target's card names."""
        name = dataset or target.dataset
        if not name:
            raise InputError(f"{target.name}: its card names no dataset; pass one")
        return name

    def load_defense(self, spec: str, params: dict | None = None, *, weights: str | Path | None = None,
                     probe: torch.Tensor | None = None) -> tuple[Defense, dict, dict | None]:
        """A trained restorer (zoo name or checkpoint), a registered preprocessing defense, or the user's own
        ``package.module:factory`` (with ``weights``; checked on the ``probe`` images, which measure whether it
        is differentiable and randomised unless it says so).

        Returns (defense, identity for the adversarial-set key, checkpoint card or None).
        """
        if is_user_spec(spec):
            module = load_user_module(spec, weights).to(self.device)
            if probe is None:
                raise InputError(f"{spec}: a user defense is checked on images; load the data first")
            defense, notes = as_defense(module, probe.to(self.device))
            for note in notes:
                self.log(f"note: {note}")
            return defense, module_identity(defense), {"architecture": type(module).__name__, "notes": notes}
        if spec in DEFENSES and not is_restorer(spec):
            defense = DEFENSES.create(spec, **(params or {})).to(self.device)
            ident = {"name": spec, "params": params or {}}
            if (params or {}).get("checkpoint"):  # a generative defense: named by its weights, not their path
                ident["checkpoint_sha256"] = read_card(params["checkpoint"])["sha256"]
            return defense, ident, None
        if is_restorer(spec):
            raise InputError(f"{spec} must be trained first (advshield train-defense); pass its .safetensors file "
                             "or a zoo restorer's name")
        if spec not in self._restorers:  # a trained restorer is read once per context (CLI check, each evaluation)
            self._restorers[spec] = load_defense(resolve_checkpoint(spec), self.device)
        defense, card = self._restorers[spec]
        return defense, {"name": card["architecture"], "sha256": card["sha256"]}, card

    def load_data(self, dataset: str, split: str = "test", n: int | None = None,
                  target: Target | None = None) -> ImageDataset:
        """The first ``n`` images (all when None) of a dataset split under this context's data root.

        With ``target``, the split's classes must be the ones its card was trained on (same names, same
        order): a re-indexed folder dataset would otherwise turn every prediction into a wrong number.
        """
        data = load_dataset(dataset, split, self.data_root)
        if target is not None:
            check_classes(data, target.card)
        return data.head(n)


__all__ = ["RunContext", "Target"]
