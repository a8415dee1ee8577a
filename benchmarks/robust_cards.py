"""Independent check of a robust model's card: torchattacks' AutoAttack (standard) on the same test images.

    python benchmarks/robust_cards.py a-net-robust [--n 1000] [--data-root D] [--device auto] [--out result.json]

The model is a zoo name or a .safetensors checkpoint whose card has ``robust_test`` (written by
``advshield train-target --adversarial ...``). torchattacks' AutoAttack(version='standard') runs on the
first ``n`` test images; robust accuracy is judged by the model's own prediction. The check (issue 26): the
two agree within 1.5 points. With ``--ours`` advshield's ensemble reruns on the same ``n`` images and is the
number compared; without it the card's figure is, which was measured on the card's own ``n`` images (a
different set when the card's n is larger: the result says so, ``same_images``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from advshield.checkpoint import load_model
from advshield.data import load_dataset
from advshield.device import select_device
from advshield.metrics.interval import wilson_interval
from advshield.zoo import resolve_checkpoint


def torchattacks_autoattack(model, x, y, eps: float, batch_size: int, device) -> tuple[int, float]:
    import torchattacks

    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    robust, t0 = 0, time.perf_counter()
    for s in range(0, len(x), batch_size):
        xb, yb = x[s:s + batch_size].to(device), y[s:s + batch_size].to(device)
        adv = attack(xb, yb)
        with torch.no_grad():
            robust += int((model(adv).argmax(1) == yb).sum())
    return robust, time.perf_counter() - t0


def ours_autoattack(model, x, y, eps: float, batch_size: int, device) -> tuple[int, float]:
    """advshield's ensemble as the card measures it (robust_accuracy_card), without its health checks."""
    from advshield.data import ImageDataset
    from advshield.training.robust_card import robust_accuracy_card

    images = (x * 255).round().to(torch.uint8).numpy()  # the test images are uint8 to begin with: exact
    data = ImageDataset(images, y.numpy(), [str(c) for c in range(10)], "test")
    card = robust_accuracy_card(model, data, eps, len(y), n_checks=0, batch_size=batch_size, device=device)
    return round(card["robust_accuracy"] * len(y)), card["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--ours", action="store_true", help="also rerun advshield's ensemble on the same n images")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = select_device(args.device)
    model, card = load_model(resolve_checkpoint(args.model), device)
    robust_card = card["robust_test"]
    test = load_dataset(card["dataset"], "test", args.data_root).head(args.n)
    x, y = test.tensors()
    eps = robust_card["eps"]
    rows = {}
    for name, fn in (("torchattacks", torchattacks_autoattack),) + ((("advshield", ours_autoattack),) if args.ours else ()):
        robust, seconds = fn(model, x, y, eps, args.batch_size, device)
        rows[name] = {"robust_accuracy": robust / len(y), "interval_95": wilson_interval(robust, len(y)),
                      "seconds": round(seconds, 1)}
        print(f"{name}: {robust / len(y):.4f} robust on {len(y)} images ({seconds:.0f} s)", flush=True)
    card_value = rows.get("advshield", {}).get("robust_accuracy", robust_card["robust_accuracy"])
    gap = abs(rows["torchattacks"]["robust_accuracy"] - card_value)
    result = {"model": args.model, "n": len(y), "eps": eps, "card": robust_card["robust_accuracy"],
              "same_images": "advshield" in rows or robust_card["n"] == len(y),
              "card_n": robust_card["n"], "rows": rows, "gap_points": round(100 * gap, 2),
              "agree_within_1.5_points": gap <= 0.015, "device": str(device),
              "host": {"machine": platform.machine(), "torch": torch.__version__,
                       "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None}}
    print(json.dumps(result, indent=2))
    if args.out:
        from advshield.io import atomic_write_json

        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
