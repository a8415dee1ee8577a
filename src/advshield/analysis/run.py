"""``advshield analyze propagation``: craft (or reuse) adversarial sets, measure NE-D / COS-D per layer, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from advshield.adversarial import AdversarialSpec, generate_adversarial_set
from advshield.analysis.figures import propagation_curves
from advshield.analysis.propagation import PropagationResult, batched, propagation
from advshield.attacks import Pipeline, create_attack
from advshield.checkpoint import load_model
from advshield.data import load_dataset
from advshield.defenses import load_defense
from advshield.device import select_device
from advshield.io import atomic_write_bytes, atomic_write_json
from advshield.zoo import resolve_checkpoint


def default_layers(model: torch.nn.Module) -> list[str]:
    """Every named stage of a zoo classifier (its last one gives the logits)."""
    names = list(getattr(model, "feature_names", []))
    if not names:
        raise ValueError("the model has no named stages: pass the layers to observe")
    return names


def markdown_table(result: PropagationResult) -> str:
    """NE-D and COS-D per layer (rows) and setting (columns), then input MSE and accuracy (Tables 1, 4, 5)."""
    settings = list(result.ne_d)
    head = "| layer | " + " | ".join(settings) + " |\n|---|" + "---|" * len(settings) + "\n"
    lines = []
    for metric, values in (("NE-D", result.ne_d), ("COS-D", result.cos_d)):
        lines.append(f"**{metric}**\n\n" + head + "".join(
            f"| {layer} | " + " | ".join(f"{values[s][i]:.3g}" for s in settings) + " |\n"
            for i, layer in enumerate(result.layers)))
    lines.append("| setting | input MSE vs clean | accuracy |\n|---|---|---|\n" + "".join(
        f"| {s} | {result.mse.get(s, 0.0):.5f} | {result.accuracy[s]:.4f} |\n" for s in result.accuracy))
    return "\n".join(lines)


def run_propagation(model: str, attacks: dict[str, dict], out: str | Path, *, denoiser: str | None = None,
                    layers: list[str] | None = None, n: int = 1000, dataset: str | None = None,
                    split: str = "test", substitute: str | None = None, data_root: str | None = None,
                    store: str | Path = "runs/adversarial", batch_size: int = 100, seed: int = 0,
                    device: str = "auto", log: Callable[[str], None] = print) -> dict:
    """Analyse ``model`` (zoo name or checkpoint) on ``n`` images; returns and writes the card under ``out``."""
    t0 = time.perf_counter()
    out, dev = Path(out), select_device(device)
    classifier, card = load_model(resolve_checkpoint(model, dataset), dev)
    ds_name = dataset or card["dataset"]
    data = load_dataset(ds_name, split, data_root)
    data = data.head(min(n, len(data)))
    sub_model, sub_sha = None, None
    if substitute:
        sub_model, sub_card = load_model(resolve_checkpoint(substitute, ds_name), dev)
        sub_sha = sub_card["sha256"]
    advs = {}
    for name, params in attacks.items():
        attack = create_attack(name, **params)
        spec = AdversarialSpec(card["sha256"], name, attack.params(), ds_name, split, len(data), seed,
                               "transfer" if substitute else "white-box", sub_sha)
        folder, result, cached = generate_adversarial_set(spec, attack, Pipeline(classifier), data, store,
                                                          substitute=sub_model, batch_size=250, device=dev)
        log(f"{name}: {'found' if cached else 'crafted'} {len(data)} examples, "
            f"accuracy {result.summary()['adv_accuracy']:.4f}")
        advs[name] = result.adv
    den, den_card = (load_defense(resolve_checkpoint(denoiser, ds_name), dev) if denoiser else (None, None))
    names = layers or default_layers(classifier)
    x, y = data.tensors()
    result = propagation(classifier, names, batched(x, advs, y, batch_size), den, dev)
    seconds = time.perf_counter() - t0
    summary = {"model": card["architecture"], "model_sha256": card["sha256"], "dataset": ds_name, "split": split,
               "attacks": attacks, "substitute": substitute, "denoiser": denoiser,
               "denoiser_sha256": den_card["sha256"] if den_card else None, "seconds": round(seconds, 1),
               "device": str(dev), **result.to_dict()}
    atomic_write_json(out / "propagation.json", summary)
    title = f"{card['architecture']} on {ds_name}" + (f", denoiser {Path(denoiser).stem}" if denoiser else "")
    propagation_curves(result, title, out / "propagation.png")
    atomic_write_bytes(out / "propagation.md", (f"# Perturbation propagation: {title}\n\n{result.n} {split} images, "
                                                f"{seconds:.1f} s on {dev}.\n\n" + markdown_table(result)).encode())
    log(f"propagation over {len(names)} layers on {result.n} images in {seconds:.1f} s -> {out}")
    return summary
