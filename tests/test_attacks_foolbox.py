"""Cross-check against foolbox 3 on the zoo A-net: success within 2 points, median norm within 10 % (or better).

Budgets are chosen so that success is informative (neither 0 nor 100 %) where the attack has a budget.
"""

import pytest
import torch

from advshield.attacks import BIM, FGSM, PGD, CarliniWagnerL2, L2DeepFool, LinfDeepFool, SpatialAttack
from advshield.data import load_dataset
from advshield.zoo import load_pretrained

import foolbox as fb  # the test extra installs it: a missing foolbox must fail, not skip


@pytest.fixture(scope="module")
def setup():
    model = load_pretrained("a-net", "mnist")[0]
    x, y = load_dataset("mnist", "test").tensors(slice(0, 100))
    return model, fb.PyTorchModel(model, bounds=(0, 1)), x, y


def ours(attack, model, x, y):
    r = attack(model, x, y)
    s = r.summary()
    return s["success_rate"], r.norms, r.success


def theirs(attack, fmodel, model, x, y, eps):
    torch.manual_seed(0)
    _, adv, is_adv = attack(fmodel, x, y, epsilons=eps)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    success = is_adv & correct
    d = (adv - x).flatten(1)
    return float(success.sum() / correct.sum()), {"l2": d.norm(dim=1), "linf": d.abs().amax(1)}, success


CASES = {
    "fgsm": (lambda: FGSM(0.1), lambda: fb.attacks.FGSM(), 0.1, "linf"),
    "bim": (lambda: BIM(0.08, steps=10), lambda: fb.attacks.LinfBasicIterativeAttack(rel_stepsize=0.2, steps=10),
            0.08, "linf"),
    "pgd": (lambda: PGD(0.08, steps=40), lambda: fb.attacks.LinfPGD(steps=40, rel_stepsize=0.01 / 0.3), 0.08, "linf"),
    "deepfool": (lambda: L2DeepFool(), lambda: fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02),
                 None, "l2"),
    "deepfool-linf": (lambda: LinfDeepFool(), lambda: fb.attacks.LinfDeepFoolAttack(steps=50, candidates=10,
                                                                                    overshoot=0.02), None, "linf"),
    "cw": (lambda: CarliniWagnerL2(binary_search_steps=5, steps=200, stepsize=0.05),
           lambda: fb.attacks.L2CarliniWagnerAttack(binary_search_steps=5, steps=200, stepsize=0.05), None, "l2"),
    "spatial": (lambda: SpatialAttack(max_rotation=20, max_translation=2, num_rotations=5, num_translations=3),
                lambda: fb.attacks.SpatialAttack(max_rotation=20, max_translation=2, num_rotations=5,
                                                 num_translations=3), None, "l2"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_foolbox(setup, name):
    model, fmodel, x, y = setup
    make_ours, make_theirs, eps, norm = CASES[name]
    our_rate, our_norms, our_succ = ours(make_ours(), model, x, y)
    their_rate, their_norms, their_succ = theirs(make_theirs(), fmodel, model, x, y, eps)
    assert our_rate >= their_rate - 0.02, (our_rate, their_rate)
    assert 0.05 < our_rate or their_rate < 0.05  # the budget is informative
    if eps is None and name != "spatial":  # minimal-perturbation attacks: compare the norms they need
        both = our_succ & their_succ
        ours_med = float(our_norms[norm][both].median())
        theirs_med = float(their_norms[norm][both].median())
        assert ours_med <= 1.1 * theirs_med, (ours_med, theirs_med)
    if name in ("spatial", "fgsm"):  # deterministic: same examples
        assert abs(our_rate - their_rate) <= 0.02
