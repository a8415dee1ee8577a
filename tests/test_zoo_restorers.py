"""The restorers shipped in the zoo: intact, found by their exact recipe, and restoring as their cards say."""

import pytest
import torch

from advshield.attacks import Pipeline, create_attack, run_attack
from advshield.data import load_dataset
from advshield.defenses import load_defense
from advshield.reproduce import load_preset
from advshield.experiment import RunContext
from advshield.reproduce.restoration.runner import training_config
from advshield.training.defense_config import find_restorer
from advshield.zoo import list_checkpoints, load_pretrained

RESTORERS = [e for e in list_checkpoints() if e.card.get("kind") == "defense"]


def test_the_cru_net_restorers_are_shipped():
    have = {(e.dataset, e.card["target"]) for e in RESTORERS}
    assert {("mnist", "a-net"), ("mnist", "b-net"), ("cifar10", "resnet20")} <= have


@pytest.mark.parametrize("entry", RESTORERS, ids=lambda e: e.path.stem)
def test_restorer_checkpoint_integrity_and_card(entry):
    assert entry.path.stat().st_size < 5 * 2**20, "zoo files must stay under 5 MB"
    net, card = load_defense(entry.path)  # checks SHA-256, tensor names and shapes
    for key in ("recipe", "target", "target_sha256", "train_pairs", "history", "val", "n_params", "device"):
        assert key in card, key
    assert card["n_params"] == sum(p.numel() for p in net.parameters())
    _, target_card = load_pretrained(card["target"], card["dataset"])
    assert card["target_sha256"] == target_card["sha256"], "restorer trained against another target checkpoint"


@pytest.mark.parametrize("preset,target", [("cru-net-mnist", "a-net"), ("cru-net-mnist", "b-net"),
                                           ("cru-net-cifar10", "resnet20"), ("cru-net-cifar10", "densenet"),
                                           ("cru-net-cifar10", "mobilenetv2")])
def test_full_preset_recipe_finds_the_shipped_restorer(preset, target):
    p = load_preset(preset)
    cfg = training_config(p, target, p.full, RunContext(requested_device="cpu"))
    entry = find_restorer(cfg.recipe())
    assert entry is not None and entry.card["target"] == target
    assert find_restorer(dict(cfg.recipe(), seed=1)) is None  # any change of recipe means training anew
    fast = training_config(p, target, p.fast, RunContext(requested_device="cpu"))
    assert find_restorer(fast.recipe()) is None


@pytest.mark.parametrize("target", ["a-net", "b-net"])
def test_shipped_cru_net_restores_fgsm_on_held_out_images(target):
    test = load_dataset("mnist", "test").subset(slice(0, 300))
    x, y = test.tensors()
    model, _ = load_pretrained(target, "mnist")
    net, _ = load_defense(find_restorer(
        training_config(load_preset("cru-net-mnist"), target, load_preset("cru-net-mnist").full,
                        RunContext(requested_device="cpu")).recipe()).path)
    adv = run_attack(create_attack("fgsm", eps=0.3), Pipeline(model), x, y, batch_size=300, seed=0).adv
    with torch.no_grad():
        bare = float((model(adv).argmax(1) == y).float().mean())
        restored = float((model(net(adv)).argmax(1) == y).float().mean())
        clean_through = float((model(net(x)).argmax(1) == y).float().mean())
    assert bare < 0.5 and restored >= 0.95 and clean_through >= 0.98


def test_every_restorer_variant_a_preset_names_is_shipped_with_its_config():
    """A preset's `restorer:` variants exist in the zoo, and each card's recipe is the config file in configs/."""
    from pathlib import Path

    from advshield.config_file import load_yaml_model
    from advshield.reproduce import builtin_presets
    from advshield.reproduce.restoration.preset import Preset
    from advshield.training.defense_config import DefenseTrainConfig
    from advshield.zoo import pretrained_path

    configs = {p.stem: load_yaml_model(p, DefenseTrainConfig, "config").recipe()
               for p in (Path(__file__).parents[1] / "configs").glob("*.yaml") if "guided" in p.stem}
    presets = [p for p in map(load_preset, builtin_presets()) if isinstance(p, Preset)]
    named = {(ev.restorer, p.dataset.value) for p in presets for ev in p.evaluations if ev.restorer}
    shipped = {"cru-net-guided-for-a-net", "cru-net-guided-for-b-net", "cru-net-guided-for-resnet20"}
    assert shipped <= {r for r, _ in named}
    for name, dataset in named:
        net, card = load_defense(pretrained_path(name, dataset))
        assert card["recipe"]["init"], "a variant is a fine-tune of a shipped restorer"
        assert card["recipe"] in configs.values(), f"{name}: no config in configs/ gives its recipe"
