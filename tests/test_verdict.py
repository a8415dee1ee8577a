"""The verdict's per-image worst case is taken at one threat budget (the AutoAttack convention): an unbounded
minimum-norm attack (CW, DeepFool) or an attack at another eps never enters it."""

import torch

from advshield.evaluation.verdict import budget_of, check_mask, headline, worst_case
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
    # without the ensemble PGD's budget wins, however many rows sit at another one
    w2 = worst_case(rows[:2] + rows[3:4] * 2, masks[:2] + masks[3:4] * 2, ThreatModel.ADAPTIVE)
    assert w2["budget"] == {"norm": "linf", "eps": 0.3} and w2["attacks"] == ["pgd"] and w2["accuracy"] == 0.75
    # an FGSM left at its default 0.3 does not move a PGD run at 8/255; 0.03137 and 8/255 are one budget
    small = [_row("fgsm", {"eps": 0.3}), _row("fgsm", {"eps": 0.03137}), _row("pgd", {"eps": 8 / 255})]
    w3 = worst_case(small, [t([1, 1, 1, 1]), t([1, 1, 0, 1]), t([1, 0, 1, 1])], ThreatModel.ADAPTIVE)
    assert w3["attacks"] == ["fgsm", "pgd"] and w3["excluded"] == ["fgsm"] and w3["accuracy"] == 0.5
    assert w3["budget"] == {"norm": "linf", "eps": 0.03137}
    # no PGD-like attack: the budget most rows share, the smaller eps on a tie
    two = [_row("fgsm", {"eps": 0.3}), _row("fgsm", {"eps": 0.1})]
    assert worst_case(two, [t([1, 1, 0, 0]), t([1, 1, 1, 0])], ThreatModel.ADAPTIVE)["budget"]["eps"] == 0.1
    # only unbounded attacks: no worst case at a threat budget
    assert worst_case([rows[1]], [masks[1]], ThreatModel.ADAPTIVE) is None
    assert headline(rows, masks)["oblivious_worst_case"]["attacks"] == ["fgsm"]


def test_a_card_without_a_bounded_worst_case_never_headlines_an_unbounded_attack_as_robust_accuracy():
    from advshield.report.verdict import worst_case as headline_of

    cw, pgd = _row("cw", {"eps": None}, "white-box", 0.0), _row("pgd", {"eps": 0.3}, "white-box", 0.4)
    block = {"accuracy": 0.4, "ci95": [0.1, 0.8], "n": 4, "attacks": ["pgd"], "threat": "white-box",
             "budget": {"norm": "linf", "eps": 0.3}, "excluded": ["cw"]}
    got = headline_of({"rows": [cw, pgd], "verdict": {"adaptive_worst_case": None, "oblivious_worst_case": block}})
    assert (got["accuracy"], got["threat"]) == (0.4, "white-box")
    assert got["attack"] == "every attack at L-inf eps 0.3: pgd; not in it (unbounded or another budget): cw"
    assert headline_of({"rows": [cw, pgd]})["attack"] == "pgd"  # a card without a verdict: the bounded row
    alone = headline_of({"rows": [cw]})
    assert alone["accuracy"] == 0.0 and "unbounded: no threat budget" in alone["attack"]


def test_the_self_checks_runs_at_the_budget_join_the_worst_case_on_the_images_they_covered():
    """A check's doubled run or Square that broke an image the rows did not lowers the verdict; one at another
    budget, or without a per-image mask (randomised pipeline), does not."""
    t = torch.tensor
    rows = [_row("pgd", {"eps": 0.3}, acc=0.75), _row("fgsm", {"eps": 0.3}, acc=1.0)]
    masks = [t([1, 1, 1, 0]), t([1, 1, 1, 1])]
    at_budget = {"budget": {"norm": "linf", "eps": 0.3}, "per_image": "101"}  # broke image 1 (of the first 3)
    w = worst_case(rows, masks, ThreatModel.ADAPTIVE, checked=[at_budget])
    assert (w["accuracy"], w["n"]) == (0.5, 4) and w["self_checks"] == {"images": 3, "broken": 1, "runs": []}
    other = {"budget": {"norm": "linf", "eps": 0.1}, "per_image": "000"}
    unmasked = {"budget": {"norm": "linf", "eps": 0.3}, "robust_accuracy": 0.0}
    w2 = worst_case(rows, masks, ThreatModel.ADAPTIVE, checked=[other, unmasked])
    assert w2["accuracy"] == 0.75 and "self_checks" not in w2
    # an image the rows already broke is not counted again; a mask longer than the rows is cut to them
    w3 = worst_case(rows, masks, ThreatModel.ADAPTIVE, checked=[{"budget": {"norm": "linf", "eps": 0.3},
                                                                 "per_image": "111000"}])
    assert w3["accuracy"] == 0.75 and w3["self_checks"]["images"] == 4 and w3["self_checks"]["broken"] == 0
    # a block of another threat kind (white-box checks of an undefended classifier) joins only that kind's case
    white = dict(at_budget, threat="white-box")
    assert "self_checks" not in worst_case(rows, masks, ThreatModel.ADAPTIVE, checked=[white])
    oblivious = [dict(r, threat="white-box") for r in rows]
    assert worst_case(oblivious, masks, ThreatModel.WHITE_BOX, checked=[white])["accuracy"] == 0.5
    assert check_mask(at_budget, 5).tolist() == [True, False, True, True, True]
    assert check_mask(at_budget, 5, ("linf", 0.1)) is None
    health = {"adaptive pgd": {"after_checks": at_budget}, "adaptive cw": {"skipped": "no eps"}}
    assert headline(rows, masks, health=health)["adaptive_worst_case"]["accuracy"] == 0.5


def test_member_lines_keep_running_order_for_a_card_read_back_from_json():
    """robust_accuracy_after is written with sorted keys: the line still starts at clean and follows the members
    in the order they ran (the cumulative numbers never rise), also when later members tie at zero."""
    import json

    from advshield.report.verdict import member_lines

    row = {"attack": "autoattack", "threat": "adaptive",
           "robust_accuracy_after": {"clean": 0.776, "apgd-ce": 0.01, "apgd-t": 0.0, "fab-t": 0.0, "square": 0.0}}
    expected = ("autoattack (adaptive), robust accuracy after each member: clean 0.7760, apgd-ce 0.0100, "
                "apgd-t 0.0000, fab-t 0.0000, square 0.0000.")
    assert member_lines([row]) == [expected]
    assert member_lines([json.loads(json.dumps(row, sort_keys=True))]) == [expected]
    row["robust_accuracy_after"] = {"clean": 0.5, "apgd-ce": 0.5, "apgd-t": 0.5}  # nothing broken: clean first
    assert member_lines([json.loads(json.dumps(row, sort_keys=True))])[0].endswith(
        "clean 0.5000, apgd-ce 0.5000, apgd-t 0.5000.")
