"""Markdown report of a reproduction: our tables beside the paper's, with the differences spelled out."""

from __future__ import annotations

from pathlib import Path

from advshield.experiment import ThreatModel
from advshield.io import atomic_write_bytes
from advshield.report.verdict import interval_of, member_lines, worst_case_scope
from advshield.reproduce.restoration.ablation import ablation_lines
from advshield.reproduce.restoration.preset import ENSEMBLE, Preset
from advshield.reproduce.sample_size import adaptive_reason_text, fast_variant_count

_PAPER_METRIC = {"clean_accuracy": "clean_accuracy", "adv_accuracy": "adv_accuracy",
                 "restored_accuracy": "restored_accuracy", "success_rate": "success_rate",
                 "ssim_restored": "ssim_restored", "psnr_paper_convention": "psnr_restored_paper_convention"}


def _paper(preset: Preset, target: str, defense_of: str, threat: str) -> dict[str, tuple[str, dict]]:
    """metric -> (table name, values per attack) for one block of our results."""
    found = {}
    for t in preset.paper_results:
        if (t.target == target and t.threat == threat and (t.defense_of or t.target) == defense_of
                and t.baseline is None):
            found[_PAPER_METRIC[t.metric]] = (t.table, t.values)
    return found


def _paper_baseline(preset: Preset, target: str, threat: str, name: str) -> tuple[str, dict] | None:
    for t in preset.paper_results:
        if t.baseline == name and t.target == target and t.threat == threat and t.metric == "restored_accuracy":
            return t.table, t.values
    return None


def _comparison_block(preset: Preset, e: dict) -> list[str]:
    """Every baseline and the restorer, attack by attack, like DKN Tables 1-2 (accuracy after the defense)."""
    ev = e["evaluation"]
    threats = [t for t in ev["threats"] if t != "adaptive"]
    adaptive = "adaptive" in ev["threats"] and e["adaptive"] is not None
    head = ["attack", "defense", "setting"] + [f"{t}" for t in threats] + (
        ["white-box (adaptive subset)", "adaptive"] if adaptive else [])
    lines = [f"**{ev['target']}**: accuracy after each defense [95 % CI] (paper values in parentheses); the restorer "
             f"was trained for {ev['defense_of']}" + (f"; adaptive columns on {e['adaptive']['n']} images"
                                                      if adaptive else "") + ":", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    entries = [(b.name, e["baselines"][b.name]) for b in preset.baselines if b.name in e["baselines"]] + [
        (None, {"oblivious": e["oblivious"],
                                                                          "adaptive": e["adaptive"]})]
    for attack in preset.attacks:
        for name, res in entries:
            base = next((b for b in preset.baselines if b.name == name), None)
            label = (base.label or base.defense, base.setting) if base else (preset.defense.upper() + " (ours)", "-")
            cells = []
            for t in threats:
                row = next((r for r in res["oblivious"]["rows"] if r["attack"] == attack and r["threat"] == t), None)
                paper = (_paper_baseline(preset, ev["target"], t, name) if base
                         else _paper(preset, ev["target"], ev["defense_of"], t).get("restored_accuracy"))
                cells.append(_cell(row["restored_accuracy"] if row else None, paper, attack, ".4f",
                                   interval_of(row) if row else None))
            if adaptive:
                rows = res["adaptive"]["rows"] if res.get("adaptive") else []
                for t in ("white-box", "adaptive"):
                    row = next((r for r in rows if r["attack"] == attack and r["threat"] == t), None)
                    cells.append("-" if row is None else _cell(row["restored_accuracy"], None, attack, ".4f",
                                                               interval_of(row)))
            lines.append(f"| {preset.attacks[attack].label or attack} | {label[0]} | {label[1]} | "
                         + " | ".join(cells) + " |")
    return lines + [""]


def _cell(ours: float | None, paper: tuple[str, dict] | None, attack: str, fmt: str,
          ci: list[float] | None = None) -> str:
    """Our value (with its 95 % interval ``ci`` in brackets, where given), the paper's in parentheses."""
    text = "-" if ours is None else format(ours, fmt) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    if paper is not None and attack in paper[1]:
        text += f" ({format(paper[1][attack], fmt)})"
    return text


def _restorer_name(ev: dict) -> str:
    """How the report names the restorer of one evaluation (the run's own, or a shipped variant of it)."""
    own = f"restorer trained for **{ev['defense_of']}**"
    return own + (f", variant **{ev['label']}** (`{ev['restorer']}`)" if ev.get("restorer") else "")


def _block(preset: Preset, rows: list[dict], ev: dict, threat: str) -> list[str]:
    target, defense_of = ev["target"], ev["defense_of"]
    paper = _paper(preset, target, defense_of, threat)
    tables = sorted({t for t, _ in paper.values()})
    cols = [("clean acc.", "clean_accuracy", ".4f"), ("through defense", "defended_clean_accuracy", ".4f"),
            ("no defense", "adv_accuracy", ".4f"), ("restored [95 % CI]", "restored_accuracy", ".4f"),
            ("success rate", "success_rate", ".4f"), ("recovery", "recovery_rate", ".4f"),
            ("SSIM", "ssim_restored", ".4f"), ("PSNR (MAX=1)", "psnr_restored", ".2f"),
            ("PSNR (paper Eq. 16)", "psnr_restored_paper_convention", ".2f"),
            ("mean L2", "mean_l2", ".3f"), ("mean L-inf", "mean_linf", ".3f")]
    counts = sorted({r["n"] for r in rows})
    lines = [f"**{target}**, {_restorer_name(ev)}, threat **{threat}**, "
             f"{' or '.join(map(str, counts))} test images"
             + (f"; paper values in parentheses from {', '.join(tables)}" if tables else "") + ":", "",
             "| attack | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        name = preset.attack_spec(r["attack"]).label or r["attack"]
        lines.append(f"| {name} | " + " | ".join(_cell(r.get(k), paper.get(k), r["attack"], f,
                                                       interval_of(r) if k == "restored_accuracy" else None)
                                                 for _, k, f in cols) + " |")
    return lines + [""]


def _adaptive_block(preset: Preset, card: dict, ev: dict) -> list[str]:
    rows = card["rows"]
    stronger = "; ".join(f"{preset.attacks[a].label or a} {preset.attacks[a].adaptive_params}" for a in
                         preset.adaptive_attacks if preset.attacks[a].adaptive_params)
    ran = {r["attack"] for r in rows if r["threat"] == ThreatModel.ADAPTIVE.value}
    names = [a for a in preset.adaptive_names() if a in ran]  # the ensemble only where the variant ran it
    lines = [f"**{ev['target']}**, {_restorer_name(ev)}, {card['n']} test images, same images in both columns"
             + (f" (the adaptive attacks run with these parameters changed: {stronger})" if stronger else "") + ":", "",
             "| attack | no defense (oblivious) | restored, oblivious [95 % CI] | restored, adaptive [95 % CI] | success rate "
             "oblivious (papers') | success rate adaptive (papers') | adaptive mean L2 | adaptive mean L-inf |",
             "|---|---|---|---|---|---|---|---|"]
    for a in names:
        ob = next(r for r in rows if r["attack"] == a and r["threat"] == ThreatModel.WHITE_BOX.value)
        ad = next(r for r in rows if r["attack"] == a and r["threat"] == ThreatModel.ADAPTIVE.value)
        lines.append(f"| {preset.attack_spec(a).label or a} | {ob['adv_accuracy']:.4f} | "
                     f"{_cell(ob['restored_accuracy'], None, a, '.4f', interval_of(ob))} | "
                     f"{_cell(ad['restored_accuracy'], None, a, '.4f', interval_of(ad))} | "
                     f"{ob['success_rate']:.4f} | {ad['success_rate']:.4f} | "
                     f"{ad['mean_l2']:.3f} | {ad['mean_linf']:.3f} |")
    worst = (card.get("verdict") or {}).get("adaptive_worst_case")
    if worst:
        lines += ["", f"Adaptive worst case (an image counts only if it survives {worst_case_scope(worst)}): "
                      f"**{worst['accuracy']:.4f}** [{worst['ci95'][0]:.3f}, {worst['ci95'][1]:.3f}] on {worst['n']} "
                      "images."]
    members = member_lines([r for r in rows if r["threat"] == ThreatModel.ADAPTIVE.value],
                           lambda r: preset.attack_spec(r["attack"]).label or r["attack"])
    return lines + ([""] + members if members else []) + [""]


def _in_order(items: dict, keys: list[str]) -> list[tuple[str, dict]]:
    """``items`` in the run's order ``keys`` (``reproduction.json`` has its keys sorted, so a report rendered again
    from it lists them as the run did), then any others as they come."""
    return [(k, items[k]) for k in dict.fromkeys(keys) if k in items] + [(k, v) for k, v in items.items()
                                                                         if k not in keys]


def red_flag_lines(summary: dict, preset: Preset | None = None) -> list[str]:
    """Every card's red flags (label leaking, adaptive-vs-oblivious, sample size, failed health checks), named by where
    they fired; the section is always written, saying so when none fired."""
    flags, order = [], [x.name for x in preset.baselines] if preset else []  # the baselines in the run's order
    for e in summary["evaluations"]:
        ev = e["evaluation"]
        where = f"{ev['target']} (restorer for {ev['defense_of']}{', ' + ev['label'] if ev.get('label') else ''})"
        cards = [("", e["oblivious"]), ("", e["adaptive"])] + [
            (f" behind {b}", c) for b, r in _in_order(e.get("baselines", {}), order)
            for c in (r["oblivious"], r["adaptive"])]
        flags += [f"{where}{behind}: **{f['check']}**: {f['detail']}" for behind, card in cards if card
                  for f in card.get("red_flags", [])]
    head = ["## Red flags", "",
            "Checks run on every evaluation: label leaking (accuracy after the defense above the clean accuracy: "
            "the defense reads something the clean image does not carry, such as the label FGSM/PGD perturbations "
            "encode, Kurakin et al. 2017; such rows measure the protocol, not robustness), an adaptive attack "
            "leaving more accuracy than the oblivious one (row by row and, since 2026-11-28, the worst cases), the "
            "adaptive worst case resting on fewer than 500 images without a stated reason (since 2026-11-28), and "
            "the health checks of every adaptive setting (convergence, gradient-free Square, unbounded budget, "
            "random noise, gradients).", ""]
    return head + ([f"- {f}" for f in flags] if flags else ["None fired."]) + [""]


def _restorers(preset: Preset, summary: dict) -> list[tuple[str, dict]]:
    """The run's restorers in the order it made them (trained targets, then the shipped variants it evaluated)."""
    return _in_order(summary["restorers"], [*preset.trained_targets, *(e.restorer_key for e in preset.evaluations)])


def _restorers_that_ran(preset: Preset, summary: dict) -> list[str]:
    """One line per restorer evaluated: where it came from and what it was trained on (its own card)."""
    out = []
    for t, c in _restorers(preset, summary):
        source = "the zoo's" if c.get("source") == "zoo" else "trained in this run"
        out.append(f"- Restorer for {t}: {source}, `{c.get('architecture', '?')}` with {c.get('n_params', 0):,} "
                   f"parameters, {sum(c.get('train_pairs', {}).values())} training pairs, {c.get('epochs', '?')} epochs.")
    return out


def _restorer_budget(preset: Preset, b: dict, summary: dict) -> str:
    if not preset.trained_targets:
        return ("- Restorer: none trained by this preset; every evaluation names a zoo variant, whose recipe the "
                "Restorers table and the notes give.")
    if all(c.get("source") == "zoo" for c in summary["restorers"].values()):
        return ("- Recipe: none trained in this run; the zoo ships restorers trained with the preset's recipe "
                "(the lines below and the Restorers table are their own cards); `--retrain` trains them here.")
    return (f"- Recipe of the restorers trained in this run: `{preset.defense}` "
            f"{dict(preset.defense_params, **b.get('defense_params', {})) or ''}, one "
            f"per target ({', '.join(preset.trained_targets)}); {b['n_train']} training images turned into pairs "
            f"(split among the {'training-pair sources' if preset.train_attacks else 'attacks'}), "
            f"{b['n_val']} held out, {b['epochs']} epochs, batch "
            f"{b.get('batch_size') or preset.training.batch_size}, Adam lr {b.get('lr') or preset.training.lr} "
            f"({b.get('schedule') or preset.training.schedule} schedule"
            f"{', gradient norm clipped at ' + str(b.get('grad_clip')) if b.get('grad_clip') else ''}), "
            f"loss {preset.training.loss.model_dump()}"
            + (f", clean identity pairs in proportion {preset.training.clean_proportion}"
               if preset.training.clean_proportion else "") + ".")


def _attack_line(name: str, a, share: bool) -> str:
    """One attack of the Budgets section; ``share``: with its share of the training pairs."""
    return (f"  - {a.label or name} = `{name}` {a.params or '(defaults)'}"
            + (f"; proportion {a.proportion}" + (", regenerated every epoch" if a.on_the_fly else "") if share else ""))


def _training_pair_lines(preset: Preset) -> list[str]:
    """The training pairs' sources when they differ from the evaluated attacks (DKN's Algorithm 1)."""
    if not preset.train_attacks or not preset.trained_targets:
        return []
    return ["- Training pairs (split among these sources; not the attacks evaluated below):", "",
            *(_attack_line(name, a, True) for name, a in preset.train_attacks.items()), ""]


def write_report(preset: Preset, summary: dict, path: Path) -> Path:
    b = summary["budget"]
    lines = [f"# {preset.title}: reproduction ({summary['variant']} variant)", "",
             f"Command: `{summary['command'] or 'advshield reproduce ' + preset.name}`  ",
             f"Paper: `{preset.paper}`. Data: {summary['data_source'] or preset.dataset.value} "
             f"({summary['test_split_size']} test images available).  ",
             f"Wall time: {summary['seconds'] / 60:.1f} min on {summary['machine']['cpus']} CPU(s), "
             f"torch {summary['machine']['torch']} ({summary['machine']['torch_threads']} threads), "
             f"device {summary['machine']['device']}.", "",
             *red_flag_lines(summary, preset), "## Budgets", "", _restorer_budget(preset, b, summary),
             *_restorers_that_ran(preset, summary),
             f"- Test images: {b['n_test'] or 'the whole test split'} (oblivious; attacks with a cap say so below), "
             f"{b['n_adaptive']} (adaptive{adaptive_reason_text(b, fast_variant_count(summary))}).",
             *_training_pair_lines(preset),
             "- Attacks evaluated (parameters" + ("" if preset.train_attacks else "; share of the training pairs")
             + "):", ""]
    for name, a in preset.attacks.items():
        lines.append(_attack_line(name, a, not preset.train_attacks)
                     + (f"; evaluated on at most {a.max_test} test images" if a.max_test else ""))
    if preset.adaptive_ensemble:
        ens = preset.adaptive_ensemble
        lines.append(f"  - {ens.label or ENSEMBLE} = `{ENSEMBLE}` {ens.params or '(defaults)'}: never trained on; on the "
                     "adaptive images of the restorer's evaluations only, adaptive and (for the paired column) "
                     "oblivious; the baselines' adaptive columns use the preset's adaptive attacks"
                     + ("" if b.get("adaptive_ensemble", True) else "; **not run in this variant**"))
    lines += ["", "Phases (seconds, by name): " + ", ".join(f"{k} {v}" for k, v in sorted(summary["phases"].items())),
              "",
              "## Restorers", "", "| target | source | parameters | pairs | train time | best epoch | val loss | "
              "val restored acc. |", "|---|---|---|---|---|---|---|---|"]
    for t, c in _restorers(preset, summary):
        source = (f"zoo (trained on {c.get('device', '?')})" if c.get("source") == "zoo"
                  else f"trained in this run ({c.get('device', '?')})")
        lines.append(f"| {t} | {source} | {c['n_params']:,} | {sum(c['train_pairs'].values())} | "
                     f"{c['train_time_s']:.0f} s (+{c['pair_seconds']:.0f} s pairs) | {c['best_epoch']} | "
                     f"{c['val']['loss']:.5f} | {c['val']['restored_accuracy']:.4f} |")
    lines += ["", "## Oblivious attacks (the papers' setting)", "",
              "Columns: clean accuracy; clean accuracy through the restorer; accuracy on adversarial images without "
              "the defense; restored accuracy; success rate = restored / clean accuracy (the papers' metric); "
              "recovery = restored-correct share of the originally correct images; SSIM and PSNR of restored vs. "
              "original. PSNR (MAX=1) is the standard definition; the paper's Eq. 16 applies (L-1)^2 = 255^2 to "
              "[0, 1] images, adding 48.13 dB, which is why the paper reports more than 80 dB.", ""]
    for e in summary["evaluations"]:
        ev = e["evaluation"]
        rows = e["oblivious"]["rows"]
        for threat in ev["threats"]:
            sel = [r for r in rows if r["threat"] == threat]
            if sel:
                lines += _block(preset, sel, ev, threat)
        figs = e["oblivious"].get("figures", [])
        lines += [f"![{f}]({e['folder']}/{f})" for f in figs if "bars" in f or "grid" in f] + [""]
    compared = [e for e in summary["evaluations"] if e.get("baselines")]
    if compared:
        lines += ["## The restorer beside the preprocessing baselines", "",
                  "Every defense sees the same stored adversarial examples; the adaptive columns attack each "
                  "defense itself (exact gradients through the restorer, BPDA through the non-differentiable "
                  "baselines, EOT over 8 draws for the randomised ones).", ""]
        for e in compared:
            lines += _comparison_block(preset, e)
        if summary.get("comparison_figure"):
            lines += [f"![{summary['comparison_figure']}]({summary['comparison_figure']})", ""]
    adaptive = [e for e in summary["evaluations"] if e["adaptive"]]
    if adaptive:
        lines += ["## Adaptive attacks (beyond the papers)", "",
                  "The attacker differentiates through classifier(restorer(x)) end to end (the restorer is "
                  "differentiable, so these are exact gradients); success is judged on the defended pipeline.", ""]
        for e in adaptive:
            lines += _adaptive_block(preset, e["adaptive"], e["evaluation"])
    lines += ablation_lines(preset, summary.get("ablation"))
    lines += ["## Differences from the paper", ""]
    lines += [f"- {n}" for n in preset.notes]
    pairs = sorted({sum(c.get("train_pairs", {}).values()) for c in summary["restorers"].values()})
    seen = (f"; the restorers evaluated saw {' / '.join(map(str, pairs))} training pairs (the papers do not state "
            "theirs)" if pairs else "")
    lines += [f"- Sample counts: {b['n_test'] or summary['test_split_size']} test images here{seen}.", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
