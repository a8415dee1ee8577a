"""The detection experiment (``advshield detect``, the CMAG presets): train a detector on clean data, calibrate
it on held-out training images, and measure it against stored attacks. Fitting, every scoring pass and the
crafting report to the run context's progress bar (``ctx.progress``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from advshield.attacks import AttackResult, Pipeline
from advshield.detectors import Detector, Projection, build_detector, load_detector, save_detector
from advshield.detectors.base import report_batches
from advshield.errors import InputError
from advshield.evaluation.detection_adaptive import adaptive_row, default_adaptive, worst_case_with_checks
from advshield.evaluation.figures import grouped_bars
from advshield.evaluation.sample_size import sample_size_flags
from advshield.evaluation.verdict import health_flags
from advshield.experiment import AttackSetting, RunContext, acquire_set
from advshield.experiment.health import setting_health
from advshield.io import atomic_write_json
from advshield.metrics import detection_metrics, ssim, wilson_interval
from advshield.report import write_detection_html
from advshield.report.detection import adaptive_of, robust_groups
from advshield.tensorfile import StoredImages
from advshield.validation import check_images


@dataclass
class DetectionRun:
    """What a detection run leaves behind: its card, the trained detector and the data it was measured on."""

    summary: dict
    detector: Detector
    classifier: torch.nn.Module
    clean: torch.Tensor  # the clean test images
    adversarial: dict[str, AttackResult] = field(default_factory=dict)  # label -> the stored set


def reconstruction_stats(detector: Detector, x: torch.Tensor | StoredImages, dev: torch.device,
                         progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, dict | None]:
    """Scores of ``x`` and, for reconstruction detectors, the SSIM (standard, 11x11) and L2 distance
    ||x - x'||_2 between each input and its reconstruction (CMAG Tables 6-7), from one pass;
    ``progress(done, total)`` per batch (and search step, see :func:`report_batches`). ``x`` may be a stored
    set's lazy images (:class:`~advshield.tensorfile.StoredImages`): read 200 at a time."""
    if not len(x):
        return torch.empty(0), None
    scores, ssims, l2s = [], [], []
    detector.eval()
    with torch.no_grad():
        for xb in report_batches(detector, x.split(200), progress):
            xb = check_images(xb).to(dev)
            s, r = detector.inspect(xb)
            scores.append(s.cpu())
            if r is not None:
                ssims.append(ssim(r.clamp(0, 1), xb).cpu())
                l2s.append((r - xb).flatten(1).norm(dim=1).cpu())
    if not ssims:
        return torch.cat(scores), None
    sim, dist = torch.cat(ssims), torch.cat(l2s)
    return torch.cat(scores), {"n": len(sim), "ssim_mean": float(sim.mean()), "ssim_min": float(sim.min()),
                               "l2_mean": float(dist.mean()), "l2_max": float(dist.max())}


def detection_experiment(target: str, kind: str, settings: list[AttackSetting], out: str | Path, ctx: RunContext, *,
                         fpr: float = 0.05, n_train: int = 5000, n_calibration: int = 1000, epochs: int = 10,
                         n: int = 1000, dataset: str | None = None, projection: Projection = Projection(),
                         adaptive: int = 0, adaptive_settings: Sequence[AttackSetting] | None = None,
                         max_rule_n: int = 0,
                         gan_lr: float = 1e-4, cmag_combine: str = "attention",
                         checkpoint: str | Path | None = None, checks: int = 0,
                         sample_reason: str | None = None) -> DetectionRun:
    """``adaptive`` > 0: also attack that many test images with the joint loss (misclassify and stay under
    the threshold), with each of ``adaptive_settings`` (default :func:`default_adaptive`), and report how many
    evade the per-image worst case of them, beside the oblivious rates. ``settings`` are crafted white-box
    on the target; their labels name the results, so one run measures several intensities of one attack. ``max_rule_n`` > 0 takes the papers'
    max-rule threshold over that many training images instead of all ``n_train`` (Defense-GAN's search is slow).
    The trained detector is saved as ``out/detector.safetensors`` with its card; ``checkpoint`` reuses such a
    file instead of training (the threshold is then recalibrated on the same held-out images). ``checks`` > 0 (with
    ``adaptive``): the attack self-checks of the first detector-aware setting (convergence, gradient-free Square,
    unbounded, noise, gradients; :func:`~advshield.experiment.health.setting_health`) on its first ``checks``
    images, judged as the adaptive row is (a win needs an unflagged misclassification); failures are red flags."""
    t0 = time.perf_counter()
    if not 0 < fpr < 1:
        raise InputError(f"fpr must lie in (0, 1), got {fpr}")
    dev, seed, log = ctx.device, ctx.seed, ctx.log
    scoring = lambda what: _reporter(ctx, f"score {kind}: {what}")  # noqa: E731
    victim = ctx.load_target(target, dataset)
    classifier, card = victim.model, victim.card
    classifier.requires_grad_(False)
    ds_name = ctx.dataset_of(victim, dataset)
    train = ctx.load_data(ds_name, "train", target=victim)
    if n_train + n_calibration > len(train):
        raise InputError(f"n_train + n_calibration = {n_train + n_calibration} exceeds the {len(train)} training images")
    clean_train = train.tensors(slice(0, n_train))[0]
    if checkpoint:
        detector, saved = load_detector(checkpoint, classifier, card["sha256"], dev)
        if saved["detector"] != kind:
            raise InputError(f"{checkpoint} holds a {saved['detector']} detector, not {kind}")
        recipe = saved.get("recipe") or {}
        history = {"loaded_from": str(checkpoint), "recipe": recipe}
    else:
        recipe = {"n_train": n_train, "epochs": epochs, "gan_lr": gan_lr}
        detector, history = build_detector(kind, classifier, clean_train, epochs=epochs, seed=seed, device=dev,
                                           projection=projection, gan_lr=gan_lr, cmag_combine=cmag_combine,
                                           progress=ctx.progress)
    held_out = train.tensors(slice(n_train, n_train + n_calibration))[0]
    with torch.no_grad():
        cal = detector.scores(held_out.split(200), dev, scoring("held-out clean (calibration)"))
    train_scores, train_rec = reconstruction_stats(detector, clean_train[:max_rule_n or None], dev,
                                                   scoring("clean training images (max rule)"))
    paper_threshold = float(train_scores.max())  # CMAG Algorithm 2 / MagNet: the extreme over legitimate data
    detector.calibrate_fpr(cal, fpr)
    saved_to = Path(out) / "detector.safetensors"
    saved_card = save_detector(saved_to, detector, kind, classifier=classifier, classifier_card=card,
                  image_shape=tuple(clean_train.shape[1:]), recipe=recipe)
    test = ctx.load_data(ds_name, "test", n, target=victim)
    x_test, y_test = test.tensors()
    clean_scores, clean_rec = reconstruction_stats(detector, x_test, dev, scoring("clean test images"))
    clean_flagged = clean_scores > detector.threshold
    clean_right = _predict(classifier, x_test, dev) == y_test
    results, sets = {}, {}
    for setting in settings:
        name, attack_name, params = setting.name, setting.attack, setting.create().params()
        adv = acquire_set(setting, victim, test, ctx, dataset=ds_name).result
        sets[name] = adv
        ok = adv.success  # detection is measured on successful adversarial examples (read batch by batch)
        adv_scores, adv_rec = reconstruction_stats(detector, adv.adv.select(ok), dev, scoring(name))
        results[name] = {"attack": attack_name, "params": params, "attack_success_rate": adv.summary()["success_rate"],
                         "calibrated": detection_metrics(clean_scores, adv_scores, detector.threshold),
                         "paper_threshold": detection_metrics(clean_scores, adv_scores, paper_threshold),
                         "reconstruction": adv_rec, **_oblivious_robust(adv, clean_flagged, adv_scores,
                                                                        detector.threshold)}
        m = results[name]["calibrated"]
        log(f"{kind} vs {name}: detection {m['detection_rate']:.4f} at FPR {m['fpr']:.4f} (threshold for "
            f"{fpr:.0%} on held-out clean), AUC {m['auc']:.4f}, TPR@1% {m['tpr_at_1pct_fpr']:.4f}")
    health = {}
    if adaptive:
        det_id = {"kind": kind, "sha256": saved_card["sha256"]}
        joint = list(adaptive_settings or default_adaptive())
        attacked = test.head(adaptive)
        row, unbroken, clean, own = adaptive_row(joint, victim, detector, det_id, attacked, ctx, ds_name)
        if checks > 0:  # the checks vary the first attack and start from its own run
            key = joint[0].qualified_name
            health[key] = setting_health(joint[0], Pipeline(classifier, None, detector), attacked, ctx,
                                         n=min(checks, adaptive), base=(own, clean))
            if (health[key].get("after_checks") or {}).get("per_image"):
                row["worst_case"] = worst_case_with_checks(unbroken, health[key]["after_checks"])
        results["adaptive-joint"] = row
    summary = {"target": card["architecture"], "target_sha256": card["sha256"], "dataset": ds_name, "detector": kind,
               "fpr_target": fpr, "threshold": detector.threshold, "paper_threshold": paper_threshold,
               "n_train": n_train, "n_calibration": n_calibration,
               "max_rule_images": len(train_scores), "epochs": epochs, "n_test": len(test),
               "clean_accuracy": float(clean_right.float().mean()),
               "clean_accuracy_unflagged": float((clean_right & ~clean_flagged).float().mean()),
               "clean_fpr": float(clean_flagged.float().mean()),
               **({"projection": vars(projection), "gan_lr": gan_lr} if kind == "defense-gan" else {}),
               **({"cmag_combine": cmag_combine} if kind.startswith("cmag") else {}),
               "history": history, "checkpoint": saved_to.name, "attacks": results,
               "reconstruction": {"clean_test": clean_rec, "clean_train": train_rec}, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
               "notes": ["detection rates count successful adversarial examples only; FPR is on the clean test images",
                         "paper_threshold: the largest score over the training images (CMAG Algorithm 2, MagNet)",
                         "adaptive-joint: the attack engine's adaptive threat against classifier + detector (Carlini & "
                         "Wagner 2017's hinge sum -(max(margin, -0.1) + c x the score's relative excess over the "
                         "threshold) at c = 1, 10, 100, then the per-image switch, each run on the images no earlier "
                         "one broke), with each attack of 'members', per-image worst case over them; evasion = share of the "
                         "images correct and unflagged when clean that end misclassified and unflagged; "
                         "robust_accuracy = share of all images right and unflagged when clean that the attack did not "
                         "turn into an unflagged misclassification (a flagged clean image counts as an error); the "
                         "oblivious attacks' robust_accuracy counts the same way at the calibrated threshold",
                         "reconstruction: SSIM (11x11 Gaussian window) and L2 distance ||x - x'||_2 between inputs and "
                         "the detector's reconstructions; clean_train covers the max-rule images (CMAG Table 6's "
                         "threshold is their smallest SSIM)"]}
    if health:
        summary["health"] = health
    if sample_reason:
        summary["sample_reason"] = sample_reason
    summary["red_flags"] = detection_red_flags(summary) + health_flags(health)
    atomic_write_json(Path(out) / "detection.json", summary)
    grouped_bars(robust_groups([summary]), f"{kind} guarding {card['architecture']}: robust accuracy at the "
                 f"calibrated {fpr:.0%} FPR", Path(out) / "figures" / "robust-accuracy.png", ylabel="robust accuracy")
    write_detection_html([summary], Path(out) / "report.html", title=f"advshield detection: {kind} guarding "
                         f"{card['architecture']} on {ds_name}", figures=["figures/robust-accuracy.png"])
    return DetectionRun(summary, detector, classifier, x_test, sets)


def _reporter(ctx: RunContext, what: str) -> Callable[[int, int], None] | None:
    """``ctx.progress`` as ``(done, total)`` under ``what``; None without a progress bar."""
    progress = ctx.progress
    return None if progress is None else lambda done, total: progress(what, done, total)


def _predict(classifier: torch.nn.Module, x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([classifier(xb.to(dev)).argmax(1).cpu() for xb in x.split(200)])


def _oblivious_robust(adv: AttackResult, clean_flagged: torch.Tensor, adv_scores: torch.Tensor,
                      threshold: float) -> dict:
    """Robust accuracy of classifier + detector at ``threshold`` against an attack that ignores the detector,
    counted like the adaptive attack's: right and unflagged when clean, and not an unflagged misclassification
    after the attack (``adv_scores``: of the successful examples, in order)."""
    broken = torch.zeros_like(adv.success)
    broken[adv.success] = adv_scores <= threshold
    robust = int((adv.clean_correct & ~clean_flagged & ~broken).sum())
    n = len(adv.labels)
    return {"n": n, "robust_accuracy": robust / max(n, 1), "robust_accuracy_ci95": list(wilson_interval(robust, n))}


def detection_red_flags(card: dict) -> list[dict]:
    """Red flags of a detection card (``{"check", "detail"}`` each): the calibrated threshold flags clearly more
    clean test images than ``fpr_target`` (the whole 95 % interval above it); an oblivious attack without a single
    successful example (its detection rate is undefined); the detector-aware adaptive attack leaving more robust
    accuracy than an oblivious one, by more than one of its images (the adaptive attack is broken or too weak); the
    adaptive attack on fewer than 500 images without the card's ``sample_reason`` (``sample-size``)."""
    flags = []
    n = card["n_test"]
    lo, _ = wilson_interval(round(card["clean_fpr"] * n), n)
    if lo > card["fpr_target"]:
        flags.append({"check": "fpr-above-target", "detail": (
            f"the threshold calibrated for {card['fpr_target']:.0%} FPR on held-out training images flags "
            f"{card['clean_fpr']:.1%} of the {n} clean test images (95 % interval from {lo:.1%}): the calibration "
            "images do not represent the test images")})
    oblivious = {k: a for k, a in card["attacks"].items() if k != "adaptive-joint"}
    flags += [{"check": "no-successful-example", "detail": f"{k}: no successful adversarial example, detection rate "
               "undefined"} for k, a in oblivious.items() if not a["calibrated"]["n_adv"]]
    joint = card["attacks"].get("adaptive-joint")
    if joint and oblivious:
        k, worst = min(oblivious.items(), key=lambda kv: kv[1]["robust_accuracy"])
        if joint["robust_accuracy"] > worst["robust_accuracy"] + 1 / max(joint["n"], 1):
            flags.append({"check": "adaptive-vs-oblivious", "detail": (
                f"the detector-aware attack leaves robust accuracy {joint['robust_accuracy']:.3f}, more than the "
                f"oblivious {k} ({worst['robust_accuracy']:.3f}): the adaptive attack is broken or too weak")})
    quoted = adaptive_of(card)  # the number to quote: with the self-checks' runs where they ran
    if quoted:
        block = {"n": quoted["n"], "accuracy": quoted["robust_accuracy"], "ci95": quoted["robust_accuracy_ci95"]}
        flags += sample_size_flags({"adaptive_worst_case": block}, card.get("sample_reason"))
    return flags
