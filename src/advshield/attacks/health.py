"""Self-checks of an (adaptive) attack run, after Carlini et al. 2019, "On Evaluating Adversarial Robustness".

A defense evaluation is only as good as its attack. These checks catch the
usual signs of a broken or gradient-masked evaluation:

* convergence: doubling the iterations and restarts must lower the robust accuracy
  by less than a point (else the attack had not converged);
* through a deterministic pipeline each stronger run (doubled budget, Square, eps -> 1)
  attacks only the images every earlier run left robust and an image is robust only
  under all of them (AutoAttack's per-image worst case): the check then asks whether
  Square breaks images the gradient attacks could not, not whether it breaks as many;
* more iterations, or a larger eps, must not raise the pipeline's accuracy;
* an unbounded attack (eps = 1 on [0, 1] images) must reach ~100 % success;
* random noise of the same eps must not beat the gradient attack;
* the gradient-free Square attack must not beat the gradient attack (Croce & Hein
  2020's tell-tale sign of masked gradients);
* the attack's gradients must not be zero or non-finite for many inputs;
* an adaptive attack must not leave more accuracy than the oblivious one.

Through a pipeline with a detector every run is judged as the detection experiment judges it
(``AttackResult.unbroken``): the attack wins an image only by a misclassification the detector does not flag;
"accuracy" in the checks' details is then that robust accuracy, and the unbounded check's success is over the
images right and unflagged when clean.

Every check is a dict: ``name`` (also under ``check``), ``passed``, ``detail`` (one
readable line with the numbers) and ``numbers`` (the measured values), ready for a report.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from advshield.attacks.base import Attack, Norm, loss_gradient
from advshield.attacks.noise import L2Noise, UniformNoise
from advshield.attacks.pipeline import Pipeline, ThreatModel
from advshield.attacks.runner import run_attack
from advshield.attacks.square import Square
from advshield.device import module_device


class MaskedGradientWarning(UserWarning):
    """The attack's gradients look masked or obfuscated; its numbers overstate robustness."""


@dataclass
class HealthReport:
    checks: list[dict] = field(default_factory=list)
    #: Through a deterministic pipeline, per checked image: none of the checks' runs at the checked eps (the attack,
    #: its doubled run, Square) won it, i.e. turned it from right (and unflagged) on the clean image in that run
    #: into an (unflagged) misclassification. An image wrong when clean is True here: the evaluation's rows count
    #: it already, and a detector whose clean verdict depends on the batch cannot mark it broken. None for a
    #: randomised pipeline.
    not_won: torch.Tensor | None = None
    #: Robust accuracy after the checks' runs at the checked eps: the per-image worst case above, or, through a
    #: randomised pipeline (each run judged with its own draw), the lowest single run's.
    robust_accuracy: float | None = None

    def add(self, name: str, passed: bool, detail: str, **numbers: Any) -> dict:
        check = {"name": name, "check": name, "passed": bool(passed), "detail": detail,
                 "numbers": {k: float(v) if isinstance(v, (int, float)) else v for k, v in numbers.items()}}
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return all(c["passed"] for c in self.checks)

    @property
    def failures(self) -> list[dict]:
        return [c for c in self.checks if not c["passed"]]

    def warn(self) -> None:
        for c in self.failures:
            warnings.warn(f"attack health check '{c['name']}' failed: {c['detail']}; gradients may be masked "
                          "or the attack is too weak, so the robustness numbers are not trustworthy",
                          MaskedGradientWarning, stacklevel=3)


class _Runner:
    """Accuracy and success rate of an attack on one set of images under one threat model."""

    def __init__(self, pipeline, x, labels, threat, substitute, eot_samples, seed):
        self.pipeline, self.x, self.labels, self.seed = pipeline, x, labels, seed
        self.threat, self.substitute, self.eot_samples = threat, substitute, eot_samples

    def _run(self, attack: Attack, x: torch.Tensor, y: torch.Tensor):
        return run_attack(attack, self.pipeline, x, y, threat=self.threat, substitute=self.substitute,
                          eot_samples=self.eot_samples, seed=self.seed)

    def __call__(self, attack: Attack) -> tuple[float, float]:
        r = self._run(attack, self.x, self.labels)
        return float(r.unbroken.float().mean()), r.summary()["success_rate"]

    def correct(self, attack: Attack, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(robust under the attack (``AttackResult.unbroken``), right and unflagged on the clean image) per image of
        ``rows`` (default: all)."""
        x, y = (self.x, self.labels) if rows is None else (self.x[rows], self.labels[rows])
        if len(y) == 0:  # nothing left to attack; the run still takes its surface, as every run does (progress)
            if isinstance(self.pipeline, Pipeline):
                self.pipeline.surface(self.threat, self.substitute, self.eot_samples)
            return torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.bool)
        r = self._run(attack, x, y)
        return r.unbroken, r.clean_correct

    def still_correct(self, attack: Attack, robust: torch.Tensor, everywhere: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(correct under ``attack`` and every earlier one, the images ``attack`` won): AutoAttack's per-image worst
        case, the attack running only on the images still ``robust``; or, when ``everywhere`` (a randomised
        defense, whose judging draw differs per run), on all images, returning its own outcome. An image is won
        when right (and unflagged) clean and not :attr:`~advshield.attacks.base.AttackResult.unbroken` in the run."""
        if everywhere:
            unbroken, clean = self.correct(attack)
            return unbroken, clean & ~unbroken
        out, won = robust.clone(), torch.zeros_like(robust)
        rows = robust.nonzero().squeeze(1)
        unbroken, clean = self.correct(attack, rows)
        out[rows], won[rows] = unbroken, clean & ~unbroken
        return out, won

    def dead_gradients(self) -> float:
        device = module_device(self.pipeline)
        surface = self.pipeline.surface(self.threat, self.substitute, self.eot_samples)
        if getattr(surface, "detector", None) is not None:
            # the classifier's cross-entropy through the defense: the joint objective against a detector is flat
            # (zero gradient) wherever an image is already misclassified by kappa and unflagged, which is no masking
            surface = surface.variant(detector=None)
        _, grad, _ = loss_gradient(surface, self.x[:256].to(device), self.labels[:256].to(device))
        g = grad.flatten(1)
        return float(((g.abs().sum(1) == 0) | ~torch.isfinite(g).all(1)).float().mean())


def _masking_checks(report: HealthReport, run: _Runner, base: float, unbounded: float, unbounded_detail: str,
                    eps: float, norm: Norm, tolerance: float, unbounded_success: float) -> None:
    """The checks shared by both entry points: unbounded (its success measured by the caller), beats-noise,
    gradients."""
    report.add("unbounded", unbounded >= unbounded_success,
               f"success {unbounded:.3f} {unbounded_detail} (expected >= {unbounded_success})",
               success=unbounded, expected=unbounded_success)
    noise, _ = run(UniformNoise(eps) if norm is Norm.LINF else L2Noise(eps))
    report.add("beats-noise", base <= noise + tolerance,
               f"accuracy {base:.3f} under the attack, {noise:.3f} under noise", accuracy=base, noise_accuracy=noise)
    dead = run.dead_gradients()
    report.add("gradients", dead <= 0.1, f"{100 * dead:.0f} % of inputs have a zero or non-finite gradient",
               dead_fraction=dead)


def check_attack_health(make_attack: Callable[[float, int], Attack], pipeline: Pipeline, x: torch.Tensor,
                        labels: torch.Tensor, eps: float, steps: int, *,
                        threat: ThreatModel | str = ThreatModel.ADAPTIVE, substitute: nn.Module | None = None,
                        eot_samples: int = 8, tolerance: float = 0.02, unbounded_success: float = 0.95,
                        seed: int = 0, warn: bool = True) -> HealthReport:
    """Run the classic checks on ``(x, labels)``; ``make_attack(eps, steps)`` builds the L-inf attack under test."""
    run = _Runner(pipeline, x, labels, threat, substitute, eot_samples, seed)
    report = HealthReport()
    base, _ = run(make_attack(eps, steps))
    more, _ = run(make_attack(eps, 2 * steps))
    report.add("more-steps", more <= base + tolerance,
               f"accuracy {base:.3f} with {steps} steps, {more:.3f} with {2 * steps}", accuracy=base,
               accuracy_more_steps=more)
    wider_eps = min(1.0, 2 * eps)
    wider, _ = run(make_attack(wider_eps, steps))
    report.add("larger-eps", wider <= base + tolerance, f"accuracy {base:.3f} at eps {eps}, {wider:.3f} at {wider_eps}",
               accuracy=base, accuracy_larger_eps=wider)
    _, unbounded = run(make_attack(1.0, 2 * steps))
    _masking_checks(report, run, base, unbounded, "at eps 1", eps, Norm.LINF, tolerance, unbounded_success)
    if warn:
        report.warn()
    return report


def check_convergence(base: float, doubled: float, steps: int, restarts: int, tolerance: float = 0.01) -> dict:
    """Doubling iterations and restarts must lower the robust accuracy by less than ``tolerance``."""
    drop = base - doubled
    passed = drop < tolerance
    detail = (f"{'converged' if passed else 'not converged'}: robust accuracy {base:.3f} with {steps} steps x "
              f"{restarts} restarts, {doubled:.3f} with {2 * steps} x {2 * restarts}")
    return HealthReport().add("convergence", passed, detail, accuracy=base, accuracy_doubled=doubled, drop=drop)


def check_gradient_free(gradient_accuracy: float, square_accuracy: float, tolerance: float = 0.01) -> dict:
    """The gradient-free Square attack must not leave less accuracy than the gradient attack."""
    passed = square_accuracy >= gradient_accuracy - tolerance
    detail = (f"robust accuracy {gradient_accuracy:.3f} under the gradient attack, {square_accuracy:.3f} under "
              f"the gradient-free Square attack{'' if passed else ': gradients look masked'}")
    return HealthReport().add("gradient-free", passed, detail, accuracy=gradient_accuracy,
                              square_accuracy=square_accuracy)


def check_adaptive_vs_oblivious(adaptive_accuracy: float, oblivious_accuracy: float, tolerance: float = 0.0) -> dict:
    """An adaptive attack knows strictly more than an oblivious one: it must not leave more accuracy."""
    passed = adaptive_accuracy <= oblivious_accuracy + tolerance
    detail = (f"robust accuracy {adaptive_accuracy:.3f} under the adaptive attack, {oblivious_accuracy:.3f} under "
              f"the oblivious one{'' if passed else ': the adaptive attack is broken or too weak (EOT, BPDA?)'}")
    return HealthReport().add("adaptive-vs-oblivious", passed, detail, adaptive_accuracy=adaptive_accuracy,
                              oblivious_accuracy=oblivious_accuracy)


def run_health_checks(make_attack: Callable[[float, int, int], Attack], pipeline: Pipeline, x: torch.Tensor,
                      labels: torch.Tensor, eps: float, steps: int, *, restarts: int = 1, norm: str = "linf",
                      threat: ThreatModel | str = ThreatModel.ADAPTIVE, substitute: nn.Module | None = None,
                      eot_samples: int = 8, oblivious_accuracy: float | None = None, square_queries: int = 1000,
                      tolerance: float = 0.01, unbounded_success: float = 0.95, seed: int = 0,
                      warn: bool = True, base: tuple[torch.Tensor, torch.Tensor] | None = None) -> HealthReport:
    """The checks every report runs, on ``(x, labels)``; ``make_attack(eps, steps, restarts)`` builds the attack.

    convergence (2x steps and restarts), gradient-free (Square with ``square_queries``), unbounded
    (eps = 1 in L-inf, the whole box in L2), beats-noise, gradients, and, given the oblivious
    attack's accuracy, adaptive-vs-oblivious.

    ``base``: per image of ``x``, (:attr:`~advshield.attacks.base.AttackResult.unbroken`, right and unflagged when
    clean) of ``make_attack(eps, steps, restarts)``
    already run through this pipeline under this threat (the evaluation's own row: its stored set). The checks
    then start from it instead of running the attack again, and the convergence check judges the very run the
    report quotes.
    """
    norm_ = Norm(norm)
    run = _Runner(pipeline, x, labels, threat, substitute, eot_samples, seed)
    report = HealthReport()
    # A deterministic pipeline: each stronger run attacks only the images every earlier run left robust, and an
    # image counts as robust only if it is under all of them (AutoAttack's worst case; Croce & Hein 2020). An
    # image already broken cannot be "unbroken" by more effort, so this is the robust accuracy a user would
    # report after the stronger run, for the cost of the still-robust images only. A randomised defense judges
    # each run with a new draw, so there every run attacks every image and is compared on its own.
    everywhere = bool(getattr(pipeline, "randomized", False))
    if base is not None and (len(base[0]) != len(labels) or len(base[1]) != len(labels)):
        raise ValueError(f"base covers {len(base[0])} / {len(base[1])} images, the checks {len(labels)}")
    robust, clean_ok = (base[0].bool().cpu(), base[1].bool().cpu()) if base is not None else \
        run.correct(make_attack(eps, steps, restarts))
    base = float(robust.float().mean())
    robust_doubled, won_doubled = run.still_correct(make_attack(eps, 2 * steps, 2 * restarts), robust, everywhere)
    doubled = float(robust_doubled.float().mean())
    report.checks.append(check_convergence(base, doubled, steps, restarts, tolerance))
    robust_square, won_square = run.still_correct(Square(eps, norm=norm_.value, n_queries=square_queries),
                                                  robust_doubled, everywhere)
    square = float(robust_square.float().mean())
    report.checks.append(check_gradient_free(min(base, doubled), square, tolerance))
    report.not_won = None if everywhere else ~((clean_ok & ~robust) | won_doubled | won_square)
    report.robust_accuracy = min(base, doubled, square)  # = square's per-image worst case when deterministic
    whole_box = 1.0 if norm_ is Norm.LINF else math.sqrt(x[0].numel())
    # Unbounded: an adversarial within eps is one within the whole box, so only the images the attack at eps
    # left robust are attacked again (every image for a randomised defense); success over clean-correct images.
    if everywhere:
        _, unbounded = run(make_attack(whole_box, 2 * steps, restarts))
    else:
        unbounded_ok, _ = run.still_correct(make_attack(whole_box, 2 * steps, restarts), robust, False)
        unbounded = float((clean_ok & ~unbounded_ok).sum() / clean_ok.sum()) if clean_ok.any() else 0.0
    where = "" if everywhere else f", attacking the {int(robust.sum())} images left robust at eps {eps:g}"
    _masking_checks(report, run, base, unbounded, f"at eps {whole_box:g}{where}", eps, norm_, tolerance,
                    unbounded_success)
    if oblivious_accuracy is not None:
        report.checks.append(check_adaptive_vs_oblivious(base, oblivious_accuracy, tolerance))
    if warn:
        report.warn()
    return report
