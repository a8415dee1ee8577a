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
