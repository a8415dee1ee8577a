"""CMAG Figs. 7-8 (cmag-detection.txt, Sec. 5 (4)): FGSM input gradients of two autoencoders trained alike but
for the loss (Fig. 7: SSIM, Fig. 8: l2), under SSIM, l1 and l2 crafting losses.

The paper shows images only and reads them as "the gradient of the l2-trained model is moderately correlated
with semantic regions, the SSIM-trained one aligns well". We make that a number: the share of each image's
gradient mass sum |g| (and energy sum g^2) on the digit, i.e. on the legitimate pixels above ``threshold``,
averaged over test images with a normal 95 % interval (mean +- 1.96 s / sqrt(n)); chance = the share of
pixels that are foreground. FGSM here: x' = x + eps sign(g), g = grad_x L(AE(x), x_clean) at x = x_clean (the
attacker pushes the reconstruction away from the clean image; the target is held fixed).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
from kornia.metrics import ssim as kornia_ssim
from torch.nn import functional as F

from advshield.detectors.magnet import MagNetAutoencoder
from advshield.evaluation.figures import image_rows
from advshield.experiment import RunContext
from advshield.metrics import ssim
from advshield.reproduce.detection.preset import GradientBudget

LOSSES = ("ssim", "l1", "l2")  # the FGSM crafting losses, the paper's row order
TRAINED = {"ssim": "fig7", "l2": "fig8"}  # training loss -> the paper's figure
NAMES = {"ssim": "SSIM", "l1": "l1", "l2": "l2"}


def reconstruction_loss(r: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """Per image: 1 - SSIM(r, x), ||r - x||_1 or ||r - x||_2^2. SSIM is advshield.metrics.ssim's (kornia, 11x11
    Gaussian window, MAX 1), called without its input checks, which would read values off the autograd graph."""
    if loss == "ssim":
        return 1 - kornia_ssim(r, x, 11, max_val=1.0).flatten(1).mean(1)
    if loss == "l1":
        return (r - x).abs().flatten(1).sum(1)
    if loss == "l2":
        return (r - x).pow(2).flatten(1).sum(1)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def fgsm_gradient(ae: torch.nn.Module, x: torch.Tensor, loss: str) -> torch.Tensor:
    """grad_x' L(AE(x'), x) at x' = x, per image (FGSM's direction is its sign); the clean target is fixed."""
    x = x.detach()
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(reconstruction_loss(ae(xa), x, loss).sum(), xa)
    return g


def train_with_loss(clean: torch.Tensor, loss: str, *, epochs: int, batch_size: int = 32, lr: float = 3e-3,
                    seed: int = 0, device: torch.device | str = "cpu",
                    progress: Callable[[str, int, int], None] | None = None) -> tuple[MagNetAutoencoder, list[float]]:
    """magnet-error's autoencoder (MagNetAutoencoder, ReLU) trained on ``clean`` with ``loss`` only; the same
    seed gives the same initial weights and batch order whatever the loss ("two models are trained with the
    same process except the loss function", Sec. 5 (4)). No input noise: the paper's plain autoencoder."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ae = MagNetAutoencoder(clean.shape[1], activation="relu").to(device).train()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    history, steps = [], math.ceil(len(clean) / batch_size)
    for epoch in range(epochs):
        order, total = torch.randperm(len(clean), generator=g), 0.0
        for step, i in enumerate(range(0, len(clean), batch_size)):
            x = clean[order[i:i + batch_size]].to(device)
            batch_loss = reconstruction_loss(ae(x), x, loss).mean()
            opt.zero_grad()
            batch_loss.backward()
            opt.step()
            total += float(batch_loss.detach()) * len(x)
            if progress is not None:
                progress(f"{NAMES[loss]} autoencoder epoch {epoch + 1}/{epochs}", step + 1, steps)
        history.append(total / len(clean))
    return ae.eval(), history


def digit_mask(x: torch.Tensor, threshold: float = 0.1, radius: int = 0) -> torch.Tensor:
    """The "semantic region" of a legitimate image: pixels above ``threshold`` (any channel), grown by ``radius``
    pixels (a (2 radius + 1)^2 square); boolean, shape (N, 1, H, W)."""
    m = (x > threshold).any(1, keepdim=True).float()
    if radius:
        m = F.max_pool2d(m, 2 * radius + 1, stride=1, padding=radius)
    return m > 0


def foreground_share(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: the share of the gradient mass sum |g| inside ``mask`` (channels summed); NaN where the
    gradient is zero everywhere (no share to speak of)."""
    mass = g.abs().sum(1, keepdim=True).flatten(1)
    total = mass.sum(1)
    on = (mass * mask.flatten(1)).sum(1)
    return torch.where(total > 0, on / total.clamp_min(1e-30), torch.full_like(total, float("nan")))


def chance_share(mask: torch.Tensor) -> torch.Tensor:
    """Per image: the share of pixels inside ``mask`` (what a gradient spread evenly would put there)."""
    return mask.flatten(1).float().mean(1)


def mean_interval(v: torch.Tensor) -> dict:
    """Mean of the finite values with its normal 95 % interval, mean +- 1.96 s / sqrt(n)."""
    v = v[torch.isfinite(v)].double()
    n = len(v)
    m = float(v.mean()) if n else float("nan")
    half = 1.959964 * float(v.std()) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": m, "ci95": [m - half, m + half], "n": n}


def _per_image(ae: torch.nn.Module, x: torch.Tensor, masks: dict, batch: int = 250) -> dict:
    """Shares of |g| in each mask per FGSM loss, and the clean reconstruction quality, image by image."""
    out = {loss: {k: [] for k in masks} for loss in LOSSES}
    quality = {"ssim": [], "mse": []}
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        for loss in LOSSES:
            g = fgsm_gradient(ae, xb, loss)
            for k, m in masks.items():
                out[loss][k].append(foreground_share(g, m[i:i + batch]))
        with torch.no_grad():
            r = ae(xb)
            quality["ssim"].append(ssim(r, xb))
            quality["mse"].append((r - xb).pow(2).flatten(1).mean(1))
    cat = lambda parts: torch.cat(parts).cpu()  # noqa: E731
    return {"shares": {loss: {k: cat(v) for k, v in d.items()} for loss, d in out.items()},
            "quality": {k: cat(v) for k, v in quality.items()}}


def _figure(ae: torch.nn.Module, x: torch.Tensor, trained: str, shares: dict, path: Path, dataset: str) -> Path:
    """Legitimate images, then |g| per FGSM loss, each image scaled by its own maximum (black = 0)."""
    rows = [("legitimate", x.cpu())]
    for loss in LOSSES:
        a = fgsm_gradient(ae, x, loss).abs().cpu()
        a = a / a.flatten(1).amax(1).clamp_min(1e-30).view(-1, 1, 1, 1)
        rows.append((f"{NAMES[loss]} |grad|\ndigit {shares[loss]['digit']['mean']:.2f}", a))
    fig = TRAINED[trained]
    return image_rows(rows, path, f"{dataset}: FGSM gradients, autoencoder trained with {NAMES[trained]} loss "
                                  f"(cf. Fig. {fig[3:]})")


def gradient_figures(train_x: torch.Tensor, test_x: torch.Tensor, out: str | Path, *, epochs: int, n_figure: int = 8,
                     threshold: float = 0.1, radius: int = 2, batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
                     device: torch.device | str = "cpu", dataset: str = "mnist",
                     progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train the SSIM- and the l2-loss autoencoder on ``train_x``, measure where their FGSM gradients fall on
    ``test_x`` (on the digit, and within ``radius`` px of it) and draw ``out/figures/fig7-*.png`` and
    ``fig8-*.png``; returns the card section (figure paths relative to ``out``)."""
    out, t0 = Path(out), time.perf_counter()
    test_x = test_x.to(device)
    masks = {"digit": digit_mask(test_x, threshold), "near": digit_mask(test_x, threshold, radius)}
    card = {"recipe": {"autoencoder": "MagNetAutoencoder(filters=3, pool=False, activation='relu')",
                       "n_train": len(train_x), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                       "n_test": len(test_x), "threshold": threshold, "radius": radius,
                       "fgsm_gradient": "grad_x L(AE(x), x_clean) at x = x_clean",
                       "share": "sum of |g| inside the mask / sum of |g|, per image",
                       "interval": "normal: mean +- 1.96 s / sqrt(n)"},
            "chance": {k: mean_interval(chance_share(m).cpu()) for k, m in masks.items()},
            "autoencoders": {}, "shares": {}, "difference": {}, "figures": {}}
    per = {}
    for trained in TRAINED:
        ae, history = train_with_loss(train_x, trained, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                      device=device, progress=progress)
        per[trained] = _per_image(ae, test_x, masks)
        q = per[trained]["quality"]
        card["autoencoders"][trained] = {"history": history, "clean_ssim": mean_interval(q["ssim"]),
                                         "clean_mse": mean_interval(q["mse"])}
        card["shares"][trained] = {loss: {k: mean_interval(v) for k, v in d.items()}
                                   for loss, d in per[trained]["shares"].items()}
        path = out / "figures" / f"{TRAINED[trained]}-gradients-{trained}-trained.png"
        _figure(ae, test_x[:n_figure], trained, card["shares"][trained], path, dataset)
        card["figures"][TRAINED[trained]] = str(path.relative_to(out))
    for loss in LOSSES:  # paired over the same images: SSIM-trained minus l2-trained
        card["difference"][loss] = {k: mean_interval(per["ssim"]["shares"][loss][k] - per["l2"]["shares"][loss][k])
                                    for k in masks}
    card["seconds"] = round(time.perf_counter() - t0, 1)
    return card


def preset_gradients(gb: GradientBudget, dataset: str, out: str | Path, ctx: RunContext) -> dict:
    """:func:`gradient_figures` on a preset's ``gradients`` budget: the first ``n_train`` training and ``n_test``
    test images of ``dataset`` under ``ctx`` (data root, seed, device, progress)."""
    train = ctx.load_data(dataset, "train", gb.n_train).tensors()[0]
    test = ctx.load_data(dataset, "test", gb.n_test).tensors()[0]
    return gradient_figures(train, test, out, epochs=gb.epochs, n_figure=gb.n_figure, threshold=gb.threshold,
                            radius=gb.radius, batch_size=gb.batch_size, lr=gb.lr, seed=ctx.seed, device=ctx.device,
                            dataset=dataset, progress=ctx.progress)


def _ci(d: dict) -> str:
    return f"{d['mean']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"


def gradient_section(g: dict) -> list[str]:
    """The report's "Figs. 7-8" section from :func:`gradient_figures`'s card section."""
    r, c = g["recipe"], g["chance"]
    rows = [f"| {NAMES[t]} | {NAMES[loss]} | {_ci(g['shares'][t][loss]['digit'])} | {_ci(g['shares'][t][loss]['near'])} |"
            for t in TRAINED for loss in LOSSES]
    rows += [f"| SSIM minus l2 (paired) | {NAMES[loss]} | {_ci(g['difference'][loss]['digit'])} "
             f"| {_ci(g['difference'][loss]['near'])} |" for loss in LOSSES]
    rows += [f"| chance (share of pixels) | - | {_ci(c['digit'])} | {_ci(c['near'])} |"]
    quality = "; ".join(f"{NAMES[t]}-trained: SSIM {_ci(a['clean_ssim'])}, MSE {a['clean_mse']['mean']:.4f}"
                        for t, a in g["autoencoders"].items())
    return ["## Figs. 7-8: FGSM gradients of autoencoders trained with SSIM and with l2 loss", "",
            "Paper: qualitative (images only, no number): it reads the SSIM-trained autoencoder's gradient as "
            "aligned with the semantic regions (the digit), the l2-trained one's as only moderately correlated with "
            "them. Ours: two autoencoders (magnet-error's architecture; "
            f"{r['n_train']} training images, {r['epochs']} epochs, batch {r['batch_size']}, Adam lr {r['lr']}, "
            f"seed {r['seed']}) identical but for the training loss; g = grad_x L(AE(x), x_clean) at the clean "
            "image, the gradient FGSM takes the sign of, under SSIM, l1 and l2 crafting losses. The number beside "
            "the figures (ours, not the paper's): the share of each image's gradient mass sum |g| on the digit "
            f"(legitimate pixels > {r['threshold']}) and within {r['radius']} px of it, mean over {r['n_test']} test "
            "images with a normal 95 % interval; chance = the share of pixels in the same region.", "",
            "| trained with | FGSM loss | share on the digit | share within "
            f"{r['radius']} px of the digit |", "|---|---|---|---|", *rows, "",
            f"Clean test reconstructions: {quality}.", "",
            *[f"![{k}]({v})" for k, v in g["figures"].items()], ""]
