"""Cross-checks against torchattacks on the same tiny MLP and images: our robust accuracy <= theirs + 1 point.

torchattacks is installed without its dependencies (scripts/install.sh: its torchvision requirement would
replace the pinned torch), with the test extras; a missing torchattacks fails the import, as a missing foolbox
does, so a cross-check is never skipped silently.
"""

import pytest
import torch

import torchattacks as ta

from advshield.attacks import APGD, APGDT, FABT, AutoAttack, Square, run_attack
from test_attacks_autoattack import one_thread, train_tiny  # noqa: F401  (one_thread: an autouse fixture)

EPS = 0.05


@pytest.fixture(scope="module")
def setup():
    model, x, y = train_tiny()
    return model, x[:100], y[:100]


def ours(attack, model, x, y):
    return run_attack(attack, model, x, y).summary()["adv_accuracy"]


def theirs(attack, model, x, y):
    torch.manual_seed(0)
    adv = attack(x, y).detach()
    assert float((adv - x).abs().max()) <= EPS + 1e-5 or attack.norm != "Linf"
    with torch.no_grad():
        return float((model(adv).argmax(1) == y).float().mean())


CASES = {
    "apgd-ce": (lambda: APGD(EPS, steps=20), lambda m: ta.APGD(m, eps=EPS, steps=20, loss="ce")),
    "apgd-dlr": (lambda: APGD(EPS, steps=20, loss="dlr"), lambda m: ta.APGD(m, eps=EPS, steps=20, loss="dlr")),
    "apgd-l2": (lambda: APGD(1.0, norm="l2", steps=20), lambda m: ta.APGD(m, norm="L2", eps=1.0, steps=20)),
    "apgd-t": (lambda: APGDT(EPS, steps=20), lambda m: ta.APGDT(m, eps=EPS, steps=20, n_classes=10)),
    "square": (lambda: Square(EPS, n_queries=1000), lambda m: ta.Square(m, eps=EPS, n_queries=1000)),
    "fab-t": (lambda: FABT(EPS, steps=20), lambda m: ta.FAB(m, eps=EPS, steps=20, multi_targeted=True, n_classes=10)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_not_weaker_than_torchattacks(setup, name):
    model, x, y = setup
    make_ours, make_theirs = CASES[name]
    mine, their = ours(make_ours(), model, x, y), theirs(make_theirs(model), model, x, y)
    print(f"{name}: advshield {mine:.2f}, torchattacks {their:.2f}")
    assert mine <= their + 0.01, (mine, their)
    assert 0.1 < their < 0.9  # the budget is informative


@pytest.mark.slow
def test_autoattack_not_weaker_than_torchattacks(setup):
    model, x, y = setup
    mine = ours(AutoAttack(EPS), model, x, y)
    their = theirs(ta.AutoAttack(model, eps=EPS, version="standard", n_classes=10, seed=0), model, x, y)
    print(f"autoattack: advshield {mine:.2f}, torchattacks {their:.2f}")
    assert mine <= their + 0.01, (mine, their)
    assert 0.05 < their < 0.9  # the budget is informative


def test_fast_autoattack_not_weaker_than_torchattacks_apgd_pair(setup):
    model, x, y = setup
    mine = ours(AutoAttack(EPS, version="fast"), model, x, y)
    ce, t = ta.APGD(model, eps=EPS, steps=100), ta.APGDT(model, eps=EPS, steps=100, n_classes=4)
    torch.manual_seed(0)
    with torch.no_grad():
        adv_ce = ce(x, y)
        robust = model(adv_ce).argmax(1) == y
    adv_t = t(x, y).detach()
    with torch.no_grad():
        robust &= model(adv_t).argmax(1) == y
    their = float(robust.float().mean())
    print(f"autoattack-fast: advshield {mine:.2f}, torchattacks APGD-CE + APGD-T(3) {their:.2f}")
    assert mine <= their + 0.01, (mine, their)
    assert 0.05 < their < 0.9  # the budget is informative
