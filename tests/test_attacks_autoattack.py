"""APGD, Square, FAB-T and the AutoAttack ensemble on a tiny MLP trained in a few seconds on MNIST."""

import pytest
import torch
from torch import nn

from advshield.attacks import (APGD, APGDDLR, APGDT, ATTACKS, FABT, PGD, PGDL2, AutoAttack, CarliniWagnerL2,
                               Pipeline, Square,
                               create_attack, member_robust_accuracy, run_attack)
from advshield.attacks.apgd import checkpoints, dlr_loss
from advshield.attacks.base import Attack, AttackResult, Norm
from advshield.attacks.checks import AttackError
from advshield.attacks.fab import project_to_hyperplane
from advshield.attacks.spatial import SpatialAttack
from advshield.data import load_dataset
from advshield.errors import InputError


def train_tiny(seed: int = 0, epochs: int = 8):
    """A 784-32-10 MLP trained on MNIST test images 200..1000 (about 90 % on images 0..200)."""
    x, y = load_dataset("mnist", "test").tensors()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    xt, yt = x[200:], y[200:]
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 50):
            idx = perm[i:i + 50]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), x[:200], y[:200]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and two threads on a busy 2-core machine run 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return train_tiny()


@pytest.fixture(scope="module")
def batch(tiny):
    model, x, y = tiny
    return model, x[:64], y[:64]


def robust(attack, model, x, y, **kw):
    return run_attack(attack, model, x, y, **kw).summary()["adv_accuracy"]


def test_registered_with_papers():
    for name in ("apgd-ce", "apgd-dlr", "apgd-t", "square", "fab-t", "autoattack"):
        cls = ATTACKS.entry(name).factory
        assert "Paper" in cls.__doc__ and "Defaults" in cls.__doc__, name
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]  # p_j of Croce & Hein 2020, Sec. 3.2
    assert create_attack("apgd-t", eps=0.1, norm="l2").norm is Norm.L2


def test_dlr_is_shift_and_scale_invariant():
    z = torch.randn(8, 10)
    y, t = torch.arange(8) % 10, (torch.arange(8) + 3) % 10
    for target in (None, t):
        assert torch.allclose(dlr_loss(z, y, target), dlr_loss(3 * z + 7, y, target), atol=1e-5)


@pytest.mark.parametrize("make", [lambda: APGD(0.1, steps=10), lambda: APGDDLR(0.1, steps=10),
                                  lambda: APGDT(0.1, steps=10, n_target_classes=2), lambda: Square(0.1, n_queries=50),
                                  lambda: FABT(0.1, steps=10, n_target_classes=2),
                                  lambda: APGD(2.0, norm="l2", steps=10), lambda: Square(2.0, norm="l2", n_queries=50),
                                  lambda: FABT(2.0, norm="l2", steps=10, n_target_classes=2),
                                  lambda: AutoAttack(0.1, version="fast")], ids=lambda m: repr(m()))
def test_budget_box_and_seed(batch, make):
    model, x, y = batch
    attack = make()
    a, b, c = (attack(model, x, y, seed=s) for s in (3, 3, 4))
    norm = "linf" if attack.norm is Norm.LINF else "l2"
    assert float(a.norms[norm].max()) <= attack.eps + 1e-5
    assert float(a.adv.min()) >= 0 and float(a.adv.max()) <= 1
    assert torch.equal(a.adv, b.adv)
    assert attack.name == "fab-t" or not torch.equal(a.adv, c.adv)  # FAB-T's first run has no random start
    assert a.summary()["success_rate"] > 0.2


def test_targeted_reaches_target(batch):
    model, x, y = batch
    target = (y + 1) % 10
    reached = {}
    for attack in (APGD(0.3, steps=30), Square(0.3, n_queries=1000), APGDT(0.3, steps=100),
                   APGD(0.3, steps=100, loss="dlr")):
        r = attack(model, x[:16], y[:16], target=target[:16])
        reached[f"{attack.name}-{attack.loss if hasattr(attack, 'loss') else ''}"] = float(
            (r.adv_pred == target[:16]).float().mean())
    assert reached["apgd-ce-ce"] >= 0.9 and reached["square-"] >= 0.8, reached  # one of 16 is out of reach
    # The targeted DLR (Eq. 7) only pushes z_t above z_y, not above every class: weaker as a targeted attack.
    assert reached["apgd-t-dlr"] >= 0.75 and reached["apgd-ce-dlr"] >= 0.75, reached


def test_early_exit_keeps_the_robust_accuracy(batch):
    model, x, y = batch
    for eps in (0.05, 0.08):
        counted = {}
        for stop in (True, False):
            counted[stop] = Counting(model)
            counted[stop].result = run_attack(APGD(eps, steps=30, early_stop=stop), counted[stop], x, y)
        early, full = counted[True].result, counted[False].result
        assert abs(early.summary()["adv_accuracy"] - full.summary()["adv_accuracy"]) <= 1 / 64
        assert int((early.success != full.success).sum()) <= 1  # both keep each sample's first fooling iterate
        assert 0 < int(early.success.sum()) < len(y)  # some broken, some not: the exit has something to skip
        assert counted[True].images < 0.8 * counted[False].images  # and it skipped work


def test_apgd_at_least_as_strong_as_pgd(tiny):
    model, x, y = tiny
    for eps in (0.04, 0.07):
        assert robust(APGD(eps, steps=20), model, x, y) <= robust(PGD(eps, steps=20), model, x, y) + 0.01
    assert (robust(APGD(1.0, norm="l2", steps=20), model, x, y)
            <= robust(PGDL2(1.0, steps=20), model, x, y) + 0.01)


def test_ensemble_is_the_per_sample_worst_case(tiny):
    model, x, y = tiny
    eps = 0.05
    members = [APGD(eps, steps=100), APGDT(eps, steps=100, n_target_classes=3)]
    singles = [run_attack(m, model, x, y).adv_pred == y for m in members]
    ens = run_attack(AutoAttack(eps, version="fast"), model, x, y, batch_size=64)  # several batches: concat
    assert ens.info["members"] == ["apgd-ce", "apgd-t"] and len(ens.info["broken_by"]) == len(x)
    after = member_robust_accuracy(ens)
    assert after["apgd-ce"] == pytest.approx(float(singles[0].float().mean()))
    assert after["apgd-t"] == pytest.approx(float((singles[0] & singles[1]).float().mean()), abs=1 / len(x))
    assert ens.summary()["adv_accuracy"] == pytest.approx(after["apgd-t"])
    assert ens.summary()["robust_accuracy_after"] == after
    assert after["clean"] >= after["apgd-ce"] >= after["apgd-t"]


def test_standard_autoattack_runs_all_members(batch):
    """Each member runs, in order, on exactly the images every earlier member left robust, and an image a member
    is credited with is misclassified by that member's own output."""
    model, x, y = batch
    seen = []

    class Recorded(AutoAttack):
        def members(self, version=None):
            out = super().members(version)
            for m in out:
                def perturb(surface, xb, labels, target, generator, _m=m, _own=m.perturb):
                    adv = _own(surface, xb, labels, target, generator)
                    seen.append((_m.name, len(xb)))
                    return adv
                m.perturb = perturb
            return out

    r = run_attack(Recorded(0.04), model, x[:24], y[:24])
    after = member_robust_accuracy(r)
    assert list(after) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert [name for name, _ in seen] == ["apgd-ce", "apgd-t", "fab-t", "square"]  # all four ran
    assert [n for _, n in seen] == [round(after[k] * 24) for k in ("clean", "apgd-ce", "apgd-t", "fab-t")]
    broken_by = r.info["broken_by"]
    with torch.no_grad():
        assert torch.all(model(r.adv[broken_by >= 0]).argmax(1) != y[:24][broken_by >= 0])
    assert torch.equal(r.adv[broken_by == -1], x[:24][broken_by == -1])  # robust images keep the clean image
    assert float(r.norms["linf"].max()) <= 0.04 + 1e-6


def test_square_uses_no_gradient(batch):
    model, x, y = batch

    class NoGrad(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, z):
            assert not torch.is_grad_enabled()
            return self.model(z)

    r = Square(0.1, n_queries=100)(NoGrad(), x, y)
    assert r.summary()["success_rate"] > 0.3


def test_fab_finds_small_perturbations(batch):
    model, x, y = batch
    r = FABT(steps=30, n_target_classes=3)(model, x, y)  # eps = None: minimal adversarials
    s = r.summary()
    assert s["success_rate"] > 0.95
    assert s["median_linf"] < 0.1
    bounded = FABT(0.05, steps=30, n_target_classes=3)(model, x, y)
    fooled = bounded.success
    assert float(bounded.norms["linf"][fooled].max()) <= 0.05 + 1e-6
    assert torch.equal(bounded.adv[~fooled & bounded.clean_correct], x[~fooled & bounded.clean_correct])
    untargeted = FABT(steps=30, n_target_classes=0)(model, x, y).summary()  # nearest of all boundaries
    assert untargeted["success_rate"] > 0.95 and untargeted["median_linf"] < 0.1


class Counting(nn.Module):
    """Counts the images the model is run on (forward passes, with or without gradients)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.images, self.calls = model, 0, 0

    def forward(self, z):
        self.images, self.calls = self.images + len(z), self.calls + 1
        return self.model(z)


def test_fab_early_exit_keeps_the_verdict_and_saves_work(tiny):
    """FAB-T with eps drops a sample once it has an adversarial within eps: the same samples end robust
    (the first run has no random start, so both runs are deterministic), for fewer model passes."""
    model, x, y = tiny
    runs = {}
    for early in (False, True):
        counted = Counting(model)
        r = run_attack(FABT(0.1, steps=40, n_target_classes=3, early_stop=early), counted, x[:100], y[:100])
        runs[early] = (r.success, counted.images)
    assert 0 < int(runs[True][0].sum()) < 100  # some samples fooled, some not: the check can fail
    assert torch.equal(runs[True][0], runs[False][0])
    assert runs[True][1] < 0.6 * runs[False][1]


def test_cw_with_eps_keeps_the_verdict_and_saves_work(tiny):
    """CW-L2 with an L2 eps stops a sample at its first adversarial within eps: exactly the samples the full
    minimum-norm search breaks within eps are broken (deterministic: no random start), for fewer model passes;
    images without an adversarial within eps come back clean."""
    model, x, y = tiny
    eps, cw = 2.0, dict(binary_search_steps=4, steps=60, stepsize=0.05, initial_const=0.1)
    full_counted, bounded_counted = Counting(model), Counting(model)
    full = run_attack(CarliniWagnerL2(**cw), full_counted, x[:100], y[:100])
    bounded = run_attack(CarliniWagnerL2(**cw, eps=eps), bounded_counted, x[:100], y[:100])
    within = full.success & (full.norms["l2"] <= eps)
    assert 10 < int(within.sum()) < int(full.success.sum())  # some broken within eps, some only beyond it
    assert torch.equal(bounded.success, within)
    assert float(bounded.norms["l2"][bounded.success].max()) <= eps + 1e-5
    kept = ~bounded.success & bounded.clean_correct
    assert torch.equal(bounded.adv[kept], x[:100][kept])
    assert bounded_counted.images < 0.9 * full_counted.images  # 0.82 when written


@pytest.mark.parametrize("eps", [0.04, 0.06])
def test_apgd_t_parallel_targets_same_verdict_fewer_calls(tiny, eps):
    """APGD-T's target runs sharing a batch leave the same points robust as the runs one after the other
    (their random starts differ, so equal counts rather than equal images), in fewer model calls; the
    images attacked stay the same (the grouped rows exit together)."""
    model, x, y = tiny
    out = {}
    for parallel in (False, True):
        counted, attack = Counting(model), APGDT(eps, steps=30, n_target_classes=9, parallel_targets=parallel)
        attack.max_rows = 200  # as AutoAttack sets it: the ensemble's batch
        r = run_attack(attack, counted, x[:100], y[:100])
        out[parallel] = (float(r.summary()["adv_accuracy"]), counted.calls)
    assert 0.05 < out[True][0] < 0.9  # some robust, some not: the comparison can fail
    assert out[True][0] <= out[False][0] + 0.01  # never weaker than one after the other (one image of 100)
    assert out[True][1] < 0.7 * out[False][1]


def test_fab_parallel_targets_identical_verdict_fewer_calls(tiny):
    """FAB-T's target runs sharing a batch (max_rows, as AutoAttack sets it) fool exactly the same samples
    (one restart: no random start, every run deterministic), in fewer model calls."""
    model, x, y = tiny
    out = {}
    for parallel in (False, True):
        counted, attack = Counting(model), FABT(0.06, steps=40, n_target_classes=9, parallel_targets=parallel)
        attack.max_rows = 300
        r = run_attack(attack, counted, x[:100], y[:100])
        out[parallel] = (r.success, counted.calls)
    assert 0 < int(out[True][0].sum()) < 100
    assert torch.equal(out[True][0], out[False][0])
    assert out[True][1] < 0.5 * out[False][1]


def test_hyperplane_projection_is_exact():
    g = torch.Generator().manual_seed(0)
    p, w = torch.rand(50, 40, generator=g), torch.randn(50, 40, generator=g)
    b = (w * torch.rand(50, 40, generator=g)).sum(1)  # a point of the box lies on each hyperplane
    for norm in (Norm.LINF, Norm.L2):
        d = project_to_hyperplane(p, w, b, norm)
        assert torch.allclose((w * (p + d)).sum(1), b, atol=1e-4)
        assert float((p + d).min()) >= 0 and float((p + d).max()) <= 1


@pytest.mark.parametrize("make", [lambda: APGD(eps=float("nan")), lambda: APGD(eps=float("inf"), norm="l2"),
                                  lambda: PGD(0.1, rel_stepsize=float("nan")),
                                  lambda: PGD(0.1, abs_stepsize=float("inf")),
                                  lambda: create_attack("mifgsm", decay=float("nan")),
                                  lambda: create_attack("cw", confidence=float("inf")),
                                  lambda: SpatialAttack(max_rotation=float("nan")),
                                  lambda: Square(0.1, p_init=float("nan")), lambda: FABT(eta=float("inf"))])
def test_non_finite_parameters_refused(make):
    with pytest.raises(InputError, match="finite"):
        make()


def test_non_finite_message_names_the_parameter():
    with pytest.raises(InputError, match="rel_stepsize"):
        PGD(0.1, rel_stepsize=float("nan"))
    with pytest.raises(InputError, match="decay"):
        create_attack("mifgsm", decay=float("inf"))


class Cheat(Attack):
    """A broken attack for the output checks. Defaults: eps = 0.1."""

    name, norm = "cheat", Norm.LINF

    def __init__(self, eps: float = 0.1, mode: str = "budget") -> None:
        self.eps, self.mode = eps, mode

    def perturb(self, surface, x, labels, target, generator):
        if self.mode == "budget":
            return (x + 2 * self.eps).clamp(0, 1)
        if self.mode == "box":
            return x + 0.01
        return x.masked_fill(x > 0.5, float("nan"))


@pytest.mark.parametrize("mode,match", [("budget", "budget"), ("box", r"\[0, 1\]"), ("nan", "non-finite")])
def test_output_checks_refuse_invalid_images(batch, mode, match):
    model, x, y = batch
    with pytest.raises(AttackError, match=match):
        Cheat(mode=mode)(model, x, y)


def test_result_info_concatenates_per_sample_tensors(batch):
    model, x, y = batch
    parts = [AutoAttack(0.05, version="fast")(model, x[i:i + 16], y[i:i + 16]) for i in (0, 16)]
    whole = AttackResult.concat(parts)
    assert torch.equal(whole.info["broken_by"], torch.cat([p.info["broken_by"] for p in parts]))


def test_rand_version_attacks_with_eot_over_20_draws(batch):
    model, x, y = batch

    class Jitter(nn.Module):
        """A randomised defense that records the largest batch it saw."""

        differentiable, randomized, largest = True, True, 0

        def forward(self, z):
            self.largest = max(self.largest, len(z))
            return (z + 0.1 * torch.randn_like(z)).clamp(0, 1)

    jitter = Jitter()
    r = run_attack(AutoAttack(0.1, version="rand"), Pipeline(model, jitter), x[:8], y[:8], threat="adaptive",
                   eot_samples=1)
    assert jitter.largest >= 20 * 8  # the surface was rebuilt with 20 EOT draws per image
    assert list(member_robust_accuracy(r)) == ["clean", "apgd-ce", "apgd-dlr"]


def test_auto_version_is_rand_then_standard_through_a_randomised_defense_else_standard(batch):
    """'auto' (the ensemble every evaluation adds) runs the reference's rand version, then the standard members it
    lacks, with EOT over 20 draws, through a defense that says it is randomised, and the standard members
    through a deterministic one."""
    model, x, y = batch

    class Jitter(nn.Module):
        differentiable, largest = True, 0

        def __init__(self, randomized: bool) -> None:
            super().__init__()
            self.randomized = randomized

        def forward(self, z):
            self.largest = max(self.largest, len(z))
            return (z + 0.1 * torch.randn_like(z)).clamp(0, 1) if self.randomized else z

    noisy, plain = Jitter(True), Jitter(False)
    r = run_attack(AutoAttack(0.1, version="auto"), Pipeline(model, noisy), x[:8], y[:8], threat="adaptive",
                   eot_samples=1)
    assert r.info["version"] == "rand+standard" and noisy.largest >= 20 * 8
    assert list(member_robust_accuracy(r))[1:] == ["apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square"]
    assert r.summary()["version_run"] == "rand+standard"
    r = run_attack(AutoAttack(0.1, version="auto"), Pipeline(model, plain), x[:8], y[:8], threat="adaptive",
                   eot_samples=1)
    assert r.info["version"] == "standard" and plain.largest < 20 * 8
    assert r.info["members"] == [m.name for m in AutoAttack(0.1).members()]  # apgd-ce, apgd-t, fab-t, square
    with pytest.raises(InputError, match="auto"):
        AutoAttack(0.1, version="rnd")
