"""Adversarial training (issue 26): the objectives, model selection on robust accuracy, the robust card."""

import json

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.nn import functional as F

from advshield.checkpoint import load_model
from advshield.training import TrainConfig, train_target
from advshield.training.adversarial import AdversarialTraining, adversarial_loss, robust_validation


def _tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(1 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 4))


def _data(n=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_defaults_follow_the_papers():
    assert AdversarialTraining(method="pgd", eps=0.3, steps=40).alpha(0.3) == pytest.approx(2.5 * 0.3 / 40)
    fast = AdversarialTraining(method="fgsm-rs", eps=8 / 255, steps=7)
    assert fast.steps == 1 and fast.alpha(8 / 255) == pytest.approx(1.25 * 8 / 255)
    warm = AdversarialTraining(eps=0.3, eps_warmup_epochs=2)
    assert warm.eps_at(1.0) == pytest.approx(0.15) and warm.eps_at(5) == 0.3
    with pytest.raises(ValidationError):
        AdversarialTraining(method="free", eps=0.3)
    with pytest.raises(ValidationError):
        AdversarialTraining(eps=0.0)


def test_standard_recipes_are_unchanged_by_the_new_fields():
    recipe = TrainConfig().recipe()
    assert "adversarial" not in recipe and "storage_dtype" not in recipe
    adv = TrainConfig(adversarial={"method": "trades", "eps": 0.1}).recipe()
    assert adv["adversarial"]["method"] == "trades" and adv["adversarial"]["beta"] == 6.0


@pytest.mark.parametrize("method", ["pgd", "trades", "fgsm-rs"])
def test_each_objective_trains_on_examples_inside_the_budget(method, monkeypatch):
    model, (x, y) = _tiny_classifier(), _data()
    cfg = AdversarialTraining(method=method, eps=0.1, steps=3)
    seen = {}
    real_forward = model.forward

    def spy(inp):
        if model.training:
            seen.setdefault("train_inputs", []).append(inp.detach().clone())
        return real_forward(inp)

    monkeypatch.setattr(model, "forward", spy)
    loss, logits = adversarial_loss(cfg, model, x, y, 0.1, torch.Generator().manual_seed(0))
    assert model.training and torch.isfinite(loss) and logits.shape == (len(x), 4)
    if method == "trades":  # TRADES: a clean pass and an adversarial pass (batch norm apart, as the reference)
        clean_in, adv = seen["train_inputs"]
        assert torch.equal(clean_in, x)
    else:
        (adv,) = seen["train_inputs"]
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 0.05  # it moved: the examples are not the clean images
    # the examples are worse for the model than the clean images (the inner maximisation works)
    model.eval()
    with torch.no_grad():
        if method == "trades":
            p = F.softmax(real_forward(x), 1)
            kl = F.kl_div(F.log_softmax(real_forward(adv), 1), p, reduction="batchmean")
            assert kl > 1e-4
        else:
            assert F.cross_entropy(real_forward(adv), y) > F.cross_entropy(real_forward(x), y)


def test_robust_validation_is_at_most_clean_accuracy():
    model, (x, y) = _tiny_classifier(), _data(100)
    clean, robust = robust_validation(AdversarialTraining(eps=0.2, val_steps=5), model, x, y, seed=0)
    assert 0 <= robust <= clean <= 1
    assert robust < clean or clean == 0


def test_adversarial_training_run_selects_on_robust_accuracy_and_writes_the_robust_card(tmp_path):
    cfg = TrainConfig(n_train=160, epochs=2, batch_size=32, val_fraction=0.2, storage_dtype="float16",
                      adversarial={"method": "pgd", "eps": 0.1, "steps": 2, "val_n": 24, "val_steps": 3,
                                   "eval_n": 12, "eval_version": "fast"})
    result = train_target(cfg, tmp_path / "run", log=lambda s: None)
    card = result.card
    assert all("val_robust_accuracy" in h and "eps" in h for h in card["history"])
    best = max(card["history"], key=lambda h: h["val_robust_accuracy"])
    assert card["best_epoch"] == best["epoch"] and card["val_robust_accuracy"] == best["val_robust_accuracy"]
    rt = card["robust_test"]
    assert rt["n"] == 12 and rt["version"] == "fast" and rt["eps"] == 0.1
    assert 0 <= rt["robust_accuracy"] <= rt["clean_accuracy"] <= 1
    assert rt["interval_95"][0] <= rt["robust_accuracy"] <= rt["interval_95"][1]
    assert list(rt["per_member"]) == ["clean", "apgd-ce", "apgd-t"]
    assert {c["name"] for c in rt["health"]["checks"]} >= {"convergence", "gradient-free", "unbounded"}
    assert card["storage_dtype"] == "float16" and card["recipe"]["storage_dtype"] == "float16"
    model, saved = load_model(result.checkpoint)
    stored = json.loads(result.checkpoint.with_suffix(".json").read_text())
    assert stored["robust_test"] == json.loads(json.dumps(rt))
    # the card's numbers are those of the shipped (float16) weights: recompute the clean test accuracy
    from advshield.data import load_dataset
    from advshield.metrics import accuracy

    assert accuracy(model, load_dataset("mnist", "test")) == pytest.approx(card["test_accuracy"])


def test_early_stopping_on_a_stalled_robust_accuracy(tmp_path, monkeypatch):
    import advshield.training.trainer as trainer

    values = iter([0.5, 0.4, 0.3, 0.2, 0.1])
    monkeypatch.setattr(trainer, "robust_validation", lambda *a, **k: (0.9, next(values)))
    cfg = TrainConfig(n_train=64, epochs=5, batch_size=32, val_fraction=0.25,
                      adversarial={"method": "fgsm-rs", "eps": 0.1, "val_n": 8, "patience": 2, "eval_n": 4,
                                   "eval_version": "fast"})
    card = train_target(cfg, tmp_path / "run", log=lambda s: None).card
    assert len(card["history"]) == 3 and card["stopped_after_epoch"] == 3 and card["best_epoch"] == 1


def test_cli_budget_defaults_per_dataset_and_names_from_the_recipe(monkeypatch, tmp_path):
    """--adv-eps left out takes the dataset's usual budget (8/255 on CIFAR-10, not MNIST's 0.3); the help
    lists the methods of the recipe's Literal."""
    from typer.testing import CliRunner

    import advshield.training as training
    from advshield.cli import app
    from advshield.data.core import DatasetName
    from advshield.training.adversarial import DEFAULT_EPS

    assert set(DEFAULT_EPS) == {d.value for d in DatasetName}
    seen = {}

    def fake_train(cfg, out, **kw):
        seen["eps"] = cfg.adversarial.eps
        raise SystemExit(0)

    monkeypatch.setattr(training, "train_target", fake_train)
    runner = CliRunner()
    for dataset, eps in (("cifar10", 8 / 255), ("mnist", 0.3), ("fashion-mnist", 0.1)):
        r = runner.invoke(app, ["train-target", "--dataset", dataset, "--model", "a-net", "--adversarial", "pgd",
                                "--out", str(tmp_path / dataset), "--json"])
        assert r.exit_code == 0, r.output
        assert seen.pop("eps") == pytest.approx(eps)
    help_text = runner.invoke(app, ["train-target", "--help"], env={"COLUMNS": "200"}).output
    assert all(m in help_text for m in ("pgd", "trades", "fgsm-rs"))
