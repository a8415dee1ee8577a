"""Where the time of ``advshield reproduce cru-net-mnist --full`` goes, and what was tried to cut it (issue 30).

    python benchmarks/reproduce_cost.py --data-root <data> --parts deepfool,batch,health [--n-health 30]
    python benchmarks/reproduce_cost.py --speedscope <file> --parts profile

Parts (each merged into OUT.json under its name, with the commit, CPU and load it ran with):

* ``profile``: inclusive shares of the advshield functions in a py-spy speedscope profile of the reproduction
  (``py-spy record -r 10 -f speedscope -o <file> -- python -m advshield reproduce cru-net-mnist --full ...``);
  the weights of a py-spy speedscope file are seconds of wall time.
* ``deepfool``: the preset's DeepFool (50 steps, 4 candidates, overshoot 0.02) on the first 500 MNIST test images
  of the zoo A-net: CPU seconds and the rows of every linearisation (one forward, K-1 backward passes each).
* ``batch``: CPU seconds of 1000 restorations by the zoo CRU-Net for A-net and of 1000 A-net input gradients at
  batch sizes 16-500 (3 interleaved rounds, median), and whether each is bit-identical to batch 250 (the CLI's).
* ``health``: CPU seconds of the health checks of the preset's adaptive PGD (eps 0.3, 100 steps of 0.01) through
  the CRU-Net for A-net on the first ``--n-health`` images, and the checks' verdicts. Run it once per code
  version to compare (e.g. with ``PYTHONPATH`` pointing at an older ``src/``); rows are keyed by the advshield
  commit imported.

CPU seconds (``time.process_time``, one torch thread) are used instead of wall time because this shared 2-core
machine's load swings wall times by 2-6x; they still include cache contention from other jobs.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import atomic_write, cpu_model, git_commit  # noqa: E402

KEEP = ("run_evaluation", "evaluate_setting", "generate_adversarial_set", "run_attack", "DeepFool.perturb",
        "candidate_gradients", "IterativeAttack.perturb", "CarliniWagnerL2.perturb", "FGSM.perturb",
        "SpatialAttack.perturb", "_accumulate", "CRUNet.forward", "ssim", "setting_health", "run_health_checks",
        "judge", "Classifier.forward")


def host(threads: int) -> dict:
    import advshield

    src = Path(advshield.__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=src, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "benchmark_commit": git_commit(), "advshield_commit": commit,
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": list(os.getloadavg())}


def profile(args) -> dict:
    d = json.loads(Path(args.speedscope).read_text())
    frames, total, inclusive = d["shared"]["frames"], 0.0, collections.Counter()
    for prof in d["profiles"]:
        for stack, w in zip(prof["samples"], prof["weights"]):
            total += w
            for name in {frames[i]["name"] for i in stack}:
                inclusive[name] += w
    return {"profiled_commit": args.profiled_commit, "what": args.what, "seconds_sampled": round(total, 1),
            "share": {k: round(inclusive[k] / total, 4) for k in KEEP if inclusive[k]}}


def _setup(data_root: str, n: int):
    from advshield.experiment import RunContext

    ctx = RunContext.create("cpu", data_root=data_root)
    target = ctx.load_target("a-net", "mnist")
    defense, _, _ = ctx.load_defense("cru-net-for-a-net", {})
    return ctx, target, defense.eval(), ctx.load_data("mnist", "test", n, target=target)


def deepfool(args) -> dict:
    import advshield.attacks.deepfool as df
    from advshield.attacks import L2DeepFool, run_attack

    _, target, _, data = _setup(args.data_root, 500)
    x, y = data.tensors()
    rows, original = [], df.candidate_gradients
    df.candidate_gradients = lambda s, xb, cls: rows.append(len(xb)) or original(s, xb, cls)
    try:
        t0 = time.process_time()
        r = run_attack(L2DeepFool(steps=50, candidates=4, overshoot=0.02), target.model, x, y, batch_size=250)
        cpu = time.process_time() - t0
    finally:
        df.candidate_gradients = original
    return {"n": len(y), "cpu_s": round(cpu, 2), "linearisations": len(rows), "rows": sum(rows),
            "rows_per_call": rows, "adv_accuracy": r.summary()["adv_accuracy"]}


def batch(args) -> dict:
    _, target, defense, data = _setup(args.data_root, 1000)
    x, y = data.tensors()
    model = target.model.eval()
    for p in list(defense.parameters()) + list(model.parameters()):
        p.requires_grad_(False)

    def restore(bs):
        with torch.no_grad():
            return torch.cat([defense(x[s:s + bs]) for s in range(0, len(x), bs)])

    def input_gradient(bs):
        out = []
        for s in range(0, len(x), bs):
            xb = x[s:s + bs].clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xb), y[s:s + bs], reduction="sum")
            out.append(torch.autograd.grad(loss, xb)[0])
        return torch.cat(out)

    sizes, res = (16, 32, 64, 128, 250, 500), {}
    for f in (restore, input_gradient):
        ref = f(250)
        res[f.__name__] = {str(bs): {"identical_to_250": bool(torch.equal(f(bs), ref)), "cpu_s": []} for bs in sizes}
    for _ in range(3):
        for f in (restore, input_gradient):
            for bs in sizes:
                t0 = time.process_time()
                f(bs)
                res[f.__name__][str(bs)]["cpu_s"].append(round(time.process_time() - t0, 3))
    for per in res.values():
        for row in per.values():
            row["median_cpu_s"] = sorted(row["cpu_s"])[1]
    return res


def health(args) -> dict:
    from advshield.attacks import Pipeline
    from advshield.experiment import AttackSetting
    from advshield.experiment.health import setting_health

    ctx, target, defense, data = _setup(args.data_root, args.n_health)
    setting = AttackSetting("pgd", {"eps": 0.3, "steps": 100, "abs_stepsize": 0.01}, "adaptive")
    t0, w0 = time.process_time(), time.perf_counter()
    h = setting_health(setting, Pipeline(target.model, defense), data, ctx, n=args.n_health)
    return {"n": args.n_health, "cpu_s": round(time.process_time() - t0, 1),
            "wall_s": round(time.perf_counter() - w0, 1),
            "checks": [{"name": c["name"], "passed": c["passed"], "detail": c["detail"]} for c in h["checks"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("ADVSHIELD_DATA"))
    ap.add_argument("--parts", default="deepfool,batch,health")
    ap.add_argument("--speedscope", help="a py-spy speedscope profile of the reproduction (part 'profile')")
    ap.add_argument("--profiled-commit", help="the advshield commit the profiled reproduction ran (part 'profile')")
    ap.add_argument("--what", default="", help="what the profiled run covered (part 'profile')")
    ap.add_argument("--n-health", type=int, default=30)
    ap.add_argument("--out", default="docs/benchmarks/reproduce-cost.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.exists() else {}
    for part in args.parts.split(","):
        result = {"host": host(1), **{"profile": profile, "deepfool": deepfool, "batch": batch,
                                      "health": health}[part](args)}
        if part == "health":
            res.setdefault("health", {})[result["host"]["advshield_commit"] or "unknown"] = result
        else:
            res[part] = result
        atomic_write(out, json.dumps(res, indent=1) + "\n")
        print(f"{part}: done", flush=True)


if __name__ == "__main__":
    main()
