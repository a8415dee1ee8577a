"""advshield.training.budget: the epochs that fit a wall-clock budget, fixed before training starts."""

import pytest

from advshield.training import TrainConfig, budget
from advshield.training.budget import fit_budget, seconds_per_epoch


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"model": "m2", "dataset": "mnist", "n_train": 400, "batch_size": 20, "epochs": 7,
                          "device": "cpu", **kw})


def test_an_epoch_costs_its_steps_and_a_third_of_a_step_per_validation_batch(monkeypatch):
    clock = iter([0.0, 4.0])  # the timed window: 4 steps of 1 s
    monkeypatch.setattr(budget.time, "perf_counter", lambda: next(clock))
    per_epoch = seconds_per_epoch(_cfg(val_fraction=0.1), steps=4, warmup=1)
    # 360 training images at batch 20: 18 steps; 40 held-out images: 2 batches of a forward pass (1/3 step each)
    assert per_epoch == pytest.approx(18 + 2 / 3)


def test_the_budget_is_divided_by_the_timed_epoch(monkeypatch):
    monkeypatch.setattr(budget, "seconds_per_epoch", lambda cfg: 10.0)
    cfg, note = fit_budget(_cfg(), budget_s=35)
    assert cfg.epochs == 3 and note.startswith("epochs = 3: the most that fit 35 s at 10.0 s per epoch")


def test_budget_picks_between_one_and_the_recipes_epochs():
    cfg = _cfg()
    big, note = fit_budget(cfg, budget_s=1e6)
    assert big.epochs == 7 and "at most 7" in note and "timed on cpu" in note
    small, note = fit_budget(cfg, budget_s=1e-6)
    assert small.epochs == 1 and note.startswith("epochs = 1:")
    assert small.model_copy(update={"epochs": 7}) == cfg  # nothing else of the recipe changes


def test_too_few_images_to_time_fail_clearly():
    with pytest.raises(ValueError, match="too few to time"):
        seconds_per_epoch(_cfg(n_train=40, batch_size=20), steps=4, warmup=4)
