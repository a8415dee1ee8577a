"""The HTML report of detection cards (``advshield detect``'s ``detection.json``, one per detector of a detection
reproduction): the red flags first, then the verdict (clean accuracy, robust accuracy of classifier + detector at the calibrated FPR
under the oblivious attacks and the detector-aware adaptive one, with 95 % intervals), the red flags, then every
attack and the reconstruction statistics in sortable tables, then the figures. Reads cards only."""

from __future__ import annotations

from pathlib import Path

from advshield.io import atomic_write_bytes
from advshield.report.html import cell_of, render_page
from advshield.report.verdict import percent

ADAPTIVE = "adaptive-joint"  # the detection card's key of the detector-aware attack


def _interval(ci: list[float] | None) -> str:
    return f"95 % CI {percent(ci[0])} - {percent(ci[1])}" if ci else ""


def _num(v: float | None) -> dict:
    return cell_of(v, "-" if v is None or v != v else f"{v:.3f}")


def _pct(v: float | None, note: str = "", cls: str = "") -> dict:
    return cell_of(None if v is None or v != v else v, percent(None if v is None or v != v else v), note, cls)


def apgd_starts(params: dict) -> str:
    """Where an APGD card's restarts start against a detector, from its parameters (a card without the keys ran
    the defaults: one restart, from the clean image)."""
    more = int(params.get("restarts", 1)) - 1
    if params.get("detector_start", "clean") == "random":
        return "every restart from the eps-sphere" if more else "from the eps-sphere"
    return "its first restart from the clean image" + (f", {more} more from the eps-sphere" if more else "")


def worst_oblivious(card: dict) -> tuple[str, dict] | None:
    """The oblivious attack leaving the lowest robust accuracy at the calibrated threshold: (key, its entry); a tie
    goes to the first key in sorted order, so a card read back from JSON (keys sorted) names the same attack."""
    oblivious = _oblivious(card)
    return min(oblivious, key=lambda ka: (ka[1]["robust_accuracy"], ka[0])) if oblivious else None


def _oblivious(card: dict) -> list[tuple[str, dict]]:
    return [(k, a) for k, a in card["attacks"].items() if k != ADAPTIVE and a.get("robust_accuracy") is not None]


def adaptive_of(card: dict) -> dict | None:
    """The detector-aware attack's entry, with its robust accuracy and interval replaced by the worst case over
    it and its self-checks' runs (``worst_case``) where the checks ran; ``checked`` says which."""
    joint = card["attacks"].get(ADAPTIVE)
    if not joint:
        return None
    w = joint.get("worst_case")
    return dict(joint, checked=bool(w), **({k: w[k] for k in ("robust_accuracy", "robust_accuracy_ci95")} if w else {}))


def verdict_of(card: dict) -> dict:
    """The verdict numbers of one detection card, as the report shows them; the adaptive one is the joint attack's
    worst case with its self-checks' runs where they ran (:func:`adaptive_of`)."""
    worst, joint = worst_oblivious(card), adaptive_of(card)
    ties = sum(1 for k, a in _oblivious(card) if worst and k != worst[0]
               and a["robust_accuracy"] == worst[1]["robust_accuracy"])
    return {"oblivious_ties": ties, "clean": card.get("clean_accuracy"), "clean_unflagged": card.get("clean_accuracy_unflagged"),
            "fpr": card.get("clean_fpr"), "fpr_target": card["fpr_target"], "n": card["n_test"],
            "oblivious": worst[1]["robust_accuracy"] if worst else None, "oblivious_attack": worst[0] if worst else "",
            "oblivious_ci": worst[1]["robust_accuracy_ci95"] if worst else None,
            "adaptive": (joint or {}).get("robust_accuracy"), "adaptive_n": (joint or {}).get("n", 0),
            "adaptive_ci": (joint or {}).get("robust_accuracy_ci95"), "adaptive_checked": bool((joint or {}).get("checked"))}


def robust_groups(cards: list[dict], names: dict[str, str] | None = None,
                  attack_labels: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Robust accuracy at the calibrated threshold, attack -> detector -> value (the adaptive attack last), for
    a grouped bar chart: the detector-aware attack's bars beside the oblivious ones."""
    names, labels = names or {}, attack_labels or {}
    groups: dict[str, dict[str, float]] = {}
    for card in cards:
        for k, a in sorted(card["attacks"].items(), key=lambda ka: ka[0] == ADAPTIVE):
            group = "adaptive (detector-aware)" if k == ADAPTIVE else labels.get(k, k)
            a = adaptive_of(card) if k == ADAPTIVE else a
            if a.get("robust_accuracy") is not None:
                groups.setdefault(group, {})[names.get(card["detector"], card["detector"])] = a["robust_accuracy"]
    adaptive = groups.pop("adaptive (detector-aware)", None)
    return {**groups, **({"adaptive (detector-aware)": adaptive} if adaptive else {})}


def _attack_rows(card: dict, name: str, attack_labels: dict[str, str]) -> list[list[dict]]:
    rows = []
    for k, a in card["attacks"].items():
        label = cell_of(k, attack_labels.get(k, k))
        if k == ADAPTIVE:
            a, p = adaptive_of(card), a["params"]
            checked = ("; worst case with the self-checks' runs (evasion and detection: the joint attacks' worst case)"
                       if a["checked"] else "")
            own = "; ".join(f"{m['attack']} alone {percent(m['robust_accuracy'])}" for m in a.get("members", []))
            first = (a.get("members") or [{}])[0].get("attack")
            starts = f" ({first.upper()}: {apgd_starts(p)})" if first and first.startswith("apgd") else ""
            rows.append([cell_of(name), label, cell_of("adaptive", note=f"{a.get('attack', '')} eps {p.get('eps')}, "
                                                                       f"{p.get('steps')} steps{starts}"
                                                                       + (f"; {own}" if own else "")),
                         cell_of(a.get("n")), _pct(a.get("evasion_rate")), cell_of(None), _pct(a.get("detection_rate")),
                         cell_of(None), cell_of(None), cell_of(None), cell_of(None),
                         _pct(a.get("robust_accuracy"), _interval(a.get("robust_accuracy_ci95")) + checked, "robust")])
            continue
        m, paper = a["calibrated"], a["paper_threshold"]
        rows.append([cell_of(name), label, cell_of("oblivious"), cell_of(a.get("n", card["n_test"])),
                     _pct(a["attack_success_rate"]), cell_of(m["n_adv"]), _pct(m["detection_rate"]),
                     _pct(paper["detection_rate"]), _num(m["auc"]), _pct(m["tpr_at_1pct_fpr"]),
                     _pct(m["tpr_at_5pct_fpr"]),
                     _pct(a.get("robust_accuracy"), _interval(a.get("robust_accuracy_ci95")), "robust")])
    return rows


def _reconstruction_rows(card: dict, name: str, attack_labels: dict[str, str]) -> list[list[dict]]:
    rec = card.get("reconstruction") or {}
    parts = [("clean training images", rec.get("clean_train")), ("clean test images", rec.get("clean_test"))]
    parts += [(attack_labels.get(k, k), a.get("reconstruction")) for k, a in card["attacks"].items() if k != ADAPTIVE]
    return [[cell_of(name), cell_of(what), cell_of(r["n"]), _num(r["ssim_mean"]), _num(r["ssim_min"]),
             _num(r["l2_mean"]), _num(r["l2_max"])] for what, r in parts if r]


def detection_page(cards: list[dict], names: dict[str, str] | None = None,
                   attack_labels: dict[str, str] | None = None, summary: list[str] | None = None,
                   extra_flags: list[dict] | None = None) -> dict:
    """The page (see :func:`advshield.report.html.render_page`) of one or several detection cards on the same
    target; ``names``: detector kind -> how to call it; ``attack_labels``: attack key -> column name;
    ``extra_flags``: red flags of detectors the page has no card for (e.g. a reproduction's ablation)."""
    names, labels = names or {}, attack_labels or {}
    first = cards[0]
    clean = first.get("clean_accuracy")
    headline = [{"id": "clean-accuracy", "label": "Clean accuracy of the classifier", "value": clean,
                 "text": percent(clean), "note": f"{first['n_test']} test images"}]
    verdict, flags, attacks, recon = [], [], [], []
    for card in cards:
        kind = card["detector"]
        name, v = names.get(kind, kind), verdict_of(card)
        at = f"{name} at the calibrated {percent(v['fpr_target'])} FPR, robust accuracy"
        worst = labels.get(v["oblivious_attack"], v["oblivious_attack"]) + (
            f" (tied with {v['oblivious_ties']} more)" if v["oblivious_ties"] else "")
        headline.append({"id": f"robust-oblivious-{kind}", "label": f"{at}, oblivious attacks", "value": v["oblivious"],
                         "text": percent(v["oblivious"]),
                         "note": f"worst: {worst}; {_interval(v['oblivious_ci'])}" if v["oblivious_ci"] else ""})
        headline.append({"id": f"robust-adaptive-{kind}", "label": f"{at}, detector-aware adaptive attack",
                         "value": "" if v["adaptive"] is None else v["adaptive"],
                         "text": percent(v["adaptive"]) if v["adaptive"] is not None else "not run",
                         "note": (f"{v['adaptive_n']} images; {_interval(v['adaptive_ci'])}" + (
                             "; worst case with the self-checks' runs" if v["adaptive_checked"] else ""))
                         if v["adaptive_ci"] else ""})
        verdict.append([cell_of(kind, name), cell_of(v["n"]), _pct(v["clean"]), _pct(v["clean_unflagged"]),
                        _pct(v["fpr"], f"target {percent(v['fpr_target'])}"),
                        _pct(v["oblivious"], f"{worst}; "
                                             f"{_interval(v['oblivious_ci'])}", "robust"),
                        _pct(v["adaptive"], f"{v['adaptive_n']} images; {_interval(v['adaptive_ci'])}" + (
                            "; worst case with the self-checks' runs" if v["adaptive_checked"] else "")
                             if v["adaptive_ci"] else "not run", "robust")])
        flags += [{"check": f["check"], "detail": (f"{name}: " if len(cards) > 1 else "") + f["detail"]}
                  for f in card.get("red_flags") or []]
        attacks += _attack_rows(card, name, labels)
        recon += _reconstruction_rows(card, name, labels)
    pct = "detection rate (calibrated)"
    tables = [{"id": "attacks-table", "title": "Every attack at the calibrated threshold", "rows": attacks,
               "caption": "Detection rates count the successful adversarial examples only; the papers' threshold is "
                          "the largest score over the legitimate training images. Robust accuracy: right and "
                          "unflagged when clean, and not turned into an unflagged misclassification.",
               "columns": [("detector", "detector"), ("attack", "attack"), ("threat", "threat"), ("n", "images"),
                           ("success", "attack success (adaptive: evasion)"), ("n_adv", "successful examples"),
                           ("detection", pct), ("paper", "detection rate (papers' threshold)"), ("auc", "ROC AUC"),
                           ("tpr1", "TPR @ 1 % FPR"), ("tpr5", "TPR @ 5 % FPR"), ("robust", "robust accuracy")]}]
    if recon:
        tables.append({"id": "reconstruction-table", "title": "Reconstructions", "rows": recon,
                       "caption": "SSIM and L2 distance between each input and the detector's reconstruction "
                                  "(adversarial rows: the successful examples).",
                       "columns": [("detector", "detector"), ("inputs", "inputs"), ("n", "n"), ("ssim", "SSIM mean"),
                                   ("ssim_min", "SSIM min"), ("l2", "L2 mean"), ("l2_max", "L2 max")]})
    return {"summary": summary or [f"{first['target']} (sha256 {str(first['target_sha256'])[:12]}...) on "
                                   f"{first['dataset']}, seed {first.get('seed', 0)}"],
            "headline": headline, "red_flags": flags + list(extra_flags or []), "tables": tables, "notes": first.get("notes") or [],
            "verdict": {"id": "verdict-table", "rows": verdict, "columns": [
                ("detector", "detector"), ("n", "test images"), ("clean", "clean accuracy"),
                ("clean_unflagged", "clean, right and unflagged"), ("fpr", "clean FPR (test)"),
                ("oblivious", "robust: oblivious (worst attack)"), ("adaptive", "robust: adaptive (detector-aware)")]},
            "verdict_notes": ["Robust accuracy of classifier + detector at the threshold calibrated on held-out clean "
                              "training images: an image counts if it is right and unflagged when clean and the attack "
                              "does not turn it into an unflagged misclassification. Oblivious attacks ignore the "
                              "detector (the papers' setting); the adaptive attack minimises Carlini & Wagner's "
                              "hinge sum (the classifier's margin plus c x the detector score's excess over the "
                              "threshold) over a search of c."]}


def write_detection_html(cards: list[dict], path: str | Path, title: str = "advshield detection", *,
                         names: dict[str, str] | None = None, attack_labels: dict[str, str] | None = None,
                         summary: list[str] | None = None, figures: list[str | Path] | None = None,
                         extra_flags: list[dict] | None = None) -> Path:
    """Write the self-contained ``report.html`` of ``cards`` at ``path`` (figures relative to its folder)."""
    path = Path(path)
    html = render_page(title, detection_page(cards, names, attack_labels, summary, extra_flags), figures,
                       base=path.parent)
    atomic_write_bytes(path, html.encode("utf-8"))
    return path


__all__ = ["apgd_starts", "detection_page", "robust_groups", "verdict_of", "worst_oblivious", "write_detection_html"]
