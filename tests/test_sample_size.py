"""Issue 25's sample-size check: an adaptive worst case on fewer than 500 images is a red flag unless a reason is
given; a preset's fast variant gives one by being a fast variant, and its report prints it."""

from advshield.evaluation.detection import detection_red_flags
from advshield.evaluation.sample_size import MIN_ADAPTIVE, sample_size_flags
from advshield.metrics import wilson_interval
from advshield.reproduce.sample_size import adaptive_reason, adaptive_reason_text, fast_variant_count


def _verdict(n: int, k: int = 0, key: str = "adaptive_worst_case") -> dict:
    return {key: {"n": n, "accuracy": k / n, "ci95": list(wilson_interval(k, n))}}


def test_fewer_than_500_adaptive_images_without_a_reason_is_a_red_flag_naming_the_interval():
    [flag] = sample_size_flags(_verdict(20))
    assert flag["check"] == "sample-size"
    assert "rests on 20 images" in flag["detail"] and "0.0 - 16.1 %" in flag["detail"]
    assert "16.1 points wide" in flag["detail"] and str(MIN_ADAPTIVE) in flag["detail"]
    assert sample_size_flags(_verdict(MIN_ADAPTIVE)) == []
    assert sample_size_flags(_verdict(MIN_ADAPTIVE - 1)) != []
    assert sample_size_flags(_verdict(20), reason="the test split has 20 images") == []
    assert sample_size_flags(_verdict(20), reason="  ") != []  # a blank reason is none
    assert sample_size_flags({"adaptive_worst_case": None, "oblivious_worst_case": None}) == []


def test_an_undefended_model_is_judged_on_its_white_box_worst_case():
    oblivious = _verdict(50, 5, "oblivious_worst_case")
    assert sample_size_flags(oblivious) == []  # a defended run's oblivious number is not the adaptive one
    [flag] = sample_size_flags(oblivious, undefended=True)
    assert "10.0 %" in flag["detail"] and "50 images" in flag["detail"]


def test_a_fast_variant_is_its_own_reason_and_a_preset_reason_wins():
    fast = {"n_adaptive": 20}
    assert "fast variant" in adaptive_reason(fast, 500) and "`--full` attacks 500" in adaptive_reason(fast, 500)
    assert adaptive_reason(fast) is None  # a full variant below 500 needs the preset's reason
    assert adaptive_reason({"n_adaptive": 500}, 500) is None
    assert adaptive_reason({"n_adaptive": 100, "n_adaptive_reason": "slow"}) == "slow"
    assert adaptive_reason_text({"n_adaptive": 20}, 500).startswith("; fewer than 500 adaptive images because this")
    summary = {"variant": "fast", "preset": {"full": {"n_adaptive": 500}}}
    assert fast_variant_count(summary) == 500 and fast_variant_count(dict(summary, variant="full")) is None


def _detection_card(n_joint: int, reason: str | None = None) -> dict:
    robust = list(wilson_interval(3, n_joint))
    card = {"n_test": 300, "clean_fpr": 0.05, "fpr_target": 0.05,
            "attacks": {"fgsm": {"robust_accuracy": 0.9, "calibrated": {"n_adv": 10}},
                        "adaptive-joint": {"n": n_joint, "robust_accuracy": 0.5, "robust_accuracy_ci95": [0.4, 0.6],
                                           "worst_case": {"robust_accuracy": 3 / n_joint,
                                                          "robust_accuracy_ci95": robust}}}}
    return dict(card, sample_reason=reason) if reason else card


def test_the_detection_card_flags_a_small_joint_attack_on_its_worst_case_with_the_checks():
    flags = detection_red_flags(_detection_card(100))
    assert [f["check"] for f in flags] == ["sample-size"]
    assert "worst case 3.0 %" in flags[0]["detail"] and "100 images" in flags[0]["detail"]
    assert detection_red_flags(_detection_card(100, "sized for a CPU run")) == []
    assert detection_red_flags(_detection_card(600)) == []


def test_the_adaptive_worst_case_above_the_oblivious_one_is_flagged_at_one_budget_on_the_same_images():
    from advshield.evaluation.verdict import worst_case_flags

    def block(acc, n=100, eps=0.3):
        return {"accuracy": acc, "n": n, "attacks": ["pgd"], "budget": {"norm": "linf", "eps": eps}}

    [flag] = worst_case_flags({"adaptive_worst_case": block(0.30), "oblivious_worst_case": block(0.20)})
    assert flag["check"] == "adaptive-vs-oblivious" and "0.300" in flag["detail"] and "0.200" in flag["detail"]
    assert worst_case_flags({"adaptive_worst_case": block(0.21), "oblivious_worst_case": block(0.20)}) == []  # 1 image
    assert worst_case_flags({"adaptive_worst_case": block(0.10), "oblivious_worst_case": block(0.20)}) == []
    assert worst_case_flags({"adaptive_worst_case": block(0.30), "oblivious_worst_case": block(0.20, n=50)}) == []
    assert worst_case_flags({"adaptive_worst_case": block(0.30), "oblivious_worst_case": block(0.20, eps=0.1)}) == []
    assert worst_case_flags({"adaptive_worst_case": block(0.30), "oblivious_worst_case": None}) == []
