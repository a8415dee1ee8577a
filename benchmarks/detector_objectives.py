"""Which detector-aware objective breaks a detector-guarded classifier best? (issue 25: the adaptive attacker
must be at least as strong as the field's.)

    python benchmarks/detector_objectives.py --run runs/reproduce/cmag-mnist-full-2 --detector cmag-ssim \
        --data-root <data> [--n 100] [--steps 50] [--out docs/benchmarks/detector-objectives.json]

Loads a detector a detection reproduction trained (its checkpoint and calibrated threshold) in front of the
zoo classifier it guards, and runs the same L-inf PGD (eps 0.3, step 2.5 eps / steps, early exit) with:

* ``switch``: the engine's objective (``attacks.base.loss_gradient``): the classifier's cross-entropy until the
  image is misclassified, then minus the detector's hinge (score over threshold), per image;
* ``hinge-sum c``: Carlini & Wagner (2017, "Adversarial examples are not easily detected")'s joint loss,
  maximise -(relu(margin + kappa) + c * hinge) with margin = z_y - max_{j != y} z_j and kappa = 0.1 (the
  classification term vanishes once the image is fooled by kappa, so it cannot drown the detector's term),
  for c in 1, 10, 100; ``hinge-sum best`` is the per-image worst case over the three c.

Robust accuracy as the detection runner counts it: correct and unflagged when clean, and not turned into an
unflagged misclassification. A pilot for choosing the detection presets' adaptive objective, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from advshield.attacks import PGD, Pipeline, craft_images
from advshield.attacks import iterative
from advshield.detectors.checkpoint import load_detector
from advshield.experiment.context import RunContext
from advshield.metrics.interval import wilson_interval
from common import atomic_write, git_commit  # benchmarks/common.py, beside this script

KAPPA = 0.1


def hinge_sum(c: float):
    """``loss_gradient`` with Carlini & Wagner's joint objective at weight ``c`` (ascended by PGD)."""
    def loss_gradient(surface, x, labels, target=None, loss_fn=None):
        x = x.detach().requires_grad_(True)
        logits = surface(x)
        true = logits.gather(1, labels[:, None]).squeeze(1)
        other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
        loss = -(torch.relu(true - other + KAPPA) + c * surface.penalty(x))
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad, logits.detach()
    return loss_gradient


@torch.no_grad()
def robust(pipe: Pipeline, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    ok_clean = (pipe.predict(x) == y) & ~pipe.detected(x)
    evaded = (pipe.predict(adv) != y) & ~pipe.detected(adv)
    return ok_clean & ~evaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a detection reproduction's output folder")
    ap.add_argument("--detector", default="cmag-ssim")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    run = Path(args.run)
    summary = json.loads((run / "reproduction.json").read_text())
    ctx = RunContext.create("cpu", data_root=args.data_root)
    target = ctx.load_target(summary["preset"]["target"], summary["preset"]["dataset"])
    detector, _ = load_detector(run / args.detector / "detector.safetensors", target.model, target.card["sha256"])
    calibrated = json.loads((run / args.detector / "detection.json").read_text())["threshold"]
    if not detector.threshold == calibrated:  # the run calibrated after saving: its card holds the threshold
        detector._threshold.fill_(calibrated)
    x, y = ctx.load_data(summary["preset"]["dataset"], "test", args.n, target=target).tensors()
    pipe = Pipeline(target.model, None, detector).eval()
    attack = PGD(args.eps, steps=args.steps, abs_stepsize=2.5 * args.eps / args.steps, early_stop=True)
    engine = iterative.loss_gradient
    kept: dict[str, torch.Tensor] = {}
    result = {"command": "python benchmarks/detector_objectives.py " + " ".join(
                  "<data>" if a == args.data_root else a for a in sys.argv[1:]),
              "commit": git_commit(), "detector": args.detector, "n": len(y), "eps": args.eps, "steps": args.steps,
              "kappa": KAPPA, "objectives": {}}
    for name, fn in [("switch", engine)] + [(f"hinge-sum {c:g}", hinge_sum(c)) for c in (1.0, 10.0, 100.0)]:
        iterative.loss_gradient = fn
        try:
            t0 = time.perf_counter()
            adv = craft_images(attack, pipe, x, y, threat="adaptive", eot_samples=1, batch_size=len(x), seed=0)
            seconds = time.perf_counter() - t0
        finally:
            iterative.loss_gradient = engine
        kept[name] = robust(pipe, x, y, adv)
        r = int(kept[name].sum())
        result["objectives"][name] = {"robust_accuracy": r / len(y), "ci95": list(wilson_interval(r, len(y))),
                                      "seconds": round(seconds, 1)}
        print(name, result["objectives"][name], flush=True)
    best = kept["hinge-sum 1"] & kept["hinge-sum 10"] & kept["hinge-sum 100"]
    r = int(best.sum())
    result["objectives"]["hinge-sum best"] = {"robust_accuracy": r / len(y), "ci95": list(wilson_interval(r, len(y)))}
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        atomic_write(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    main()
