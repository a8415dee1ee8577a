"""Self-checks of an (adaptive) attack run, after Carlini et al. 2019, "On Evaluating Adversarial Robustness".

A defense evaluation is only as good as its attack. These checks catch the
usual signs of a broken or gradient-masked evaluation:

* more iterations must not raise the pipeline's accuracy;
* a larger eps must not raise it;
* an unbounded attack (eps = 1 on [0, 1] images) must reach ~100 % success;
* random noise of the same eps must not beat the gradient attack;
* the attack's gradients must not be zero or non-finite for many inputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from advshield.attacks.base import Attack, loss_gradient
from advshield.attacks.noise import UniformNoise
from advshield.attacks.pipeline import Pipeline, ThreatModel
from advshield.attacks.runner import run_attack


class MaskedGradientWarning(UserWarning):
    """The attack's gradients look masked or obfuscated; its numbers overstate robustness."""


@dataclass
class HealthReport:
    checks: list[dict] = field(default_factory=list)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"check": name, "passed": bool(passed), "detail": detail})

    @property
    def ok(self) -> bool:
        return all(c["passed"] for c in self.checks)

    @property
    def failures(self) -> list[dict]:
        return [c for c in self.checks if not c["passed"]]


def check_attack_health(make_attack: Callable[[float, int], Attack], pipeline: Pipeline, x: torch.Tensor,
                        labels: torch.Tensor, eps: float, steps: int, *,
                        threat: ThreatModel | str = ThreatModel.ADAPTIVE, substitute: nn.Module | None = None,
                        eot_samples: int = 8, tolerance: float = 0.02, unbounded_success: float = 0.95,
                        seed: int = 0, warn: bool = True) -> HealthReport:
    """Run the checks on ``(x, labels)``; ``make_attack(eps, steps)`` builds the attack under test."""

    def acc(attack: Attack) -> tuple[float, float]:
        s = run_attack(attack, pipeline, x, labels, threat=threat, substitute=substitute, eot_samples=eot_samples,
                       seed=seed).summary()
        return s["adv_accuracy"], s["success_rate"]

    report = HealthReport()
    base, _ = acc(make_attack(eps, steps))
    more, _ = acc(make_attack(eps, 2 * steps))
    report.add("more-steps", more <= base + tolerance,
               f"accuracy {base:.3f} with {steps} steps, {more:.3f} with {2 * steps}")
    wider_eps = min(1.0, 2 * eps)
    wider, _ = acc(make_attack(wider_eps, steps))
    report.add("larger-eps", wider <= base + tolerance, f"accuracy {base:.3f} at eps {eps}, {wider:.3f} at {wider_eps}")
    _, unbounded = acc(make_attack(1.0, 2 * steps))
    report.add("unbounded", unbounded >= unbounded_success,
               f"success {unbounded:.3f} at eps 1.0 (expected >= {unbounded_success})")
    noise, _ = acc(UniformNoise(eps))
    report.add("beats-noise", base <= noise + tolerance, f"accuracy {base:.3f} under the attack, {noise:.3f} under noise")
    device = next(pipeline.parameters()).device
    surface = pipeline.surface(threat, substitute, eot_samples)
    _, grad, _ = loss_gradient(surface, x[:256].to(device), labels[:256].to(device))
    g = grad.flatten(1)
    dead = float(((g.abs().sum(1) == 0) | ~torch.isfinite(g).all(1)).float().mean())
    report.add("gradients", dead <= 0.1, f"{100 * dead:.0f} % of inputs have a zero or non-finite gradient")
    if warn:
        for c in report.failures:
            warnings.warn(f"attack health check '{c['check']}' failed: {c['detail']}; gradients may be masked "
                          "or the attack is too weak, so the robustness numbers are not trustworthy",
                          MaskedGradientWarning, stacklevel=2)
    return report
