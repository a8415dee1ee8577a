"""Where advshield's AutoAttack spends its time: per member, seconds, images, model passes and calls.

    python benchmarks/autoattack_members.py --data-root <data> [--pipeline cru-net-a] [--n 100]
        [--batch-size 250] [--threads 1] [--modes grouped,sequential] [--out result.json]

Runs the standard ensemble through one pipeline of ``benchmarks/autoattack_agreement.py`` (same builder, same
images: the first ``n`` test images) once per mode, in one process, one after the other:

* ``grouped``: once few points are left, APGD-T's and FAB-T's target runs share one batch of at most the
  ensemble's batch rows (``parallel_targets=True``, ``max_rows``);
* ``sequential``: the targets one after the other, each on the points still robust (the reference's schedule);
* ``default``: the engine's own choice (FAB-T grouped; APGD-T grouped on accelerators only).

(Commit 76fc22b also had a mode ``screen``: every member at a tenth of its budget first; measured slower through
the CRU-Net, docs/benchmarks/autoattack-members-cru-net-a-screen.json, and reverted.)

Per member: wall seconds, the images it was given (the points every earlier member left robust), the images
the classifier behind the pipeline was run on (forward passes, with or without gradients) and the number of
those calls. The profile behind the time-to-verdict section of ``docs/benchmark-attacks.md``; host timings,
not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoattack_agreement import build, git_commit  # noqa: E402  (same pipelines, same images)

from advshield.attacks import apgd, fab, run_attack, square  # noqa: E402
from advshield.attacks.autoattack import AutoAttack  # noqa: E402
from advshield.experiment.context import RunContext  # noqa: E402


class Profile:
    """Counts the classifier's calls and images, and times each member's ``perturb``."""

    def __init__(self, classifier: torch.nn.Module) -> None:
        self.images = self.calls = 0
        self.members: dict[str, dict] = {}
        classifier.register_forward_hook(self._count)

    def _count(self, module, inputs, output) -> None:
        self.images, self.calls = self.images + len(inputs[0]), self.calls + 1

    def timed(self, name: str, perturb):
        def run(attack, surface, x, *args, **kwargs):
            images, calls, t0 = self.images, self.calls, time.perf_counter()
            out = perturb(attack, surface, x, *args, **kwargs)
            m = self.members.setdefault(getattr(attack, "name", name), {"seconds": 0.0, "images_in": 0, "model_images": 0, "model_calls": 0})
            m["seconds"] += time.perf_counter() - t0
            m["images_in"] += len(x)
            m["model_images"] += self.images - images
            m["model_calls"] += self.calls - calls
            return out
        return run


class Scheduled(AutoAttack):
    """The standard ensemble with APGD-T's and FAB-T's ``parallel_targets`` forced on or off."""

    def __init__(self, eps: float, parallel: bool) -> None:
        super().__init__(eps, version="standard")
        self.parallel = parallel

    def members(self, version=None):
        ms = super().members(version)
        for m in ms:
            if hasattr(m, "parallel_targets"):
                m.parallel_targets = self.parallel
        return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="cru-net-a")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", default="grouped,sequential", help="of: grouped, sequential, default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--cache", default="runs/bench-aa")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ctx = RunContext.create(args.device, data_root=args.data_root, seed=0)
    pipe, x, y, eps, _ = build(args.pipeline, ctx, args.n, Path(args.cache), args.data_root)
    prof = Profile(pipe.classifier)
    originals = {cls: cls.perturb for cls in (apgd.APGD, apgd.APGDT, fab.FABT, square.Square)}
    result = {"command": "python benchmarks/autoattack_members.py " + " ".join(
                  a if not a.startswith("/") else "<path>" for a in sys.argv[1:]),
              "host": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                      f"{args.threads} torch thread(s), device {args.device}",
              "commit": git_commit(), "pipeline": args.pipeline, "n": len(x), "batch_size": args.batch_size, "eps": eps, "modes": {}}
    for mode in [m for m in args.modes.split(",") if m]:
        prof.members = {}
        for cls, perturb in originals.items():
            cls.perturb = prof.timed(cls.name, perturb)
        attack = AutoAttack(eps) if mode == "default" else Scheduled(eps, parallel=mode == "grouped")
        t0 = time.perf_counter()
        r = run_attack(attack, pipe, x, y, threat="adaptive", eot_samples=1, batch_size=args.batch_size,
                       device=args.device)
        result["modes"][mode] = {"seconds": round(time.perf_counter() - t0, 1),
                                 "robust_accuracy": r.summary()["adv_accuracy"],
                                 "members": {k: dict(v, seconds=round(v["seconds"], 1)) for k, v in prof.members.items()}}
        print(json.dumps({mode: result["modes"][mode]}), flush=True)
    for cls, perturb in originals.items():
        cls.perturb = perturb
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
