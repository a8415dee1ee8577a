"""The detection experiment's detector-aware row is the per-image worst case over its attacks: an image is robust
only if no attack broke it, and evasion and detection rates are read off the same per-image mask."""

from types import SimpleNamespace

import pytest
import torch

from advshield.evaluation import detection_adaptive
from advshield.evaluation.detection_adaptive import adaptive_row, default_adaptive, worst_case_with_checks
from advshield.metrics import wilson_interval

CLEAN = torch.tensor([1, 1, 1, 1, 1, 1, 0, 1], dtype=torch.bool)  # image 6 wrong or flagged when clean
APGD = torch.tensor([1, 0, 1, 0, 1, 1, 0, 1], dtype=torch.bool)  # unbroken after each attack
PGD = torch.tensor([0, 1, 1, 0, 1, 1, 0, 0], dtype=torch.bool)


@pytest.fixture
def fake_sets(monkeypatch):
    results = {"apgd-ce": APGD, "pgd": PGD}
    calls = []

    def acquire(setting, victim, data, ctx, **kw):
        calls.append((setting.attack, kw["detector"], kw["detector_id"]))
        result = SimpleNamespace(unbroken=results[setting.attack], clean_correct=CLEAN)
        return SimpleNamespace(result=result)

    monkeypatch.setattr(detection_adaptive, "acquire_set", acquire)
    return calls


def test_the_row_breaks_an_image_when_any_attack_broke_it(fake_sets):
    ctx = SimpleNamespace(log=lambda *_: None)
    row, unbroken, clean, first = adaptive_row(default_adaptive(0.3, 10), "victim", "det", {"kind": "k"}, None, ctx,
                                               "mnist")
    assert [c[0] for c in fake_sets] == ["apgd-ce", "pgd"] and all(c[1] == "det" for c in fake_sets)
    assert torch.equal(unbroken, APGD & PGD) and torch.equal(first, APGD) and torch.equal(clean, CLEAN)
    k = int((APGD & PGD).sum())  # 3 of 8
    assert row["robust_accuracy"] == k / 8 and row["robust_accuracy_ci95"] == list(wilson_interval(k, 8))
    own = {m["attack"]: m["robust_accuracy"] for m in row["members"]}
    assert own == {"apgd-ce": 5 / 8, "pgd": 4 / 8} and row["robust_accuracy"] < min(own.values())
    assert row["n_clean_correct"] == 7 and row["evasion_rate"] == pytest.approx(4 / 7)  # 7 right, 3 left unbroken
    assert row["detection_rate"] == pytest.approx(1 - 4 / 7) and row["attack"] == "apgd-ce + pgd"
    assert row["params"]["eps"] == 0.3 and row["params"]["steps"] == 10


def test_the_checks_lower_the_row_only_on_images_no_attack_broke():
    unbroken = APGD & PGD  # images 2, 4, 5
    block = {"per_image": "1101", "runs": "apgd-ce 10 steps x 1 restart(s), then 20 x 2, then Square"}  # image 2 broken
    w = worst_case_with_checks(unbroken, block)
    assert w["robust_accuracy"] == 2 / 8 and w["broken_by_checks"] == 1 and w["checked_images"] == 4
    assert worst_case_with_checks(unbroken, dict(block, per_image="0000"))["broken_by_checks"] == 1  # 0 and 3 broken already


def test_no_attack_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        adaptive_row([], None, None, {}, None, SimpleNamespace(log=print), "mnist")


def test_default_apgd_runs_both_starts_and_the_report_names_them():
    """Neither APGD start wins on every detector (MagNet: the clean start; CMAG: the sphere), so the default row's
    APGD-CE has two restarts, the first from x, the second from the eps-sphere on the images the first left."""
    from advshield.reproduce.detection.report import _attacks_named

    apgd, pgd = (s.create() for s in default_adaptive(0.3, 10))
    assert (apgd.name, apgd.restarts, apgd.detector_start, apgd.steps) == ("apgd-ce", 2, "clean", 10)
    assert pgd.name == "pgd" and pgd.params()["stepsize"] == pytest.approx(0.075)
    card = {"attacks": {"adaptive-joint": {"members": [{"attack": "apgd-ce", "params": apgd.params()},
                                                        {"attack": "pgd", "params": pgd.params()}]}}}
    assert _attacks_named({"detectors": {"cmag-ssim": card}}) == (
        "APGD-CE (its first restart from the clean image, 1 more from the eps-sphere) and PGD (step 2.5 eps / steps)")
    card["attacks"]["adaptive-joint"]["members"][0]["params"] = {"eps": 0.3, "steps": 100}  # a card of one restart
    assert _attacks_named({"detectors": {"cmag-ssim": card}}).startswith("APGD-CE (its first restart from the "
                                                                         "clean image) and")
