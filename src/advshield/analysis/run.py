"""``advshield analyze propagation``: craft (or reuse) adversarial sets, measure NE-D / COS-D per layer, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from advshield.adversarial import AdversarialSpec, generate_adversarial_set
from advshield.analysis.figures import propagation_curves
from advshield.analysis.propagation import PropagationResult, batched, propagation
from advshield.analysis.settings import AttackSetting
from advshield.attacks import Pipeline
from advshield.checkpoint import load_model
from advshield.data import load_dataset
from advshield.defenses import load_defense
from advshield.device import select_device
from advshield.errors import InputError
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


def as_settings(attacks: dict[str, dict] | list[AttackSetting], substitute: str | None) -> list[AttackSetting]:
    """Settings from ``{attack: params}`` (crafted white-box, or transfer when a substitute is given)."""
    if isinstance(attacks, dict):
        threat = "transfer" if substitute else "white-box"
        return [AttackSetting(name, name, params, threat) for name, params in attacks.items()]
    return list(attacks)


def run_propagation(model: str, attacks: dict[str, dict] | list[AttackSetting], out: str | Path, *,
                    denoiser: str | list[str] | None = None, layers: list[str] | None = None, n: int = 1000,
                    dataset: str | None = None, split: str = "test", substitute: str | None = None,
                    reference: str | None = None, data_root: str | None = None,
                    store: str | Path = "runs/adversarial", batch_size: int = 100, seed: int = 0,
                    device: str = "auto", log: Callable[[str], None] = print) -> dict:
    """Analyse ``model`` (zoo name or checkpoint) on ``n`` images; returns and writes the card under ``out``.

    The sets are crafted against ``reference`` (default: ``model`` itself), the classifier whose
    labels decide success, on ``substitute`` for transfer settings; so several models can be
    analysed on the very same sets, as in the paper. ``denoiser``: one or several restorers.
    """
    t0 = time.perf_counter()
    out, dev = Path(out), select_device(device)
    settings = as_settings(attacks, substitute)
    classifier, card = load_model(resolve_checkpoint(model, dataset), dev)
    ds_name = dataset or card["dataset"]
    ref_model, ref_card = (load_model(resolve_checkpoint(reference, ds_name), dev) if reference
                           else (classifier, card))
    data = load_dataset(ds_name, split, data_root)
    data = data.head(min(n, len(data)))
    sub_model, sub_sha = None, None
    if substitute:
        sub_model, sub_card = load_model(resolve_checkpoint(substitute, ds_name), dev)
        sub_sha = sub_card["sha256"]
    advs, crafted = {}, {}
    for st in settings:
        attack = st.create()
        if st.threat != "white-box" and sub_model is None:
            raise InputError(f"setting {st.label} ({st.threat}) needs a substitute")
        spec = AdversarialSpec(ref_card["sha256"], st.attack, attack.params(), ds_name, split, len(data), seed,
                               st.threat, sub_sha if st.threat != "white-box" else None)
        folder, result, cached = generate_adversarial_set(spec, attack, Pipeline(ref_model), data, store,
                                                          substitute=sub_model, batch_size=250, device=dev)
        summary = result.summary()
        log(f"{st.label}: {'found' if cached else 'crafted'} {len(data)} examples, accuracy of the reference "
            f"{summary['adv_accuracy']:.4f}, mean L-inf {result.norms['linf'].mean():.4f}")
        advs[st.label] = result.adv
        crafted[st.label] = {"attack": st.attack, "params": attack.params(), "threat": st.threat, "set": folder.name,
                             "reference_accuracy": summary["adv_accuracy"],
                             "mean_linf": float(result.norms["linf"].mean()),
                             "mean_l2": float(result.norms["l2"].mean())}
    names = [denoiser] if isinstance(denoiser, str) else list(denoiser or [])
    dens, den_cards = {}, {}
    for name in names:
        net, den_card = load_defense(resolve_checkpoint(name, ds_name), dev)
        key = den_card["architecture"]  # settings read "<set>+<architecture>"
        key = key if key not in dens else f"{key}-{len(dens) + 1}"
        dens[key], den_cards[key] = net, {"checkpoint": name, "sha256": den_card["sha256"]}
    obs = layers or default_layers(classifier)
    x, y = data.tensors()
    t1 = time.perf_counter()
    result = propagation(classifier, obs, batched(x, advs, y, batch_size), dens or None, dev)
    analysis_seconds = time.perf_counter() - t1
    seconds = time.perf_counter() - t0
    summary = {"model": card["architecture"], "arch_kwargs": card.get("arch_kwargs", {}), "model_sha256": card["sha256"],
               "model_test_accuracy": card.get("test_accuracy"), "dataset": ds_name, "split": split,
               "settings": crafted, "reference": ref_card["architecture"] if reference else None,
               "substitute": substitute, "denoisers": den_cards, "seconds": round(seconds, 1),
               "analysis_seconds": round(analysis_seconds, 1), "device": str(dev),
               **result.to_dict()}
    atomic_write_json(out / "propagation.json", summary)
    title = f"{card['architecture']} on {ds_name}" + (f", denoisers {', '.join(dens)}" if dens else "")
    propagation_curves(result, title, out / "propagation.png")
    atomic_write_bytes(out / "propagation.md", (f"# Perturbation propagation: {title}\n\n{result.n} {split} images, "
                                                f"{seconds:.1f} s on {dev} ({analysis_seconds:.1f} s of it measuring "
                                                f"distances, the rest crafting or loading the sets).\n\n" + markdown_table(result)).encode())
    log(f"propagation over {len(obs)} layers on {result.n} images in {seconds:.1f} s -> {out}")
    return summary
