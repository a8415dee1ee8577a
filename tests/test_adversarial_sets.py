import json

import pytest
import torch
from typer.testing import CliRunner

from advshield import adversarial
from advshield.adversarial import AdversarialSpec, generate_adversarial_set, load_adversarial_set
from advshield.attacks import FGSM, PGD, Pipeline
from advshield.cli import app
from advshield.data import load_dataset
from advshield.zoo import load_pretrained


@pytest.fixture(scope="module")
def setup():
    model, card = load_pretrained("a-net", "mnist")
    return model, card, load_dataset("mnist", "test")


def spec_for(card, attack, n=120, seed=0):
    return AdversarialSpec(card["sha256"], attack.name, attack.params(), "mnist", "test", n, seed)


def test_key_depends_on_everything(setup):
    _, card, _ = setup
    base = spec_for(card, PGD(0.3))
    keys = {base.key(), spec_for(card, PGD(0.2)).key(), spec_for(card, PGD(0.3), n=100).key(),
            spec_for(card, PGD(0.3), seed=1).key(), spec_for(card, FGSM(0.3)).key()}
    assert len(keys) == 5 and base.key() == spec_for(card, PGD(0.3)).key()


def test_set_made_on_other_data_is_not_reused(setup, tmp_path):
    """Same spec, other images (another copy or order of the split): the store must not hand back the old set."""
    model, card, data = setup
    attack = FGSM(0.2)
    spec = spec_for(card, attack, n=40)
    first, a, _ = generate_adversarial_set(spec, attack, Pipeline(model), data, tmp_path)
    shifted = data.subset(slice(40, 80))
    second, b, cached = generate_adversarial_set(spec, attack, Pipeline(model), shifted, tmp_path)
    assert not cached and first != second and not torch.equal(a.adv.materialize(), b.adv.materialize())
    _, _, cached = generate_adversarial_set(spec, attack, Pipeline(model), data, tmp_path)
    assert cached


def test_crash_resumes_and_equals_uninterrupted(setup, tmp_path, monkeypatch):
    model, card, data = setup
    monkeypatch.setattr(adversarial, "SHARD", 50)
    attack = PGD(0.2, steps=5)
    spec = spec_for(card, attack)
    whole_dir, whole, cached = generate_adversarial_set(spec, attack, Pipeline(model), data, tmp_path / "a")
    assert not cached and len(whole.adv) == 120

    calls = []

    def crash_after_first_shard(done, total):
        calls.append(done)
        if len(calls) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_adversarial_set(spec, attack, Pipeline(model), data, tmp_path / "b", progress=crash_after_first_shard)
    folder = tmp_path / "b" / whole_dir.name
    assert (folder / "shard-00000.safetensors").exists() and not (folder / "meta.json").exists()
    _, resumed, cached = generate_adversarial_set(spec, attack, Pipeline(model), data, tmp_path / "b")
    assert not cached and torch.equal(resumed.adv.materialize(), whole.adv.materialize())
    assert not list(folder.glob("shard-*"))  # shards are folded into the final file

    _, again, cached = generate_adversarial_set(spec, attack, Pipeline(model), data, tmp_path / "b")
    assert cached and torch.equal(again.adv.materialize(), whole.adv.materialize())
    loaded, meta = load_adversarial_set(whole_dir)
    assert meta["key"] == whole_dir.name and meta["spec"]["data_sha256"] and meta["summary"]["n"] == 120 and loaded.adv.dtype == torch.float32


def test_cli_attack_json_and_cache(tmp_path):
    runner = CliRunner()
    args = ["attack", "--model", "a-net", "--attack", "fgsm", "--eps", "0.3", "--n", "1000", "--out", str(tmp_path),
            "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    s = json.loads(first.stdout)
    assert s["n"] == 1000 and not s["cached"] and s["adv_accuracy"] < 0.30  # acceptance: FGSM eps=0.3 < 30 %
    assert s["clean_accuracy"] > 0.98 and s["images_per_s"] > 0
    lo, hi = s["adv_accuracy_ci95"]  # the robust accuracy's 95 % Wilson interval beside it
    assert lo < s["adv_accuracy"] < hi and 0.02 < hi - lo < 0.06
    second = json.loads(runner.invoke(app, args).stdout)
    assert second["cached"] and second["adv_accuracy"] == s["adv_accuracy"]
    printed = runner.invoke(app, args[:-1]).output  # the human-readable line prints the interval too
    assert f"{s['adv_accuracy']:.4f} [95 % CI {lo:.4f}, {hi:.4f}]" in printed, printed


def test_cli_attack_params_and_transfer(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["attack", "--model", "a-net", "--attack", "bim", "--eps", "0.1", "--param", "steps=3",
                              "--threat", "transfer:b-net", "--n", "50", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["params"]["steps"] == 3 and s["threat"] == "transfer:b-net" and s["surface_adv_accuracy"] is not None


def test_cli_adaptive_runs_health_checks(tmp_path):
    res = CliRunner().invoke(app, ["attack", "--model", "a-net", "--attack", "pgd", "--eps", "0.2", "--param",
                                   "steps=10", "--defense", "squeeze", "--threat", "adaptive", "--n", "60", "--out",
                                   str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert {c["check"] for c in s["health"]["checks"]} == {"convergence", "gradient-free", "unbounded", "beats-noise",
                                                            "gradients"}
    assert s["health"]["attack"] == "pgd" and s["health"]["n"] == 60
    flagged = {f["check"] for f in s["red_flags"]}  # the failed checks and the 60 images, as a card would say
    assert {"health: " + c["check"] for c in s["health"]["failures"]} | {"sample-size"} == flagged
