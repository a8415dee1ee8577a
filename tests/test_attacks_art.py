"""Cross-checks against ART (adversarial-robustness-toolbox) on the same tiny MLP and images as the torchattacks
ones: our robust accuracy <= ART's + 1 point, for APGD (CE, DLR, L2) and Square.

ART is in the test extras; a missing ART fails the import, so the cross-check is never skipped silently. ART's APGD
takes ``eps_step`` as its first step as it is (ART 1.20.1 auto_projected_gradient_descent.py): it is set to 2 eps,
the reference's first step (Croce & Hein 2020), and one random start each, like ours.
"""

import numpy as np
import pytest
import torch
from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
from art.estimators.classification import PyTorchClassifier

from advshield.attacks import APGD, Square, run_attack
from test_attacks_autoattack import one_thread, train_tiny  # noqa: F401  (one_thread: an autouse fixture)

EPS = 0.05


@pytest.fixture(scope="module")
def setup():
    model, x, y = train_tiny()
    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    return model, classifier, x[:100], y[:100]


def ours(attack, model, x, y):
    return run_attack(attack, model, x, y).summary()["adv_accuracy"]


def theirs(attack, model, x, y, eps, norm):
    np.random.seed(0)
    adv = torch.from_numpy(attack.generate(x=x.numpy(), y=y.numpy())).float()
    size = (adv - x).abs().amax((1, 2, 3)) if norm == np.inf else (adv - x).flatten(1).norm(dim=1)
    assert float(size.max()) <= eps + 1e-4  # ART stays inside the budget
    with torch.no_grad():
        return float((model(adv).argmax(1) == y).float().mean())


def _apgd(c, eps, norm, loss):
    return AutoProjectedGradientDescent(c, norm=norm, eps=eps, eps_step=2 * eps, max_iter=20, nb_random_init=1,
                                        loss_type=loss, batch_size=100, verbose=False)


CASES = {
    "apgd-ce": (lambda: APGD(EPS, steps=20), lambda c: _apgd(c, EPS, np.inf, "cross_entropy"), EPS, np.inf),
    "apgd-dlr": (lambda: APGD(EPS, steps=20, loss="dlr"), lambda c: _apgd(c, EPS, np.inf, "difference_logits_ratio"),
                 EPS, np.inf),
    "apgd-l2": (lambda: APGD(1.0, norm="l2", steps=20), lambda c: _apgd(c, 1.0, 2, "cross_entropy"), 1.0, 2),
    "square": (lambda: Square(EPS, n_queries=1000),
               lambda c: SquareAttack(c, norm=np.inf, eps=EPS, max_iter=1000, nb_restarts=1, batch_size=100,
                                      verbose=False), EPS, np.inf),
}


@pytest.mark.parametrize("name", list(CASES))
def test_not_weaker_than_art(setup, name):
    model, classifier, x, y = setup
    make_ours, make_theirs, eps, norm = CASES[name]
    mine, their = ours(make_ours(), model, x, y), theirs(make_theirs(classifier), model, x, y, eps, norm)
    print(f"{name}: advshield {mine:.2f}, ART {their:.2f}")
    assert mine <= their + 0.01, (mine, their)
    assert 0.1 < their < 0.9  # the budget is informative
