"""The health checks every report runs: silent on a healthy pipeline, loud on known-masked ones."""

import json

import pytest
import torch
from torch import nn

from advshield.attacks import APGD, Pipeline, run_attack
from advshield.attacks.health import (MaskedGradientWarning, check_adaptive_vs_oblivious, check_convergence,
                                      check_gradient_free, run_health_checks)
from advshield.detectors import Detector
from test_attacks_autoattack import one_thread, train_tiny  # noqa: F401  (one_thread: an autouse fixture)

EPS = 0.05


@pytest.fixture(scope="module")
def tiny():
    model, x, y = train_tiny()
    return model, x[:100], y[:100]


class Quantise(nn.Module):
    """Shattered gradients: a 5-level quantiser declared differentiable, so no BPDA (gradient exactly 0)."""

    differentiable, randomized = True, False

    def forward(self, x):
        return torch.round(x * 4) / 4 + 0 * x


class Saturated(nn.Module):
    """Saturated logits: softmax(1e4 * logits) is exactly one-hot in float32, so every gradient is 0."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x) * 1e4, 1)


class Jitter(nn.Module):
    """A randomised defense: Gaussian noise of sd 0.3."""

    differentiable, randomized = True, True

    def forward(self, x):
        return (x + 0.3 * torch.randn_like(x)).clamp(0, 1)


def health(pipeline, x, y, **kw):
    torch.manual_seed(0)  # the randomised defense draws from the global generator
    oblivious = run_attack(APGD(EPS, steps=20), pipeline, x, y, threat="white-box").summary()["adv_accuracy"]
    return run_health_checks(lambda e, s, r: APGD(e, steps=s, restarts=r), pipeline, x, y, EPS, 20,
                             oblivious_accuracy=oblivious, square_queries=300, **kw)


def failed(report):
    return {c["name"] for c in report.failures}


def test_healthy_pipeline_raises_no_flag(tiny, recwarn):
    model, x, y = tiny
    report = health(Pipeline(model), x, y)
    assert report.ok, report.failures
    assert [c["name"] for c in report.checks] == ["convergence", "gradient-free", "unbounded", "beats-noise",
                                                   "gradients", "adaptive-vs-oblivious"]
    assert not [w for w in recwarn if issubclass(w.category, MaskedGradientWarning)]
    json.dumps(report.checks)  # structured, report-ready
    assert set(report.checks[0]["numbers"]) == {"accuracy", "accuracy_doubled", "drop"}


@pytest.mark.parametrize("make", [lambda m: Pipeline(m, Quantise()), lambda m: Pipeline(Saturated(m))],
                         ids=["quantiser-without-bpda", "saturated-logits"])
def test_masked_gradients_are_flagged(tiny, make):
    model, x, y = tiny
    with pytest.warns(MaskedGradientWarning):
        report = health(make(model), x, y)
    assert {"gradient-free", "unbounded", "gradients"} <= failed(report)


def test_randomised_defense_without_eot_is_flagged(tiny):
    model, x, y = tiny
    pipe = Pipeline(model, Jitter())
    without = health(pipe, x, y, eot_samples=1, warn=False)
    assert {"unbounded", "adaptive-vs-oblivious"} <= failed(without)
    with_eot = health(pipe, x, y, eot_samples=16, warn=False)
    numbers = {c["name"]: c["numbers"] for c in with_eot.checks}
    # EOT makes the adaptive attack stronger. (It still stops at the first iterate that fools the EOT average,
    # which one random draw of the victim then judges as a coin flip: the flags stay up for this defense.)
    assert numbers["convergence"]["accuracy"] < {c["name"]: c["numbers"] for c in without.checks}[
        "convergence"]["accuracy"]


def test_check_functions_on_numbers():
    assert check_convergence(0.50, 0.495, 100, 1)["passed"]
    bad = check_convergence(0.50, 0.47, 100, 1)
    assert not bad["passed"] and "not converged" in bad["detail"]
    assert "0.500" in bad["detail"] and "0.470" in bad["detail"]
    assert bad["numbers"] == {"accuracy": 0.5, "accuracy_doubled": 0.47, "drop": pytest.approx(0.03)}
    assert check_gradient_free(0.40, 0.45)["passed"] and not check_gradient_free(0.40, 0.30)["passed"]
    assert check_adaptive_vs_oblivious(0.2, 0.3)["passed"] and not check_adaptive_vs_oblivious(0.3, 0.2)["passed"]


def test_stronger_runs_attack_only_the_images_still_robust(tiny, monkeypatch):
    """Deterministic pipeline: the doubled run and the unbounded run attack only what the base run left robust,
    Square only what the doubled run left robust (AutoAttack's worst case), so their numbers can only be lower
    and their cost is that of the robust images."""
    import advshield.attacks.health as health_module
    model, x, y = tiny
    seen, square_rows = [], []

    class Counted(APGD):
        def perturb(self, surface, xb, labels, target, generator):
            seen.append((self.eps, self.steps, self.restarts, len(xb)))
            return super().perturb(surface, xb, labels, target, generator)

    class CountedSquare(health_module.Square):
        def perturb(self, surface, xb, labels, target, generator):
            square_rows.append(len(xb))
            return super().perturb(surface, xb, labels, target, generator)

    monkeypatch.setattr(health_module, "Square", CountedSquare)
    report = run_health_checks(lambda e, s, r: Counted(e, steps=s, restarts=r), Pipeline(model), x, y, EPS, 20,
                               square_queries=50, warn=False)
    base = run_attack(APGD(EPS, steps=20), Pipeline(model), x, y)
    robust = int((base.adv_pred == base.labels).sum())
    doubled = run_attack(APGD(EPS, steps=40, restarts=2), Pipeline(model), x[base.adv_pred == base.labels],
                         y[base.adv_pred == base.labels])
    robust_doubled = int((doubled.adv_pred == doubled.labels).sum())
    assert seen[0] == (EPS, 20, 1, len(y))
    assert seen[1] == (EPS, 40, 2, robust)  # doubled steps and restarts, on the images left robust
    assert seen[2] == (1.0, 40, 1, robust)  # unbounded, on the same images
    assert square_rows == [robust_doubled]
    numbers = {c["name"]: c["numbers"] for c in report.checks}
    assert numbers["convergence"]["accuracy"] == pytest.approx(robust / len(y))
    assert numbers["convergence"]["accuracy_doubled"] == pytest.approx(robust_doubled / len(y))
    unbounded = next(c for c in report.checks if c["name"] == "unbounded")
    assert f"attacking the {robust} images left robust" in unbounded["detail"]


def test_failed_health_checks_become_red_flags():
    """What a card's Red flags section reads: every failed check of every adaptive setting, named by both."""
    from advshield.attacks.health import HealthReport
    from advshield.evaluation.verdict import health_flags
    report = HealthReport()
    report.add("convergence", True, "converged")
    report.add("gradients", False, "90 % of inputs have a zero or non-finite gradient")
    health = {"adaptive pgd": {"ok": report.ok, "checks": report.checks, "failures": report.failures},
              "adaptive cw": {"skipped": "cw has no eps budget to vary"}}
    assert health_flags(health) == [{"check": "health: gradients",
                                     "detail": "adaptive pgd: 90 % of inputs have a zero or non-finite gradient"}]
    # A single-step setting is checked with another attack: the flag says which.
    health = {"adaptive fgsm": {"attack": "apgd-ce", "failures": report.failures},
              "adaptive pgd": {"attack": "pgd", "failures": report.failures}}
    assert [f["detail"].split(":")[0] for f in health_flags(health)] == [
        "adaptive fgsm (checked with apgd-ce)", "adaptive pgd"]
    # Settings that share one run of the checks are named together, once per failed check.
    health["adaptive autoattack"] = dict(health["adaptive fgsm"], same_checks_as="adaptive fgsm")
    assert [f["detail"].split(":")[0] for f in health_flags(health)] == [
        "adaptive fgsm and adaptive autoattack (checked with apgd-ce)", "adaptive pgd"]
    # ... but a setting whose named checks are missing or differ keeps its own flags
    health["adaptive autoattack"]["same_checks_as"] = "adaptive square"
    health["adaptive fgsm-2"] = dict(health["adaptive fgsm"], checks=[], same_checks_as="adaptive fgsm")
    assert [f["detail"].split(":")[0] for f in health_flags(health)] == [
        "adaptive fgsm (checked with apgd-ce)", "adaptive pgd", "adaptive autoattack (checked with apgd-ce)",
        "adaptive fgsm-2 (checked with apgd-ce)"]


class Idle(APGD):
    """An 'attack' that returns its input: a broken evaluation the noise check must catch."""

    def perturb(self, surface, x, labels, target, generator):
        return x.clone()


class Fragile(nn.Module):
    """Correct (class 0) only on images on the 8-bit grid: any noise off the grid makes it answer class 1."""

    def forward(self, x):
        off_grid = (x * 255 - torch.round(x * 255)).abs().flatten(1).amax(1)
        return torch.stack([1 - 1e3 * off_grid, 1e3 * off_grid], 1)


def test_noise_beating_the_attack_is_flagged():
    x = torch.round(torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 255) / 255
    y = torch.zeros(20, dtype=torch.long)
    report = run_health_checks(lambda e, s, r: Idle(e, steps=s, restarts=r), Pipeline(Fragile()), x, y, EPS, 5,
                               square_queries=10, warn=False)
    check = next(c for c in report.checks if c["name"] == "beats-noise")
    assert not check["passed"] and check["numbers"] == {"accuracy": 1.0, "noise_accuracy": 0.0}
    assert {"beats-noise", "unbounded"} <= failed(report)


def test_each_setting_is_checked_with_its_own_attack_and_parameters():
    """setting_health probes the setting's attack with its fixed parameters (an absolute step as a share of
    eps, which the checks vary), APGD-CE at the budget for an attack without steps, nothing without an eps."""
    from advshield.experiment.health import _probe
    from advshield.experiment.setting import AttackSetting
    pgd = AttackSetting("pgd", {"eps": 0.25, "steps": 5, "abs_stepsize": 0.1, "random_start": False}, "adaptive")
    assert _probe(pgd) == ("pgd", {"random_start": False, "rel_stepsize": pytest.approx(0.4)}, 0.25, 5, 1, "linf")
    assert _probe(AttackSetting("fgsm", {"eps": 0.1}, "adaptive")) == ("apgd-ce", {"norm": "linf"}, 0.1, 100, 1,
                                                                        "linf")
    assert _probe(AttackSetting("cw", {}, "adaptive")) is None
    assert _probe(AttackSetting("apgd-ce", {"eps": 1.0, "norm": "l2", "steps": 10, "restarts": 2})) == (
        "apgd-ce", {"norm": "l2"}, 1.0, 10, 2, "l2")


class Memorised(Detector):
    """Flags every input that is not exactly one of the clean images it stores (L-inf distance to the nearest,
    threshold 0): any perturbation is caught, so no attack within any budget can win an image unflagged."""

    def __init__(self, clean):
        super().__init__()
        self.register_buffer("clean", clean)

    def score(self, x):
        return (x[:, None] - self.clean[None]).abs().flatten(2).amax(2).min(1).values


def test_checks_through_a_detector_judge_like_the_detection_experiment(tiny):
    """Through a detector the attacker wins an image only by an unflagged misclassification, and a clean image
    the detector flags is an error (the detection experiment's robust accuracy). A detector that knows only the
    first half of the images flags the other half when clean and catches every perturbation: every run then
    leaves exactly the first half's clean-correct images robust (judged on the classifier alone, the second
    half's correct images would count too), and only the unbounded check, which no attacker can pass here,
    fires."""
    model, x, y = tiny
    det = Memorised(x[:50])
    det.calibrate_fpr(det.score(x[:50]), 0.05)
    assert det.threshold == 0.0
    report = run_health_checks(lambda e, s, r: APGD(e, steps=s, restarts=r), Pipeline(model, detector=det), x, y,
                               EPS, 20, square_queries=100, warn=False)
    numbers = {c["name"]: c["numbers"] for c in report.checks}
    right = model(x).argmax(1) == y
    expected = float(right[:50].sum()) / len(y)
    assert expected < float(right.float().mean()) - 0.3  # the classifier alone would say much more
    assert numbers["convergence"]["accuracy"] == pytest.approx(expected)
    assert numbers["convergence"]["accuracy_doubled"] == pytest.approx(expected)
    assert numbers["gradient-free"]["square_accuracy"] == pytest.approx(expected)
    assert numbers["beats-noise"]["noise_accuracy"] == pytest.approx(expected)
    assert failed(report) == {"unbounded"} and numbers["unbounded"]["success"] == 0.0


def test_runner_counts_a_flagged_misclassification_as_robust():
    from advshield.attacks import AttackResult

    y = torch.tensor([0, 0, 0, 0, 0])
    r = AttackResult(adv=torch.zeros(5, 1, 2, 2), labels=y, clean_pred=torch.tensor([0, 0, 0, 0, 1]),
                     adv_pred=torch.tensor([0, 1, 1, 0, 1]), norms={}, seconds=0.0,
                     detected_clean=torch.tensor([False, False, False, True, False]),
                     detected_adv=torch.tensor([False, True, False, False, False]))
    # right; wrong but flagged; wrong and unflagged; flagged when clean (an error); wrong clean
    assert r.unbroken.tolist() == [True, True, False, False, False]
    plain = AttackResult(adv=r.adv, labels=y, clean_pred=r.clean_pred, adv_pred=r.adv_pred, norms={}, seconds=0.0)
    assert plain.unbroken.tolist() == [True, False, False, True, False]


def test_the_checks_report_their_own_worst_case(tiny):
    """Deterministic pipeline: ``not_won`` marks the images none of the attack, its doubled run and Square won;
    over the images right when clean it is the gradient-free check's per-image worst case, and ``after_checks``
    carries it for the evaluation's verdict."""
    from advshield.experiment.health import after_checks
    model, x, y = tiny
    report = run_health_checks(lambda e, s, r: APGD(e, steps=s, restarts=r), Pipeline(model), x, y, EPS, 5,
                               square_queries=50, warn=False)
    numbers = {c["name"]: c["numbers"] for c in report.checks}
    base = run_attack(APGD(EPS, steps=5), Pipeline(model), x, y)
    clean_ok = base.clean_pred == base.labels
    assert report.not_won.shape == (len(y),) and report.not_won[~clean_ok].all()  # the rows count those
    assert not (report.not_won & clean_ok & (base.adv_pred != base.labels)).any()  # the base run's wins are in
    robust = report.not_won & clean_ok
    assert float(robust.float().mean()) == pytest.approx(numbers["gradient-free"]["square_accuracy"])
    assert report.robust_accuracy == pytest.approx(numbers["gradient-free"]["square_accuracy"])
    assert report.robust_accuracy <= numbers["convergence"]["accuracy_doubled"] <= numbers["convergence"]["accuracy"]
    block = after_checks(report, "apgd-ce", EPS, "linf", 5, 1, "adaptive", len(y))
    assert block["per_image"] == "".join("1" if b else "0" for b in report.not_won.tolist())
    assert block["n"] == len(y) and block["threat"] == "adaptive" and block["budget"] == {"norm": "linf", "eps": EPS}
    assert block["runs"] == "apgd-ce 5 steps x 1 restart(s), then 10 x 2, then Square"
    json.dumps(block)  # goes into the card as it is
    jittered = run_health_checks(lambda e, s, r: APGD(e, steps=s, restarts=r), Pipeline(model, Jitter()), x[:30],
                                 y[:30], EPS, 3, square_queries=20, warn=False)
    assert jittered.not_won is None  # a randomised pipeline: each run judged with its own draw, no per-image case
    assert "per_image" not in after_checks(jittered, "apgd-ce", EPS, "linf", 3, 1, "adaptive", 30)


def test_checks_start_from_the_rows_own_run_when_given(tiny):
    """``base``: the attack already run (the evaluation's row) is not run again; the convergence check judges it."""
    model, x, y = tiny
    runs = []

    class Counted(APGD):
        def perturb(self, surface, xb, labels, target, generator):
            runs.append((self.eps, self.steps, self.restarts, len(xb)))
            return super().perturb(surface, xb, labels, target, generator)

    row = run_attack(APGD(EPS, steps=5), Pipeline(model), x, y)
    base = (row.unbroken, row.clean_correct)
    report = run_health_checks(lambda e, s, r: Counted(e, steps=s, restarts=r), Pipeline(model), x, y, EPS, 5,
                               square_queries=20, warn=False, base=base)
    robust = int(row.unbroken.sum())
    assert runs[0] == (EPS, 10, 2, robust)  # straight to the doubled run, on the row's robust images
    assert not any(r[:3] == (EPS, 5, 1) for r in runs)  # no second run of the base attack
    numbers = {c["name"]: c["numbers"] for c in report.checks}
    assert numbers["convergence"]["accuracy"] == pytest.approx(robust / len(y))
    with pytest.raises(ValueError, match="base covers"):
        run_health_checks(lambda e, s, r: APGD(e, steps=s, restarts=r), Pipeline(model), x, y, EPS, 5,
                          warn=False, base=(row.unbroken[:3], row.clean_correct[:3]))
