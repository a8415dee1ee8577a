"""The detector-aware adaptive attack is the engine's adaptive threat with a detector in the pipeline: it stays
in its budget, refuses an uncalibrated detector, and evades a detector the oblivious attack trips."""

import pytest
import torch
from torch.nn import functional as F

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.detectors import Detector
from advshield.errors import InputError
from advshield.zoo import load_pretrained


class HighFrequency(Detector):
    """Differentiable toy detector: mean squared difference between an image and its 3x3 box blur."""

    def score(self, x):
        return (x - F.avg_pool2d(x, 3, 1, 1)).pow(2).flatten(1).mean(1)


@pytest.fixture(scope="module")
def setting():
    model, _ = load_pretrained("a-net")
    model.requires_grad_(False)
    x, y = load_dataset("mnist", "test").tensors(slice(0, 100))
    det = HighFrequency()
    det.calibrate_fpr(det.score(load_dataset("mnist", "train").tensors(slice(0, 500))[0]), 0.05)
    return model, det, x, y


def test_an_uncalibrated_detector_cannot_guard_a_pipeline(setting):
    model, _, _, _ = setting
    with pytest.raises(InputError, match="calibrated"):
        Pipeline(model, detector=HighFrequency())


def test_adaptive_attack_evades_where_the_oblivious_attack_is_caught(setting):
    model, det, x, y = setting
    guarded = Pipeline(model, detector=det)
    fgsm = run_attack(create_attack("fgsm", eps=0.3), guarded, x, y, batch_size=100, seed=0)
    pgd = create_attack("pgd", eps=0.3, steps=40, abs_stepsize=0.02, early_stop=True)
    oblivious = run_attack(pgd, guarded, x, y, threat="white-box", batch_size=100, seed=0)
    adaptive = run_attack(pgd, guarded, x, y, threat="adaptive", batch_size=100, seed=0)
    fooled_unflagged = (fgsm.adv_pred != y) & ~fgsm.detected_adv
    assert float(fgsm.detected_adv[fgsm.adv_pred != y].float().mean()) > 0.7  # FGSM sign noise is high frequency
    assert float(fooled_unflagged.float().mean()) < 0.3
    assert float((adaptive.adv - x).abs().max()) <= 0.3 + 1e-6
    # judged on the guarded pipeline: success = correct and unflagged when clean, misclassified and unflagged after
    assert float(adaptive.success.float().mean()) > float(oblivious.success.float().mean()) + 0.3
    assert float(adaptive.success.float().mean()) > 0.8
    with torch.no_grad():  # the evasion claim checks out independently
        hit = adaptive.success
        assert torch.all(model(adaptive.adv[hit]).argmax(1) != y[hit])
        assert torch.all(det.score(adaptive.adv[hit]) <= det.threshold)


def test_joint_objective_is_the_hinge_sum_of_carlini_and_wagner(setting):
    """-(max(margin, -kappa) + c * relative excess of the score over the threshold), per image."""
    from advshield.attacks.base import DETECTOR_KAPPA, loss_gradient

    model, det, x, y = setting
    surface = Pipeline(model, detector=det).surface("adaptive").reweighted(10.0)
    loss, grad, logits = loss_gradient(surface, x[:20], y[:20])
    with torch.no_grad():
        z = model(x[:20])
        own = z.gather(1, y[:20, None]).squeeze(1)
        other = z.scatter(1, y[:20, None], -torch.inf).amax(1)
        excess = torch.relu(det.score(x[:20]) - det.threshold) / abs(det.threshold)
    expected = -(torch.relu(own - other + DETECTOR_KAPPA) + 10.0 * excess)
    assert torch.allclose(loss, expected, atol=1e-5) and torch.allclose(logits, z, atol=1e-5)
    assert (expected < 0).all()  # every clean image is still either correct or flagged or both: no zero term


def test_the_switch_run_ascends_the_attack_loss_until_fooled_then_the_hinge_alone(setting):
    from advshield.attacks.base import loss_gradient

    model, det, x, y = setting
    surface = Pipeline(model, detector=det).surface("adaptive").reweighted(1.0, switch=True)
    wrong = (y + 1) % 10  # labels that every image already "fools": the loss is minus the hinge where flagged
    noise = torch.rand(x[:10].shape, generator=torch.Generator().manual_seed(0))  # not the global RNG's state
    xs = torch.cat([x[:10], x[:10] + 0.3 * noise]).clamp(0, 1)
    for labels in (y[:10].repeat(2), wrong[:10].repeat(2)):
        loss, _, _ = loss_gradient(surface, xs, labels)
        with torch.no_grad():
            z = model(xs)
            hinge = torch.relu(det.score(xs) - det.threshold) / abs(det.threshold)
            fooled = z.argmax(1) != labels
            expected = torch.where(fooled & (hinge > 0), -hinge, F.cross_entropy(z, labels, reduction="none"))
        assert torch.allclose(loss, expected, atol=1e-5)
    assert (hinge > 0).any() and (hinge == 0).any()


class Recorder:
    """Wraps an attack: records (detector weight, switch, batch size) of every run."""

    def __init__(self, attack):
        self.attack, self.calls = attack, []

    def __getattr__(self, name):
        return getattr(self.attack, name)

    def perturb(self, surface, x, labels, target, generator):
        self.calls.append((surface.detector_weight, surface.detector_switch, len(x)))
        return self.attack.perturb(surface, x, labels, target, generator)


def test_weight_search_retries_only_the_unbroken_images_with_heavier_weights(setting):
    from advshield.attacks.base import DETECTOR_WEIGHTS, craft_batch, succeeded

    model, det, x, y = setting
    surface = Pipeline(model, detector=det).surface("adaptive")
    pgd = Recorder(create_attack("pgd", eps=0.1, steps=10, abs_stepsize=0.025, early_stop=True))
    adv, _ = craft_batch(pgd, surface, x, y, seed=0)
    info = pgd.__dict__["_last_info"]
    broke = info["broken_at_detector_weight"]
    with torch.no_grad():
        done = succeeded(surface, adv, y, None)
        clean_done = succeeded(surface, x, y, None)
    # the first run attacks every image not already fooled; each later run only what no earlier run broke
    runs = [(w, False) for w in DETECTOR_WEIGHTS] + [(1.0, True)]
    assert [c[:2] for c in pgd.calls] == runs[:len(pgd.calls)] and len(pgd.calls) >= 2
    assert pgd.calls[0][2] == int((~clean_done).sum())
    for k in range(1, len(pgd.calls)):
        assert pgd.calls[k][2] == int((~clean_done & (broke == 0)).sum()) + sum(
            int((broke == (-1.0 if s else w)).sum()) for w, s in runs[k:])
    # an image counts as broken at a weight exactly when its kept image fools the classifier unflagged
    assert torch.equal(broke != 0, done & ~clean_done)
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6


def test_attacks_that_ignore_the_detector_run_once(setting):
    from advshield.attacks.base import craft_batch

    model, det, x, y = setting
    deepfool = Recorder(create_attack("deepfool", steps=5))
    craft_batch(deepfool, Pipeline(model, detector=det).surface("adaptive"), x[:20], y[:20], seed=0)
    assert len(deepfool.calls) == 1


def test_ensemble_records_survive_the_search_and_batches_with_nothing_to_attack(setting):
    """A batch whose images all fool already still carries AutoAttack's per-image records, and the runs of the
    search merge them: every image broken in some run names a member, the rest are robust or clean-fooled."""
    from advshield.attacks.ensemble import CLEAN_FOOLED, ROBUST, member_robust_accuracy

    model, det, x, y = setting
    with torch.no_grad():
        keep = (det.score(x) <= det.threshold).nonzero().squeeze(1)[:12]  # unflagged when clean
    x, y = x[keep], y[keep]
    labels = torch.cat([y[:6], (y[6:] + 1) % 10])  # the second batch: every label wrong, nothing to attack
    aa = create_attack("autoattack", eps=0.1, version="fast")
    r = run_attack(aa, Pipeline(model, detector=det), x, labels, threat="adaptive", batch_size=6, seed=0)
    broken_by, at = r.info["broken_by"], r.info["broken_at_detector_weight"]
    assert len(broken_by) == len(at) == 12 and torch.all(broken_by[6:] == CLEAN_FOOLED)
    assert torch.equal(broken_by >= 0, at != 0)
    clean_fooled = (r.clean_pred != labels) & ~r.detected_clean
    assert torch.equal(broken_by == CLEAN_FOOLED, clean_fooled)
    assert torch.equal(broken_by == ROBUST, ~r.fooled & ~clean_fooled)
    assert member_robust_accuracy(r)["clean"] == float((~clean_fooled).float().mean())


def test_carlini_wagner_keeps_only_examples_the_detector_lets_through(setting):
    """Against a detector C&W's hinge includes the detector's, and an iterate counts as found only unflagged."""
    model, det, x, y = setting
    guarded = Pipeline(model, detector=det)
    cw = create_attack("cw", binary_search_steps=3, steps=60, stepsize=0.05, initial_const=1.0, confidence=0.5)
    r = run_attack(cw, guarded, x[:40], y[:40], threat="adaptive", batch_size=40, seed=0)
    found = (r.adv - x[:40]).flatten(1).abs().amax(1) > 0
    assert found.sum() >= 10
    with torch.no_grad():
        assert torch.all(model(r.adv[found]).argmax(1) != y[:40][found])
        assert torch.all(det.score(r.adv[found]) <= det.threshold)
    # the contrast: the same C&W ignoring the detector finds examples the detector flags
    blind = run_attack(cw, guarded, x[:40], y[:40], threat="white-box", batch_size=40, seed=0)
    blind_found = (blind.adv - x[:40]).flatten(1).abs().amax(1) > 0
    with torch.no_grad():
        assert int((det.score(blind.adv[blind_found]) > det.threshold).sum()) >= 3  # 4 of them, seeded


def test_apgd_starts_its_first_restart_at_the_clean_image_only_against_a_detector(setting, monkeypatch):
    """Against a detector APGD's first restart starts at x (the unflagged errors lie near it), its second on the
    eps-sphere; without a detector every restart starts on the sphere (the reference implementation)."""
    import advshield.attacks.apgd as apgd

    model, det, x, y = setting
    original, starts = apgd.APGDBase._start, []

    def recorded(self, xx, generator, clean=False):
        out = original(self, xx, generator, clean)
        starts.append((clean, float((out - xx).abs().amax())))
        return out

    monkeypatch.setattr(apgd.APGDBase, "_start", recorded)
    attack = create_attack("apgd-ce", eps=1e-3, steps=3, restarts=2)  # too small to break any image: both restarts run
    with torch.enable_grad():
        attack.perturb(Pipeline(model, detector=det).surface("adaptive"), x[:8], y[:8], None,
                       torch.Generator().manual_seed(0))
    assert starts[0] == (True, 0.0) and starts[1][0] is False and starts[1][1] > 0.99e-3  # then on the eps-sphere
    starts.clear()
    with torch.enable_grad():
        create_attack("apgd-ce", eps=1e-3, steps=3).perturb(Pipeline(model).surface("white-box"), x[:8], y[:8], None,
                                                           torch.Generator().manual_seed(0))
        create_attack("apgd-ce", eps=1e-3, steps=3, detector_start="random").perturb(
            Pipeline(model, detector=det).surface("adaptive"), x[:8], y[:8], None, torch.Generator().manual_seed(0))
    assert [clean for clean, _ in starts] == [False, False]  # no detector; the reference start asked for
