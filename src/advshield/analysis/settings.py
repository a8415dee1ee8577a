"""Adversarial settings of the propagation study (perturbation-propagation.txt, Sec. 2.1 and Table 2).

The paper crafts five sets with one attacker, a ResNet-18, and stops each attack as soon as a
chosen classifier is fooled, using foolbox's epsilon sweeps: the "v1" sets stop when the attacker
itself is fooled (white-box on it: small perturbations), the "v2" sets and MI-FGSM stop when a
stronger classifier, Inception-ResNet V2, is fooled by the transferred example (larger ones).
Here the attacker is the ``substitute`` and the stronger classifier is the ``reference``:

* FGSM v1 / v2: ``fgsm`` with an epsilon sweep (``search`` steps up to ``eps``);
* i-FGSM v1 / v2: ``bim`` with early stopping (steps of ``stepsize`` up to ``eps``);
* MI-FGSM: ``mifgsm`` (decay 1.0) with early stopping on the reference.

v1 is the ``transfer`` threat (crafted and stopped on the substitute); v2 and MI-FGSM are
``transfer-feedback`` (crafted on the substitute, stopped on the reference's labels).
"""

from __future__ import annotations

from advshield.experiment import AttackSetting


# Mixing proportions of the denoisers' training sets (Sec. 2.3): FGSM v1 : FGSM v2 : i-FGSM v1 : i-FGSM v2 : MI-FGSM.
PAPER_PROPORTIONS = {"fgsm-v1": 0.05, "fgsm-v2": 0.30, "ifgsm-v1": 0.05, "ifgsm-v2": 0.30, "mifgsm": 0.30}


def paper_settings(eps: float = 16 / 255, steps: int = 16, search: int = 32) -> list[AttackSetting]:
    """The five sets of Table 2 (labels as in :data:`PAPER_PROPORTIONS`); budgets are ours (the paper gives none).

    Iterative attacks take up to ``steps`` steps of eps / steps; the FGSM sweep tries ``search`` budgets up to eps.
    """
    stepsize = eps / steps
    fgsm = {"eps": eps, "search": search}
    ifgsm = {"eps": eps, "steps": steps, "abs_stepsize": stepsize, "early_stop": True}
    mifgsm = {"eps": eps, "steps": steps, "decay": 1.0, "abs_stepsize": stepsize, "early_stop": True}
    return [AttackSetting("fgsm", fgsm, "transfer", label="fgsm-v1"),
            AttackSetting("fgsm", fgsm, "transfer-feedback", label="fgsm-v2"),
            AttackSetting("bim", ifgsm, "transfer", label="ifgsm-v1"),
            AttackSetting("bim", ifgsm, "transfer-feedback", label="ifgsm-v2"),
            AttackSetting("mifgsm", mifgsm, "transfer-feedback", label="mifgsm")]
