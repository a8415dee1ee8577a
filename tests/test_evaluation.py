import json

import pytest
import torch

from advshield.data import load_dataset
from advshield.defenses import Defense
from advshield.evaluation import evaluate_setting, run_evaluation, summarise
from advshield.evaluation.restoration import _SUMS
from advshield.experiment import AttackSetting as Setting
from advshield.experiment import RunContext, Target
from advshield.zoo import load_pretrained


def _evaluate(setting, model, card, defense, ident, data, store, *, batch_size=250, substitute=None, **kw):
    ctx = RunContext(store=store, batch_size=batch_size)
    sub = Target(*substitute, "substitute") if substitute else None
    return evaluate_setting(setting, Target(model, card, "victim"), defense, ident, data, ctx, dataset="mnist",
                            substitute=sub, **kw)


class Identity(Defense):
    def forward(self, x):
        return x


class Oracle(Defense):
    """Returns a fixed clean batch: the ideal restorer for those images."""

    def __init__(self, clean):
        super().__init__()
        self.clean = clean

    def forward(self, x):
        return self.clean[: len(x)]


def test_summarise_arithmetic():
    sums = dict.fromkeys(_SUMS, 0.0)
    sums.update(n=10, clean_correct=8, restored_correct=6, recovered=5, fooled=7, adv_correct=1,
                defended_clean_correct=8, psnr_restored=200.0)
    row = summarise(sums)
    assert row["success_rate"] == pytest.approx(0.6 / 0.8)  # restored / clean accuracy
    assert row["recovery_rate"] == pytest.approx(5 / 8) and row["attack_success_rate"] == pytest.approx(7 / 8)
    assert row["psnr_restored_paper_convention"] == pytest.approx(20.0 + 48.1308, abs=1e-3)


def test_identity_and_oracle_defenses_bound_the_metrics(tmp_path):
    model, card = load_pretrained("a-net")
    data = load_dataset("mnist", "test").head(60)
    setting = Setting("fgsm", {"eps": 0.3})
    row, samples = _evaluate(setting, model, card, Identity(), {"name": "id"}, data, tmp_path)
    assert row["restored_accuracy"] == row["adv_accuracy"] < 0.3
    assert row["ssim_restored"] == pytest.approx(row["ssim_adv"]) and row["mean_linf"] == pytest.approx(0.3)
    assert row["defended_clean_accuracy"] == row["clean_accuracy"]
    x, _ = data.tensors()
    row, _ = _evaluate(setting, model, card, Oracle(x), {"name": "oracle"}, data, tmp_path,
                              batch_size=60)
    assert row["restored_accuracy"] == row["clean_accuracy"] and row["success_rate"] == 1.0
    assert row["recovery_rate"] == 1.0 and row["ssim_restored"] == pytest.approx(1.0, abs=1e-5)
    assert samples.x.shape == (2, 1, 28, 28)


def test_transfer_reuses_the_substitute_white_box_set(tmp_path):
    a, ca = load_pretrained("a-net")
    b, cb = load_pretrained("b-net")
    data = load_dataset("mnist", "test").head(50)
    wb, _ = _evaluate(Setting("fgsm", {"eps": 0.2}), b, cb, Identity(), {"name": "id"}, data, tmp_path)
    tr, _ = _evaluate(Setting("fgsm", {"eps": 0.2}, "transfer:b-net"), a, ca, Identity(),
                      {"name": "id"}, data, tmp_path, substitute=(b, cb))
    assert len(list(tmp_path.iterdir())) == 1  # one stored set serves both
    assert tr["mean_l2"] == pytest.approx(wb["mean_l2"])
    assert tr["adv_accuracy"] > wb["adv_accuracy"]  # transferred examples hurt the other net less


def test_adaptive_attack_sees_through_a_smoothing_defense(tmp_path):
    from advshield.defenses import DEFENSES

    model, card = load_pretrained("a-net")
    data = load_dataset("mnist", "test").head(100)
    median = DEFENSES.create("squeeze", bits=2, size=3)  # non-differentiable: the adaptive attack uses BPDA
    ident = {"name": "squeeze", "params": {"bits": 2, "size": 3}}
    pgd = {"eps": 0.2, "steps": 20, "abs_stepsize": 0.02, "early_stop": True}
    ob, _ = _evaluate(Setting("pgd", pgd), model, card, median, ident, data, tmp_path)
    ad, _ = _evaluate(Setting("pgd", pgd, "adaptive"), model, card, median, ident, data, tmp_path)
    assert ob["restored_accuracy"] > 0.6 and ad["restored_accuracy"] < ob["restored_accuracy"] - 0.4, (ob, ad)


class Counting(Defense):
    """Mean filter that counts the images it processes."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1)


def test_clean_cache_restores_clean_images_once_and_changes_no_number(tmp_path):
    from advshield.evaluation import CleanCache

    model, card = load_pretrained("a-net")
    data = load_dataset("mnist", "test").head(70)
    settings = [Setting("fgsm", {"eps": 0.3}), Setting("fgsm", {"eps": 0.1}, n=45)]
    plain, cached, cache = Counting(), Counting(), CleanCache()
    for s in settings:
        a, _ = _evaluate(s, model, card, plain, {"name": "c"}, data, tmp_path, batch_size=30)
        b, _ = _evaluate(s, model, card, cached, {"name": "c"}, data, tmp_path,
                                batch_size=30, clean_cache=cache)
        numbers = [k for k, v in a.items() if isinstance(v, float) and k != "attack_seconds"]
        assert [b[k] for k in numbers] == pytest.approx([a[k] for k in numbers], rel=1e-6)
    assert plain.seen == 2 * (70 + 45)  # adversarial + clean per setting
    assert cached.seen == 70 + 45 + 70  # the second setting's clean images (a shorter last batch too) come cached


def test_restoration_cache_shares_restored_sets_across_classifiers(tmp_path):
    from advshield.evaluation import RestorationCache

    a_net, a_card = load_pretrained("a-net")
    b_net, b_card = load_pretrained("b-net")
    data = load_dataset("mnist", "test").head(50)
    # B's transfer row reads the very set A's white-box row restored: crafted on A-net, same images.
    white_box = (Setting("fgsm", {"eps": 0.3}), a_net, a_card, None)
    transfer = (Setting("fgsm", {"eps": 0.3}, "transfer:a-net"), b_net, b_card, (a_net, a_card))

    def row(evaluation, defense, cache=None, name="c"):
        setting, classifier, card, substitute = evaluation
        return _evaluate(setting, classifier, card, defense, {"name": name}, data, tmp_path,
                         substitute=substitute, batch_size=20, restoration_cache=cache)[0]

    plain, cached, cache = Counting(), Counting(), RestorationCache()
    for evaluation in (white_box, transfer):
        a, b = row(evaluation, plain), row(evaluation, cached, cache)
        numbers = [k for k, v in a.items() if isinstance(v, float) and k != "attack_seconds"]
        assert [b[k] for k in numbers] == pytest.approx([a[k] for k in numbers], rel=1e-6)
    assert plain.seen == 2 * 2 * 50  # adversarial + clean, twice
    assert cached.seen == 2 * 50 and cache.hits == 2 * 3  # the second evaluation restored nothing again
    other = Counting()  # another defense identity never reads the first one's outputs
    row(white_box, other, cache, name="d")
    assert other.seen == 2 * 50


def test_run_evaluation_writes_card_csv_and_figures(tmp_path):
    card = run_evaluation("a-net", "bit-depth", [Setting("fgsm", {"eps": 0.3}), Setting("deepfool", {"steps": 20})],
                          tmp_path / "out", RunContext(store=tmp_path / "store", log=lambda s: None),
                          defense_params={"bits": 1}, n=40)
    written = json.loads((tmp_path / "out" / "card.json").read_text())
    assert written["rows"] == card["rows"] and len(card["rows"]) == 2
    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("threat,attack,n,") and len(csv_lines) == 3
    for f in card["figures"]:
        assert (tmp_path / "out" / f).stat().st_size > 1000
    fgsm, deepfool = card["rows"]
    # 1-bit quantisation undoes most eps-0.3 FGSM and nearly all minimal DeepFool perturbations on MNIST.
    assert deepfool["restored_accuracy"] > 0.9 and deepfool["adv_accuracy"] < 0.1
    assert fgsm["restored_accuracy"] > fgsm["adv_accuracy"]
