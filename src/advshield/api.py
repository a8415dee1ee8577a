"""The front door: ``advshield.evaluate(model, data, defense)`` for the user's own classifier and defense.

Any ``nn.Module`` mapping float32 ``[N, C, H, W]`` images in [0, 1] to ``[N, classes]`` logits is a
classifier (it holds its own input normalisation); any image -> image ``nn.Module`` is a defense. Nothing
needs a zoo entry or a card: the classifier gets a synthetic one (its class name, the SHA-256 of its
``state_dict``, the dataset) and the run goes through the experiment layer exactly as ``advshield
evaluate`` does (:func:`advshield.evaluation.restoration.evaluate_setting` for each attack and threat),
so adversarial sets are cached in the same content-addressed store and the card has the same structure.

Example::

    import advshield
    result = advshield.evaluate(model.eval(), (x_test, y_test), defense=my_denoiser.eval(),
                                attacks=("fgsm", "pgd"),
                                attack_params={"fgsm": {"eps": 8 / 255}, "pgd": {"eps": 8 / 255}})
    print(result.to_markdown())
    result.save("runs/my-eval")   # card.json, results.csv, report.md, report.html, figures/

Models and defenses in training mode are refused (call ``.eval()``), not silently switched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from advshield.attacks import ThreatModel
from advshield.data import ImageDataset
from advshield.device import module_device
from advshield.errors import InputError
from advshield.evaluation.restoration import Samples
from advshield.evaluation.run import measure, write_csv, write_figures, write_reports
from advshield.experiment import AttackSetting, RunContext, Target
from advshield.experiment.setting import add_ensemble
from advshield.io import atomic_write_json
from advshield.report import card_markdown, render_html
from advshield.user_modules import (UserDefense, as_defense, check_classifier, check_module_mode, module_identity,
                                    module_sha256)
from advshield.validation import check_images, check_labels

_PROBE = 8  # images the model and the defense are checked on before anything runs


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the card (``run_evaluation``'s structure), its rows and renderings."""

    card: dict
    samples: dict[str, dict[str, Samples]] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> list[dict]:
        """One dict per (attack, threat): accuracies, rates, SSIM/PSNR, norms (see ``results.csv``)."""
        return self.card["rows"]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.card, indent=indent, sort_keys=True, default=str)

    def to_markdown(self) -> str:
        return card_markdown(self.card, "advshield evaluation")

    def to_html(self, figures: Sequence[str | Path] | None = None, base: str | Path | None = None) -> str:
        """A self-contained HTML page: red flags, verdict, sortable tables, then ``figures`` (inlined)."""
        return render_html(self.card, list(figures) if figures is not None else [], base=base)

    def save(self, folder: str | Path, figures: bool = True) -> Path:
        """Write ``card.json``, ``results.csv``, ``report.md``, ``report.html`` (and ``figures/``) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if figures and self.samples:
            self.card["figures"] = write_figures(self.rows, self.samples, None, folder / "figures", self.card["target"])
        atomic_write_json(folder / "card.json", self.card)
        write_csv(self.rows, folder / "results.csv")
        write_reports(self.card, folder)  # report.md and report.html, as every CLI evaluation writes them
        return folder


def evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor] | str, defense: nn.Module | None = None, *,
             attacks: Sequence[str | AttackSetting] = ("fgsm", "pgd"),
             threats: Sequence[str] = ("white-box", "adaptive"), attack_params: dict[str, dict] | None = None,
             n: int | None = None, dataset: str | None = None, data_root: str | None = None,
             device: str | torch.device | None = None, store: str | Path = "runs/adversarial", seed: int = 0,
             batch_size: int = 250, eot_samples: int = 8, checks: int = 100, ensemble: bool = True,
             out: str | Path | None = None, log: Callable[[str], None] | None = None,
             sample_reason: str | None = None) -> Evaluation:
    """Evaluate ``defense`` protecting ``model`` against ``attacks`` under ``threats``.

    Args:
        model: a classifier in eval mode: float32 ``[N, C, H, W]`` images in [0, 1] -> ``[N, classes]`` logits.
        data: ``(images, labels)`` tensors (float32 NCHW in [0, 1], int64 class indices) or the name of a
            registered dataset (``mnist``, ``fashion-mnist``, ``cifar10``, ``gtsrb``; its test split under
            ``data_root``). Images are kept on the 8-bit grid like every advshield dataset; tensors off it are
            rounded to it (at most 0.5/255 per pixel) and the card says so.
        defense: an image -> image module in eval mode, or None (the rows then measure the bare model and
            ``adaptive`` is dropped). Declare ``differentiable = False`` (with an optional
            ``bpda(x, out, grad)``) or ``randomized = True`` on it; when absent both are measured.
        attacks: registered attack names (``advshield attack --help`` lists them) or ready
            :class:`~advshield.experiment.AttackSetting` values (used as given, ``threats`` ignored).
        threats: threat models for every named attack: ``white-box`` (oblivious: ignores the defense),
            ``adaptive`` (through the defense), ``transfer:<zoo model>``.
        attack_params: per attack name, its parameters, e.g. ``{"pgd": {"eps": 8 / 255, "steps": 40}}``.
        n: evaluate the first ``n`` images only.
        dataset: the name recorded in the card (default: ``data`` when it is a name, else ``custom``).
        device: where to run (default: the model's device). Model and defense are moved there in place.
        store: folder of the content-addressed adversarial-set store (reruns reuse its sets).
        checks: images the convergence and gradient-masking checks of every adaptive setting run on (0: none;
            without a defense the white-box settings are the adaptive ones and are checked); failures become
            red flags, as in every CLI evaluation.
        batch_size: images per batch.
        eot_samples: random draws averaged per gradient (EOT) through a randomised defense; the ensemble's
            members there use at least 20.
        ensemble: add the AutoAttack ensemble (Croce & Hein 2020; version ``auto``: standard, or through a
            randomised defense the reference's rand version, then the standard members it lacks, with EOT) at
            the budget of the first L-inf or L2 attack named, under ``adaptive`` (white-box without a defense),
            so the verdict's worst case meets the field's standard attacker. Ignored for
            :class:`AttackSetting` values and where no named attack has an eps budget.
        out: when given, :meth:`Evaluation.save` writes the card, CSV, reports and figures there.
        sample_reason: why the adaptive worst case rests on fewer than 500 images (a smaller test split, a
            slow defense); without one that is a ``sample-size`` red flag. Recorded in the card and its reports.

    Raises:
        InputError: one line per problem: a model in training mode, a model that returns anything but
            finite ``[N, classes]`` logits, images not float32 NCHW in [0, 1], labels out of range.
    """
    check_module_mode(model, "model")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InputError(f"n must be a positive integer or None (all images), got {n!r}")
    if isinstance(checks, bool) or not isinstance(checks, int) or checks < 0:
        raise InputError(f"checks must be a non-negative integer (0: no health checks), got {checks!r}")
    if not isinstance(ensemble, bool):
        raise InputError(f"ensemble must be True or False, got {ensemble!r}")
    if defense is not None:
        check_module_mode(defense, "defense")
    quiet = log or (lambda _: None)
    ctx = RunContext.create(_device_of(model) if device is None else device, store=store, data_root=data_root,
                            seed=seed, batch_size=batch_size, log=quiet)
    notes: list[str] = []
    images, ds_name = _images(data, dataset, n, ctx, model, notes)
    model.to(ctx.device)
    probe, _ = images.tensors(slice(0, _PROBE), ctx.device)
    classes = check_classifier(model, probe)
    if classes != images.num_classes:
        raise InputError(f"the model predicts {classes} classes, {ds_name} has {images.num_classes}")
    if defense is None:
        defense_obj, defense_id = UserDefense(nn.Identity(), True, False), {"name": "none"}
    else:
        defense_obj, extra = as_defense(defense.to(ctx.device), probe)
        defense_id, notes = module_identity(defense_obj), notes + extra
    victim = Target(model, {"architecture": type(model).__name__, "sha256": module_sha256(model), "dataset": ds_name,
                            "source": "python"}, f"{type(model).__module__}.{type(model).__qualname__}")
    settings = _settings(attacks, threats, attack_params or {}, defense is not None, notes, ensemble)
    t0 = time.perf_counter()
    m = measure(settings, victim, defense_obj, defense_id, images, ctx, dataset=ds_name, checks=checks,
                eot_samples=eot_samples, undefended=defense is None, sample_reason=sample_reason,
                log_row=lambda _, s, row: quiet(
                    f"{str(s.threat):>18} {s.attack:>8}: robust accuracy {row['restored_accuracy']:.4f}"))
    samples = m.pop("samples")
    card = {"target": victim.architecture, "target_sha256": victim.sha256, "target_module": victim.name,
            "dataset": ds_name, "n": len(images), "defense": defense_id, "defense_card": None, "seed": seed,
            "world_size": ctx.dist.world_size, "seconds": round(time.perf_counter() - t0, 1), **m,
            **({"sample_reason": sample_reason} if sample_reason else {}),
            "notes": notes + ["robust accuracy = restored_accuracy: the classifier's accuracy on the adversarial "
                              "images after the defense",
                              "success_rate = restored accuracy / clean accuracy (the papers' metric)"]}
    result = Evaluation(card, samples)
    if out is not None:
        result.save(out)
    return result


def _device_of(model: nn.Module) -> torch.device:
    if not isinstance(model, nn.Module):
        raise InputError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    return module_device(model)


def _images(data: Any, dataset: str | None, n: int | None, ctx: RunContext, model: nn.Module,
            notes: list[str]) -> tuple[ImageDataset, str]:
    if isinstance(data, str):
        return ctx.load_data(data, "test", n).require_images("an evaluation"), dataset or data
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InputError(f"data must be (images, labels) tensors or a dataset name, got {type(data).__name__}")
    x, y = data
    check_images(x, allow_empty=False)
    check_labels(y, x.shape[0])
    x, y = x.detach().cpu(), y.detach().cpu()
    if n is not None:
        x, y = x[:n], y[:n]
    with torch.no_grad():
        classes = check_classifier(model.to(x.device), x[:_PROBE])
    check_labels(y, x.shape[0], classes)
    grid = torch.round(x * 255)
    err = float((x * 255 - grid).abs().max()) / 255
    if err > 1e-6:
        notes.append(f"images were rounded to the 8-bit grid (largest change {err:.2g} per pixel)")
    images = ImageDataset(grid.to(torch.uint8).numpy(), y.long().numpy(), [str(c) for c in range(classes)],
                          dataset or "custom", {"source": "tensors"})
    return images, dataset or "custom"


def _settings(attacks, threats, params: dict, defended: bool, notes: list[str], ensemble: bool = False
              ) -> list[AttackSetting]:
    if isinstance(attacks, (str, AttackSetting)) or isinstance(threats, str):
        raise InputError("attacks and threats are sequences, e.g. attacks=('pgd',), threats=('adaptive',)")
    unknown = set(params) - {a for a in attacks if isinstance(a, str)}
    if unknown:
        raise InputError(f"attack_params names attacks not in attacks: {sorted(unknown)}")
    out = []
    for a in attacks:
        if isinstance(a, AttackSetting):
            out.append(a)
            continue
        for t in threats:
            out.append(AttackSetting(a, dict(params.get(a, {})), t))
    if not defended:
        dropped = [s for s in out if s.threat.kind is ThreatModel.ADAPTIVE]
        out = [s for s in out if s.threat.kind is not ThreatModel.ADAPTIVE]
        if dropped:
            notes.append("no defense: the adaptive settings were dropped (they equal the white-box ones)")
    if not out:
        raise InputError("no attack setting to run: pass at least one attack and one threat model")
    # the ensemble through the defense (the bare model's white-box attack is the adaptive one)
    threat = "adaptive" if defended else "white-box"
    if ensemble and all(isinstance(a, str) for a in attacks) and (threat in threats or not defended):
        note = add_ensemble(out, threat, "ensemble=False")
        notes += [note] if note else []
    return out


__all__ = ["Evaluation", "evaluate"]
