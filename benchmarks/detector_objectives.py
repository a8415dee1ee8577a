"""Which detector-aware objective breaks a detector-guarded classifier best? (issue 25: the adaptive attacker
must be at least as strong as the field's.)

    python benchmarks/detector_objectives.py --run runs/reproduce/cmag-mnist-full-3 --detector cmag-ssim \
        --data-root <data> [--n 100] [--steps 50] [--out docs/benchmarks/detector-objectives.json]

Loads a detector a detection reproduction trained (its checkpoint and calibrated threshold) in front of the
zoo classifier it guards, and runs the same L-inf PGD (eps 0.3, step 2.5 eps / steps, early exit), each row
one run of it on all images, with the objective:

* ``switch``: the engine's objective before this benchmark's verdict: the classifier's cross-entropy until the
  image is misclassified, then minus the detector's hinge (score over threshold), per image;
* ``hinge-sum c``: Carlini & Wagner (2017, "Adversarial examples are not easily detected")'s joint loss,
  maximise -(relu(margin + kappa) + c * hinge) with margin = z_y - max_{j != y} z_j, kappa = 0.1 and the hinge
  relative to the threshold (``Surface.penalty``), for c in 1, 10, 100;
* ``engine``: what every adaptive evaluation now runs (``attacks.base.craft_batch``): the hinge sum at c = 1,
  10, 100, then the switch, each on the images no earlier run broke, per-image worst case.

Robust accuracy as the detection runner counts it: correct and unflagged when clean, and not turned into an
unflagged misclassification. A benchmark of the detection presets' adaptive objective, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from advshield.attacks import PGD, Pipeline, craft_images
from advshield.attacks.base import frozen
from advshield.metrics.interval import wilson_interval
from common import atomic_write, detection_run_pipeline, git_commit  # benchmarks/common.py, beside this script

def single_run(attack: PGD, pipe: Pipeline, x: torch.Tensor, y: torch.Tensor, weight: float,
               switch: bool) -> torch.Tensor:
    """One run of ``attack`` on the adaptive surface at detector weight ``weight`` (or the switch)."""
    surface = pipe.surface("adaptive").reweighted(weight, switch).eval()
    with torch.enable_grad(), frozen(surface):
        return attack.perturb(surface, x, y, None, torch.Generator().manual_seed(0)).detach()


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
    pipe, x, y, detector = detection_run_pipeline(Path(args.run), args.detector, args.data_root, args.n)
    attack = PGD(args.eps, steps=args.steps, abs_stepsize=2.5 * args.eps / args.steps, early_stop=True)
    result = {"command": "python benchmarks/detector_objectives.py " + " ".join(
                  "<data>" if a == args.data_root else a for a in sys.argv[1:]),
              "commit": git_commit(), "detector": args.detector, "threshold": float(detector.threshold),
              "n": len(y), "eps": args.eps, "steps": args.steps, "objectives": {}}
    runs = [("switch", lambda: single_run(attack, pipe, x, y, 1.0, True))]
    runs += [(f"hinge-sum {c:g}", lambda c=c: single_run(attack, pipe, x, y, c, False)) for c in (1.0, 10.0, 100.0)]
    runs += [("engine", lambda: craft_images(attack, pipe, x, y, threat="adaptive", eot_samples=1,
                                             batch_size=len(x), seed=0))]
    for name, craft in runs:
        t0 = time.perf_counter()
        adv = craft()
        seconds = time.perf_counter() - t0
        r = int(robust(pipe, x, y, adv).sum())
        result["objectives"][name] = {"robust_accuracy": r / len(y), "ci95": list(wilson_interval(r, len(y))),
                                      "seconds": round(seconds, 1)}
        print(name, result["objectives"][name], flush=True)
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        atomic_write(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    main()
