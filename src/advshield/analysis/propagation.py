"""Layer-by-layer propagation of adversarial perturbations (perturbation-propagation.txt, Sec. 3, Fig. 1).

For every observed layer l the feature maps of the clean image, v_ori^l, are compared with those of
the adversarial image (configuration 1) and of the denoised adversarial image (configuration 2):

    NE-D  = ||v_ori^l - v^l||_2 / n          (Euclidean distance normalised by the n elements)
    COS-D = 1 - <v_ori^l, v^l> / (||v_ori^l|| ||v^l||)

averaged over the samples. Batches stream through the model; only per-layer running sums are kept,
so memory stays flat in the number of samples. An optional ``progress`` callback hears of every forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence, Sized

import torch
from torch import nn
from torch.nn import functional as F

from advshield.errors import InputError
from advshield.validation import check_images


class FeatureTaps:
    """Forward hooks on named submodules of any ``nn.Module``; for zoo classifiers, stage names work too."""

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        if not layers:
            raise InputError("give at least one layer to observe")
        modules = dict(model.named_modules())
        stages = getattr(model, "stages", None)
        self.layers, self._outputs, self._handles = list(layers), {}, []
        for name in self.layers:
            module = modules.get(name)
            if module is None and isinstance(stages, nn.Module):
                module = dict(stages.named_children()).get(name)
            if module is None:
                known = list(getattr(model, "feature_names", [])) or [n for n in modules if n]
                raise InputError(f"unknown layer {name!r}; available: {known[:40]}")
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def store(_module, _inputs, output):
            self._outputs[name] = output[0] if isinstance(output, (tuple, list)) else output
        return store

    def __call__(self, model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(flattened feature maps per layer, the model's output) from one forward pass."""
        self._outputs = {}
        output = model(x)
        missing = [n for n in self.layers if n not in self._outputs]
        if missing:
            raise InputError(f"layers {missing} were not reached by the forward pass")
        return {n: self._outputs[n].flatten(1).float() for n in self.layers}, output

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "FeatureTaps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def distances(ref: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (NE-D, COS-D) between flattened feature maps (N, n)."""
    ne = (ref - other).norm(dim=1) / ref.shape[1]
    cos = 1.0 - F.cosine_similarity(ref, other, dim=1, eps=1e-12)
    return ne, cos


@dataclass
class PropagationResult:
    """Mean NE-D and COS-D per setting and layer; ``settings`` like 'fgsm' and 'fgsm+denoiser'."""

    layers: list[str]
    n: int = 0
    sizes: list[int] = field(default_factory=list)  # elements per sample of each layer's output (the n of NE-D)
    ne_d: dict[str, list[float]] = field(default_factory=dict)
    cos_d: dict[str, list[float]] = field(default_factory=dict)
    mse: dict[str, float] = field(default_factory=dict)  # input-space MSE against the clean images (Tables 1, 4)
    accuracy: dict[str, float] = field(default_factory=dict)  # classifier accuracy (Tables 1, 5)

    def to_dict(self) -> dict:
        return {"layers": self.layers, "n": self.n, "sizes": self.sizes, "ne_d": self.ne_d, "cos_d": self.cos_d, "mse": self.mse,
                "accuracy": self.accuracy}


@torch.no_grad()
def propagation(model: nn.Module, layers: Sequence[str],
                batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]],
                denoiser: nn.Module | dict[str, nn.Module] | None = None,
                device: torch.device | str = "cpu",
                progress: Callable[[str, int, int], None] | None = None) -> PropagationResult:
    """Stream ``(clean, {setting: adversarial}, labels)`` batches; returns the averaged distances.

    With a ``denoiser``, every setting is also measured after it, as ``<setting>+denoiser``
    (the paper's configuration 2); ``clean+denoiser`` shows what the denoiser alone changes.
    A dict ``{name: denoiser}`` measures several, as ``<setting>+<name>``.
    ``progress(what, done, total)`` before each forward pass (what: ``batch b/B: <setting>``) and at the end,
    counted in passes; ``batches`` with a length (a list) gives the total, else the batches seen so far do.
    """
    model = model.to(device).eval()
    denoisers = ({} if denoiser is None else dict(denoiser) if isinstance(denoiser, dict)
                 else {"denoiser": denoiser})
    denoisers = {k: d.to(device).eval() for k, d in denoisers.items()}
    result = PropagationResult(list(layers))
    ne_sum: dict[str, torch.Tensor] = {}
    cos_sum: dict[str, torch.Tensor] = {}
    mse_sum: dict[str, float] = {}
    correct: dict[str, int] = {}

    def add(setting: str, images: torch.Tensor, ref_maps: dict, clean: torch.Tensor, y: torch.Tensor) -> None:
        maps, logits = taps(model, images)
        per_layer = [distances(ref_maps[n], maps[n]) for n in layers]  # once per layer: (NE-D, COS-D)
        ne = torch.stack([d[0].sum() for d in per_layer]).cpu().double()
        cos = torch.stack([d[1].sum() for d in per_layer]).cpu().double()
        ne_sum[setting] = ne_sum.get(setting, 0) + ne
        cos_sum[setting] = cos_sum.get(setting, 0) + cos
        mse_sum[setting] = mse_sum.get(setting, 0.0) + float(((images - clean) ** 2).flatten(1).mean(1).sum())
        correct[setting] = correct.get(setting, 0) + int((logits.argmax(1) == y).sum())

    n_batches = len(batches) if isinstance(batches, Sized) else None
    passes = {"done": 0, "total": 0}

    def report(what: str) -> None:  # before a forward pass
        if progress is not None:
            progress(what, passes["done"], passes["total"])
        passes["done"] += 1

    with FeatureTaps(model, layers) as taps:
        for b, (clean, advs, y) in enumerate(batches):
            per_batch = 1 + len(advs) * (1 + len(denoisers)) + len(denoisers)
            passes["total"] = passes["done"] + per_batch * max(1, (n_batches or b + 1) - b)
            batch = f"batch {b + 1}/{n_batches}" if n_batches else f"batch {b + 1}"
            clean, y = clean.to(device), y.to(device)
            check_images(clean)
            report(f"{batch}: clean")
            ref, logits = taps(model, clean)
            result.sizes = [ref[name].shape[1] for name in layers]
            correct["clean"] = correct.get("clean", 0) + int((logits.argmax(1) == y).sum())
            for setting, adv in advs.items():
                adv = adv.to(device)
                if adv.shape != clean.shape:
                    raise InputError(f"{setting}: adversarial batch {tuple(adv.shape)} differs from clean "
                                     f"{tuple(clean.shape)}")
                report(f"{batch}: {setting}")
                add(setting, adv, ref, clean, y)
                for name, den in denoisers.items():
                    report(f"{batch}: {setting}+{name}")
                    add(f"{setting}+{name}", den(adv), ref, clean, y)
            for name, den in denoisers.items():
                report(f"{batch}: clean+{name}")
                add(f"clean+{name}", den(clean), ref, clean, y)
            result.n += len(clean)
    if progress is not None and passes["done"]:
        progress("measured", passes["done"], passes["done"])
    if result.n == 0:
        raise InputError("no samples were given")
    result.ne_d = {s: (v / result.n).tolist() for s, v in ne_sum.items()}
    result.cos_d = {s: (v / result.n).tolist() for s, v in cos_sum.items()}
    result.mse = {s: v / result.n for s, v in mse_sum.items()}
    result.accuracy = {s: c / result.n for s, c in correct.items()}
    return result


def batched(clean: torch.Tensor, advs: dict[str, torch.Tensor], labels: torch.Tensor,
            batch_size: int) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]]:
    """Cut in-memory sets into the batches :func:`propagation` takes (``list(batched(...))`` holds views
    only, and gives :func:`propagation` its total for a progress bar)."""
    for i in range(0, len(clean), batch_size):
        yield clean[i:i + batch_size], {k: v[i:i + batch_size] for k, v in advs.items()}, labels[i:i + batch_size]
