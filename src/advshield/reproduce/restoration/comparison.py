"""Visual comparison of the defenses of a reproduction (DKN Fig. 3): benign, adversarial, each baseline, ours."""

from __future__ import annotations

from pathlib import Path

import torch

from advshield.evaluation.figures import image_rows
from advshield.experiment import AttackSetting, RunContext, acquire_set
from advshield.reproduce.restoration.preset import Preset


@torch.no_grad()
def _apply(defense: torch.nn.Module, x: torch.Tensor, device) -> torch.Tensor:
    defense.eval()
    return defense(x.to(device)).cpu()


def comparison_figure(preset: Preset, target: str, restorer: str, path: Path, ctx: RunContext, *, n_test: int | None,
                      n_images: int = 2) -> Path:
    """Rows: benign, adversarial, the first setting of each baseline family, the restorer; columns: the first
    ``n_images`` test images under each attack, taken from the stored white-box sets the tables were computed on."""
    dev, seed = ctx.device, ctx.seed
    ds = preset.dataset.value
    victim = ctx.load_target(target, ds)
    families: dict[str, object] = {}
    for b in preset.baselines:  # Fig. 3 shows one setting per method
        families.setdefault(b.label or b.defense, b)
    defenses = [(f"{name}\n{b.setting}", ctx.load_defense(b.defense, b.params)[0]) for name, b in families.items()]
    defenses.append((f"{preset.defense.upper()} (ours)", ctx.load_defense(restorer)[0]))
    data = ctx.load_data(ds, "test", n_test, target=victim)
    rows: dict[str, list[torch.Tensor]] = {"benign": [], "adversarial": []}
    for attack, a in preset.attacks.items():
        part = data.head(a.max_test)
        result = acquire_set(AttackSetting(attack, a.params, n=a.max_test), victim, part, ctx, dataset=ds).result
        x, adv = part.tensors(slice(0, n_images))[0], result.adv[:n_images]
        rows["benign"].append(x)
        rows["adversarial"].append(adv)
        for label, defense in defenses:
            torch.manual_seed(seed)  # randomised baselines (TVM) draw the same masks every run
            rows.setdefault(label, []).append(_apply(defense, adv, dev))
    columns = ", ".join(f"{a.label or n} x{n_images}" for n, a in preset.attacks.items())
    return image_rows([(k, torch.cat(v)) for k, v in rows.items()], path,
                      f"{target}, white-box: {columns} (cf. DKN Fig. 3)")
