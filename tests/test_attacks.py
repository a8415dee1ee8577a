"""Behaviour of the attack engine on the zoo A-net and the embedded MNIST test sample."""


import pytest
import torch

from advshield.attacks import (ATTACKS, BIM, FGSM, MIFGSM, PGD, PGDL2, RFGSM, CarliniWagnerL2, L2DeepFool,
                               LinfDeepFool, Pipeline, SpatialAttack, ThreatModel, UniformNoise, create_attack,
                               craft_images, run_attack)
from advshield.attacks.health import MaskedGradientWarning, check_attack_health
from advshield.attacks.noise import L2Noise
from advshield.data import load_dataset
from advshield.defenses import DEFENSES
from advshield.errors import AdvShieldError, InputError
from advshield.zoo import load_pretrained


@pytest.fixture(scope="module")
def anet():
    return load_pretrained("a-net", "mnist")[0]


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist", "test").tensors()  # the first 1000 MNIST test images


@pytest.fixture(scope="module")
def small(data):
    x, y = data
    return x[:64], y[:64]


def test_registry_has_every_attack():
    assert {"fgsm", "rfgsm", "bim", "pgd", "pgd-l2", "mifgsm", "deepfool", "deepfool-linf", "cw", "spatial",
            "uniform-noise"} <= set(ATTACKS.names())
    for name in ATTACKS.names():
        cls = ATTACKS.entry(name).factory
        assert "Paper" in cls.__doc__ or "paper" in cls.__doc__ or "Defaults" in cls.__doc__, name
    with pytest.raises(AdvShieldError, match="unknown attack"):
        create_attack("jsma")


@pytest.mark.parametrize("make", [lambda: FGSM(eps=-0.1), lambda: PGD(eps=1.5), lambda: BIM(steps=0),
                                  lambda: RFGSM(eps=0.1, alpha=0.2), lambda: CarliniWagnerL2(steps=-1),
                                  lambda: L2DeepFool(candidates=1), lambda: PGD(eps=float("nan"))])
def test_bad_parameters_rejected(make):
    with pytest.raises(InputError):
        make()


def test_bad_inputs_rejected(anet, small):
    x, y = small
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        FGSM()(anet, x * 2, y)
    with pytest.raises(InputError, match="NaN"):
        FGSM()(anet, x.masked_fill(x > 0.5, float("nan")), y)
    with pytest.raises(InputError, match="NCHW"):
        FGSM()(anet, x[:, 0], y)
    with pytest.raises(InputError, match="float32"):
        FGSM()(anet, x.double(), y)
    with pytest.raises(InputError, match="labels"):
        FGSM()(anet, x, y[:3])
    with pytest.raises(InputError, match="targeted"):
        L2DeepFool()(anet, x, y, target=y)


@pytest.mark.parametrize("attack", [FGSM(0.1), RFGSM(0.1), BIM(0.1), PGD(0.1, steps=10), MIFGSM(0.1),
                                    UniformNoise(0.1)], ids=lambda a: a.name)
def test_linf_budget_and_box(anet, small, attack):
    x, y = small
    r = attack(anet, x, y)
    assert float((r.adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(r.adv.min()) >= 0 and float(r.adv.max()) <= 1
    assert torch.allclose(r.norms["linf"], (r.adv - x).flatten(1).abs().amax(1))


def test_l2_budget(anet, small):
    x, y = small
    r = PGDL2(eps=1.0, steps=10)(anet, x, y)
    assert float(r.norms["l2"].max()) <= 1.0 + 1e-4


def test_gradient_attacks_beat_noise_and_stronger_is_stronger(anet, data):
    x, y = data[0][:300], data[1][:300]
    acc = {a.name: a(anet, x, y).summary()["adv_accuracy"]
           for a in (UniformNoise(0.2), FGSM(0.2), RFGSM(0.2, alpha=0.05), BIM(0.2), PGD(0.2, steps=20),
                     MIFGSM(0.2, steps=10), L2Noise(3.0), PGDL2(3.0, steps=20))}
    assert acc["uniform-noise"] > 0.95 and acc["noise-l2"] > 0.95
    for name in ("fgsm", "rfgsm", "mifgsm", "pgd-l2"):  # each really attacks: far below noise of its budget
        assert acc[name] < acc["uniform-noise" if name != "pgd-l2" else "noise-l2"] - 0.3, (name, acc)
    assert acc["bim"] <= acc["fgsm"] and acc["pgd"] <= acc["fgsm"] and acc["mifgsm"] <= acc["fgsm"], acc


def test_success_counts_only_originally_correct(anet, small):
    x, y = small
    wrong = (y + 1) % 10  # pretend labels: the model is "wrong" on all of them
    s = FGSM(0.3)(anet, x, wrong).summary()
    assert s["clean_accuracy"] == 0 and s["n_clean_correct"] == 0 and s["success_rate"] == 0


def test_deterministic_under_seed(anet, small):
    x, y = small
    a = PGD(0.1, steps=5)(anet, x, y, seed=3).adv
    b = PGD(0.1, steps=5)(anet, x, y, seed=3).adv
    c = PGD(0.1, steps=5)(anet, x, y, seed=4).adv
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_run_attack_batches_equal_one_batch(anet, small):
    x, y = small
    one = run_attack(FGSM(0.1), anet, x, y, batch_size=64)
    many = run_attack(FGSM(0.1), anet, x, y, batch_size=16)
    assert torch.allclose(one.adv, many.adv, atol=1e-6)


def test_craft_images_are_run_attacks_images_without_judging(anet, small):
    x, y = small  # random start, two batches: same batches and seeds as run_attack, and no prediction made
    pgd = PGD(0.1, steps=5, random_start=True)
    judged = run_attack(pgd, anet, x, y, batch_size=40, seed=7)
    calls = []
    hook = anet.register_forward_hook(lambda m, i, o: calls.append(torch.is_grad_enabled()))
    try:
        images = craft_images(pgd, anet, x, y, batch_size=40, seed=7)
    finally:
        hook.remove()
    assert torch.equal(images, judged.adv)
    assert calls and all(calls)  # every forward pass was a gradient step: no clean or adversarial prediction
    assert not torch.equal(images, craft_images(pgd, anet, x, y, batch_size=40, seed=8))


def test_targeted_attacks_reach_target(anet, small):
    x, y = small
    target = (y + 1) % 10
    # CW's tanh space saturates MNIST's exact 0/1 pixels: a larger Adam step keeps the test short.
    for attack in (PGD(0.3, steps=40), CarliniWagnerL2(binary_search_steps=5, steps=100, stepsize=0.1, initial_const=0.1)):
        r = attack(anet, x[:16], y[:16], target=target[:16])
        assert float((r.adv_pred == target[:16]).float().mean()) > 0.9, attack.name


def test_early_stop_and_restarts(anet, small):
    x, y = small
    full = PGD(0.15, steps=20)(anet, x, y).summary()
    early = PGD(0.15, steps=20, early_stop=True)(anet, x, y)
    assert early.summary()["success_rate"] >= full["success_rate"] - 0.02
    assert early.summary()["median_l2"] < full["median_l2"]  # frozen just past the boundary
    runs = []

    class Counted(PGD):
        def _one_run(self, surface, xb, labels, target, generator):
            adv = super()._one_run(surface, xb, labels, target, generator)
            with torch.no_grad():
                runs.append((len(xb), int((surface(adv).argmax(1) != labels).sum())))
            return adv

    single = Counted(0.15, steps=10)(anet, x, y)
    restarts = Counted(0.15, steps=10, restarts=3)(anet, x, y)
    assert runs[0] == runs[1] and runs[0][0] == len(y) and 0 < runs[0][1] < len(y)
    # each restart attacks only the images every earlier run left unbroken, from a new random start
    assert runs[2] == (len(y) - runs[1][1], runs[2][1]) and len(runs) == 4
    assert runs[3][0] == runs[2][0] - runs[2][1]
    kept = single.success  # an image broken by the first run keeps its image
    assert torch.equal(restarts.adv[kept], single.adv[kept])
    assert int(restarts.success.sum()) == runs[1][1] + runs[2][1] + runs[3][1]
    assert runs[2][1] + runs[3][1] > 0  # the restarts broke images the first run could not (seeded: stable)


def test_minimal_attacks_find_small_perturbations(anet, small):
    x, y = small
    df = L2DeepFool()(anet, x, y).summary()
    dfi = LinfDeepFool()(anet, x, y).summary()
    cw = CarliniWagnerL2(binary_search_steps=5, steps=200)(anet, x, y).summary()
    assert df["success_rate"] == 1.0 and dfi["success_rate"] == 1.0 and cw["success_rate"] > 0.9
    pgd = PGD(0.3)(anet, x, y).summary()
    assert df["median_l2"] < 0.5 * pgd["median_l2"] and cw["median_l2"] < 0.5 * pgd["median_l2"]
    assert dfi["median_linf"] < 0.3


def test_cw_confidence_raises_margin(anet, small):
    x, y = small
    fast = dict(binary_search_steps=3, steps=100, stepsize=0.1, initial_const=1.0)
    low = CarliniWagnerL2(confidence=0, **fast)(anet, x[:16], y[:16])
    high = CarliniWagnerL2(confidence=9, **fast)(anet, x[:16], y[:16])
    with torch.no_grad():
        def margin(adv):
            z = anet(adv)
            own = z.gather(1, y[:16, None]).squeeze(1)
            return (z.scatter(1, y[:16, None], -1e9).amax(1) - own)
        ok = high.success & low.success
        assert ok.sum() >= 12
        assert float(margin(high.adv)[ok].mean()) > float(margin(low.adv)[ok].mean()) + 5
        assert float(high.norms["l2"][ok].median()) > float(low.norms["l2"][ok].median())


def test_spatial_identity_grid_does_nothing(anet, small):
    x, y = small
    r = SpatialAttack(max_rotation=0, max_translation=0, num_rotations=1, num_translations=1)(anet, x, y)
    assert torch.allclose(r.adv, x, atol=1e-5) and r.summary()["success_rate"] == 0
    assert SpatialAttack()(anet, x, y).summary()["success_rate"] > 0.5


def test_transfer_threat_model(anet, small):
    x, y = small
    substitute = load_pretrained("a-net", "mnist")[0]  # a copy: transfer from an identical model = white-box
    white = run_attack(FGSM(0.2), anet, x, y)
    transfer = run_attack(FGSM(0.2), Pipeline(anet), x, y, threat="transfer", substitute=substitute)
    assert torch.allclose(white.adv, transfer.adv)
    with pytest.raises(InputError, match="substitute"):
        run_attack(FGSM(0.2), Pipeline(anet), x, y, threat="transfer")


def test_adaptive_bpda_beats_oblivious_through_non_differentiable_defense(anet, data):
    """Acceptance: 2-bit quantisation + 3x3 median filter (non-differentiable, BPDA straight-through).

    Examples that sit just past the boundary (PGD with early stop, DeepFool) are undone by the squeezer
    when the attack ignores it; the adaptive attack through BPDA breaks the pipeline.
    """
    x, y = data[0][:200], data[1][:200]
    pipe = Pipeline(anet, DEFENSES.create("squeeze", bits=2, size=3))
    for attack in (PGD(eps=0.2, steps=40, early_stop=True), L2DeepFool()):
        oblivious = run_attack(attack, pipe, x, y, threat=ThreatModel.WHITE_BOX).summary()
        adaptive = run_attack(attack, pipe, x, y, threat=ThreatModel.ADAPTIVE).summary()
        assert oblivious["surface_adv_accuracy"] < 0.05, attack.name  # the bare classifier is broken...
        assert oblivious["adv_accuracy"] > 0.8, attack.name  # ...the squeezer seems to fix it...
        assert adaptive["adv_accuracy"] < 0.1, attack.name  # ...until the attack sees the squeezer


class Jitter(torch.nn.Module):
    """A randomised stand-in defense: additive Gaussian noise."""

    differentiable, randomized = True, True

    def forward(self, x):
        return (x + 0.3 * torch.randn_like(x)).clamp(0, 1)


def test_eot_averages_random_defense(anet, small):
    x, y = small
    pipe = Pipeline(anet, Jitter())
    s1 = pipe.surface("adaptive", eot_samples=1)
    s8 = pipe.surface("adaptive", eot_samples=16)
    torch.manual_seed(0)
    a, b = s8(x), s8(x)
    c, d = s1(x), s1(x)
    assert (a - b).abs().mean() < 0.5 * (c - d).abs().mean()  # EOT logits vary much less between calls


class BrightnessDetector:
    """A differentiable stand-in detector: flags images whose mean intensity exceeds the threshold."""

    threshold = 0.16

    def score(self, x):
        return x.flatten(1).mean(1)


def test_detector_joint_loss_evades_detector(anet, small):
    x, y = small
    pipe = Pipeline(anet, detector=BrightnessDetector())
    attack = PGD(0.3, steps=60)
    naive = run_attack(attack, pipe, x, y, threat="white-box")
    joint = run_attack(attack, pipe, x, y, threat="adaptive")
    assert float(naive.detected_adv.float().mean()) > 0.5  # the oblivious attack brightens images, gets caught
    assert joint.summary()["success_rate"] > naive.summary()["success_rate"] + 0.3
    assert float(joint.detected_adv.float().mean()) < float(naive.detected_adv.float().mean())


def test_health_checks_pass_on_honest_attack(anet, small):
    x, y = small
    pipe = Pipeline(anet)
    report = check_attack_health(lambda e, s: PGD(eps=e, steps=s), pipe, x, y, eps=0.1, steps=10, warn=False)
    assert report.ok, report.failures


class Masked(torch.nn.Module):
    """Gradient masking by construction: a hard quantiser declared differentiable (no BPDA)."""

    differentiable, randomized = True, False

    def forward(self, x):
        return torch.round(x * 1) / 1 + 0 * x


def test_health_checks_flag_masked_gradients(anet, small):
    x, y = small
    pipe = Pipeline(anet, Masked())
    with pytest.warns(MaskedGradientWarning):
        report = check_attack_health(lambda e, s: PGD(eps=e, steps=s), pipe, x, y, eps=0.3, steps=10)
    failed = {c["check"] for c in report.failures}
    assert "gradients" in failed and "unbounded" in failed


def test_fgsm_search_keeps_the_smallest_fooling_budget(anet, small):
    x, y = small
    r = FGSM(0.3, search=30)(anet, x, y)
    grid = [0.3 * i / 30 for i in range(1, 31)]
    linf = r.norms["linf"]
    for i in torch.nonzero(r.success).flatten()[:20]:
        k = min(range(30), key=lambda j: abs(grid[j] - float(linf[i])))
        if k > 0:  # the previous budget did not fool (up to clamping at the box)
            prev = (x[i:i + 1] + grid[k - 1] * (r.adv[i:i + 1] - x[i:i + 1]).sign()).clamp(0, 1)
            with torch.no_grad():
                assert int(anet(prev).argmax(1)) == int(y[i])
    plain = FGSM(0.3)(anet, x, y)
    assert r.summary()["success_rate"] == plain.summary()["success_rate"]  # same last step, found earlier
    assert float(linf[r.success].mean()) < 0.3 - 1e-3
    with pytest.raises(InputError, match="search"):
        FGSM(0.3, search=-1)


def test_transfer_feedback_stops_on_the_victims_labels(anet, small):
    x, y = small
    victim = load_pretrained("b-net", "mnist")[0]  # crafted on A-net, transferred to B-net
    kw = dict(substitute=anet, batch_size=64)
    for attack in (FGSM(0.4, search=40), BIM(0.4, steps=40, abs_stepsize=0.01, early_stop=True)):
        plain = run_attack(attack, Pipeline(victim), x, y, threat="transfer", **kw)
        fed = run_attack(attack, Pipeline(victim), x, y, threat=ThreatModel.TRANSFER_FEEDBACK, **kw)
        # Stopping on the substitute leaves B-net mostly unfooled; with feedback the attack goes on until it is.
        assert fed.summary()["success_rate"] > plain.summary()["success_rate"] + 0.3, attack.name
        assert float(fed.norms["linf"].mean()) > float(plain.norms["linf"].mean()), attack.name
        stopped_early = fed.norms["linf"] < 0.4 - 1e-4
        assert bool((fed.adv_pred != y)[stopped_early].all())  # it only stops early once B-net is fooled
    with pytest.raises(InputError, match="substitute"):
        run_attack(FGSM(0.2), Pipeline(anet), x, y, threat="transfer-feedback")


def test_adaptive_surface_is_not_run_twice_to_judge(anet, small):
    """The adaptive surface of a deterministic defense is the victim (BPDA changes only the backward pass):
    its labels are not computed a second time; an EOT surface over a randomised defense still is."""
    x, y = small
    calls = []

    class Counted(torch.nn.Module):
        differentiable, randomized = True, False

        def forward(self, z):
            calls.append(len(z))
            return z

    pipe = Pipeline(anet, Counted())
    r = run_attack(FGSM(0.2), pipe, x, y, threat=ThreatModel.ADAPTIVE)
    assert r.surface_adv_pred is None and len(calls) == 3  # clean labels, the gradient pass, adversarial labels
    assert pipe.surface("adaptive").computes(pipe) and not pipe.surface("white-box").computes(pipe)
    jitter = Pipeline(anet, Jitter())
    assert not jitter.surface("adaptive", eot_samples=4).computes(jitter)
    assert run_attack(FGSM(0.2), jitter, x, y, threat=ThreatModel.ADAPTIVE, eot_samples=4).surface_adv_pred is not None


def test_health_checks_flag_an_attack_weaker_with_more_steps_or_eps(anet, small):
    """more-steps and larger-eps fire when more effort leaves more accuracy (here by construction)."""
    x, y = small
    pipe = Pipeline(anet)
    fewer = check_attack_health(lambda e, s: PGD(eps=min(e, 1.0) * 10 / s, steps=10), pipe, x, y, eps=0.2, steps=10,
                                warn=False)  # twice the steps, half the eps (A-net keeps ~97 % at 0.1, ~64 % at 0.2)
    assert "more-steps" in {c["check"] for c in fewer.failures}
    inverted = check_attack_health(lambda e, s: PGD(eps=max(0.35 - e, 0.02), steps=s), pipe, x, y, eps=0.2,
                                   steps=10, warn=False)  # a larger eps asked for, a smaller one used
    assert "larger-eps" in {c["check"] for c in inverted.failures}
    assert "more-steps" not in {c["check"] for c in inverted.failures}
