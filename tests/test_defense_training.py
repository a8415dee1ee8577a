import numpy as np
import pytest
import torch

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.defenses import load_defense
from advshield.errors import CheckpointError
from advshield.training.defense_config import AttackMix, DefenseTrainConfig
from advshield.training.defense_trainer import train_defense
from advshield.experiment import RunContext, Target
from advshield.training.pairs import allocate, build_source, plan_sources
from advshield.zoo import load_pretrained


def test_allocate_is_exact_and_proportional():
    assert allocate([0.05, 0.30, 0.05, 0.30, 0.30], 1000) == [50, 300, 50, 300, 300]
    counts = allocate([1, 1, 1], 10)
    assert sum(counts) == 10 and max(counts) - min(counts) == 1
    assert allocate([0.05, 0.30, 0.05, 0.30, 0.30], 7) and sum(allocate([0.05, 0.3, 0.05, 0.3, 0.3], 7)) == 7


def test_plan_sources_partition_the_images():
    data = load_dataset("mnist", "train")
    perm = np.random.default_rng(0).permutation(len(data))[:100]
    mixes = [AttackMix(name="fgsm", proportion=0.3), AttackMix(name="clean", proportion=0.7)]
    a, b = plan_sources(mixes, data, perm, "train")
    assert (len(a.data), len(b.data)) == (30, 70)
    assert a.label != b.label  # distinct store keys


def test_on_the_fly_pairs_change_every_epoch(tmp_path):
    model, card = load_pretrained("a-net")
    data = load_dataset("mnist", "train")
    [src] = plan_sources([AttackMix(name="rfgsm", params={"eps": 0.3}, on_the_fly=True)], data, np.arange(40), "t")
    victim, ctx = Target(model, card, "a-net"), RunContext(store=tmp_path, batch_size=40)
    build_source(src, victim, ctx, "mnist", epoch=0)
    first = src.adv.clone()
    build_source(src, victim, ctx, "mnist", epoch=0)
    assert torch.equal(first, src.adv)  # deterministic per epoch
    build_source(src, victim, ctx, "mnist", epoch=1)
    assert not torch.equal(first, src.adv)  # fresh random start
    assert not any(tmp_path.iterdir())  # nothing stored for on-the-fly pairs


def _cfg(**kw):
    base = dict(defense="cru-net", defense_params={"width": 8}, target="a-net", n_train=1200, n_val=100, epochs=4,
                batch_size=32, lr=3e-3, attacks=[AttackMix(name="fgsm", params={"eps": 0.3})])
    return DefenseTrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_restorer_raises_accuracy_on_held_out_images(tmp_path):
    res = train_defense(_cfg(), tmp_path / "run", store=tmp_path / "store", log=lambda s: None)
    defense, card = load_defense(res.checkpoint)
    assert card["train_pairs"] == {"fgsm": 1200} and card["val_pairs"] == {"fgsm": 100}
    assert len(card["history"]) == 4 and card["history"][-1]["loss"] < card["history"][0]["loss"]
    # Fresh images from the test split: FGSM at eps 0.3 breaks A-net, the restorer repairs much of it.
    model, _ = load_pretrained("a-net")
    x, y = load_dataset("mnist", "test").tensors(slice(0, 300))
    adv = run_attack(create_attack("fgsm", eps=0.3), model, x, y).adv
    with torch.no_grad():
        before = float((model(adv).argmax(1) == y).float().mean())
        after = float((model(defense(adv)).argmax(1) == y).float().mean())
    assert before < 0.15 and after > before + 0.3, (before, after)
    # Finished run: resuming returns at once with the same weights; another recipe is refused.
    again = train_defense(_cfg(), tmp_path / "run", store=tmp_path / "store", log=lambda s: None)
    assert again.card["sha256"] == card["sha256"]
    with pytest.raises(CheckpointError, match="different recipe"):
        train_defense(_cfg(epochs=5), tmp_path / "run", store=tmp_path / "store", log=lambda s: None)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    cfg = _cfg(n_train=128, n_val=32, epochs=2, attacks=[AttackMix(name="clean")])
    whole = train_defense(cfg, tmp_path / "a", store=tmp_path / "s", log=lambda s: None)
    train_defense(_cfg(n_train=128, n_val=32, epochs=1, attacks=[AttackMix(name="clean")]), tmp_path / "b",
                  store=tmp_path / "s", log=lambda s: None)
    # Pretend run b was the 2-epoch run interrupted after epoch 1: rewrite its recipe, then resume.
    import json

    card_path = tmp_path / "b" / "last.json"
    card = json.loads(card_path.read_text())
    card["recipe"] = cfg.recipe()
    card_path.write_text(json.dumps(card))
    resumed = train_defense(cfg, tmp_path / "b", store=tmp_path / "s", log=lambda s: None)
    drop = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert [drop(h) for h in resumed.card["history"]] == [drop(h) for h in whole.card["history"]]
    a, _ = load_defense(whole.checkpoint)
    b, _ = load_defense(resumed.checkpoint)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k


def test_init_warm_starts_from_a_trained_restorer_of_the_same_shape(tmp_path):
    clean = [AttackMix(name="clean")]
    first = train_defense(_cfg(n_train=64, n_val=32, epochs=1, attacks=clean), tmp_path / "a", store=tmp_path / "s",
                          log=lambda s: None)
    tuned = train_defense(_cfg(n_train=64, n_val=32, epochs=1, attacks=clean, lr=1e-12, init=str(first.checkpoint)),
                          tmp_path / "b", store=tmp_path / "s", log=lambda s: None)
    assert tuned.card["recipe"]["init"] == str(first.checkpoint)
    a, _ = load_defense(first.checkpoint)
    b, _ = load_defense(tuned.checkpoint)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(va, vb, atol=1e-8), k  # started from the first run's weights, barely moved
    with pytest.raises(CheckpointError, match="arch_kwargs"):
        train_defense(_cfg(n_train=64, n_val=32, epochs=1, attacks=clean, defense_params={"width": 4},
                           init=str(first.checkpoint)), tmp_path / "c", store=tmp_path / "s", log=lambda s: None)
    with pytest.raises(CheckpointError, match="not a cru-net restorer"):
        train_defense(_cfg(n_train=64, n_val=32, epochs=1, attacks=clean, init="a-net"), tmp_path / "d",
                      store=tmp_path / "s", log=lambda s: None)


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="not a trainable restorer"):
        DefenseTrainConfig(defense="median")
    with pytest.raises(Exception, match="unknown attack"):
        AttackMix(name="nope")
    with pytest.raises(ValueError, match="Extra inputs"):
        DefenseTrainConfig(epochz=3)


def test_guided_and_perceptual_loss_terms():
    from torch.nn import functional as F

    from advshield.models import create_model
    from advshield.training.defense_config import LossWeights
    from advshield.training.restoration_loss import LossGuide, restoration_loss

    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    feat = create_model("a-net").eval()
    out, clean = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3])
    w = LossWeights(mse=1.0, l1=2.0, perceptual=3.0, ce=0.5, logit=0.25)
    fo, fc = feat.features(out, ["conv1", "conv2"]), feat.features(clean, ["conv1", "conv2"])
    expected = (F.mse_loss(out, clean) + 2.0 * F.l1_loss(out, clean)
                + 3.0 * (F.mse_loss(fo["conv1"], fc["conv1"]) + F.mse_loss(fo["conv2"], fc["conv2"])) / 2
                + 0.5 * F.cross_entropy(clf(out), y) + 0.25 * F.l1_loss(clf(out), clf(clean)))
    guide = LossGuide(clf, y, feat, ["conv1", "conv2"])
    assert float(restoration_loss(out, clean, w, guide)) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="perceptual network"):
        restoration_loss(out, clean, w, LossGuide(clf, y))
    with pytest.raises(ValueError, match="need the classifier"):
        restoration_loss(out, clean, LossWeights(ce=1.0))
    assert float(restoration_loss(out, clean, LossWeights())) == pytest.approx(float(F.mse_loss(out, clean)))
    with pytest.raises(ValueError, match="perceptual_net"):
        DefenseTrainConfig(loss=LossWeights(perceptual=1.0))


def test_config_sources_need_distinct_labels_and_a_substitute_for_transfer():
    two = [AttackMix(name="fgsm", params={"eps": 0.1}), AttackMix(name="fgsm", params={"eps": 0.3})]
    with pytest.raises(ValueError, match="distinct names"):
        DefenseTrainConfig(attacks=two)
    labelled = [AttackMix(name="fgsm", label="fgsm-v1", threat="transfer"),
                AttackMix(name="fgsm", label="fgsm-v2", threat="transfer-feedback")]
    with pytest.raises(ValueError, match="substitute"):
        DefenseTrainConfig(attacks=labelled)
    cfg = DefenseTrainConfig(attacks=labelled, substitute="b-net")
    assert [m.key for m in cfg.attacks] == ["fgsm-v1", "fgsm-v2"]
    with pytest.raises(ValueError, match="threat"):
        AttackMix(name="fgsm", threat="grey-box")


def test_transfer_feedback_pairs_are_stored_under_their_own_key(tmp_path):
    model, card = load_pretrained("a-net")
    sub, sub_card = load_pretrained("b-net")
    data = load_dataset("mnist", "train")
    mixes = [AttackMix(name="bim", label="v1", params={"eps": 0.3, "abs_stepsize": 0.02, "steps": 15,
                                                        "early_stop": True}, threat="transfer"),
             AttackMix(name="bim", label="v2", params={"eps": 0.3, "abs_stepsize": 0.02, "steps": 15,
                                                        "early_stop": True}, threat="transfer-feedback")]
    v1, v2 = plan_sources(mixes, data, np.arange(80), "t")
    ctx = RunContext(store=tmp_path, batch_size=40)
    for src in (v1, v2):
        build_source(src, Target(model, card, "a-net"), ctx, "mnist", substitute=Target(sub, sub_card, "b-net"))
    assert v1.key != v2.key and len(list(tmp_path.iterdir())) == 2
    with torch.no_grad():
        def fooled(src):
            return float((model(src.adv).argmax(1) != torch.from_numpy(src.data.labels)).float().mean())
    # v1 stops once B-net (the attacker) is fooled; v2 goes on until A-net (the target) is.
    assert fooled(v2) > fooled(v1)


def test_shipped_training_configs_validate():
    from pathlib import Path

    from advshield.config_file import load_yaml_model

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = load_yaml_model(path, DefenseTrainConfig, "training config")
        assert cfg.attacks and cfg.epochs >= 1, path.name
