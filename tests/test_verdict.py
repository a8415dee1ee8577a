"""The verdict's per-image worst case is taken at one threat budget (the AutoAttack convention): an unbounded
minimum-norm attack (CW, DeepFool) or an attack at another eps never enters it."""

import torch

from advshield.evaluation.verdict import budget_of, headline, worst_case
from advshield.experiment import ThreatModel


def _row(attack, params, threat="adaptive", acc=0.5):
    return {"attack": attack, "params": params, "threat": threat, "n": 4, "restored_accuracy": acc,
            "clean_accuracy": 1.0, "defended_clean_accuracy": 1.0, "recovery_rate": acc}


def test_budget_of_names_the_norm_and_eps_or_none_when_unbounded():
    assert budget_of(_row("pgd", {"eps": 0.3})) == ("linf", 0.3)
    assert budget_of(_row("autoattack", {"eps": 0.5, "norm": "l2"})) == ("l2", 0.5)
    assert budget_of(_row("cw", {"eps": None})) is None and budget_of(_row("cw", {"eps": 1.5})) == ("l2", 1.5)
    assert budget_of(_row("deepfool", {})) is None and budget_of(_row("spatial", {})) is None
    assert budget_of(_row("no-such-attack", {})) is None


def test_worst_case_keeps_one_budget_and_names_what_it_left_out():
    t = torch.tensor
    rows = [_row("pgd", {"eps": 0.3}, acc=0.75), _row("cw", {"eps": None}, acc=0.0),
            _row("autoattack", {"eps": 0.3}, acc=0.5), _row("fgsm", {"eps": 0.1}, acc=1.0),
            _row("fgsm", {"eps": 0.1}, threat="white-box", acc=1.0)]
    masks = [t([1, 1, 1, 0]), t([0, 0, 0, 0]), t([1, 1, 0, 1]), t([1, 1, 1, 1]), t([1, 1, 1, 1])]
    w = worst_case(rows, masks, ThreatModel.ADAPTIVE)
    # pgd and autoattack at L-inf 0.3: images 0 and 1 survive both; the unbounded CW (which breaks all) and the
    # eps-0.1 FGSM are not in the worst case
    assert (w["accuracy"], w["n"], w["attacks"]) == (0.5, 4, ["pgd", "autoattack"])
    assert w["budget"] == {"norm": "linf", "eps": 0.3} and w["excluded"] == ["cw", "fgsm"]
    assert w["strongest_single"] == "autoattack"
    # without the ensemble the budget most rows share wins, the larger eps on a tie
    w2 = worst_case(rows[:2] + rows[3:4], masks[:2] + masks[3:4], ThreatModel.ADAPTIVE)
    assert w2["budget"] == {"norm": "linf", "eps": 0.3} and w2["attacks"] == ["pgd"] and w2["accuracy"] == 0.75
    # only unbounded attacks: no worst case at a threat budget
    assert worst_case([rows[1]], [masks[1]], ThreatModel.ADAPTIVE) is None
    assert headline(rows, masks)["oblivious_worst_case"]["attacks"] == ["fgsm"]
