"""The HTML report of a propagation study (several models' ``propagation.json`` and the cross-model
``summary.json`` of ``advshield.analysis.report.propagation_report``): the red flags first, then the verdict (how often NE-D jumps and
COS-D fades at the output, and per model and set the accuracy beside the output-layer ratios), then NE-D and
COS-D layer by layer in sortable tables, then each model's curves. Reads cards only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from advshield.io import atomic_write_bytes
from advshield.report.html import cell_of, render_page
from advshield.report.verdict import percent, red_flags, threat_label

HOLDS = (("ne_d_jumps", "NE-D jumps at the output layer"),
         ("rms_jumps", "the RMS difference jumps at the output layer"),
         ("cos_d_fades", "COS-D fades at the output layer"))


def _g(v: float | None) -> dict:
    if v is None:
        return cell_of(None)
    return cell_of("inf" if math.isinf(v) else v, "inf" if math.isinf(v) else f"{v:.3g}")


def _yes(flag: bool) -> dict:
    return cell_of(int(flag), "yes" if flag else "no")


def _layer_table(name: str, card: dict, metric: str, heading: str) -> dict:
    settings = list(card[metric])
    rows = [[cell_of(i, layer), cell_of(size)] + [_g(card[metric][s][i]) for s in settings]
            for i, (layer, size) in enumerate(zip(card["layers"], card["sizes"]))]
    return {"id": f"{metric.replace('_', '-')}-{name}", "title": f"{name}: {heading} per layer", "rows": rows,
            "columns": [("layer", "layer"), ("size", "elements")] + [(s, s) for s in settings]}


def _attacked_table(attacked: dict[str, dict]) -> dict:
    """One row per row of the evaluation cards ``attacked`` (denoiser -> card)."""
    rows = []
    for name, card in attacked.items():
        for r in card["rows"]:
            ci = r.get("restored_accuracy_ci95")
            rows.append([cell_of(name), cell_of(r["attack"]), cell_of(json.dumps(r.get("params") or {}, sort_keys=True)),
                         cell_of(threat_label(r["threat"])), _pct(r["clean_accuracy"]),
                         _pct(r["defended_clean_accuracy"]),
                         cell_of(r["restored_accuracy"], percent(r["restored_accuracy"]),
                                 f"95 % CI {percent(ci[0])} - {percent(ci[1])}" if ci else ""),
                         _pct(r.get("recovery_rate"))])
    return {"id": "denoisers-under-attack", "title": "The denoisers under attack (beyond the paper)", "rows": rows,
            "caption": "Each denoiser guarding the reference classifier: attacks crafted on the classifier alone "
                       "(white-box, oblivious of the denoiser) and through it (adaptive); robust accuracy after the "
                       "attack and the denoiser; recovery over the images correct when clean.",
            "columns": [("denoiser", "denoiser"), ("attack", "attack"), ("params", "parameters"), ("threat", "threat"),
                        ("clean", "clean"), ("defended_clean", "clean through the denoiser"),
                        ("robust", "robust accuracy"), ("recovery", "recovery")]}


def propagation_page(cards: dict[str, dict], summary: dict, notes: list[str] | None = None,
                     attacked: dict[str, dict] | None = None, flags: list[dict] | None = None) -> dict:
    """The page (see :func:`advshield.report.html.render_page`) of the runs ``cards`` (run name -> its
    ``propagation.json``) and their ``summary`` (``runs``: run -> set -> ratios; ``holds``: how often); with
    ``attacked`` (denoiser -> its evaluation card), each denoiser's adaptive worst case in the headline and its
    rows; ``flags`` (default: the attacked cards' red flags, each naming its denoiser) in the red-flags section."""
    holds = summary.get("holds", {})
    headline = [{"id": f"holds-{k.replace('_', '-')}", "label": f"{label[0].upper()}{label[1:]} in", "value": holds[k],
                 "text": holds[k], "note": "model-set pairs"} for k, label in HOLDS if k in holds]
    attacked = attacked or {}
    for i, (name, card) in enumerate(attacked.items()):
        block = (card.get("verdict") or {}).get("adaptive_worst_case")
        if block:
            lo, hi = block["ci95"]
            headline.append({"id": f"worst-case-{i}", "label": f"Adaptive worst-case robust accuracy through {name}",
                             "value": block["accuracy"], "text": percent(block["accuracy"]),
                             "note": f"{block['n']} images; 95 % CI {percent(lo)} - {percent(hi)}"})
    if flags is None:
        flags = [{"check": f["check"], "detail": f"{name}: {f['detail']}"} for name, card in attacked.items()
                 for f in red_flags(card)]
    verdict, accuracy = [], []
    for name, card in cards.items():
        acc = card["accuracy"]
        for s, o in summary.get("runs", {}).get(name, {}).items():
            last = len(card["layers"]) - 1
            shown = name if name == card["model"] else f"{name} ({card['model']})"
            verdict.append([cell_of(name, shown), cell_of(s), _pct(acc.get(s)), _pct(acc.get("clean")),
                            _g(card["ne_d"][s][last]), _g(o["ne_d_ratio"]), _yes(o["ne_d_jumps"]), _g(o["rms_ratio"]),
                            _yes(o["rms_jumps"]), _g(card["cos_d"][s][last]), _g(o["cos_d_ratio"]),
                            _yes(o["cos_d_fades"])])
        accuracy += [[cell_of(name), cell_of(s), _pct(a), _g(card.get("mse", {}).get(s, 0.0 if s == "clean" else None))]
                     for s, a in acc.items()]
    tables = [_attacked_table(attacked)] if attacked else []
    tables += [{"id": "accuracy-table", "title": "Accuracy and input MSE per set", "rows": accuracy,
               "caption": "Accuracy of each model on each set (<set>+<denoiser>: after the denoiser); input MSE "
                          "against the clean images.",
               "columns": [("run", "run"), ("set", "set"), ("accuracy", "accuracy"), ("mse", "input MSE")]}]
    for name, card in cards.items():
        tables += [_layer_table(name, card, "ne_d", "NE-D"), _layer_table(name, card, "cos_d", "COS-D")]
    first = next(iter(cards.values()))
    return {"summary": list(notes or []) + [f"{len(cards)} model(s) on {first.get('dataset', '?')}, {first['n']} "
                                            f"{first.get('split', 'test')} images per set; reference "
                                            f"{first.get('reference') or first['model']}, substitute "
                                            f"{first.get('substitute')}"],
            "headline": headline, "tables": tables, "red_flags": flags,
            "verdict": {"id": "verdict-table", "rows": verdict, "columns": [
                ("run", "model"), ("set", "set"), ("accuracy", "accuracy on the set"), ("clean", "clean accuracy"),
                ("ne_d_out", "NE-D at the output"), ("ne_d_ratio", "NE-D ratio"), ("ne_d_jumps", "jumps"),
                ("rms_ratio", "RMS ratio"), ("rms_jumps", "RMS jumps"), ("cos_d_out", "COS-D at the output"),
                ("cos_d_ratio", "COS-D ratio"), ("cos_d_fades", "fades")]},
            "verdict_notes": ["Ratios: the output layer over the largest earlier layer; 'jumps' when >= 2, 'fades' "
                              "when <= 0.5. RMS = NE-D x sqrt(n) per layer: NE-D divides by the layer's size, so the "
                              "10 logits get a large NE-D by construction."] + ([] if attacked else [
                "No denoiser was attacked in this run, so the red flags cover Table 5 only and the denoisers' "
                "robustness is not measured here."])}


def _pct(v: float | None) -> dict:
    return cell_of(v, percent(v))


def write_propagation_html(cards: dict[str, dict], summary: dict, path: str | Path,
                           title: str = "Perturbation propagation", notes: list[str] | None = None,
                           figures: list[str | Path] | None = None, attacked: dict[str, dict] | None = None,
                           red_flags: list[dict] | None = None) -> Path:
    """Write the self-contained ``report.html`` at ``path``; ``figures`` (default: each run's
    ``<run>/propagation.png``) are relative to its folder and inlined; ``attacked`` and ``red_flags``: see
    :func:`propagation_page`."""
    path = Path(path)
    if figures is None:
        figures = [f"{name}/propagation.png" for name in cards]
    html = render_page(title, propagation_page(cards, summary, notes, attacked, red_flags), figures, base=path.parent)
    atomic_write_bytes(path, html.encode("utf-8"))
    return path


__all__ = ["propagation_page", "write_propagation_html"]
