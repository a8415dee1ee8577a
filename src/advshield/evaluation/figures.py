"""Report figures (matplotlib, Agg backend): accuracy bars, image grids, loss curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from advshield.evaluation.restoration import Samples  # noqa: E402
from advshield.io import save_figure  # noqa: E402


def accuracy_bars(rows: list[dict], title: str, path: Path) -> Path:
    """Adversarial (red) vs restored (blue) accuracy per attack, like CRU-Net Figs. 8-11."""
    names = [r["attack"] for r in rows]
    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2, 3.2))
    xs = range(len(rows))
    ax.bar([i - 0.2 for i in xs], [r["adv_accuracy"] for r in rows], 0.4, color="tab:red", label="no defense")
    ax.bar([i + 0.2 for i in xs], [r["restored_accuracy"] for r in rows], 0.4, color="tab:blue", label="restored")
    ax.axhline(rows[0]["clean_accuracy"], color="gray", ls="--", lw=1, label="clean")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def grouped_bars(groups: dict[str, dict[str, float]], title: str, path: Path, ylabel: str = "accuracy") -> Path:
    """One group of bars per key of ``groups`` (e.g. attacks), one bar per inner key (e.g. loss variants), DKN Fig. 2."""
    series = list(dict.fromkeys(k for g in groups.values() for k in g))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(1.1 * max(len(groups), 1) * max(len(series), 2) * 0.5 + 2, 3.2))
    for j, name in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [g.get(name, 0.0) for g in groups.values()], width, label=name)
    ax.set_xticks(list(range(len(groups))), list(groups))
    ax.set_ylim(0, 1.2)  # room for the legend above the bars
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if series:  # a run without attacks has no bars (and matplotlib no legend to draw)
        ax.legend(fontsize=7, loc="upper center", ncol=min(len(series), 4))
    return _save(fig, path)


def _show(img: torch.Tensor):
    img = img.clamp(0, 1)
    return (img[0], {"cmap": "gray", "vmin": 0, "vmax": 1}) if img.shape[0] == 1 else (img.permute(1, 2, 0), {})


def restoration_grid(samples: dict[str, Samples], path: Path, title: str = "") -> Path:
    """Rows: original, perturbation (amplified, centred on grey), adversarial, restored; columns: attacks x images
    (CRU-Net Figs. 6-7)."""
    cols = [(name, i) for name, s in samples.items() for i in range(len(s.x))]
    fig, axes = plt.subplots(4, len(cols), figsize=(1.1 * len(cols), 4.8), squeeze=False)
    for j, (name, i) in enumerate(cols):
        s = samples[name]
        delta = s.adv[i] - s.x[i]
        scale = float(delta.abs().max()) or 1.0
        for r, img in enumerate((s.x[i], 0.5 + delta / (2 * scale), s.adv[i], s.restored[i])):
            data, kw = _show(img)
            axes[r, j].imshow(data, **kw)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
        axes[0, j].set_title(name, fontsize=7)
    for r, label in enumerate(("original", "perturbation", "adversarial", "restored")):
        axes[r, 0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def image_rows(rows: list[tuple[str, torch.Tensor]], path: Path, title: str = "") -> Path:
    """One labelled row of images per entry, the same inputs column by column (CMAG Figs. 3-6)."""
    n = max(len(imgs) for _, imgs in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n + 0.8, 0.95 * len(rows) + 0.4), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                data, kw = _show(imgs[j].detach().cpu())
                ax.imshow(data, **kw)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def loss_curves(history: list[dict], path: Path, title: str = "") -> Path:
    """Training loss and per-attack validation loss per epoch (CRU-Net Figs. 3-5)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], "k-", label="train (mix)")
    for name in history[0].get("val_per_attack", {}):
        ax.plot(epochs, [h["val_per_attack"][name]["loss"] for h in history], "--", label=f"val {name}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("restoration loss")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path)
