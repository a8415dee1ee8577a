"""Markdown report of a detection reproduction: CMAG Tables 3-7 beside ours, every rate beside its FPR."""

from __future__ import annotations

from pathlib import Path

from advshield.io import atomic_write_bytes
from advshield.report.detection import adaptive_of, apgd_starts
from advshield.reproduce.detection.gradients import gradient_section
from advshield.reproduce.detection.preset import DETECTOR_LABELS, DetectionPreset
from advshield.reproduce.sample_size import MIN_ADAPTIVE, adaptive_reason, fast_variant_count


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None or x != x else format(x, spec)


def _cell(ours: float | None, paper: float | None, spec: str = ".3f") -> str:
    return _fmt(ours, spec) + ("" if paper is None else f" ({format(paper, spec)})")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def _robust(attack: dict) -> str:
    """An oblivious attack's robust accuracy at the calibrated threshold with its interval ("-" in older cards)."""
    ci = attack.get("robust_accuracy_ci95")
    return "-" if attack.get("robust_accuracy") is None else (
        _fmt(attack["robust_accuracy"]) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""))


def _verdict(preset: DetectionPreset, s: dict) -> list[str]:
    """The headline per detector (issue 25 §3): robust accuracy of classifier + detector at the calibrated FPR under
    the detector-aware attack (its worst case with the self-checks' runs), beside the clean accuracy and the
    oblivious attacks' lowest robust accuracy and their ROC AUC (secondary)."""
    rows = []
    for kind, d in s["detectors"].items():
        oblivious = {k: a for k, a in d["attacks"].items() if k != "adaptive-joint"}
        low = min(oblivious, key=lambda k: oblivious[k].get("robust_accuracy", 1.0), default=None)
        aucs = [a["calibrated"]["auc"] for a in oblivious.values() if a["calibrated"].get("auc") is not None]
        joint = adaptive_of(d)  # its worst case with the self-checks' runs where they ran
        rows.append([DETECTOR_LABELS.get(kind, kind), _fmt(d.get("clean_accuracy_unflagged")),
                     f"**{_robust(joint)}** on {joint.get('n', '?')}" if joint else "not run",
                     f"{_robust(oblivious[low])} ({preset.attacks[low].label or low if low in preset.attacks else low})"
                     if low else "-", f"{_fmt(min(aucs))}-{_fmt(max(aucs))}" if aucs else "-"])
    return ["## Verdict", "",
            f"Robust accuracy = share of the test images classified right and not flagged when clean that the attack "
            f"does not turn into an unflagged misclassification, at the threshold calibrated for {preset.fpr:.0%} FPR "
            "on held-out training images. The detector-aware column is the number to quote; the oblivious attacks "
            "ignore the detector (the papers' setting).", "",
            *_table(["detector", "clean, right and unflagged", f"robust accuracy at {preset.fpr:.0%} FPR, "
                     "detector-aware attack (worst case) [95 % CI]", "lowest, oblivious attacks [95 % CI]",
                     "ROC AUC, oblivious attacks"], rows), ""]


def _detection_tables(preset: DetectionPreset, s: dict) -> list[str]:
    labels = list(preset.attacks)
    cols = [preset.attacks[k].label or k for k in labels]
    paper = preset.paper_results
    lines = []
    for rule, title in (("calibrated", f"threshold calibrated at {preset.fpr:.0%} FPR on held-out clean training "
                                       "images"),
                        ("paper_threshold", "the papers' rule: the largest score over the legitimate training "
                                            "images (CMAG Algorithm 2, MagNet)")):
        rows = []
        for kind, d in s["detectors"].items():
            ref = paper.detection.get(kind, {}) if paper else {}
            first = d["attacks"][labels[0]][rule]
            rows.append([DETECTOR_LABELS.get(kind, kind), _fmt(first["fpr"])]
                        + [_cell(d["attacks"][k][rule]["detection_rate"], ref.get(k), ".2f") for k in labels])
        lines += [f"**Detection rate, {title}** (paper's {paper.table if paper else 'table'} in parentheses; FPR "
                  "= share of the clean test images flagged at the same threshold):", "",
                  *_table(["detector", "clean FPR"] + cols, rows), ""]
    rows = [[DETECTOR_LABELS.get(kind, kind)] + [_robust(d["attacks"][k]) for k in labels]
            for kind, d in s["detectors"].items()]
    lines += [f"**Robust accuracy at the {preset.fpr:.0%} FPR threshold, oblivious attacks** [95 % CI] (share of the "
              "test images right and unflagged when clean that the attack, crafted on the classifier alone, did not "
              "turn into an unflagged misclassification; the detector-aware attacks are under Adaptive attack):", "",
              *_table(["detector"] + cols, rows), ""]
    rows = []
    for kind, d in s["detectors"].items():
        for k in labels:
            m = d["attacks"][k]["calibrated"]
            rows.append([DETECTOR_LABELS.get(kind, kind), preset.attacks[k].label or k,
                         _fmt(d["attacks"][k]["attack_success_rate"]), str(m["n_adv"]), _fmt(m["auc"]),
                         _fmt(m["tpr_at_1pct_fpr"]), _fmt(m["tpr_at_5pct_fpr"])])
    lines += ["**Threshold-free view** (ROC over the clean test images and the successful adversarial examples):",
              "", *_table(["detector", "attack", "attack success", "n adv", "ROC AUC", "TPR @ 1% FPR",
                           "TPR @ 5% FPR"], rows), ""]
    return lines


def _reconstruction_tables(preset: DetectionPreset, s: dict) -> list[str]:
    labels = list(preset.attacks)
    cols = [preset.attacks[k].label or k for k in labels]
    paper = preset.paper_results
    ssim_rows, l2_rows = [], []
    for kind, d in s["detectors"].items():
        rec = d.get("reconstruction", {})
        if not rec.get("clean_test"):
            continue
        is_cmag = kind.startswith("cmag") and paper is not None
        ssim_ref = paper.ssim if is_cmag else {}
        l2_ref = paper.l2 if is_cmag else {}
        per = {k: d["attacks"][k].get("reconstruction") or {} for k in labels}
        ssim_rows.append([DETECTOR_LABELS.get(kind, kind)]
                         + [_cell(per[k].get("ssim_mean"), ssim_ref.get(k)) for k in labels]
                         + [_cell(rec["clean_train"]["ssim_min"], ssim_ref.get("threshold")),
                            _fmt(rec["clean_test"]["ssim_mean"])])
        l2_rows.append([DETECTOR_LABELS.get(kind, kind), _cell(rec["clean_test"]["l2_mean"], l2_ref.get("legitimate"))]
                       + [_cell(per[k].get("l2_mean"), l2_ref.get(k)) for k in labels])
    if not ssim_rows:
        return []
    t6 = paper.ssim_table if paper else "Table 6"
    t7 = paper.l2_table if paper else "Table 7"
    return [f"**{t6}: mean SSIM between the successful adversarial examples and their reconstructions**; "
            "threshold = the smallest SSIM over the legitimate training images (paper in parentheses, for CMAG):", "",
            *_table(["detector"] + cols + ["threshold (min, train)", "clean test (mean)"], ssim_rows), "",
            f"**{t7}: mean L2 reconstruction error ||x - x'||_2** (legitimate = clean test images):", "",
            *_table(["detector", "legitimate"] + cols, l2_rows), ""]


ATTACK_NAMES = {"pgd": "PGD (step 2.5 eps / steps)"}


def _attack_name(member: dict) -> str:
    if member["attack"] != "apgd-ce":
        return ATTACK_NAMES.get(member["attack"], member["attack"])
    return f"APGD-CE ({apgd_starts(member.get('params') or {})})"


def _attacks_named(s: dict) -> str:
    """The detector-aware attacks the cards ran, in order (a card from before the worst case ran PGD alone)."""
    names: list[str] = []
    for d in s["detectors"].values():
        a = d["attacks"].get("adaptive-joint") or {}
        for m in a.get("members") or [{"attack": a.get("attack", "pgd")}]:
            label = _attack_name(m)
            names += [label] if label not in names else []
    return " and ".join(names) or "PGD"


def _adaptive(s: dict) -> list[str]:
    rows, reason = [], adaptive_reason(s.get("budget", {}), fast_variant_count(s))
    for kind, d in s["detectors"].items():
        a = d["attacks"].get("adaptive-joint")
        if a:
            p = a["params"]
            ci = a.get("robust_accuracy_ci95")
            robust = (f"{_fmt(a['robust_accuracy'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-")
            w = a.get("worst_case")
            worst = (f"**{_fmt(w['robust_accuracy'])}** [{_fmt(w['robust_accuracy_ci95'][0])}, "
                     f"{_fmt(w['robust_accuracy_ci95'][1])}] ({w['broken_by_checks']} more broken of "
                     f"{w['checked_images']} checked)" if w else "not checked")
            members = ", ".join(f"{m['attack']} {_fmt(m['robust_accuracy'])}" for m in a.get("members", [])) or a["attack"]
            rows.append([DETECTOR_LABELS.get(kind, kind), str(a.get("n", a["n_clean_correct"])), _fmt(p["eps"]),
                         str(p["steps"]), members, _fmt(a["evasion_rate"]), _fmt(a["detection_rate"]), robust, worst])
    if not rows:
        return []
    return ["## Adaptive attack (beyond the paper)", "",
            "The attack engine's adaptive threat against classifier + detector at the calibrated threshold: L-inf "
            f"{_attacks_named(s)}, each on Carlini & Wagner 2017's joint objective max(margin + 0.1, 0) + c x the score's excess over the threshold "
            "(relative to it), at c = 1, 10, 100 and then the per-image switch (the classifier until misclassified, "
            "then the score alone), each run on the images no earlier one broke (Defense-GAN differentiated with "
            "its latent search held fixed, BPDA). The joint attacks' columns are the per-image worst case over the "
            "attacks (each one's own robust accuracy in the attacks column). Evasion = misclassified and unflagged, "
            "among the images correct and unflagged when clean; robust accuracy (95 % interval) = share of all "
            "images no attack turned into an unflagged misclassification. The worst case adds the self-checks' runs "
            "at the same eps on the images they covered (the first attack with twice its steps and restarts, then "
            "Square, each on the images still robust): an image any of them broke is not robust. It is the number "
            "to quote. The oblivious rates above assume an attacker who ignores the detector.", "",
            *_table(["detector", "images", "eps", "steps", "attacks (own robust accuracy)", "evasion (joint attacks)",
                     "detection that survives (joint attacks)", "robust accuracy at the calibrated FPR, the joint "
                     "attacks", "worst case with the self-checks"], rows), "",
            *([f"Fewer than {MIN_ADAPTIVE} images because {reason}.", ""] if reason else [])]


def _ablation(preset: DetectionPreset, s: dict) -> list[str]:
    ab = s.get("ablation")
    if not ab:
        return []
    att = s["detectors"][ab["detector"]]
    labels = list(preset.attacks)
    rows = []
    for name, d in (("attention (Hadamard product)", att), ("weighted average 0.5/0.5", ab)):
        rec = d["reconstruction"]["clean_test"]
        rows.append([name, _fmt(rec["ssim_mean"]), _fmt(rec["l2_mean"])]
                    + [_fmt(d["attacks"][k]["calibrated"]["auc"]) for k in labels])
    return ["## Fig. 4 ablation: GR's input", "",
            "GR trained on the Hadamard product of FMR and LR (the paper's attention) and on their weighted "
            "average, same budget; reconstruction quality on clean test images and detection ROC AUC:", "",
            *_table(["GR input", "clean SSIM", "clean L2"] + [f"AUC {preset.attacks[k].label or k}" for k in labels],
                    rows), ""]


ABLATION_LABEL = "CMAG, weighted-average ablation (Fig. 4)"


def _ablation_red_flags(s: dict) -> list[dict]:
    return (s.get("ablation") or {}).get("red_flags", [])


def ablation_flags(s: dict) -> list[dict]:
    """The Fig. 4 ablation detector's red flags (its threshold is calibrated like the others' and checked the
    same way), with the detector named in the detail (for the HTML page, which has no card for it)."""
    return [{"check": f["check"], "detail": f"{ABLATION_LABEL}: {f['detail']}"} for f in _ablation_red_flags(s)]


def _red_flags(s: dict) -> list[str]:
    """Every detector card's red flags and the ablation's, always as a section (``None fired.`` when none did)."""
    flags, unchecked = [], []
    for kind, d in s["detectors"].items():
        name = DETECTOR_LABELS.get(kind, kind)
        if "red_flags" not in d:
            unchecked.append(name)
        flags += [f"{name}: **{f['check']}**: {f['detail']}" for f in d.get("red_flags", [])]
    flags += [f"{ABLATION_LABEL}: **{f['check']}**: {f['detail']}" for f in _ablation_red_flags(s)]  # named first
    lines = ["## Red flags", "",
             "Checks run on every detector: the threshold calibrated on held-out training images must not flag "
             "clearly more clean test images than the stated FPR (the whole 95 % interval above it), every oblivious "
             "attack needs successful examples (else its detection rate is undefined), and the detector-aware "
             "attack must not leave more robust accuracy than an oblivious one, nor rest on fewer than 500 images "
             "without a stated reason (sample size; runs before 2026-11-28 did not check it). The detector-aware attack's own "
             "self-checks (convergence, gradient-free Square, unbounded, noise, gradients), judged like its row (the "
             "attacker wins an image only by a misclassification the detector does not flag), run on the budget's "
             "`checks` images for CMAG and MagNet, not Defense-GAN (its every attack step runs the latent search).", ""]
    lines += [f"- {f}" for f in flags] or ["None fired."]
    checked = [DETECTOR_LABELS.get(k, k) for k, d in s["detectors"].items() if d.get("health")]
    if not checked:
        lines.append("The self-checks did not run in this report (a budget without `checks` or without the "
                     "detector-aware attack, or a run before them).")
    if unchecked:
        lines.append(f"Not checked for {', '.join(unchecked)}: the run predates the checks.")
    return lines + [""]


def write_detection_report(preset: DetectionPreset, s: dict, path: Path) -> Path:
    b = s["budget"]
    first = next(iter(s["detectors"].values()))
    lines = [f"# {preset.title}", "",
             f"Reproduction of `{preset.paper}` ({s['variant']} variant), written by `{s['command'] or 'advshield'}`.",
             "", f"- Target: zoo `{preset.target}` on {preset.dataset.value} (data: `{s['data_source']}`, an offline "
                 "copy close to, not identical with, the official files).",
             f"- Generative models trained on {b['n_train']} clean training images ({b['epochs']} epochs, MagNet "
             f"{b.get('magnet_epochs') or b['epochs']}; "
             f"Defense-GAN {b['gan_epochs']} pass(es), latent search L = {b['gan_steps']}, R = {b['gan_restarts']}); "
             f"thresholds calibrated on {b['n_calibration']} further training images; measured on the first "
             f"{first['n_test']} test images (detection counts the successful adversarial examples only).",
             f"- Wall time {s['seconds'] / 60:.1f} min on {s['machine']['cpus']} CPU(s) "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in s['phases'].items())}).", ""]
    lines += _red_flags(s) + _verdict(preset, s)
    lines += ["## Detection (Tables 3-5)", "", *_detection_tables(preset, s)]
    lines += ["## Reconstructions (Tables 6-7)", "", *_reconstruction_tables(preset, s)]
    lines += _adaptive(s) + _ablation(preset, s)
    if s.get("gradients"):
        lines += gradient_section(s["gradients"])
    if s.get("figures"):
        lines += ["## Figures", ""] + [f"![{k}]({v})" for k, v in s["figures"].items()] + [""]
    if preset.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in preset.notes] + [""]
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
