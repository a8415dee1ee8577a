"""The phases that used to leave the progress bar standing still report ``(what, done, total)``: detector fitting and
scoring (Defense-GAN's latent search step by step), the propagation measurement, the health checks of an adaptive
setting and the robust-accuracy card; and reporting changes no number."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advshield.analysis.propagation import batched, propagation
from advshield.analysis.run import run_propagation
from advshield.attacks import Pipeline
from advshield.data import ImageDataset, load_dataset
from advshield.detectors import DETECTORS, build_detector, defense_gan
from advshield.detectors.defense_gan import DefenseGANDetector, Generator, Projection, train_wgan_gp
from advshield.evaluation.detection import detection_experiment, reconstruction_stats
from advshield.experiment import AttackSetting, RunContext
from advshield.experiment.health import CHECK_STEPS, setting_health
from advshield.training.robust_card import robust_accuracy_card
from advshield.zoo import load_pretrained
from test_propagation import UserNet


class Recorder:
    """A progress callback that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, what: str, done: int, total: int) -> None:
        self.calls.append((what, done, total))

    def two(self, what: str):
        """The ``(done, total)`` form, under ``what``."""
        return lambda done, total: self(what, done, total)

    def whats(self) -> list[str]:
        return [w for w, _, _ in self.calls]

    def check_bounds(self) -> None:
        assert self.calls
        for what, done, total in self.calls:
            assert isinstance(done, int) and isinstance(total, int), (what, done, total)
            assert 0 <= done <= total, (what, done, total)

    def check_increasing(self) -> None:
        """Within each phase (the same ``what``), ``done`` never goes back."""
        last: dict[str, int] = {}
        for what, done, _ in self.calls:
            assert done >= last.get(what, 0), (what, done, last[what])
            last[what] = done


@pytest.fixture(scope="module")
def a_net():
    return load_pretrained("a-net")


@pytest.fixture(scope="module")
def tiny():
    """A linear classifier of 8x8 images and 8 images it classifies right (their labels are its predictions)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 5)).eval()
    images = np.random.default_rng(0).integers(0, 256, (8, 1, 8, 8)).astype(np.uint8)
    with torch.no_grad():
        labels = net(torch.from_numpy(images).float() / 255).argmax(1).numpy()
    return net, ImageDataset(images, labels, list("abcde"), "tiny")


def _ctx(tmp_path, progress=None) -> RunContext:
    return RunContext(store=tmp_path / "store", batch_size=50, log=lambda s: None, progress=progress)


def test_detection_reports_fitting_scoring_and_crafting(tmp_path):
    rec = Recorder()
    fgsm = AttackSetting("fgsm", {"eps": 0.3})
    detection_experiment("a-net", "magnet-error", [fgsm], tmp_path / "out", _ctx(tmp_path, rec), n_train=130,
                         n_calibration=20, epochs=2, n=10)
    rec.check_bounds()
    rec.check_increasing()
    whats = rec.whats()
    steps = math.ceil(130 / 128)  # MagNet's autoencoder batches
    for epoch in (1, 2):
        fit = [(d, t) for w, d, t in rec.calls if w == f"fit magnet-error autoencoder epoch {epoch}/2"]
        assert fit == [(k, steps) for k in range(1, steps + 1)]
    for phase in ("held-out clean (calibration)", "clean training images (max rule)", "clean test images", "fgsm"):
        calls = [(d, t) for w, d, t in rec.calls if w == f"score magnet-error: {phase}"]
        assert len(calls) >= 2 and calls[0][0] == 0 and calls[-1][0] == calls[-1][1], (phase, calls)
    assert any(w.startswith("fgsm (white-box) on ") for w in whats)  # crafting, as before
    assert whats.index("fit magnet-error autoencoder epoch 1/2") < whats.index(
        "score magnet-error: held-out clean (calibration)") < whats.index("score magnet-error: clean test images")


def test_fitting_reports_its_phases_and_changes_no_number(a_net, monkeypatch):
    clean = load_dataset("mnist", "train").head(130).tensors()[0]
    rec, fitted = Recorder(), []
    for progress in (rec, None):
        det, history = build_detector("magnet-error", a_net[0], clean, epochs=1, seed=0, device=torch.device("cpu"),
                                      progress=progress)
        fitted.append((det.state_dict(), history))
    assert rec.calls == [("fit magnet-error autoencoder epoch 1/1", k, 2) for k in (1, 2)]
    assert fitted[0][1] == fitted[1][1]
    torch.testing.assert_close(fitted[0][0], fitted[1][0], rtol=0, atol=0, equal_nan=True)  # NaN: uncalibrated
    clean = clean[:8]
    rec = Recorder()
    build_detector("cmag-ssim", a_net[0], clean, epochs=1, seed=0, device=torch.device("cpu"), progress=rec)
    assert rec.calls == [("fit cmag-ssim fmr+lr epoch 1/1", 1, 1), ("fit cmag-ssim gr epoch 1/1", 1, 1)]
    rec = Recorder()  # Defense-GAN: one report per generator iteration, on a small generator
    train_wgan_gp(Generator((1, 8, 8), z_dim=4, width=4), torch.rand(16, 1, 8, 8), iterations=2, batch_size=4,
                  progress=rec)
    assert rec.calls == [("wgan-gp iterations", 1, 2), ("wgan-gp iterations", 2, 2)]
    seen = {}  # and its registered fit hands the callback over
    monkeypatch.setattr(defense_gan, "train_wgan_gp", lambda *a, progress=None, **kw: seen.setdefault("p", progress))
    det = DefenseGANDetector(Generator((1, 8, 8), z_dim=4, width=4))
    DETECTORS.entry("defense-gan").meta["fit"](det, torch.rand(64, 1, 8, 8), epochs=1, seed=0, device="cpu",
                                               progress=rec)
    assert seen["p"] is rec


def test_defense_gan_scoring_reports_every_step_of_the_latent_search():
    torch.manual_seed(0)
    det = DefenseGANDetector(Generator((1, 16, 16), z_dim=4, width=4), Projection(steps=3, restarts=2), seed=0)
    x = torch.rand(250, 1, 16, 16)  # two batches of 200 and 50
    rec = Recorder()
    scores, stats = reconstruction_stats(det, x, torch.device("cpu"), rec.two("score defense-gan: clean"))
    assert [(d, t) for _, d, t in rec.calls] == [(0, 6), (1, 6), (2, 6), (3, 6), (3, 6), (4, 6), (5, 6), (6, 6),
                                                 (6, 6)]
    assert det.step_progress is None  # the hook is gone after the pass
    quiet_scores, quiet_stats = reconstruction_stats(det, x, torch.device("cpu"))
    assert torch.equal(scores, quiet_scores) and stats == quiet_stats
    rec = Recorder()
    assert torch.equal(det.scores(x.split(200), progress=rec.two("calibration")), quiet_scores)
    rec.check_bounds()
    assert rec.calls[-1] == ("calibration", 6, 6) and len(rec.calls) == 9


def test_propagation_reports_every_batch_and_forward_pass():
    torch.manual_seed(0)
    net, x = UserNet(), torch.rand(10, 1, 8, 8)
    y = net(x).argmax(1)
    advs = {"small": (x + 0.01).clamp(0, 1), "big": (x + 0.3 * torch.sign(torch.randn_like(x))).clamp(0, 1)}
    layers = ["body.1", "body.3", "fc"]
    rec = Recorder()
    res = propagation(net, layers, list(batched(x, advs, y, 4)), nn.Identity(), progress=rec)
    passes = ["clean", "small", "small+denoiser", "big", "big+denoiser", "clean+denoiser"]
    assert rec.whats() == [f"batch {b}/3: {p}" for b in (1, 2, 3) for p in passes] + ["measured"]
    assert [(d, t) for _, d, t in rec.calls] == [(k, 18) for k in range(18)] + [(18, 18)]
    quiet = propagation(net, layers, batched(x, advs, y, 4), nn.Identity())
    assert quiet.to_dict() == res.to_dict()
    rec = Recorder()  # a stream without a length: the total grows batch by batch, never below done
    propagation(net, layers, batched(x, advs, y, 4), nn.Identity(), progress=rec)
    rec.check_bounds()
    assert rec.calls[0] == ("batch 1: clean", 0, 6) and rec.calls[-1] == ("measured", 18, 18)


def test_run_propagation_reports_through_the_context(tmp_path):
    rec = Recorder()
    run_propagation("a-net", {"fgsm": {"eps": 0.1}}, tmp_path / "out", _ctx(tmp_path, rec), n=20, batch_size=10)
    rec.check_bounds()
    measuring = [w for w in rec.whats() if w.startswith("propagation ")]
    assert measuring[0].endswith("batch 1/2: clean") and measuring[-1].endswith("measured")
    assert any(w.endswith("batch 2/2: fgsm") for w in measuring)
    assert any(w.startswith("fgsm (white-box) on ") for w in rec.whats())


def test_setting_health_reports_each_check_and_changes_no_number(tmp_path, tiny):
    net, data = tiny
    setting = AttackSetting("pgd", {"eps": 0.1, "steps": 2}, "adaptive")
    rec = Recorder()
    health = setting_health(setting, Pipeline(net), data, _ctx(tmp_path, rec), n=8)
    assert rec.calls == [(f"checks pgd: {step}", k, 6) for k, step in enumerate(CHECK_STEPS)] + [
        ("checks pgd: done", 6, 6)]
    assert health == setting_health(setting, Pipeline(net), data, _ctx(tmp_path), n=8)
    rec = Recorder()  # an attack without a steps budget is checked through APGD-CE, and says so
    setting_health(AttackSetting("fgsm", {"eps": 0.1}, "adaptive"), Pipeline(net), data, _ctx(tmp_path, rec), n=4)
    assert rec.calls[0] == ("checks fgsm through apgd-ce: convergence", 0, 6) and rec.calls[-1][1:] == (6, 6)


def test_settings_checked_with_the_same_runs_run_them_once(tmp_path, tiny):
    """FGSM and the AutoAttack ensemble at one eps are both checked with APGD-CE at that budget: with a shared
    dict the second setting reuses the first one's checks (no run starts), numbers equal to checking it alone;
    a setting with other runs (PGD) or another eps is checked on its own."""
    net, data = tiny
    fgsm, ensemble = (AttackSetting(a, {"eps": 0.1}, "adaptive") for a in ("fgsm", "autoattack"))
    shared, rec = {}, Recorder()
    first = setting_health(fgsm, Pipeline(net), data, _ctx(tmp_path), n=8, shared=shared)
    again = setting_health(ensemble, Pipeline(net), data, _ctx(tmp_path, rec), n=8, shared=shared)
    assert rec.calls == [] and again.pop("same_checks_as") == "adaptive fgsm" and again == first
    assert again == setting_health(ensemble, Pipeline(net), data, _ctx(tmp_path), n=8)
    for other in (AttackSetting("pgd", {"eps": 0.1, "steps": 2}, "adaptive"),
                  AttackSetting("autoattack", {"eps": 0.2}, "adaptive")):
        rec = Recorder()
        assert "same_checks_as" not in setting_health(other, Pipeline(net), data, _ctx(tmp_path, rec), n=8,
                                                      shared=shared)
        assert rec.calls


def test_an_evaluation_shares_the_checks_of_settings_with_the_same_runs(tmp_path, tiny):
    """Through the public evaluate(): the ensemble's checks are FGSM's (same eps), marked as such in the card."""
    import advshield
    net, data = tiny
    x, y = data.tensors(slice(0, 8))
    result = advshield.evaluate(net, (x, y), nn.Hardtanh(0.0, 1.0).eval(), attacks=("fgsm", "autoattack"),
                                threats=("adaptive",), attack_params={"fgsm": {"eps": 0.1}, "autoattack": {"eps": 0.1}},
                                store=tmp_path / "store", checks=8)
    health = result.card["health"]
    assert health["adaptive autoattack"]["same_checks_as"] == "adaptive fgsm"
    assert health["adaptive autoattack"]["checks"] == health["adaptive fgsm"]["checks"]
    assert "same_checks_as" not in health["adaptive fgsm"]


def test_robust_card_reports_members_and_checks_and_changes_no_number(tiny):
    net, test = tiny
    rec = Recorder()  # at eps 0.02 both members attack in both batches of 3 images
    card = robust_accuracy_card(net, test, 0.02, 6, "fast", n_checks=0, batch_size=3, progress=rec)
    assert rec.calls == [(f"robust card: autoattack {m} (batch {b}/2)", 2 * (b - 1) + k, 4) for b in (1, 2)
                         for k, m in enumerate(("apgd-ce", "apgd-t"))] + [("robust card: autoattack done", 1, 1)]
    quiet = robust_accuracy_card(net, test, 0.02, 6, "fast", n_checks=0, batch_size=3)
    assert {k: v for k, v in quiet.items() if k != "seconds"} == {k: v for k, v in card.items() if k != "seconds"}
    rec = Recorder()  # at eps 0.05 APGD-CE breaks every image: APGD-T has nothing left to attack; then the checks
    card = robust_accuracy_card(net, test, 0.05, 6, "fast", n_checks=4, batch_size=3, progress=rec)
    rec.check_bounds()
    rec.check_increasing()
    assert rec.calls[:3] == [("robust card: autoattack apgd-ce (batch 1/2)", 0, 4),
                             ("robust card: autoattack apgd-ce (batch 2/2)", 2, 4),
                             ("robust card: autoattack done", 1, 1)]
    assert rec.calls[3:] == [(f"robust card checks apgd-ce: {step}", k, 6) for k, step in enumerate(CHECK_STEPS)] + [
        ("robust card checks apgd-ce: done", 6, 6)]
    assert card["health"]["n"] == 4


def test_adversarial_training_hands_its_progress_to_the_robust_card(tmp_path, monkeypatch):
    from advshield.training import TrainConfig, train_target, trainer

    seen = {}

    def card(*args, progress=None, **kw):  # the real card is tested above; here: what train_target passes it
        seen["progress"] = progress
        progress("robust card: autoattack done", 1, 1)
        return {"robust_accuracy": 0.0, "n": 4}

    monkeypatch.setattr(trainer, "robust_accuracy_card", card)
    cfg = TrainConfig(n_train=40, epochs=1, batch_size=20, val_fraction=0.25,
                      adversarial={"method": "pgd", "eps": 0.1, "steps": 1, "val_n": 5, "val_steps": 1, "eval_n": 4,
                                   "eval_version": "fast"})
    rec = Recorder()
    train_target(cfg, tmp_path / "run", progress=rec, log=lambda s: None)
    assert seen["progress"] is rec
    assert rec.calls[0] == ("epoch 1/1", 1, 2) and rec.calls[-1] == ("robust card: autoattack done", 1, 1)


def test_robust_card_members_keep_what_the_ensemble_sets(tiny, monkeypatch):
    """With progress the members are still the objects AutoAttack configures: APGD-T sees the ensemble's
    batch as max_rows (it sizes its shared target runs from it), as without progress."""
    from advshield.attacks.apgd import APGDT

    net, test = tiny
    seen, perturb = {}, APGDT.perturb

    def record(self, surface, x, *args, **kwargs):
        seen.setdefault(bool(seen.get("quiet_done")), []).append(self.max_rows)
        return perturb(self, surface, x, *args, **kwargs)

    monkeypatch.setattr(APGDT, "perturb", record)
    robust_accuracy_card(net, test, 0.02, 6, "fast", n_checks=0, batch_size=3)
    seen["quiet_done"] = True
    robust_accuracy_card(net, test, 0.02, 6, "fast", n_checks=0, batch_size=3, progress=Recorder())
    assert seen[False] == seen[True] == [3, 3]
