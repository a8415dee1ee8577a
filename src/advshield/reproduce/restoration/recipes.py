"""What a restoration preset asks for: the training config of each restorer and the evaluation settings."""

from __future__ import annotations

from advshield.experiment import AttackSetting, RunContext, Threat
from advshield.reproduce.restoration.preset import Budget, Preset
from advshield.training.defense_config import AttackMix, DefenseTrainConfig


def training_config(preset: Preset, target: str, budget: Budget, ctx: RunContext) -> DefenseTrainConfig:
    mixes = [AttackMix(name=a.registered(n), label=n if a.attack else None, params=a.params,
                       proportion=a.proportion, on_the_fly=a.on_the_fly)
             for n, a in (preset.train_attacks or preset.attacks).items()]
    if preset.training.clean_proportion > 0 and not any(m.name == "clean" for m in mixes):
        mixes.append(AttackMix(name="clean", proportion=preset.training.clean_proportion))
    t = preset.training
    return DefenseTrainConfig(defense=preset.defense, defense_params={**preset.defense_params, **budget.defense_params},
                              target=target, dataset=preset.dataset.value, attacks=mixes, n_train=budget.n_train,
                              n_val=budget.n_val, epochs=budget.epochs, batch_size=budget.batch_size or t.batch_size,
                              lr=budget.lr or t.lr, weight_decay=t.weight_decay,
                              schedule=budget.schedule or t.schedule, grad_clip=budget.grad_clip or t.grad_clip,
                              loss=t.loss, perceptual_net=t.perceptual_net, perceptual_layers=t.perceptual_layers,
                              seed=ctx.seed, device=ctx.requested_device, data_root=ctx.data_root)


def settings_for(preset: Preset, threats: list[str], adaptive: bool,
                 budget: Budget | None = None) -> list[AttackSetting]:
    """The evaluation settings of ``threats``: the adaptive ones (with ``adaptive_params`` merged; the preset's
    ensemble last, unless ``budget`` leaves it out) or the others."""
    out = []
    for threat in map(Threat.parse, threats):
        if threat.adaptive != adaptive:
            continue
        for attack in preset.adaptive_names(budget) if adaptive else preset.attacks:
            a = preset.attack_spec(attack)
            params = {**a.params, **a.adaptive_params} if adaptive else a.params
            out.append(AttackSetting(attack, params, threat, a.max_test))
    return out


__all__ = ["settings_for", "training_config"]
