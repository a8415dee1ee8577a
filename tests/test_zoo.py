"""The checkpoints shipped in src/advshield/zoo: intact, documented, and as accurate as their cards say."""

import pytest
import torch

from advshield.checkpoint import load_model
from advshield.data import load_dataset
from advshield.metrics import accuracy
from advshield.zoo import list_checkpoints, load_pretrained, pretrained_path
from conftest import SHARED_DATA

ZOO = [e for e in list_checkpoints() if e.card.get("kind") != "defense"]
MNIST_ZOO = [e for e in ZOO if e.dataset == "mnist"]
REQUIRED = {"mnist": {"a-net", "b-net", "m1", "m2", "lenet5", "dkn-a", "dkn-b", "model-a", "model-b", "model-c", "model-d",
                      "alexnet-mnist"},
            "cifar10": {"resnet20", "vgg19-bn", "resnet18", "densenet", "mobilenetv2", "densenet-201", "densenet-201-conv",
                        "densenet-201-prelu", "senet-154"},
            "fashion-mnist": {"a-net"}, "gtsrb": {"gtsrb-cnn"}}
# Acceptance floors on the full offline test sets.
FLOORS = {("mnist", "a-net"): 0.990, ("mnist", "b-net"): 0.992, ("cifar10", "resnet20"): 0.80, ("cifar10", "vgg19-bn"): 0.80, ("cifar10", "resnet18"): 0.83,
          ("fashion-mnist", "a-net"): 0.90, ("gtsrb", "gtsrb-cnn"): 0.95}
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="offline data copies not present")


def test_required_checkpoints_are_shipped():
    have = {(e.dataset, e.path.stem) for e in ZOO}
    missing = {(d, n) for d, names in REQUIRED.items() for n in names} - have
    assert not missing, f"missing zoo checkpoints: {sorted(missing)}"


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: f"{e.dataset}-{e.path.stem}")
def test_checkpoint_integrity_and_card(entry):
    assert entry.path.stat().st_size < 5 * 2**20, "zoo files must stay under 5 MB"
    model, card = load_model(entry.path)  # checks SHA-256, tensor names and shapes
    for key in ("dataset", "epochs", "seed", "test_accuracy", "train_time_s", "versions", "recipe", "n_params"):
        assert key in card, key
    assert card["n_params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("entry", MNIST_ZOO, ids=lambda e: e.path.stem)
def test_mnist_zoo_on_embedded_sample(entry):
    model, _ = load_model(entry.path)
    assert accuracy(model, load_dataset("mnist", "test")) >= 0.97


# The deep CIFAR-10 networks trained on a GPU (DenseNet-201, SENet-154, ...) take minutes each on the 10000
# test images of a 2-core CPU: they are checked on the first 500 (below) instead of the whole set.
GPU_CIFAR = [e for e in ZOO if e.dataset == "cifar10" and e.card.get("gpu") and not e.card["recipe"].get("adversarial")]


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in ZOO if e not in GPU_CIFAR], ids=lambda e: f"{e.dataset}-{e.path.stem}")
def test_card_accuracy_reproduces_on_full_test_set(entry, monkeypatch, shared_cache):
    monkeypatch.setenv("ADVSHIELD_CACHE", str(shared_cache))
    model, card = load_model(entry.path)
    test = load_dataset(entry.dataset, "test", SHARED_DATA)
    acc = accuracy(model, test)
    assert len(test) == card["test_set"]["n"] == {"gtsrb": 12630}.get(entry.dataset, 10000)
    assert acc == pytest.approx(card["test_accuracy"], abs=2e-4)
    assert acc >= FLOORS.get((entry.dataset, entry.path.stem), 0.0)


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("entry", GPU_CIFAR, ids=lambda e: e.path.stem)
def test_gpu_trained_card_accuracy_holds_on_a_test_subset_on_cpu(entry, monkeypatch, shared_cache):
    monkeypatch.setenv("ADVSHIELD_CACHE", str(shared_cache))
    model, card = load_model(entry.path)
    acc = accuracy(model, load_dataset("cifar10", "test", SHARED_DATA).head(500), batch_size=250)
    # 500 fixed images: a binomial standard error of about 0.018 around the card's 10000-image accuracy; 0.05 is 3 of
    # them, so only a broken load (wrong weights, dtype, normalisation: about 0.10) fails.
    assert acc == pytest.approx(card["test_accuracy"], abs=0.05)
    assert card["gpu"] and card["device"] == "cuda" and card["epochs_note"].startswith(f"epochs = {card['epochs']}:")


def test_load_pretrained_by_name():
    model, card = load_pretrained("a-net", "mnist")
    assert card["architecture"] == "a-net" and not model.training
    x = torch.rand(2, 1, 28, 28)
    assert model(x).shape == (2, 10)


def test_one_architecture_on_two_datasets_resolves_to_its_own_by_default():
    assert pretrained_path("a-net").parent.name == "mnist"  # a-net is registered for MNIST
    assert pretrained_path("a-net", "fashion-mnist").parent.name == "fashion-mnist"
    model, card = load_pretrained("a-net", "fashion-mnist")
    assert card["dataset"] == "fashion-mnist" and model(torch.rand(1, 1, 28, 28)).shape == (1, 10)


ROBUST = [e for e in ZOO if (e.card.get("recipe") or {}).get("adversarial")]


def test_the_zoo_ships_adversarially_trained_models():
    assert {(e.dataset, e.path.stem) for e in ROBUST} >= {("mnist", "a-net-robust"), ("cifar10", "resnet18-robust")}


@pytest.mark.parametrize("entry", ROBUST, ids=lambda e: e.path.stem)
def test_robust_cards_state_the_ensemble_result_and_its_checks(entry):
    rt = entry.card["robust_test"]
    assert rt["attack"] == "autoattack" and rt["version"] == "standard" and rt["n"] >= 2000
    assert rt["eps"] == entry.card["recipe"]["adversarial"]["eps"]
    assert rt["interval_95"][0] <= rt["robust_accuracy"] <= rt["interval_95"][1] <= rt["clean_accuracy"] + 0.05
    members = [rt["per_member"][k] for k in ("clean", "apgd-ce", "apgd-t", "fab-t", "square")]  # cumulative
    assert members == sorted(members, reverse=True) and members[-1] == pytest.approx(rt["robust_accuracy"], abs=1e-4)
    assert rt["health"]["ok"], rt["health"]
    assert entry.card["history"] and all("val_robust_accuracy" in h for h in entry.card["history"])
    # model selection on held-out robust accuracy (Rice et al. 2020)
    best = max(entry.card["history"], key=lambda h: h["val_robust_accuracy"])
    assert entry.card["best_epoch"] == best["epoch"]


def test_zoo_entries_are_named_by_their_id_with_the_architecture_apart(monkeypatch):
    """The adversarially trained models are listed (and resolved) under their own ids, not their architecture's."""
    import json

    from typer.testing import CliRunner

    from advshield.cli import app
    from advshield.cli import common

    entries = {(e.dataset, e.name): e for e in list_checkpoints()}
    assert all(e.name == e.path.stem for e in entries.values())
    assert entries[("mnist", "a-net-robust")].architecture == "a-net"
    assert entries[("cifar10", "resnet18-robust")].architecture == "resnet18"
    assert entries[("mnist", "cru-net-for-a-net")].architecture == "cru-net"
    # an id resolves to its own file; an architecture to the classifier named so, never to a-net-robust
    assert pretrained_path("a-net-robust", "mnist").stem == "a-net-robust"
    assert pretrained_path("resnet18-robust").stem == "resnet18-robust"
    assert pretrained_path("a-net", "mnist").stem == "a-net" and pretrained_path("resnet18").stem == "resnet18"
    assert load_pretrained("a-net-robust", "mnist")[1]["architecture"] == "a-net"

    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)["checkpoints"]
    by_name = {(c["dataset"], c["name"]): c for c in listed}
    assert by_name[("mnist", "a-net-robust")]["architecture"] == "a-net"
    assert by_name[("cifar10", "resnet18-robust")]["architecture"] == "resnet18"
    assert by_name[("mnist", "a-net")]["path"] != by_name[("mnist", "a-net-robust")]["path"]
    monkeypatch.setattr(common.console, "width", 250)
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0, res.output
    table = res.stdout[res.stdout.index("Checkpoints"):]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    assert ["mnist", "a-net-robust", "a-net"] in [c[:3] for c in cells]
    assert ["cifar10", "resnet18-robust", "resnet18"] in [c[:3] for c in cells]
    assert ["mnist", "a-net", "a-net"] in [c[:3] for c in cells]


def test_robust_models_page_is_current_and_states_curve_and_shortfall(tmp_path):
    """docs/robust-models.md is what scripts/robust_zoo_page.py makes of the cards: per robust model the
    training curve from the card's history and the shortfall against issue 26's goals, in points."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "robust-models.md"
    subprocess.run([sys.executable, str(root / "scripts" / "robust_zoo_page.py"), "--out", str(out)], check=True,
                   timeout=120)
    page = out.read_text()
    assert page == (root / "docs" / "robust-models.md").read_text(), \
        "stale page: regenerate with python scripts/robust_zoo_page.py"
    goals = {"mnist": (0.90, 0.985), "cifar10": (0.40, 0.70)}
    for e in ROBUST:
        section = page.split(f"## `{e.name}`")[1].split("\n## ")[0]
        for h in e.card["history"]:
            assert f"{h['loss']:.3f} | {100 * h['train_accuracy']:.1f} % | {100 * h['val_accuracy']:.1f} % | " \
                   f"{100 * h['val_robust_accuracy']:.1f} % |" in section
        robust_goal, clean_goal = goals[e.dataset]
        for goal, measured in ((clean_goal, e.card["test_accuracy"]),
                               (robust_goal, e.card["robust_test"]["robust_accuracy"])):
            gap = 100 * (goal - measured)
            assert (f"{gap:.1f} points short" if gap > 0 else "met") in section
        if "Short of the goal" in section:
            assert "an estimate, not measured" in section
