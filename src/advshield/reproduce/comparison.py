"""Visual comparison of the defenses of a reproduction (DKN Fig. 3): benign, adversarial, each baseline, ours."""

from __future__ import annotations

from pathlib import Path

import torch

from advshield.checkpoint import load_model
from advshield.data import load_dataset
from advshield.device import select_device
from advshield.evaluation import Setting
from advshield.evaluation.figures import image_rows
from advshield.evaluation.restoration import adversarial_set
from advshield.evaluation.run import resolve_defense
from advshield.reproduce.preset import Preset
from advshield.zoo import resolve_checkpoint


@torch.no_grad()
def _apply(defense: torch.nn.Module, x: torch.Tensor, device) -> torch.Tensor:
    defense.eval()
    return defense(x.to(device)).cpu()


def comparison_figure(preset: Preset, target: str, restorer: str, path: Path, *, n_test: int | None,
                      data_root: str | None, store: Path, seed: int, device: str, n_images: int = 2) -> Path:
    """Rows: benign, adversarial, the first setting of each baseline family, the restorer; columns: the first
    ``n_images`` test images under each attack, taken from the stored white-box sets the tables were computed on."""
    dev = select_device(device)
    ds = preset.dataset.value
    classifier, tcard = load_model(resolve_checkpoint(target, ds), dev)
    families: dict[str, object] = {}
    for b in preset.baselines:  # Fig. 3 shows one setting per method
        families.setdefault(b.label or b.defense, b)
    defenses = [(f"{name}\n{b.setting}", resolve_defense(b.defense, b.params, dev)[0]) for name, b in families.items()]
    defenses.append((f"{preset.defense.upper()} (ours)", resolve_defense(restorer, None, dev)[0]))
    data = load_dataset(ds, "test", data_root).head(n_test)
    rows: dict[str, list[torch.Tensor]] = {"benign": [], "adversarial": []}
    for attack, a in preset.attacks.items():
        setting = Setting(attack, a.params, "white-box", None, a.max_test)
        part, _, result, _ = adversarial_set(setting, classifier, tcard["sha256"], data, ds, store, seed=seed, device=dev)
        x, adv = part.tensors(slice(0, n_images))[0], result.adv[:n_images]
        rows["benign"].append(x)
        rows["adversarial"].append(adv)
        for label, defense in defenses:
            torch.manual_seed(seed)  # randomised baselines (TVM) draw the same masks every run
            rows.setdefault(label, []).append(_apply(defense, adv, dev))
    columns = ", ".join(f"{a.label or n} x{n_images}" for n, a in preset.attacks.items())
    return image_rows([(k, torch.cat(v)) for k, v in rows.items()], path,
                      f"{target}, white-box: {columns} (cf. DKN Fig. 3)")
