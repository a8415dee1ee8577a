"""Which attack of the engine breaks a detector-guarded classifier best, all with the engine's detector-aware
objective? (issue 25: the adaptive attacker must be at least as strong as the field's.)

    python benchmarks/detector_attacks.py --run <a detection reproduction's folder> --detector magnet-error \
        --data-root <data> [--n 100] [--attack 'pgd {"eps": 0.3, "steps": 50, "abs_stepsize": 0.015}' ...] \
        [--out docs/benchmarks/detector-attacks-magnet-mnist.json]

Loads the detector the reproduction trained (its checkpoint and calibrated threshold) in front of the zoo
classifier it guards and runs each attack through the pipeline under the adaptive threat, exactly as an
evaluation does (``run_attack``: the hinge-sum search over the detector weight, then the per-image switch,
each run on the images no earlier one broke). Robust accuracy as the detection runner counts it
(``AttackResult.unbroken``: right and unflagged when clean, and not turned into an unflagged
misclassification), with its 95 % interval. A benchmark of attack strength, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from advshield.attacks import create_attack, run_attack
from advshield.metrics.interval import wilson_interval
from common import atomic_write, detection_run_pipeline, git_commit  # benchmarks/common.py, beside this script

DEFAULT = ['pgd {"eps": 0.3, "steps": 50, "abs_stepsize": 0.015, "early_stop": true}',
           'pgd {"eps": 0.3, "steps": 200, "abs_stepsize": 0.003, "early_stop": true}',
           'apgd-ce {"eps": 0.3, "steps": 100}',
           'apgd-ce {"eps": 0.3, "steps": 100, "detector_start": "random"}',
           'apgd-ce {"eps": 0.3, "steps": 100, "restarts": 2}',
           'pgd-l2 {"eps": 3.0, "steps": 100, "early_stop": true}']


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a detection reproduction's output folder")
    ap.add_argument("--detector", default="magnet-error")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--attack", action="append", help="'<registered name> <JSON parameters>' (repeatable)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    pipe, x, y, detector = detection_run_pipeline(Path(args.run), args.detector, args.data_root, args.n)
    result = {"command": "python benchmarks/detector_attacks.py " + " ".join(
                  "<data>" if a == args.data_root else ("<run>" if a == args.run else a) for a in sys.argv[1:]),
              "commit": git_commit(), "detector": args.detector, "threshold": float(detector.threshold),
              "n": len(y), "attacks": []}
    for spec in args.attack or DEFAULT:
        name, _, params = spec.partition(" ")
        params = json.loads(params or "{}")
        t0 = time.perf_counter()
        r = run_attack(create_attack(name, **params), pipe, x, y, threat="adaptive", seed=0)
        k = int(r.unbroken.sum())
        row = {"attack": name, "params": params, "robust_accuracy": k / len(y),
               "ci95": list(wilson_interval(k, len(y))), "clean_right_unflagged": int(r.clean_correct.sum()),
               "seconds": round(time.perf_counter() - t0, 1)}
        result["attacks"].append(row)
        print(json.dumps(row), flush=True)
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        atomic_write(Path(args.out), text)


if __name__ == "__main__":
    main()
