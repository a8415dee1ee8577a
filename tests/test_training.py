import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from advshield.checkpoint import load_model, read_card
from advshield.errors import CheckpointError
from advshield.training import TrainConfig, train_target
from advshield.training.augment import random_crop_flip
from advshield.training.schedule import lr_factor
from conftest import make_cifar_python

FAST = dict(model="a-net", n_train=1500, val_fraction=0.2, batch_size=64, device="cpu", seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, train_target(TrainConfig(epochs=2, **FAST), out, log=lambda s: None)


def test_short_training_beats_chance_by_far(trained):
    _, result = trained
    card = result.card
    assert card["test_accuracy"] > 0.8, card["test_accuracy"]  # chance is 0.1
    assert card["history"][-1]["loss"] < card["history"][0]["loss"]
    for key in ("architecture", "dataset", "epochs", "seed", "test_accuracy", "train_time_s", "versions", "sha256"):
        assert key in card
    assert card["versions"]["torch"] == torch.__version__


def test_checkpoint_roundtrip(trained):
    out, result = trained
    model, card = load_model(result.checkpoint)
    x = torch.rand(4, 1, 28, 28)
    model2, _ = load_model(out / "best.safetensors")
    assert card["architecture"] == "a-net" and torch.equal(model(x), model2(x))


def interrupted_in_epoch_2(part, cfg) -> None:
    """Run ``cfg`` into ``part`` and stop it during epoch 2 (after epoch 1's checkpoint)."""
    def stop_after_first_epoch(desc, done, total):
        if desc.startswith("epoch 2") and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_target(cfg, part, progress=stop_after_first_epoch, log=lambda s: None)


def test_resume_equals_uninterrupted(tmp_path, trained):
    _, full = trained
    # Interrupt the same run during epoch 2, then resume it.
    part = tmp_path / "part"
    cfg1 = TrainConfig(epochs=2, **FAST)
    interrupted_in_epoch_2(part, cfg1)
    assert read_card(part / "last.safetensors")["epoch"] == 1
    logs = []
    resumed = train_target(cfg1, part, log=logs.append)
    assert any("resuming" in s for s in logs)
    a, _ = load_model(full.checkpoint)
    b, _ = load_model(resumed.checkpoint)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    assert resumed.card["test_accuracy"] == pytest.approx(full.card["test_accuracy"])


@pytest.mark.parametrize("tear", ["weights-newer-than-card", "card-missing"])
def test_torn_last_checkpoint_starts_the_run_again(tmp_path, trained, caplog, tear):
    """A kill between the atomic write of last.safetensors and that of its card leaves them apart: resuming
    warns and starts again (same weights as the uninterrupted run) instead of failing."""
    _, full = trained
    part = tmp_path / "part"
    cfg = TrainConfig(epochs=2, **FAST)
    interrupted_in_epoch_2(part, cfg)
    last = part / "last.safetensors"
    if tear == "card-missing":
        last.with_suffix(".json").unlink()
    else:  # the next epoch's weights landed, its card did not
        save_file({"w": torch.zeros(3)}, str(last))
    logs = []
    resumed = train_target(cfg, part, log=logs.append)
    assert not any("resuming" in s for s in logs)
    assert "starting the run again" in caplog.text
    a, _ = load_model(full.checkpoint)
    b, _ = load_model(resumed.checkpoint)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k


def test_resume_refuses_other_recipe(trained):
    out, _ = trained
    with pytest.raises(CheckpointError, match="different recipe"):
        train_target(TrainConfig(epochs=3, **FAST), out, log=lambda s: None)


def test_checkpoint_for_other_architecture_rejected(tmp_path, trained):
    _, result = trained
    card = read_card(result.checkpoint)
    target = tmp_path / "x.safetensors"
    target.write_bytes(result.checkpoint.read_bytes())
    (tmp_path / "x.json").write_text(json.dumps(dict(card, architecture="b-net")))
    with pytest.raises(CheckpointError, match="does not match architecture"):
        load_model(target)


def test_corrupted_checkpoint_rejected(tmp_path, trained):
    _, result = trained
    target = tmp_path / "x.safetensors"
    raw = bytearray(result.checkpoint.read_bytes())
    raw[-5] ^= 0xFF
    target.write_bytes(bytes(raw))
    (tmp_path / "x.json").write_text(result.checkpoint.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model(target)


def test_garbage_weights_rejected_even_without_hash(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "x.json").write_text(json.dumps({"architecture": "a-net"}))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_model(tmp_path / "x.safetensors")


def test_missing_card_rejected(tmp_path):
    save_file({"w": torch.zeros(1)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="card not found"):
        load_model(tmp_path / "x.safetensors")


def test_shape_mismatch_rejected(tmp_path):
    from advshield.models import create_model

    state = create_model("a-net").state_dict()
    state["stages.logits.weight"] = torch.zeros(10, 5)
    save_file(state, tmp_path / "x.safetensors")
    blob = (tmp_path / "x.safetensors").read_bytes()
    (tmp_path / "x.json").write_text(json.dumps({"architecture": "a-net", "sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(tmp_path / "x.safetensors")


def test_invalid_config_rejected():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TrainConfig(epochs=0)
    with pytest.raises(Exception, match="unknown model"):
        TrainConfig(model="nope")


def test_augment_crop_flip_is_a_seeded_shift():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    b = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert a.shape == x.shape and torch.equal(a, b)
    plain = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0, flip=False)
    assert torch.equal(plain, x)
    flipped = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0, flip=True)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "onecycle"])
def test_schedules(schedule):
    assert lr_factor(schedule, 0.5) <= 1.0
    if schedule != "constant":
        assert lr_factor(schedule, 0.99) < 0.11
    assert lr_factor(schedule, 0.01, warmup=0.1) == pytest.approx(0.1, rel=1e-3)


def test_model_params_reach_the_architecture_and_the_card(tmp_path):
    root = make_cifar_python(tmp_path / "data", n=20)  # 100 random training images, written in the official format
    cfg = TrainConfig(model="vgg19", dataset="cifar10", model_params={"width": 4, "fc": 16}, epochs=1,
                      val_fraction=0.2, batch_size=50, device="cpu", data_root=str(root))
    res = train_target(cfg, tmp_path / "run", log=lambda s: None)
    assert res.card["arch_kwargs"] == {"width": 4, "fc": 16}
    model, _ = load_model(res.checkpoint)  # rebuilt with the same widths, or loading would fail
    assert sum(p.numel() for p in model.parameters()) == res.card["n_params"] < 0.1e6  # default width: 20 M
    with pytest.raises(Exception, match="takes no argument 'widht'"):
        TrainConfig(model="vgg19", dataset="cifar10", model_params={"widht": 4})
