"""``advshield analyze propagation``: craft (or reuse) adversarial sets, measure NE-D / COS-D per layer, report."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from advshield.analysis.figures import propagation_curves
from advshield.analysis.propagation import PropagationResult, batched, propagation
from advshield.attacks import Pipeline
from advshield.defenses import load_defense
from advshield.experiment import AttackSetting, RunContext, acquire_set, on_victim
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
        return [AttackSetting(name, params, threat, label=name) for name, params in attacks.items()]
    return list(attacks)


class _Batches:
    """:func:`batched` with a length (the progress total) that cuts a batch only when it is reached: the stored
    sets' images are read from the store batch by batch, never all at once."""

    def __init__(self, clean: torch.Tensor, advs: dict, labels: torch.Tensor, batch_size: int) -> None:
        self.args = (clean, advs, labels, batch_size)

    def __len__(self) -> int:
        return -(-len(self.args[0]) // self.args[3])

    def __iter__(self):
        return batched(*self.args)


def run_propagation(model: str, attacks: dict[str, dict] | list[AttackSetting], out: str | Path, ctx: RunContext, *,
                    denoiser: str | list[str] | None = None, layers: list[str] | None = None, n: int = 1000,
                    dataset: str | None = None, split: str = "test", substitute: str | None = None,
                    reference: str | None = None, batch_size: int = 100) -> dict:
    """Analyse ``model`` (zoo name or checkpoint) on ``n`` images; returns and writes the card under ``out``.

    The sets are crafted against ``reference`` (default: ``model`` itself), the classifier whose
    labels decide success, on ``substitute`` for transfer settings; so several models can be
    analysed on the very same sets, as in the paper. ``denoiser``: one or several restorers.
    Crafting and every forward pass of the measurement report to ``ctx.progress``.
    """
    t0 = time.perf_counter()
    out, dev, log = Path(out), ctx.device, ctx.log
    settings = [replace(s, threat=s.threat.with_substitute(substitute)) for s in as_settings(attacks, substitute)]
    target = ctx.load_target(model, dataset)
    classifier, card = target.model, target.card
    ds_name = ctx.dataset_of(target, dataset)
    ref = ctx.load_target(reference, ds_name) if reference else target
    data = ctx.load_data(ds_name, split, target=target)
    data = data.head(min(n, len(data)))
    sub = ctx.load_target(substitute, ds_name) if substitute else None
    advs, crafted = {}, {}
    for st in settings:
        stored = acquire_set(st, ref, data, ctx, dataset=ds_name, split=split,
                             substitute=ctx.load_target(st.threat.substitute, ds_name) if st.threat.transfers else sub)
        result = on_victim(stored, st, Pipeline(ref.model), data, ctx)
        summary = result.summary()
        log(f"{st.name}: {'found' if stored.cached else 'crafted'} {len(data)} examples, accuracy of the reference "
            f"{summary['adv_accuracy']:.4f}, mean L-inf {result.norms['linf'].mean():.4f}")
        advs[st.name] = result.adv
        crafted[st.name] = {"attack": st.attack, "params": st.create().params(), "threat": st.threat.kind.value,
                            "set": stored.key, "reference_accuracy": summary["adv_accuracy"],
                            "mean_linf": float(result.norms["linf"].mean()),
                            "mean_l2": float(result.norms["l2"].mean())}
    names = [denoiser] if isinstance(denoiser, str) else list(denoiser or [])
    dens, den_cards = {}, {}
    for name in names:
        net, den_card = load_defense(resolve_checkpoint(name, ds_name), dev)  # a restorer, not a classifier
        key = den_card["architecture"]  # settings read "<set>+<architecture>"
        key = key if key not in dens else f"{key}-{len(dens) + 1}"
        dens[key], den_cards[key] = net, {"checkpoint": name, "sha256": den_card["sha256"]}
    obs = layers or default_layers(classifier)
    x, y = data.tensors()
    t1 = time.perf_counter()
    arch, progress = card["architecture"], ctx.progress
    measuring = None if progress is None else lambda what, done, total: progress(f"propagation {arch} {what}", done,
                                                                                 total)
    result = propagation(classifier, obs, _Batches(x, advs, y, batch_size), dens or None, dev, measuring)
    analysis_seconds = time.perf_counter() - t1
    seconds = time.perf_counter() - t0
    summary = {"model": card["architecture"], "arch_kwargs": card.get("arch_kwargs", {}), "model_sha256": card["sha256"],
               "model_test_accuracy": card.get("test_accuracy"), "dataset": ds_name, "split": split,
               "settings": crafted, "reference": ref.architecture if reference else None,
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
