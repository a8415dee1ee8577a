"""Acceptance: the user's own classifier and defense, from a package of their own, through advshield.evaluate.

Nothing here comes from the zoo: a temporary package ``mypkg`` defines the factories, the test imports it
the way a user would, evaluates, and checks the card, the Markdown and the HTML; then the one-line
refusals at the boundary, and ``load_user_module`` with safetensors and weights-only state dicts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import advshield
from advshield.errors import AdvShieldError, InputError
from advshield.user_modules import load_user_module, module_sha256

MODELS_PY = textwrap.dedent('''
    import torch
    from torch import nn


    class TinyNet(nn.Module):
        """Bright images are class 1, dark ones class 0: a mean filter, a global mean, a fixed linear layer."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, bias=False)
            self.fc = nn.Linear(1, 2)
            with torch.no_grad():
                self.conv.weight.fill_(1 / 9)
                self.fc.weight.copy_(torch.tensor([[-20.0], [20.0]]))
                self.fc.bias.copy_(torch.tensor([10.0, -10.0]))

        def forward(self, x):
            return self.fc(self.conv(x).mean((1, 2, 3)).unsqueeze(1))


    class Quantise(nn.Module):
        """A plain module (not an advshield Defense), not differentiable: rounds to ``levels`` grey levels."""

        def __init__(self, levels=4):
            super().__init__()
            self.levels = levels

        def forward(self, x):
            return torch.round(x * (self.levels - 1)) / (self.levels - 1)


    def make_net():
        return TinyNet()


    def make_mnist_net():
        """A linear MNIST classifier: the user's own architecture for the CLI test (trained there)."""
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


    def make_defense():
        return Quantise().eval()


    def make_bad():
        return 42
''')


@pytest.fixture
def mypkg(tmp_path, monkeypatch):
    pkg = tmp_path / "userpkgs" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(MODELS_PY)
    monkeypatch.syspath_prepend(str(pkg.parent))
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        monkeypatch.delitem(sys.modules, name)
    import mypkg.models

    yield mypkg.models
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        sys.modules.pop(name, None)


def _data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    base = torch.where(y == 1, 0.7, 0.3).view(n, 1, 1, 1)
    x = (base + 0.1 * (torch.rand(n, 1, 8, 8, generator=g) - 0.5)) * 255
    return x.round() / 255, y


PARAMS = {"fgsm": {"eps": 0.25}, "pgd": {"eps": 0.25, "steps": 5, "abs_stepsize": 0.1}}


def test_own_model_and_defense_through_python_call(mypkg, tmp_path):
    model, defense = mypkg.make_net().eval(), mypkg.make_defense()
    result = advshield.evaluate(model, _data(), defense, attack_params=PARAMS, store=tmp_path / "store",
                                out=tmp_path / "eval")
    card = result.card
    assert card["target"] == "TinyNet" and card["dataset"] == "custom" and card["n"] == 12
    assert card["target_sha256"] == module_sha256(model) and len(card["target_sha256"]) == 64
    assert card["defense"]["name"] == "Quantise" and card["defense"]["params"] == {"levels": 4}
    assert [(r["threat"], r["attack"]) for r in result.rows] == [  # the ensemble is added at the first eps budget
        ("white-box", "fgsm"), ("adaptive", "fgsm"), ("white-box", "pgd"), ("adaptive", "pgd"),
        ("adaptive", "autoattack")]
    assert result.rows[-1]["params"] == {"eps": 0.25, "norm": "linf", "version": "auto",
                                        "detector_start": "clean"}  # its APGD members' start against a detector
    assert any("AutoAttack ensemble" in note for note in card["notes"])
    assert all(r["clean_accuracy"] == 1.0 and r["n"] == 12 for r in result.rows)
    # the quantiser carries no gradient: measured, and the adaptive attacks went through BPDA
    assert any("BPDA" in note for note in card["notes"])
    by = {(r["threat"], r["attack"]): r for r in result.rows}
    assert by[("white-box", "pgd")]["adv_accuracy"] < 0.5  # eps 0.25 moves a 0.3/0.7 image across 0.5
    assert by[("adaptive", "pgd")]["restored_accuracy"] <= by[("white-box", "pgd")]["restored_accuracy"]
    # the rows above rule out these flags; the health checks ran on both adaptive settings
    assert not [f for f in card["red_flags"] if f["check"] in ("adaptive-vs-oblivious", "label-leaking", "chance-level")]
    assert set(card["health"]) == {"adaptive fgsm", "adaptive pgd", "adaptive autoattack"}
    assert card["health"]["adaptive autoattack"]["same_checks_as"] == "adaptive fgsm"  # APGD-CE at eps 0.25 both
    assert all(h["n"] == 12 and {c["check"] for c in h["checks"]} >= {"convergence", "gradient-free", "unbounded"}
               for h in card["health"].values())

    md = result.to_markdown()
    assert "## Verdict" in md and "robust: adaptive" in md and "robust: oblivious (white-box)" in md
    assert "| pgd" in md and "100.0 %" in md
    html = result.to_html()
    assert 'id="verdict-table-e0"' in html and "Red flags" in html and "TinyNet" in html

    out = tmp_path / "eval"
    saved = json.loads((out / "card.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result.rows)) and saved["figures"]
    assert (out / "results.csv").read_text().splitlines()[0].startswith("threat,attack,n,clean_accuracy")
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert (out / "report.md").read_text() == md

    # the same call again reads every adversarial set from the store and gives the same rows
    again = advshield.evaluate(model, _data(), defense, attack_params=PARAMS, store=tmp_path / "store")
    assert [r["restored_accuracy"] for r in again.rows] == [r["restored_accuracy"] for r in result.rows]


def test_no_defense_drops_the_adaptive_rows_and_checks_the_white_box_ones(mypkg, tmp_path):
    result = advshield.evaluate(mypkg.make_net().eval(), _data(), attacks=("fgsm",), attack_params={"fgsm": {"eps": 0.25}},
                                store=tmp_path / "store", checks=12)
    assert [(r["threat"], r["attack"]) for r in result.rows] == [("white-box", "fgsm"), ("white-box", "autoattack")]
    assert result.card["defense"] == {"name": "none"} and any("adaptive" in n for n in result.card["notes"])
    # without a defense the white-box attack is the adaptive one: its convergence and masking checks ran
    health = result.card["health"]
    assert set(health) == {"white-box fgsm", "white-box autoattack"} and health["white-box fgsm"]["n"] == 12
    assert {c["check"] for c in health["white-box fgsm"]["checks"]} >= {"convergence", "gradient-free", "unbounded"}
    bare = advshield.evaluate(mypkg.make_net().eval(), _data(), attacks=("fgsm",),
                              attack_params={"fgsm": {"eps": 0.25}}, store=tmp_path / "store", ensemble=False, checks=0)
    assert [r["attack"] for r in bare.rows] == ["fgsm"] and bare.card["health"] == {}


class _Flat(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1).mean(1)


class _NaN(torch.nn.Module):
    def forward(self, x):
        return torch.full((len(x), 2), float("nan"))


class _Drop(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x) - 1, 2)


@pytest.mark.parametrize("make, data, message", [
    (lambda p: p.make_net(), None, "training mode"),  # nn.Module starts in training mode: refused, not switched
    (lambda p: _Flat().eval(), None, "shape [N, classes]"),
    (lambda p: _NaN().eval(), None, "NaN or infinite logits"),
    (lambda p: _Drop().eval(), None, "rows of logits for a batch of"),
    (lambda p: p.make_net().eval(), (_data()[0].double(), _data()[1]), "float32"),
    (lambda p: p.make_net().eval(), (_data()[0] * 255, _data()[1]), "[0, 1]"),
    (lambda p: p.make_net().eval(), (_data()[0], _data()[1] + 1), "class indices"),
    (lambda p: p.make_net().eval(), (_data()[0][0], _data()[1]), "NCHW"),
])
def test_boundary_refuses_with_one_line(mypkg, tmp_path, make, data, message):
    with pytest.raises(InputError, match=None) as err:
        advshield.evaluate(make(mypkg), data or _data(), store=tmp_path / "store")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_defense_in_training_mode_or_changing_shape_is_refused(mypkg, tmp_path):
    with pytest.raises(InputError, match="defense .* training mode"):
        advshield.evaluate(mypkg.make_net().eval(), _data(), mypkg.Quantise(), store=tmp_path / "s")
    with pytest.raises(InputError, match="same shape"):
        advshield.evaluate(mypkg.make_net().eval(), _data(), torch.nn.Flatten().eval(), store=tmp_path / "s")
    for bad in (-1, 2.5, True):
        with pytest.raises(InputError, match="checks must be a non-negative integer"):
            advshield.evaluate(mypkg.make_net().eval(), _data(), checks=bad, store=tmp_path / "s")
    with pytest.raises(InputError, match="ensemble must be True or False"):
        advshield.evaluate(mypkg.make_net().eval(), _data(), ensemble="no", store=tmp_path / "s")


def test_load_user_module_with_weights(mypkg, tmp_path):
    from safetensors.torch import save_file

    trained = mypkg.make_net()
    with torch.no_grad():
        trained.fc.bias.add_(1.0)
    save_file(trained.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    for weights in ("w.safetensors", "w.pt", "ckpt.pth"):
        model = load_user_module("mypkg.models:make_net", tmp_path / weights)
        assert not model.training and module_sha256(model) == module_sha256(trained)
    assert module_sha256(load_user_module("mypkg.models:make_net")) != module_sha256(trained)


def test_load_user_module_refusals(mypkg, tmp_path):
    torch.save(mypkg.make_net(), tmp_path / "pickled.pt")  # a whole pickled module: never unpickled
    (tmp_path / "w.npz").write_bytes(b"x")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    small = torch.nn.Linear(1, 1)
    torch.save(small.state_dict(), tmp_path / "other.pt")
    cases = [("mypkg.models", None, "package.module:factory"),
             ("mypkg.nowhere:make_net", None, "cannot import mypkg.nowhere"),
             ("mypkg.models:nothing", None, "has no attribute nothing"),
             ("mypkg.models:make_bad", None, "not a torch.nn.Module"),
             ("mypkg.models:make_net", tmp_path / "missing.pt", "not found"),
             ("mypkg.models:make_net", tmp_path / "pickled.pt", "weights_only=True refused"),
             ("mypkg.models:make_net", tmp_path / "w.npz", "unknown weights format"),
             ("mypkg.models:make_net", tmp_path / "bad.safetensors", "not a valid safetensors file"),
             ("mypkg.models:make_net", tmp_path / "other.pt", "does not match architecture TinyNet")]
    for spec, weights, message in cases:
        with pytest.raises(AdvShieldError) as err:
            load_user_module(spec, weights)
        assert message in str(err.value), (spec, weights, str(err.value))


def test_own_model_and_defense_through_the_cli(mypkg, tmp_path):
    from safetensors.torch import save_file

    from advshield.data import load_dataset

    net = mypkg.make_mnist_net()  # fitted here for a second: a classifier of the user's, not from the zoo
    x, y = load_dataset("mnist", "train").head(2000).tensors()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path / "userpkgs")}
    cmd = [sys.executable, "-m", "advshield", "evaluate", "--target", "mypkg.models:make_mnist_net",
           "--weights", str(tmp_path / "net.safetensors"), "--dataset", "mnist", "--n", "60",
           "--defense", "mypkg.models:make_defense", "--attacks", "fgsm", "--attack-param", "fgsm.eps=0.2",
           "--threat", "white-box", "--threat", "adaptive", "--no-ensemble", "--out", str(tmp_path / "cli"),
           "--store", str(tmp_path / "store"), "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "cli" / "card.json").read_text())
    assert card["target"] == "Sequential" and card["defense"]["name"] == "Quantise"
    white_box, adaptive = card["rows"]  # --no-ensemble (test_cli_json checks the CLI's default ensemble)
    assert white_box["clean_accuracy"] > 0.75  # the user's weights were loaded, not a fresh init
    assert adaptive["restored_accuracy"] <= white_box["restored_accuracy"] + 1 / 60
    assert "Verdict" in (tmp_path / "cli" / "report.html").read_text()
    assert (tmp_path / "cli" / "report.md").read_text().startswith("#")
    bad = subprocess.run(cmd[:5] + ["mypkg.models:make_bad"] + cmd[6:], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in bad.stderr


def test_red_flags_fire_on_the_rows_that_deserve_them():
    from advshield.evaluation.verdict import red_flags as red_flags_of

    def row(threat, robust, clean=0.9):
        return {"threat": threat, "attack": "pgd", "params": {"eps": 0.1}, "n": 100, "clean_accuracy": clean,
                "restored_accuracy": robust}

    assert red_flags_of([row("white-box", 0.5), row("adaptive", 0.3)], 10) == []
    checks = [f["check"] for f in red_flags_of([row("white-box", 0.3), row("adaptive", 0.5)], 10)]
    assert checks == ["adaptive-vs-oblivious"]
    assert [f["check"] for f in red_flags_of([row("white-box", 0.95)], 10)] == ["label-leaking"]
    assert [f["check"] for f in red_flags_of([row("white-box", 0.05, clean=0.1)], 10)] == ["chance-level"]
    # one image of slack (n = 100), no more: 0.01 above the oblivious or the clean accuracy is noise, 0.02 is not
    assert red_flags_of([row("white-box", 0.30), row("adaptive", 0.31), row("white-box", 0.91)], 10) == []
    assert [f["check"] for f in red_flags_of([row("white-box", 0.30), row("adaptive", 0.32)], 10)] == [
        "adaptive-vs-oblivious"]
    assert [f["check"] for f in red_flags_of([row("white-box", 0.92)], 10)] == ["label-leaking"]
    # an adaptive row is compared only with the oblivious row of the same attack, parameters and images
    other_eps = dict(row("white-box", 0.1), params={"eps": 0.2})
    assert red_flags_of([other_eps, row("adaptive", 0.5)], 10) == []
    assert red_flags_of([dict(row("white-box", 0.1), n=50), row("adaptive", 0.5)], 10) == []
    # a preset's adaptive_params (more steps through the defense) still meet the oblivious row of their budget
    pgd20 = dict(row("white-box", 0.3), params={"eps": 0.1, "steps": 20})
    pgd100 = dict(row("adaptive", 0.5), params={"eps": 0.1, "steps": 100})
    flags = red_flags_of([pgd20, pgd100], 10)
    assert [f["check"] for f in flags] == ["adaptive-vs-oblivious"]
    assert "adaptive eps=0.1, steps=100; oblivious eps=0.1, steps=20" in flags[0]["detail"]
    assert red_flags_of([pgd20, dict(pgd100, restored_accuracy=0.2)], 10) == []
    # the exact-parameter row wins over another run of the budget; among other runs the most lenient one counts
    pgd40 = dict(row("white-box", 0.6), params={"eps": 0.1, "steps": 40})
    assert red_flags_of([pgd20, pgd40, pgd100], 10) == []
    assert [f["check"] for f in red_flags_of([pgd40, dict(pgd20, threat="adaptive")], 10)] == []
    assert [f["check"] for f in red_flags_of([pgd40, pgd20, dict(pgd20, threat="adaptive", restored_accuracy=0.35)],
                                             10)] == ["adaptive-vs-oblivious"]
    # 8/255 written two ways is one budget; an attack without an eps (CW) is compared only at equal parameters
    assert len(red_flags_of([dict(pgd20, params={"eps": 0.03137, "steps": 20}),
                             dict(pgd100, params={"eps": 8 / 255, "steps": 100})], 10)) == 1
    cw = dict(row("white-box", 0.3), attack="cw", params={"steps": 50})
    assert red_flags_of([cw, dict(cw, threat="adaptive", params={"steps": 100}, restored_accuracy=0.5)], 10) == []
    assert len(red_flags_of([cw, dict(cw, threat="adaptive", restored_accuracy=0.5)], 10)) == 1


class MaskedQuantise(torch.nn.Module):
    """Shattered gradients declared differentiable: rounds to 4 grey levels (+ 0 * x keeps a zero gradient), so
    advshield trusts the declaration, runs no BPDA, and the adaptive attack sees nothing."""

    differentiable, randomized = True, False

    def forward(self, x):
        return torch.round(x * 3) / 3 + 0 * x


def test_failed_health_checks_reach_the_card_and_its_red_flags(mypkg, tmp_path):
    model = mypkg.make_net().eval()
    result = advshield.evaluate(model, _data(), MaskedQuantise().eval(), attacks=["pgd"],
                                attack_params={"pgd": PARAMS["pgd"]},
                                store=tmp_path / "store", out=tmp_path / "eval")
    card = result.card
    failed = {c["check"] for c in card["health"]["adaptive pgd"]["failures"]}
    assert {"gradients", "unbounded"} <= failed
    flags = [f["check"] for f in card["red_flags"]]
    assert {"health: gradients", "health: unbounded", "adaptive-vs-oblivious"} <= set(flags)
    assert "health: gradients" in result.to_markdown()


def test_a_random_plain_defense_is_measured_as_randomised(mypkg):
    from advshield.user_modules import as_defense

    class Noise(torch.nn.Module):
        def forward(self, x):
            return (x + 0.01 * torch.randn_like(x)).clamp(0, 1)

    wrapped, notes = as_defense(Noise().eval(), _data()[0])
    assert wrapped.randomized and wrapped.differentiable and any("randomised" in n for n in notes)
    declared, notes = as_defense(mypkg.make_defense(), _data()[0])
    assert not declared.randomized and not declared.differentiable


def test_the_ensemble_through_a_randomised_defense_is_rand_then_standard(mypkg, tmp_path):
    """The ensemble every evaluation adds is AutoAttack 'auto': through a defense measured as randomised it runs the
    reference's rand version (APGD-CE, APGD-DLR), then the standard members it lacks, with EOT; the version is
    recorded in the row, kept by the store (a second run reads the set back) and named in the report."""
    class Noise(torch.nn.Module):
        def forward(self, x):
            return (x + 0.01 * torch.randn_like(x)).clamp(0, 1)

    for run in ("crafted", "read back from the store"):
        result = advshield.evaluate(mypkg.make_net().eval(), _data(), Noise().eval(), attacks=["pgd"],
                                    attack_params={"pgd": PARAMS["pgd"]}, checks=0,
                                    store=tmp_path / "store", out=tmp_path / run)
        row = result.rows[-1]
        assert row["attack"] == "autoattack" and row["params"]["version"] == "auto", run
        assert row["version_run"] == "rand+standard", run
        # the binary TinyNet is too small for the DLR losses: those members are skipped and named
        assert list(row["robust_accuracy_after"]) == ["clean", "apgd-ce", "fab-t", "square"], run
        assert row["skipped_members"] == ["apgd-dlr", "apgd-t"], run
        assert "autoattack (adaptive, version rand+standard)" in result.to_markdown(), run


def test_floating_point_noise_does_not_make_a_defense_randomised(mypkg):
    """A deterministic module whose two calls differ by float noise (as non-deterministic GPU kernels do) is not
    randomised; a tenth of a grey level and more is (RANDOM_TOLERANCE)."""
    from advshield.user_modules import RANDOM_TOLERANCE, as_defense

    class Jitter(torch.nn.Module):
        def __init__(self, size: float) -> None:
            super().__init__()
            self.size = size

        def forward(self, x):
            return (x + self.size * torch.rand_like(x)).clamp(0, 1)

    x = _data()[0]
    assert not as_defense(Jitter(1e-6).eval(), x)[0].randomized
    assert as_defense(Jitter(3 * RANDOM_TOLERANCE).eval(), x)[0].randomized
