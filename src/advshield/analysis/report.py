"""One report over several propagation runs: the paper's Tables 4-5, curves, and its observation tested.

The paper's observation (perturbation-propagation.txt, Sec. 3 and Conclusion): NE-D stays small
through the convolutional layers and jumps at the final FC layer, while COS-D grows in the
middle and fades at the output (ResNet V2-50 being the exception). We test both per model and
set, and also report the root-mean-square difference ||v_ori - v|| / sqrt(n): NE-D divides by n,
not sqrt(n), so a layer with few elements (the 10 logits) gets a large NE-D by construction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from advshield.io import atomic_write_bytes, atomic_write_json

JUMP = 2.0  # "NE-D jumps at the output": last layer >= JUMP x the largest earlier layer
FADE = 0.5  # "COS-D fades at the output": last layer <= FADE x the largest earlier layer


def _bases(card: dict) -> list[str]:
    return [s for s in card["ne_d"] if "+" not in s]


def observation(card: dict, setting: str) -> dict:
    """Ratios of the output layer to the largest earlier layer, for NE-D, RMS difference and COS-D."""
    ne, cos, sizes = card["ne_d"][setting], card["cos_d"][setting], card["sizes"]
    rms = [v * math.sqrt(n) for v, n in zip(ne, sizes)]

    def ratio(vals):
        earlier = max(vals[:-1]) if len(vals) > 1 else 0.0
        return vals[-1] / earlier if earlier > 0 else math.inf

    out = {"ne_d_ratio": ratio(ne), "rms_ratio": ratio(rms), "cos_d_ratio": ratio(cos)}
    out["ne_d_jumps"] = out["ne_d_ratio"] >= JUMP
    out["rms_jumps"] = out["rms_ratio"] >= JUMP
    out["cos_d_fades"] = out["cos_d_ratio"] <= FADE
    return out


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}"


def propagation_report(folders: list[str | Path], out: str | Path, title: str = "Perturbation propagation",
                       notes: str = "", top: list[str] | None = None, extra: list[str] | None = None) -> dict:
    """Combine ``propagation.json`` cards of several models (same sets) into ``out/README.md`` and a JSON card.

    ``top`` (markdown lines, e.g. the Red flags) goes right under the title, then ``notes`` (markdown: how the runs
    were made, what they show); ``extra`` (markdown lines) before the per-layer curves.
    """
    out = Path(out)
    cards = {}
    for f in folders:
        card = json.loads((Path(f) / "propagation.json").read_text())
        cards[Path(f).name] = card
    if not cards:
        raise ValueError("no propagation runs given")
    first = next(iter(cards.values()))
    sets = _bases(first)
    dens = sorted({s.split("+", 1)[1] for s in first["ne_d"] if "+" in s and not s.startswith("clean+")})
    lines = [f"# {title}\n"] + (["\n".join(top) + "\n"] if top else []) + ([notes.strip() + "\n"] if notes.strip() else [])
    lines.append("## Models\n\n| run | architecture | arguments | clean test accuracy | layers observed | "
                 "images | distance time (s) |\n|---|---|---|---|---|---|---|")
    for name, c in cards.items():
        acc = c.get("model_test_accuracy")
        lines.append(f"| {name} | {c['model']} | {json.dumps(c.get('arch_kwargs', {}))} | "
                     f"{acc if acc is None else f'{acc:.4f}'} | {len(c['layers'])} | {c['n']} | "
                     f"{c.get('analysis_seconds', '-')} |")
    lines.append("\n## Adversarial sets (Table 2)\n\n| set | attack | threat | mean L-inf | mean L2 | "
                 "accuracy of the reference |\n|---|---|---|---|---|---|")
    for s, st in first.get("settings", {}).items():
        lines.append(f"| {s} | {st['attack']} {json.dumps(st['params'])} | {st['threat']} | {st['mean_linf']:.4f} | "
                     f"{st['mean_l2']:.3f} | {st['reference_accuracy']:.4f} |")
    lines.append(f"\nReference: {first.get('reference') or first['model']}; substitute (attacker): "
                 f"{first.get('substitute')}.")
    lines.append("\n## Input MSE before and after the denoiser (Table 4)\n")
    lines.append("| set | no denoiser | " + " | ".join(dens) + " |\n|---|---|" + "---|" * len(dens))
    for s in sets + ["clean"]:
        if s == "clean":
            row = ["0"] + [f"{first['mse'].get(f'clean+{d}', 0):.5f}" for d in dens]
        else:
            row = [f"{first['mse'][s]:.5f}"] + [f"{first['mse'].get(f'{s}+{d}', 0):.5f}" for d in dens]
        lines.append(f"| {s} | " + " | ".join(row) + " |")
    lines.append("\n## Accuracy with and without the denoiser (Table 5)\n")
    cols = [(m, d) for m in cards for d in ["-"] + dens]
    lines.append("| set | " + " | ".join(f"{m} {'' if d == '-' else '+ ' + d}".strip() for m, d in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for s in ["clean"] + sets:
        vals = [cards[m]["accuracy"].get(s if d == "-" else f"{s}+{d}") for m, d in cols]
        lines.append(f"| {s} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |")
    lines.append(f"\n## The paper's observation, tested\n\nRatio of the output layer to the largest earlier layer; "
                 f"'jumps' when >= {JUMP}, 'fades' when <= {FADE}. RMS = NE-D x sqrt(n), the per-element "
                 f"root-mean-square difference.\n")
    lines.append("| model | set | NE-D ratio | jumps | RMS ratio | RMS jumps | COS-D ratio | COS-D fades |\n"
                 "|---|---|---|---|---|---|---|---|")
    summary: dict = {"runs": {}, "holds": {}}
    for m, c in cards.items():
        summary["runs"][m] = {}
        for s in [x for x in c["ne_d"] if not x.startswith("clean+")]:
            o = observation(c, s)
            summary["runs"][m][s] = o
            lines.append(f"| {m} | {s} | {_fmt(o['ne_d_ratio'])} | {'yes' if o['ne_d_jumps'] else 'no'} | "
                         f"{_fmt(o['rms_ratio'])} | {'yes' if o['rms_jumps'] else 'no'} | {_fmt(o['cos_d_ratio'])} | "
                         f"{'yes' if o['cos_d_fades'] else 'no'} |")
    for key in ("ne_d_jumps", "rms_jumps", "cos_d_fades"):
        flags = [o[key] for r in summary["runs"].values() for o in r.values()]
        summary["holds"][key] = f"{sum(flags)}/{len(flags)}"
    h = summary["holds"]
    lines.append(f"\nIn short: NE-D jumps at the output in {h['ne_d_jumps']} (model, set) pairs, the RMS difference "
                 f"in {h['rms_jumps']}, and COS-D fades at the output in {h['cos_d_fades']}.\n")
    if extra:
        lines.append("\n".join(extra))
    lines.append("## Per-layer curves (Figs. 2-3, 5-6)\n")
    for m in cards:
        lines.append(f"### {m}\n\n![{m}]({m}/propagation.png)\n\nTables: [{m}/propagation.md]({m}/propagation.md)\n")
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(out / "README.md", text.encode())
    atomic_write_json(out / "summary.json", summary)
    return summary
