import sys
from pathlib import Path

import pytest
import yaml

from advshield.errors import AdvShieldError
from advshield.experiment import RunContext
from advshield.reproduce import builtin_presets, load_preset, reproduce

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import assert_one_line_error, run_cli  # noqa: E402


def _ctx(tmp_path, log):
    return RunContext(store=tmp_path / "out" / "adversarial", log=log)

TINY = {
    "name": "tiny", "title": "Tiny CRU-Net", "paper": "cru-net.txt", "dataset": "mnist",
    "defense": "cru-net", "defense_params": {"width": 8}, "train_for": ["a-net"],
    "attacks": {"fgsm": {"label": "FGSM", "params": {"eps": 0.3}},
                "deepfool": {"label": "DFA", "params": {"steps": 20, "candidates": 3}, "max_test": 20}},
    "adaptive_attacks": ["fgsm"],
    "training": {"batch_size": 32, "clean_proportion": 0.5},
    "evaluations": [{"target": "a-net", "defense_of": "a-net", "threats": ["white-box", "transfer:b-net", "adaptive"]}],
    "full": {"n_train": 1000, "n_val": 100, "epochs": 2, "n_test": None, "n_adaptive": 500},
    "fast": {"n_train": 150, "n_val": 30, "epochs": 1, "n_test": 40, "n_adaptive": 20, "n_checks": 10},
    "paper_results": [{"table": "Table 2", "target": "a-net", "threat": "white-box", "metric": "restored_accuracy",
                       "values": {"fgsm": 0.9935}}],
    "notes": ["a note for the report"],
}


def _write(tmp_path, data) -> Path:
    p = tmp_path / "preset.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_builtin_presets_validate():
    names = set(builtin_presets())
    assert {"cru-net-mnist", "cru-net-mnist-guided", "cru-net-cifar10", "cru-net-cifar10-guided", "dir-mnist",
            "dir-cifar10", "dkn-mnist", "dkn-cifar10"} <= names
    for n in names:
        p = load_preset(n)
        if p.kind == "propagation":
            assert p.fast.n < p.full.n and p.substitute and p.reference
        else:
            assert p.fast.n_train < p.full.n_train


@pytest.mark.parametrize("paper_preset", ["cru-net-mnist", "cru-net-cifar10"])
def test_guided_preset_reuses_the_paper_presets_attacks_and_budgets(paper_preset):
    """<preset>-guided judges the variants on the very sets <preset> crafts (a shared --store)."""
    paper, guided = load_preset(paper_preset), load_preset(f"{paper_preset}-guided")
    for field in ("dataset", "defense", "defense_params", "train_for", "attacks", "adaptive_attacks", "training",
                  "full", "fast"):
        assert getattr(guided, field) == getattr(paper, field), field
    assert all(ev.restorer for ev in guided.evaluations)
    assert not any(ev.restorer for ev in paper.evaluations), "the paper's preset evaluates the paper's restorers only"
    assert (paper.trained_targets, guided.trained_targets) == (paper.train_for, []), "guided evaluates zoo variants"


def test_extends_starts_from_another_preset_and_replaces_top_level_keys(tmp_path):
    base = _write(tmp_path, TINY)
    derived = tmp_path / "derived.yaml"
    derived.write_text(yaml.safe_dump({"extends": base.name, "name": "tiny-derived", "notes": []}))
    p = load_preset(derived)
    assert (p.name, p.notes, p.attacks) == ("tiny-derived", [], load_preset(base).attacks)
    derived.write_text(yaml.safe_dump({"extends": base.name, "epochz": 3}))
    with pytest.raises(AdvShieldError, match="derived.yaml: invalid preset: epochz"):
        load_preset(derived)
    loop = tmp_path / "loop.yaml"
    loop.write_text(yaml.safe_dump({"extends": "loop.yaml"}))
    with pytest.raises(AdvShieldError, match="comes back to loop.yaml"):
        load_preset(loop)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(epochz=3), "epochz"),
    (lambda d: d["full"].update(epochs=0), "full.epochs"),
    (lambda d: d["attacks"]["fgsm"]["params"].update(eps=-1), "attack fgsm"),
    (lambda d: d.update(defense="median"), "not a trainable restorer"),
    (lambda d: d["evaluations"][0].update(threats=["transfer"]), "names no substitute"),
    (lambda d: d.update(adaptive_attacks=["cw"]), "not in attacks"),
    (lambda d: d["paper_results"][0].update(metric="accuracy"), "paper_results.0.metric"),
    (lambda d: d.update(baselines=[{"defense": "cru-net"}]), "not a preprocessing baseline"),
    (lambda d: d["attacks"].update(clean={}), "put it in train_attacks"),
    (lambda d: d["training"].update(loss={"perceptual": 1.0}), "perceptual_net"),
    (lambda d: d.update(loss_ablation={"no l2": {"l2": 0}}), "loss_ablation 'no l2'"),
    (lambda d: d.update(loss_ablation={"nothing": {"mse": 0}}), "at least one loss weight"),
    (lambda d: d["fast"].update(ablation_epochs=0), "fast.ablation_epochs"),
    (lambda d: d["attacks"]["fgsm"].update(adaptive_params={"eps": -1}), "attack fgsm"),
    (lambda d: d["attacks"]["fgsm"].update(attack="pgd"), "for train_attacks only"),
    (lambda d: d.update(train_attacks={"fgsm-weak": {"attack": "fgsn"}}), "attack fgsm-weak"),
    (lambda d: d["evaluations"][0].update(label="guided"), "set restorer too"),
    (lambda d: d["evaluations"][0].update(restorer="cru-net-for-a-net"), "give the variant a label"),
])
def test_bad_presets_name_the_problem(tmp_path, change, fragment):
    import copy

    data = copy.deepcopy(TINY)
    change(data)
    with pytest.raises(AdvShieldError, match="invalid preset") as exc:
        load_preset(_write(tmp_path, data))
    assert fragment in str(exc.value)


def test_adaptive_params_strengthen_only_the_adaptive_attack(tmp_path):
    import copy

    from advshield.reproduce.restoration.runner import settings_for

    data = copy.deepcopy(TINY)
    data["attacks"]["fgsm"]["adaptive_params"] = {"eps": 0.2}
    preset = load_preset(_write(tmp_path, data))
    threats = preset.evaluations[0].threats
    assert [s.params["eps"] for s in settings_for(preset, threats, False) if s.attack == "fgsm"] == [0.3, 0.3]
    [adaptive] = settings_for(preset, threats, True)
    assert (str(adaptive.threat), adaptive.params) == ("adaptive", {"eps": 0.2})


def test_adaptive_ensemble_is_the_last_adaptive_setting_and_never_trained_on(tmp_path):
    import copy

    from advshield.experiment import RunContext
    from advshield.reproduce.restoration.recipes import settings_for, training_config

    data = copy.deepcopy(TINY)
    data["adaptive_ensemble"] = {"label": "AutoAttack", "params": {"eps": 0.3, "version": "fast"}}
    preset = load_preset(_write(tmp_path, data))
    threats = preset.evaluations[0].threats
    adaptive = settings_for(preset, threats, True, preset.fast)
    assert [(s.attack, s.params) for s in adaptive] == [("fgsm", {"eps": 0.3}),
                                                         ("autoattack", {"eps": 0.3, "version": "fast"})]
    assert "autoattack" not in {s.attack for s in settings_for(preset, threats, False)}
    assert [s.attack for s in settings_for(preset, threats, True, preset.fast.model_copy(
        update={"adaptive_ensemble": False}))] == ["fgsm"]
    cfg = training_config(preset, "a-net", preset.fast, RunContext(requested_device="cpu"))
    assert {m.name for m in cfg.attacks} == {"fgsm", "deepfool", "clean"}


@pytest.mark.parametrize("ensemble, fragment", [
    ({"params": {"eps": 0.3, "version": "strongest"}}, "version must be one of"),
    ({"params": {"eps": 0.3}, "proportion": 0.5}, "adaptive_ensemble.proportion"),
])
def test_bad_adaptive_ensemble_names_the_problem(tmp_path, ensemble, fragment):
    with pytest.raises(AdvShieldError, match="invalid preset") as exc:
        load_preset(_write(tmp_path, dict(TINY, adaptive_ensemble=ensemble)))
    assert fragment in str(exc.value)


def test_one_training_attack_at_several_budgets(tmp_path):
    import copy

    from advshield.experiment import RunContext
    from advshield.reproduce.restoration.recipes import training_config

    data = copy.deepcopy(TINY)
    data["train_attacks"] = {"fgsm": {"params": {"eps": 0.3}},
                             "fgsm-weak": {"attack": "fgsm", "params": {"eps": 0.1}, "on_the_fly": True}}
    preset = load_preset(_write(tmp_path, data))
    cfg = training_config(preset, "a-net", preset.fast, RunContext(requested_device="cpu"))
    sources = {m.key: (m.name, m.params) for m in cfg.attacks}
    assert sources == {"fgsm": ("fgsm", {"eps": 0.3}), "fgsm-weak": ("fgsm", {"eps": 0.1}), "clean": ("clean", {})}


def test_unknown_preset_and_cli_error(tmp_path):
    with pytest.raises(AdvShieldError, match="built-in presets"):
        load_preset("no-such-preset")
    bad = dict(TINY, epochz=1)
    assert_one_line_error(run_cli("reproduce", str(_write(tmp_path, bad))), "epochz")


@pytest.mark.slow
def _assert_rerenders_identically(preset, out: Path) -> None:
    """report.md and report.html rendered again from reproduction.json (keys sorted) match the run's."""
    import json

    from advshield.report import render_reproduction_html
    from advshield.reproduce.restoration.report import write_report

    summary = json.loads((out / "reproduction.json").read_text())
    again = write_report(preset, summary, out / "report-again.md")
    assert again.read_text() == (out / "report.md").read_text()
    assert render_reproduction_html(summary, base=out) == (out / "report.html").read_text()


def test_tiny_reproduction_end_to_end(tmp_path):
    # A shipped variant of the restorer (here the zoo's full-size one) evaluated beside the one trained in the run.
    variant = {"target": "a-net", "defense_of": "a-net", "restorer": "cru-net-for-a-net", "label": "zoo width 32",
               "threats": ["white-box"]}
    ensemble = {"label": "AutoAttack", "params": {"eps": 0.3, "version": "fast"}}
    fast = dict(TINY["fast"], n_adaptive_reason="a tiny test")
    preset = load_preset(_write(tmp_path, dict(TINY, evaluations=TINY["evaluations"] + [variant],
                                               adaptive_ensemble=ensemble, fast=fast)))
    summary = reproduce(preset, tmp_path / "out", _ctx(tmp_path, lambda s: None))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "(0.9935)" in report and "a note for the report" in report and "## Adaptive attacks" in report
    ev, zoo = summary["evaluations"]
    assert zoo["folder"] == "eval/a-net--zoo-width-32" and "variant **zoo width 32**" in report
    assert summary["restorers"]["a-net (zoo width 32)"]["n_params"] > summary["restorers"]["a-net"]["n_params"]
    # Same stored FGSM examples, a far better restorer: the variant's numbers are its own.
    fgsm = [next(r for r in e["oblivious"]["rows"] if r["attack"] == "fgsm") for e in (ev, zoo)]
    assert fgsm[1]["adv_accuracy"] == fgsm[0]["adv_accuracy"]
    assert fgsm[1]["restored_accuracy"] >= 0.9 > fgsm[0]["restored_accuracy"]
    rows = ev["oblivious"]["rows"]
    assert [(r["threat"], r["attack"]) for r in rows] == [
        ("white-box", "fgsm"), ("white-box", "deepfool"), ("transfer:b-net", "fgsm"), ("transfer:b-net", "deepfool")]
    assert rows[0]["n"] == 40 and rows[1]["n"] == 20  # max_test caps DeepFool
    # The ensemble: paired oblivious row and adaptive row on the adaptive images, inside the worst case.
    assert [(r["threat"], r["attack"]) for r in ev["adaptive"]["rows"]] == [
        ("white-box", "fgsm"), ("white-box", "autoattack"), ("adaptive", "fgsm"), ("adaptive", "autoattack")]
    worst = ev["adaptive"]["verdict"]["adaptive_worst_case"]
    assert worst["attacks"] == ["fgsm", "autoattack"]
    ensemble_row = next(r for r in ev["adaptive"]["rows"] if r["threat"] == "adaptive" and r["attack"] == "autoattack")
    assert worst["accuracy"] <= ensemble_row["restored_accuracy"]
    assert "| AutoAttack |" in report and "AutoAttack = `autoattack`" in report and "not run in this" not in report
    assert "20 (adaptive; fewer than 500 adaptive images because a tiny test)" in report
    # the reason reaches the adaptive card: no sample-size flag there, the reason in its own report
    assert ev["adaptive"]["sample_reason"] == "a tiny test" and "sample_reason" not in ev["oblivious"]
    assert not any(f["check"] == "sample-size" for e in (ev, zoo) for c in (e["oblivious"], e["adaptive"]) if c
                   for f in c["red_flags"])
    _assert_rerenders_identically(preset, tmp_path / "out")
    assert (tmp_path / "out" / "defenses" / "a-net" / "model.safetensors").exists()
    for f in ev["oblivious"]["figures"]:
        assert (tmp_path / "out" / ev["folder"] / f).exists()


def test_a_preset_of_zoo_variants_only_trains_nothing(tmp_path):
    variant = {"target": "a-net", "defense_of": "a-net", "restorer": "cru-net-for-a-net", "label": "zoo",
               "threats": ["white-box"]}
    ensemble = {"label": "AutoAttack", "params": {"eps": 0.3}}  # left out by the variant: said in the report
    preset = load_preset(_write(tmp_path, dict(TINY, evaluations=[variant], adaptive_attacks=[],
                                               adaptive_ensemble=ensemble,
                                               fast=dict(TINY["fast"], adaptive_ensemble=False))))
    logged: list[str] = []
    summary = reproduce(preset, tmp_path / "out", _ctx(tmp_path, logged.append))
    assert list(summary["restorers"]) == ["a-net (zoo)"] and not any("== training" in s for s in logged)
    assert not (tmp_path / "out" / "defenses").exists()
    rows = summary["evaluations"][0]["oblivious"]["rows"]
    assert next(r for r in rows if r["attack"] == "fgsm")["restored_accuracy"] >= 0.9
    report = (tmp_path / "out" / "report.md").read_text()
    assert "- Restorer: none trained by this preset" in report and "the restorers saw" not in report
    assert "AutoAttack = `autoattack` {'eps': 0.3}" in report and "**not run in this variant**" in report


@pytest.mark.slow
def test_reproduction_with_training_mix_and_baselines(tmp_path):
    """DKN-style preset: its own training inputs (Algorithm 1), baselines evaluated on the same examples."""
    import copy

    data = copy.deepcopy(TINY)
    data.update(defense="dkn", defense_params={"width": 4, "levels": 2},
                train_attacks={"clean": {}, "uniform-noise": {"params": {"eps": 0.3}, "on_the_fly": True},
                               "fgsm": {"params": {"eps": 0.3}, "on_the_fly": True}},
                attacks={"fgsm": {"label": "FGSM", "params": {"eps": 0.3}}},
                baselines=[{"defense": "bit-depth", "params": {"bits": 1}, "label": "Featuresqueezing",
                            "setting": "depth=1"}, {"defense": "median", "params": {"size": 2}}],
                evaluations=[{"target": "a-net", "defense_of": "a-net", "threats": ["white-box", "adaptive"]}])
    data["training"].update(loss={"mse": 0.0, "l1": 1.0, "perceptual": 1.0, "ce": 1.0}, perceptual_net="m1",
                            perceptual_layers=["pool2"])
    data["fast"].update(n_train=60, n_val=12, n_test=30, n_adaptive=10, ablation_n_train=30)
    data["loss_ablation"] = {"without cross-entropy": {"ce": 0}}
    data["paper_results"].append({"table": "Table 1", "baseline": "Featuresqueezing depth=1", "target": "a-net",
                                  "threat": "white-box", "metric": "restored_accuracy", "values": {"fgsm": 0.5827}})
    summary = reproduce(load_preset(_write(tmp_path, data)), tmp_path / "out", _ctx(tmp_path, lambda s: None))
    [ev] = summary["evaluations"]
    assert set(ev["baselines"]) == {"Featuresqueezing depth=1", "median"}
    assert summary["restorers"]["a-net"]["train_pairs"] == {"clean": 20, "uniform-noise": 20, "fgsm": 20}
    squeeze = ev["baselines"]["Featuresqueezing depth=1"]
    assert squeeze["oblivious"]["rows"][0]["restored_accuracy"] > ev["baselines"]["median"]["oblivious"]["rows"][0][
        "restored_accuracy"]  # 1-bit squeezing undoes oblivious FGSM on MNIST, a 2x2 median does not
    assert [r["threat"] for r in squeeze["adaptive"]["rows"]] == ["white-box", "adaptive"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## The restorer beside the preprocessing baselines" in report
    assert "| FGSM | Featuresqueezing | depth=1 |" in report and "(0.5827)" in report
    # The Budgets section names the training pairs' sources, not the evaluated attacks, as the recipe.
    assert "- Training pairs (split among these sources" in report
    assert "  - uniform-noise = `uniform-noise` {'eps': 0.3}; proportion 1.0, regenerated every epoch" in report
    assert "- Attacks evaluated (parameters):" in report and "  - FGSM = `fgsm` {'eps': 0.3}\n" in report

    # Fig. 3: benign, adversarial, one row per baseline family and the restorer, from the stored sets.
    assert (tmp_path / "out" / summary["comparison_figure"]).stat().st_size > 1000
    # Fig. 2: with a smaller ablation budget the whole-loss restorer is trained again under it.
    ab = summary["ablation"]
    assert list(ab["variants"]) == ["total loss", "without cross-entropy"] and ab["n_train"] == 30
    assert "ablation" in Path(ab["variants"]["total loss"]["checkpoint"]).parts  # retrained, not the main one
    from advshield.checkpoint import read_card

    cards = {k: read_card(v["checkpoint"]) for k, v in ab["variants"].items()}
    assert cards["total loss"]["recipe"]["loss"]["ce"] == 1.0 and cards["without cross-entropy"]["recipe"]["loss"]["ce"] == 0
    assert {c["recipe"]["n_train"] for c in cards.values()} == {30}
    assert {(r["variant"], r["attack"]) for r in ab["rows"]} == {("total loss", "fgsm"), ("without cross-entropy", "fgsm")}
    assert "## Loss ablation (DKN Fig. 2)" in report
    _assert_rerenders_identically(load_preset(_write(tmp_path, data)), tmp_path / "out")
    assert all((tmp_path / "out" / f).exists() for f in ab["figures"])


def test_report_gathers_every_cards_red_flags_at_the_top():
    from advshield.evaluation.verdict import red_flags
    from advshield.reproduce.restoration.report import red_flag_lines

    def row(attack, clean, restored, n=1000, threat="white-box"):
        return {"attack": attack, "threat": threat, "n": n, "clean_accuracy": clean, "restored_accuracy": restored,
                "params": {}}

    main = [row("fgsm", 0.805, 0.931), row("cw", 0.805, 0.778), row("pgd", 0.805, 0.8055)]
    jpeg = [row("fgsm", 0.805, 0.85), row("fgsm", 0.805, 0.9, threat="adaptive")]
    summary = {"evaluations": [{
        "evaluation": {"target": "vgg19-bn", "defense_of": "vgg19-bn"},
        "oblivious": {"rows": main, "red_flags": red_flags(main)}, "adaptive": None,
        "baselines": {"jpeg": {"oblivious": {"rows": jpeg, "red_flags": red_flags(jpeg)}, "adaptive": None}}}]}
    lines = [ln for ln in red_flag_lines(summary) if ln.startswith("- ")]
    # within one image of clean (pgd) is sampling noise, not a flag; the baseline's adaptive row beats its oblivious one
    assert len(lines) == 4, lines
    assert "label-leaking" in lines[0] and "fgsm: accuracy through the defense 0.931" in lines[0]
    assert all("behind jpeg" in ln for ln in lines[1:]) and any("adaptive-vs-oblivious" in ln for ln in lines)
    quiet = {"evaluations": [dict(summary["evaluations"][0], oblivious={"rows": [], "red_flags": []}, baselines={})]}
    assert "None fired." in red_flag_lines(quiet)



def test_full_adaptive_sample_below_500_needs_a_reason_which_the_report_prints(tmp_path):
    """Issue 25: adaptive numbers on MNIST and CIFAR-10 use >= 500 test images unless the preset says why not."""
    import copy

    from advshield.reproduce.sample_size import adaptive_reason_text

    data = copy.deepcopy(TINY)
    data["full"]["n_adaptive"] = 200
    with pytest.raises(AdvShieldError, match="full.n_adaptive = 200: adaptive numbers on mnist use at least 500"):
        load_preset(_write(tmp_path, data))
    data["full"]["n_adaptive_reason"] = "the restorer is slow"
    assert load_preset(_write(tmp_path, data)).full.n_adaptive == 200
    assert adaptive_reason_text(data["full"]) == "; fewer than 500 adaptive images because the restorer is slow"
    data["full"].update(n_adaptive=500, n_adaptive_reason=None)
    load_preset(_write(tmp_path, data))
    data["full"]["n_adaptive"] = 0  # no adaptive numbers at all: nothing to justify
    load_preset(_write(tmp_path, data))
