"""The verdict of an evaluation card, as data and as Markdown.

A card (``run_evaluation``'s ``card.json`` or :func:`advshield.evaluate`'s ``.card``) holds one row per
(attack, threat model). The verdict pivots them: one line per attack with the clean accuracy, the clean
accuracy through the defense, the accuracy under attack without the defense, and the robust accuracy
(the classifier's accuracy on the defended adversarial images) under each threat model side by side.
This module reads JSON only (cards written by older code too: an interval missing from a row is computed
from its accuracy and ``n``).
"""

from __future__ import annotations

import json
from typing import Callable

from advshield.metrics.interval import wilson_interval

#: How the verdict names a threat model's column; any other threat (``transfer:<substitute>``) keeps its name.
THREAT_LABELS = {"white-box": "oblivious (white-box)", "adaptive": "adaptive", "transfer-feedback": "transfer-feedback"}

#: The per-row columns the full tables show, with their headings.
ROW_COLUMNS = (("threat", "threat"), ("attack", "attack"), ("n", "n"), ("clean_accuracy", "clean"),
               ("defended_clean_accuracy", "clean through defense"), ("adv_accuracy", "adversarial, no defense"),
               ("restored_accuracy", "robust (through defense)"), ("restored_accuracy_ci95", "robust, 95 % CI"),
               ("recovery_rate", "recovery rate"),
               ("attack_success_rate", "attack success"), ("success_rate", "papers' success rate"),
               ("ssim_restored", "SSIM restored"), ("psnr_restored", "PSNR restored (dB)"),
               ("mean_l2", "mean L2"), ("mean_linf", "mean L-inf"), ("attack_seconds", "attack s"))
#: The threat whose rows give the accuracy under attack without the defense (crafted on the classifier alone).
_UNDEFENDED = {"white-box"}
_PERCENT = {"clean_accuracy", "defended_clean_accuracy", "adv_accuracy", "restored_accuracy", "recovery_rate",
            "attack_success_rate", "success_rate"}


def percent(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def interval_of(row: dict) -> list[float] | None:
    """A row's 95 % interval of its robust accuracy: the card's, else from its accuracy and ``n``."""
    ci = row.get("restored_accuracy_ci95")
    if ci is None and isinstance(row.get("restored_accuracy"), (int, float)) and row.get("n"):
        ci = list(wilson_interval(round(row["restored_accuracy"] * row["n"]), int(row["n"])))
    return ci


def with_ci(v: float | None, ci: list[float] | None) -> str:
    """``71.0 % [61.5, 79.0]``: an accuracy in percent with its 95 % interval, where there is one."""
    return percent(v) + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if v is not None and ci else "")


def cell(key: str, v) -> str:
    """A row value as the tables print it: rates in percent, intervals as [low, high] in percent, other floats with
    4 significant digits."""
    if v is None:
        return "-"
    if key.endswith("_ci95"):
        return f"[{100 * v[0]:.1f}, {100 * v[1]:.1f}]"
    if key in _PERCENT:
        return percent(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def threats_of(card: dict) -> list[str]:
    """The card's threat models, in the order of its rows."""
    return list(dict.fromkeys(r["threat"] for r in card.get("rows", [])))


def threat_label(threat: str) -> str:
    return THREAT_LABELS.get(threat, threat)


def verdict_rows(card: dict) -> list[dict]:
    """One dict per attack: ``attack``, ``params`` (its first row's), ``n``, ``clean``, ``defended_clean``,
    ``undefended`` (accuracy on the white-box adversarial images without the defense), ``robust`` (threat ->
    accuracy through the defense, None where not run), ``robust_ci`` (threat -> its 95 % interval) and ``robust_params`` (threat -> parameters, where
    they differ from ``params``). The k-th row of an attack under one threat lines up with its k-th row
    on the same number of images under every other threat (an attack run twice with two budgets, or on
    two image counts, gives two lines)."""
    out: dict[tuple, dict] = {}
    seen: dict[tuple, int] = {}
    for r in card.get("rows", []):
        at = (r["attack"], r["n"], r["threat"])
        k = seen[at] = seen.get(at, -1) + 1
        params = r.get("params") or {}
        v = out.setdefault((r["attack"], r["n"], k), {"attack": r["attack"], "params": params, "n": r["n"],
                                               "clean": r["clean_accuracy"],
                                               "defended_clean": r["defended_clean_accuracy"], "undefended": None,
                                               "robust": {}, "robust_ci": {}, "robust_params": {}})
        v["robust"][r["threat"]] = r["restored_accuracy"]
        v["robust_ci"][r["threat"]] = interval_of(r)
        if params != v["params"]:
            v["robust_params"][r["threat"]] = params
        if r["threat"] in _UNDEFENDED:
            v["undefended"] = r["adv_accuracy"]
    threats = threats_of(card)
    for v in out.values():
        v["robust"] = {t: v["robust"].get(t) for t in threats}
        v["robust_ci"] = {t: v["robust_ci"].get(t) for t in threats}
    return list(out.values())


def _norm_name(norm: str) -> str:
    return "L-inf" if norm == "linf" else norm.upper()


def budget_label(budget: dict) -> str:
    """A threat budget ``{"norm", "eps"}`` as text: ``L-inf 0.03137``, ``L2 0.5``."""
    return f"{_norm_name(budget['norm'])} {budget['eps']:g}"


def worst_case_scope(block: dict) -> str:
    """What a verdict's worst-case block covers: its budget, its attacks and the attacks left out of it."""
    budget = block.get("budget")
    head = f"every attack at {_norm_name(budget['norm'])} eps {budget['eps']:g}" if budget else "every attack"
    left = block.get("excluded") or []
    checks = block.get("self_checks")
    return (f"{head}: {', '.join(block['attacks'])}"
            + (f", and the self-checks' runs at that budget ({'; '.join(checks.get('runs') or []) or 'doubled, Square'}"
               f") on the first {checks['images']} images, which broke {checks['broken']} more" if checks else "")
            + (f"; not in it (unbounded or another budget): {', '.join(left)}" if left else ""))


def worst_case(card: dict) -> dict | None:
    """What the defense keeps against the attacks run: the card's per-image worst case at one threat budget over the
    adaptive attacks (an image counts only if it survives every one) with its 95 % interval, else over the oblivious
    ones; else the bounded row with the lowest robust accuracy; an unbounded attack's row (no eps: minimum-norm CW or
    DeepFool, spatial) only when nothing else ran, and then said to be unbounded."""
    verdict = card.get("verdict") or {}
    block = verdict.get("adaptive_worst_case") or verdict.get("oblivious_worst_case")
    if block:
        lo, hi = block["ci95"]
        return {"accuracy": block["accuracy"], "attack": worst_case_scope(block),
                "threat": block.get("threat", "adaptive"), "n": block["n"],
                "interval": f"95 % CI {percent(lo)} - {percent(hi)}"}
    rows = card.get("rows", [])
    if not rows:
        return None
    bounded = [r for r in rows if isinstance((r.get("params") or {}).get("eps"), (int, float))]
    r = min(bounded or rows, key=lambda r: r["restored_accuracy"])
    ci = r.get("restored_accuracy_ci95")
    return {"accuracy": r["restored_accuracy"], "threat": r["threat"], "n": r["n"],
            "attack": r["attack"] if bounded else f"{r['attack']} (unbounded: no threat budget, not a robust accuracy)",
            "interval": f"95 % CI {percent(ci[0])} - {percent(ci[1])}" if ci else ""}


def red_flags(card: dict) -> list[dict]:
    """The card's red flags (``{"check", "detail"}`` dicts), an empty list when none fired."""
    return [{"check": str(f.get("check", "")), "detail": str(f.get("detail", ""))}
            for f in card.get("red_flags", []) or []]


def _defense_name(card: dict) -> str:
    d = card.get("defense")
    return d.get("name", json.dumps(d)) if isinstance(d, dict) else str(d)


def summary_line(card: dict) -> str:
    sha = str(card.get("target_sha256", ""))[:12]
    return (f"{card.get('target', '?')} (sha256 {sha}...) on {card.get('dataset', '?')}, {card.get('n', '?')} images, "
            f"defense {_defense_name(card)}, seed {card.get('seed', 0)}")


def headline_line(card: dict) -> str | None:
    """The headline besides the worst case: clean accuracy, clean accuracy through the defense and the lowest
    recovery (over the originally correct images) under an oblivious attack, where the card has them."""
    rows = card.get("rows", [])
    if not rows:
        return None
    # from the rows, not the verdict block: a reproduction's page merges the oblivious card's rows with the adaptive
    # card's, whose verdict covers only the adaptive subset
    recovery = min((r["recovery_rate"] for r in rows if r["threat"] in _UNDEFENDED
                    and isinstance(r.get("recovery_rate"), (int, float))), default=None)
    first = rows[0]
    return (f"Clean accuracy {percent(first.get('clean_accuracy'))}, through the defense "
            f"{percent(first.get('defended_clean_accuracy'))}"
            + (f"; recovery of the originally correct images, lowest over the oblivious attacks: {percent(recovery)}"
               if recovery is not None else "") + ".")


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body])


def member_lines(rows: list[dict], name: Callable[[dict], str] = lambda r: r["attack"]) -> list[str]:
    """One line per ensemble row that kept its per-member record: the robust accuracy after each member
    (cumulative: an image counts if it is correct under that member and every one before it), in running order:
    clean first, then non-increasing (a card read back from JSON has its keys sorted; ties keep that order,
    which for AutoAttack's members is also their running order)."""
    def ordered(after: dict) -> list:
        return sorted(after.items(), key=lambda mv: (mv[0] != "clean", -mv[1]))

    return [f"{name(r)} ({threat_label(r['threat'])}"
            + (f", version {r['version_run']}" if r.get("params", {}).get("version") == "auto" and r.get("version_run")
               else "") + "), robust accuracy after each member: "
            + ", ".join(f"{m} {v:.4f}" for m, v in ordered(r["robust_accuracy_after"])) + "."
            + (f" Skipped (the model has too few classes for their loss): {', '.join(r['skipped_members'])}."
               if r.get("skipped_members") else "")
            for r in rows if r.get("robust_accuracy_after")]


def card_markdown(card: dict, title: str = "Evaluation") -> str:
    """The card as Markdown: red flags first, then the verdict, every row, notes."""
    threats = threats_of(card)
    lines = [f"# {title}", "", summary_line(card), "", "## Red flags", ""]
    flags = red_flags(card)
    lines += [f"- **{f['check']}**: {f['detail']}" for f in flags] or ["None fired."]
    lines += ["", "## Verdict", ""]
    worst = worst_case(card)
    if worst:
        lines += [f"Worst-case robust accuracy: **{percent(worst['accuracy'])}** ({worst['threat']} {worst['attack']}, "
                  f"{worst['n']} images{'; ' + worst['interval'] if worst['interval'] else ''}).", ""]
    head_line = headline_line(card)
    if head_line:
        lines += [head_line, ""]
    if card.get("sample_reason"):
        lines += [f"Fewer than 500 adaptive images because {card['sample_reason']}.", ""]
    head = ["attack", "clean", "clean through defense", "attacked, no defense"] + [
        f"robust: {threat_label(t)} (95 % CI)" for t in threats]
    body = [[v["attack"] + (f" {json.dumps(v['params'], sort_keys=True)}" if v["params"] else ""), percent(v["clean"]),
             percent(v["defended_clean"]), percent(v["undefended"])]
            + [with_ci(v["robust"][t], v["robust_ci"][t]) for t in threats]
            for v in verdict_rows(card)]
    lines += _md_table(head, body) + ["", "## All rows", ""]
    lines += _md_table([h for _, h in ROW_COLUMNS], [[cell(k, r.get(k) if k != "restored_accuracy_ci95"
                                                          else interval_of(r)) for k, _ in ROW_COLUMNS]
                                                     for r in card.get("rows", [])])
    members = member_lines(card.get("rows", []))
    if members:
        lines += ["", "Ensembles, member by member:", ""] + [f"- {m}" for m in members]
    notes = card.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


__all__ = ["ROW_COLUMNS", "THREAT_LABELS", "card_markdown", "cell", "headline_line", "interval_of", "member_lines",
           "percent", "red_flags", "with_ci",
           "summary_line",
           "threat_label", "threats_of", "verdict_rows", "worst_case", "worst_case_scope", "budget_label"]
