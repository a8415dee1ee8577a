"""The joint-loss adaptive attack: stays in its budget, and evades a detector the oblivious attack trips."""

import pytest
import torch
from torch.nn import functional as F

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.detectors import Detector, JointAttack, joint_attack
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


def test_joint_attack_needs_a_calibrated_detector_and_valid_settings(setting):
    model, _, x, y = setting
    with pytest.raises(InputError, match="calibrated"):
        joint_attack(model, HighFrequency(), x[:2], y[:2])
    with pytest.raises(InputError, match="eps"):
        JointAttack(eps=0.0)


def test_joint_attack_evades_where_the_oblivious_attack_is_caught(setting):
    model, det, x, y = setting
    oblivious = run_attack(create_attack("fgsm", eps=0.3), Pipeline(model), x, y, batch_size=100, seed=0)
    with torch.no_grad():
        caught = float((det.score(oblivious.adv[oblivious.success]) > det.threshold).float().mean())
    adv, evaded = joint_attack(model, det, x, y, JointAttack(eps=0.3, steps=40, stepsize=0.01))
    assert caught > 0.7  # FGSM sign noise at 0.3 is mostly high frequency
    assert float((adv - x).abs().max()) <= 0.3 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():  # the evasion claim checks out independently
        assert torch.all(model(adv[evaded]).argmax(1) != y[evaded])
        assert torch.all(det.score(adv[evaded]) <= det.threshold)
        assert torch.equal(adv[~evaded], x[~evaded])
    assert float(evaded.float().mean()) > 0.9
