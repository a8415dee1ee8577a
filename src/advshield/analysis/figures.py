"""Per-layer NE-D / COS-D curves like the propagation paper's Figs. 2-3 and 5-6."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from advshield.analysis.propagation import PropagationResult  # noqa: E402
from advshield.io import save_figure  # noqa: E402


def propagation_curves(result: PropagationResult, title: str, path: Path) -> Path:
    """Two panels (NE-D, COS-D); one colour per setting, solid without a denoiser, dashed / dotted with one."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    bases = [s for s in result.ne_d if "+" not in s]
    colors = {s: f"C{i}" for i, s in enumerate(bases + ["clean"])}
    dens = sorted({s.split("+", 1)[1] for s in result.ne_d if "+" in s})
    styles = {d: ("--", ":", "-.")[i % 3] for i, d in enumerate(dens)}
    xs = range(len(result.layers))
    for ax, values, label in ((axes[0], result.ne_d, "NE-D"), (axes[1], result.cos_d, "COS-D")):
        for setting, ys in values.items():
            base, _, den = setting.partition("+")
            ax.plot(xs, ys, marker="o", ms=3, color=colors.get(base, "k"), ls=styles.get(den, "-"), label=setting)
        ax.set_xticks(list(xs), result.layers, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(f"mean {label}")
        ax.set_yscale("log" if label == "NE-D" else "linear")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{title} ({result.n} samples)", fontsize=9)
    return save_figure(fig, path)
