"""AutoAttack agreement: advshield's `autoattack` vs torchattacks' and ART's AutoAttack, same images, same pipelines.

    pip install -e ".[bench]"   # ART; torchattacks comes from scripts/install.sh (--no-deps)
    python benchmarks/autoattack_agreement.py --data-root <data> [--n 1000] [--n-cifar 500] [--pipelines a-net,...]
        [--device auto] [--out docs/benchmarks/autoattack-agreement] [--speed-n 500 --speed-rounds 2]

Every pipeline is built with the experiment layer (RunContext.load_target / load_defense / load_data) and
attacked white-box through the whole pipeline (the adaptive threat): advshield runs ``run_attack(autoattack,
pipeline, threat="adaptive")``; torchattacks and ART get ``pipeline.surface("adaptive")`` as their model, the
same function with the same gradients (exact through a differentiable restorer, BPDA through a quantiser).
All three sets of adversarial images are judged by advshield on the real pipeline: an image is robust when the
pipeline classifies it correctly clean (and, with a detector, does not flag it clean) and the attack's image is
still classified correctly or is flagged. Peers' images are checked against the L-inf budget and [0, 1].

Detector (CMAG at 5 % FPR): advshield's attack is detector-aware (the adaptive surface adds a hinge on the
detector score). torchattacks and ART cannot express that objective: they attack the classifier behind the
detector (CMAG has no reformer, so the surface is the classifier alone), and their images are judged like
advshield's (fooled and not flagged at the calibrated threshold).

Members run: advshield `autoattack` version standard (APGD-CE 100 steps, APGD-T 9 targets x 100 steps, FAB-T
9 targets x 100 steps, Square 5000 queries); torchattacks `AutoAttack(version="standard")` (APGD-CE, APGD-T,
FAB multi-targeted, Square 5000 queries, one restart each; its APGD-CE, APGD-T and FAB-T keep torchattacks'
default of 10 iterations, a tenth of the reference's 100; ``--speed-libraries ...,torchattacks-reference`` also
times its members at 100 iterations, the equal-strength comparison); ART `AutoAttack` with its default attack list,
untargeted (its default ``targeted=False``): APGD-CE (100 iterations, 5 random starts), APGD-DLR (100, 5
starts), DeepFool (100 iterations, kept only where within eps), Square (5000 iterations, 5 restarts); ART's
``eps_step`` is set to 2 eps: ART's APGD takes it as its first step as it is (auto_projected_gradient_descent.py,
ART 1.20.1), and the reference starts at 2 eps. The committed ART rows before this fix ran with eps_step = eps.

Zoo pipelines without a zoo checkpoint are fitted once with the project's own code into --cache (small
budgets, recorded in the report): the DKN restorer for zoo dkn-a (``advshield train-defense``) and the CMAG
detector for zoo a-net (``advshield.detectors.build_detector``, calibrated at 5 % FPR on held-out training
images). Results are saved after every (pipeline, library) pair; a rerun skips what is already there at the
same n (``--force`` recomputes). ``--chunk K`` crafts a peer's images K at a time and keeps each finished chunk
in --cache (safetensors), so a run cut off after hours resumes at its first missing chunk; the attacks act per
image (each chunk seeded alike), so the row is the same attack on the same images, its wall time the chunks' sum.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from advshield.attacks import Pipeline, run_attack
from advshield.attacks.autoattack import AutoAttack
from advshield.attacks.ensemble import member_robust_accuracy
from advshield.experiment.context import RunContext
from advshield.metrics.interval import wilson_interval
from common import atomic_write, cpu_model, git_commit  # benchmarks/common.py, beside this script

LIBRARIES = ("advshield", "torchattacks", "art")
MNIST_EPS, CIFAR_EPS = 0.3, 8 / 255
GOAL_N = {"mnist": 1000, "cifar10": 500}  # the sample sizes; rows below them say so

# name -> (dataset, classifier, defense spec or None, defense params, detector or None, description)
PIPELINES = {
    "a-net": ("mnist", "a-net", None, {}, None, "zoo A-net, undefended"),
    "b-net": ("mnist", "b-net", None, {}, None, "zoo B-net, undefended"),
    "cru-net-a": ("mnist", "a-net", "cru-net-for-a-net", {}, None, "zoo CRU-Net for A-net + A-net"),
    "cru-net-b": ("mnist", "b-net", "cru-net-for-b-net", {}, None, "zoo CRU-Net for B-net + B-net"),
    "dkn-a": ("mnist", "dkn-a", "fitted:dkn", {}, None, "DKN restorer (fitted here) + zoo dkn-a (DKN model A)"),
    "bit-depth-1": ("mnist", "a-net", "bit-depth", {"bits": 1}, None,
                    "registered `bit-depth` squeezer (bits=1), BPDA, + A-net"),
    "cmag": ("mnist", "a-net", None, {}, "cmag-ssim", "A-net guarded by CMAG (SSIM) at 5 % FPR (fitted here)"),
    "resnet20": ("cifar10", "resnet20", None, {}, None, "zoo ResNet-20 (CIFAR-10), undefended"),
}
DEFAULT_PIPELINES = "a-net,b-net,cru-net-a,cru-net-b,dkn-a,bit-depth-1,cmag,resnet20"

# Small fitting budgets for the pipelines the zoo lacks (recorded in the report).
DKN_FIT = ["--defense", "dkn", "--target", "dkn-a", "--attacks", "fgsm,pgd", "--attack-param", "fgsm.eps=0.3",
           "--attack-param", "pgd.eps=0.3", "--attack-param", "pgd.steps=40", "--attack-param", "pgd.abs_stepsize=0.01",
           "--defense-param", "m=5", "--defense-param", "width=16", "--defense-param", "levels=3", "--l1", "1",
           "--mse", "0", "--ce", "1", "--n-train", "10000", "--n-val", "500", "--epochs", "6", "--batch-size", "64"]
CMAG_FIT = {"kind": "cmag-ssim", "n_train": 5000, "epochs": 5, "n_calib": 1000, "fpr": 0.05, "seed": 0}


# ----------------------------------------------------------------------------------------------- pipelines
def fit_dkn(ctx: RunContext, cache: Path, data_root: str | None) -> Path:
    out = cache / "dkn-for-dkn-a"
    found = [out / "model.safetensors"] if (out / "model.safetensors").exists() else []  # the run's final model
    if not found:
        cmd = [sys.executable, "-m", "advshield", "train-defense", *DKN_FIT, "--device", str(ctx.device),
               "--out", str(out), "--store", str(cache / "adversarial"), "--json"]
        if data_root:
            cmd += ["--data-root", data_root]
        print("fitting the DKN restorer:", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        found = [out / "model.safetensors"]
    return found[0]


def fit_cmag(ctx: RunContext, classifier, target_card: dict, cache: Path):
    from advshield.detectors import build_detector
    from advshield.detectors.checkpoint import load_detector, save_detector

    path = cache / "cmag-ssim-for-a-net.safetensors"
    if path.exists():
        return load_detector(path, classifier, target_card["sha256"], ctx.device)[0]
    f = CMAG_FIT
    train = ctx.load_data("mnist", "train")
    x_fit, _ = train.head(f["n_train"]).tensors()
    x_cal, _ = train.tensors(slice(len(train) - f["n_calib"], len(train)))  # held out: the split's last images
    print(f"fitting CMAG: {f}", flush=True)
    det, _ = build_detector(f["kind"], classifier, x_fit, epochs=f["epochs"], seed=f["seed"], device=ctx.device)
    scores = det.scores(x_cal.split(500), ctx.device)
    det.calibrate_fpr(scores, f["fpr"])
    cache.mkdir(parents=True, exist_ok=True)
    save_detector(path, det, f["kind"], classifier=classifier, classifier_card=target_card,
                  image_shape=tuple(x_fit.shape[1:]), recipe=dict(f))
    return det


def build(name: str, ctx: RunContext, n: int, cache: Path, data_root: str | None):
    dataset, target_name, spec, params, detector, _ = PIPELINES[name]
    target = ctx.load_target(target_name, dataset)
    data = ctx.load_data(dataset, "test", n, target=target)
    x, y = data.tensors()
    defense, det, notes = None, None, {}
    if spec == "fitted:dkn":
        path = fit_dkn(ctx, cache, data_root)
        defense, _, card = ctx.load_defense(str(path))
        notes["defense_sha256"] = card["sha256"]
        notes["fitted"] = "advshield train-defense " + " ".join(DKN_FIT)
    elif spec is not None:
        defense, _, card = ctx.load_defense(spec, params)
        if card:
            notes["defense_sha256"] = card["sha256"]
    if detector:
        det = fit_cmag(ctx, target.model, target.card, cache)
        notes["fitted"] = f"build_detector {CMAG_FIT}"
        notes["threshold"] = det.threshold
    pipe = Pipeline(target.model, defense, det).to(ctx.device).eval()
    eps = MNIST_EPS if dataset == "mnist" else CIFAR_EPS
    return pipe, x, y, eps, notes


# ------------------------------------------------------------------------------------------------ attacks
def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_advshield(pipe, x, y, eps, bs, device):
    t0 = time.perf_counter()
    r = run_attack(AutoAttack(eps, version="standard"), pipe, x, y, threat="adaptive", eot_samples=1,
                   batch_size=bs, device=device)
    sync(device)
    run_advshield.members = member_robust_accuracy(r)  # cumulative robust accuracy after each member
    return r.adv, time.perf_counter() - t0


def run_torchattacks(pipe, x, y, eps, bs, device):
    import torchattacks as ta

    surface = pipe.surface("adaptive", None, 1).eval()
    atk = ta.AutoAttack(surface, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    advs = [atk(x[i:i + bs].to(device), y[i:i + bs].to(device)).detach().cpu() for i in range(0, len(x), bs)]
    sync(device)
    return torch.cat(advs), time.perf_counter() - t0


def run_torchattacks_reference(pipe, x, y, eps, bs, device):
    """torchattacks' standard members at the reference AutoAttack's budgets (Croce & Hein 2020: APGD-CE, APGD-T
    and FAB-T 100 iterations each; torchattacks' own ``AutoAttack(version="standard")`` keeps its members'
    default of 10), so the comparison is at equal strength."""
    import torchattacks as ta

    surface = pipe.surface("adaptive", None, 1).eval()
    common = dict(eps=eps, norm="Linf", n_restarts=1, seed=0)
    atk = ta.MultiAttack([ta.APGD(surface, loss="ce", steps=100, **common),
                          ta.APGDT(surface, steps=100, n_classes=10, **common),
                          ta.FAB(surface, steps=100, multi_targeted=True, n_classes=10, **common),
                          ta.Square(surface, n_queries=5000, **common)])
    torch.manual_seed(0)
    t0 = time.perf_counter()
    advs = [atk(x[i:i + bs].to(device), y[i:i + bs].to(device)).detach().cpu() for i in range(0, len(x), bs)]
    sync(device)
    return torch.cat(advs), time.perf_counter() - t0


def run_art(pipe, x, y, eps, bs, device):
    from art.attacks.evasion import AutoAttack as ArtAutoAttack
    from art.estimators.classification import PyTorchClassifier

    surface = pipe.surface("adaptive", None, 1).eval()
    clf = PyTorchClassifier(surface, torch.nn.CrossEntropyLoss(), tuple(x.shape[1:]), 10, clip_values=(0.0, 1.0),
                            device_type="gpu" if torch.device(device).type == "cuda" else "cpu")
    atk = ArtAutoAttack(clf, norm=np.inf, eps=eps, eps_step=2 * eps, batch_size=bs)  # the reference's first step
    np.random.seed(0)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    adv = atk.generate(x=x.numpy(), y=y.numpy())
    return torch.from_numpy(adv).float(), time.perf_counter() - t0


RUNNERS = {"advshield": run_advshield, "torchattacks": run_torchattacks, "art": run_art,
           "torchattacks-reference": run_torchattacks_reference}
SHORT = {"advshield": "A", "torchattacks": "T", "torchattacks-reference": "R", "art": "X"}


@torch.no_grad()
def judge(pipe, x, y, adv, eps, device, bs=500):
    """Robust per image, judged on the pipeline; peers' images outside the budget are projected (and counted)."""
    over = int(((adv - x).abs().flatten(1).amax(1) > eps + 1e-5).sum())
    adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    robust = []
    for i in range(0, len(x), bs):
        xb, ab, yb = x[i:i + bs].to(device), adv[i:i + bs].to(device), y[i:i + bs].to(device)
        ok = pipe.predict(xb) == yb
        ok_adv = pipe.predict(ab) == yb
        flag_c, flag_a = pipe.detected(xb), pipe.detected(ab)
        if flag_c is not None:
            ok &= ~flag_c
            ok_adv |= flag_a
        robust.append((ok & ok_adv).cpu())
    robust = torch.cat(robust)
    clean = []
    for i in range(0, len(x), bs):
        xb, yb = x[i:i + bs].to(device), y[i:i + bs].to(device)
        c = pipe.predict(xb) == yb
        f = pipe.detected(xb)
        clean.append((c & ~f if f is not None else c).cpu())
    clean = torch.cat(clean)
    k, n = int(robust.sum()), len(x)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "robust": k, "robust_accuracy": k / n, "ci95": [lo, hi], "clean_accuracy": float(clean.float().mean()),
            "over_budget": over, "linf_max": float((adv - x).abs().max()),
            "robust_idx": robust.nonzero().squeeze(1).tolist()}, robust


def chunk_identity(run: dict, x, y) -> str:
    """What a kept chunk must match to be reused: ``run`` (eps, the library and its version, the batch size, the
    device type and the pipeline's fitted parts, the same for every chunk) and the images and labels attacked."""
    digest = hashlib.sha256(x.contiguous().numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    return json.dumps({**run, "images": digest}, sort_keys=True, default=str)


def craft(name: str, lib: str, pipe, x, y, eps, args, device, cache: Path, notes: dict | None = None):
    """``lib``'s adversarial images of ``x`` and its crafting seconds; with ``args.chunk`` (peers only: advshield
    keeps a per-member record over the whole set) in chunks, each kept in ``cache``/chunks and reused on a rerun
    where its :func:`chunk_identity` is the same (else, and with ``--force``, crafted again)."""
    if not args.chunk or lib == "advshield":
        return RUNNERS[lib](pipe, x, y, eps, args.batch_size, device)
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    folder, advs, seconds = cache / "chunks", [], 0.0
    folder.mkdir(parents=True, exist_ok=True)
    run = {"eps": eps, "library": lib, "version": host_info(device).get(lib.split("-")[0]),
           "batch_size": args.batch_size, "device": torch.device(device).type, "pipeline": notes or {}}
    for start in range(0, len(x), args.chunk):
        stop = min(start + args.chunk, len(x))
        path = folder / f"{name}-{lib}-{start:05d}-{stop:05d}.safetensors"
        identity = chunk_identity(run, x[start:stop], y[start:stop])
        kept = None
        if path.exists() and not getattr(args, "force", False):
            try:
                with safe_open(str(path), "pt") as f:  # the metadata keeps the chunk's identity and seconds
                    meta = f.metadata()
                    if meta.get("identity") == identity:
                        kept = f.get_tensor("adv"), float(meta["seconds"])
            except (SafetensorError, OSError, KeyError, ValueError):
                kept = None  # unreadable: crafted again
            print(f"{name} / {lib}: images {start}-{stop} " + ("read back" if kept else "kept for other images, "
                  "pipeline or library version: crafted again"), flush=True)
        if kept:
            adv, sec = kept
        else:
            adv, sec = RUNNERS[lib](pipe, x[start:stop], y[start:stop], eps, args.batch_size, device)
            tmp = path.with_name(path.name + ".tmp")
            save_file({"adv": adv.contiguous().cpu()}, str(tmp),
                      metadata={"seconds": repr(sec), "commit": str(git_commit()), "identity": identity})
            os.replace(tmp, path)
            print(f"{name} / {lib}: images {start}-{stop} crafted in {sec:.1f} s", flush=True)
        advs.append(adv.cpu())
        seconds += sec
    return torch.cat(advs), seconds


# ------------------------------------------------------------------------------------------------ storage
def host_info(device) -> dict:
    info = {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device)}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    for mod in ("torchattacks", "art"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def fmt_pct(v):
    return f"{100 * v:.1f} %"


def render(res: dict) -> str:
    h = res["header"]
    lines = ["# AutoAttack agreement: advshield vs torchattacks vs ART", "",
             "Written by `benchmarks/autoattack_agreement.py` (see its docstring for what each library runs).", ""]
    for run in h.get("runs", []):
        lines.append(f"- Command: `{run['command']}`  ")
        hi = run["host"]
        lines.append(f"  Host: {hi['cpu']}, {hi['cpus']} CPUs ({hi['torch_threads']} torch threads)"
                     + (f", GPU {hi['gpu']}" if hi.get("gpu") else "")
                     + f"; device {hi['device']}; torch {hi['torch']}, torchattacks {hi['torchattacks']}, "
                     f"ART {hi['art']}; started {run['started']}"
                     + (f", commit {run['commit']}" if run.get("commit") else "")
                     + (f", load average {run['load_average']:.1f}" if run.get("load_average") is not None else "") + ".")
    if res.get("findings"):  # hand-written conclusions kept in the JSON, so a re-render keeps them
        lines += ["", "## Findings", ""] + [f"- {f}" for f in res["findings"]]
    lines += ["", "## Results", "",
              "Robust accuracy = share of the n test images (the first n of the split) that the pipeline classifies "
              "correctly clean and still classifies correctly (or flags) on the library's adversarial image, judged "
              "by advshield on the pipeline; 95 % Wilson interval in brackets. Check: advshield <= min(torchattacks, "
              "ART) + 0.5 points. Wall time: crafting only, on the device of the row.", "",
              "| pipeline | n | eps (L-inf) | clean | advshield | torchattacks | ART | check | wall s (adv / ta / ART) | "
              "device, torch threads |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in res["pipelines"].items():
        libs = p["libraries"]

        def cell(lib):
            r = libs.get(lib)
            if r is None:
                return "not run"
            return f"{fmt_pct(r['robust_accuracy'])} [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"

        check = "-"
        if all(k in libs for k in LIBRARIES):
            ours = libs["advshield"]["robust_accuracy"]
            peer = min(libs["torchattacks"]["robust_accuracy"], libs["art"]["robust_accuracy"])
            check = ("pass" if ours <= peer + 0.005 else "**FAIL**") + f" ({100 * (ours - peer):+.1f})"
        clean = next(iter(libs.values()))["clean_accuracy"] if libs else float("nan")
        walls = " / ".join(f"{libs[k]['seconds']:.0f}" if k in libs else "-" for k in LIBRARIES)
        threads = sorted({str(libs[k].get("threads", "?")) for k in libs})
        devs = sorted({libs[k]["device"] for k in libs})
        goal = GOAL_N[p.get("dataset", "mnist")]
        n_cell = f"{p['n']}" if p["n"] >= goal else f"{p['n']} (goal {goal})"
        lines.append(f"| {name}: {p['description']} | {n_cell} | {p['eps']:.4g} | {fmt_pct(clean)} | {cell('advshield')} "
                     f"| {cell('torchattacks')} | {cell('art')} | {check} | {walls} | {', '.join(devs)}, {'/'.join(threads)} thr. |")
    notes = [(n, p["notes"]) for n, p in res["pipelines"].items() if p.get("notes")]
    if notes:
        lines += ["", "Pipeline notes:", ""]
        lines += [f"- {n}: " + "; ".join(f"{k} = {v}" for k, v in d.items()) for n, d in notes]
    members = [(n, p["libraries"]["advshield"]["members"]) for n, p in res["pipelines"].items()
               if "members" in p["libraries"].get("advshield", {})]
    if members:
        lines += ["", "advshield's robust accuracy after each member (cumulative, as the ensemble judged it):", ""]
        lines += [f"- {n}: " + ", ".join(f"{k} {fmt_pct(v)}" for k, v in m.items()) for n, m in members]
    over = [(n, k, r["over_budget"]) for n, p in res["pipelines"].items() for k, r in p["libraries"].items()
            if r["over_budget"]]
    if over:
        lines += ["", "Images outside the L-inf budget (projected before judging): "
                  + ", ".join(f"{n}/{k}: {c}" for n, k, c in over)]
    speeds = dict(res.get("speeds", {}))
    if res.get("speed") and res["speed"]["pipeline"] not in speeds:  # the earlier single-pipeline record
        speeds[res["speed"]["pipeline"]] = res["speed"]
    for sp in speeds.values():
        lines += render_speed(sp)
    return "\n".join(lines) + "\n"


def fmt_s(seconds: float) -> str:
    """Seconds with three significant digits below 10 s (GPU rounds of a few milliseconds stay readable)."""
    return f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.3g}"


def render_speed(sp: dict) -> list[str]:
    libs = sp.get("libraries", ["advshield", "torchattacks"])
    secs = {lib: sp[lib]["seconds"] for lib in libs}
    if not all(secs.values()):
        return []
    med = {lib: statistics.median(v) for lib, v in secs.items()}
    lines = ["", f"## Speed: standard ensemble through `{sp['pipeline']}`, {sp['n']} MNIST test images, {sp['device']}", "",
             f"Time to verdict: each library's AutoAttack standard on the same images, interleaved rounds in one "
             f"process on {sp['device']}" + (f" ({sp['gpu']})" if sp.get("gpu") else "") + f" (order: {' '.join(sp['order'])}); batch {sp['batch_size']}"
             + (f", {sp['threads']} torch thread(s)" if sp.get("threads") else "") + ".", "",
             "| library | wall s per round | min s | median s | robust accuracy per round |", "|---|---|---|---|---|"]
    for lib in libs:
        lines.append(f"| {lib} | {', '.join(fmt_s(s) for s in secs[lib])} | {fmt_s(min(secs[lib]))} | {fmt_s(med[lib])} | "
                     f"{', '.join(fmt_pct(a) for a in sp[lib]['robust_accuracy'])} |")
    cut = (f" Cut off after {len(sp['order'])} of {len(libs) * sp.get('rounds', 2)} runs: fewer rounds than "
           f"planned." if sp.get("partial") else "")
    lines.append("")
    for peer in [lib for lib in libs if lib != "advshield"]:
        ratio = med[peer] / med["advshield"]
        goal = (f" (goal: >= 2x, {'met' if ratio >= 2 else 'not met'})" if peer == "torchattacks" else
                " (torchattacks' members at the reference's 100 iterations: the equal-strength comparison)")
        lines.append(f"Ratio {peer} / advshield (medians): **{ratio:.2f}x**, minimums "
                     f"{min(secs[peer]) / min(secs['advshield']):.2f}x{goal}.")
    if cut:
        lines.append(cut.strip())
    return lines


def save(res: dict, out: Path) -> None:
    atomic_write(out.with_suffix(".json"), json.dumps(res, indent=1) + "\n")
    atomic_write(out.with_suffix(".md"), render(res))


def merge(res: dict, part: dict) -> None:
    """Fold one part's runs, rows and speed sections into ``res``; a part's row at another n replaces the row."""
    runs = res.setdefault("header", {}).setdefault("runs", [])
    for run in part.get("header", {}).get("runs", []):
        if run not in runs:  # merging a part twice adds nothing
            runs.append(run)
    for name, entry in part.get("pipelines", {}).items():
        mine = res.setdefault("pipelines", {}).get(name)
        if mine is None or mine["n"] != entry["n"]:
            res["pipelines"][name] = mine = {k: v for k, v in entry.items() if k != "libraries"} | {"libraries": {}}
        mine["libraries"].update(entry["libraries"])
        mine["notes"] = {**mine.get("notes", {}), **entry.get("notes", {})}
    res.setdefault("speeds", {}).update(part.get("speeds", {}))


# --------------------------------------------------------------------------------------------------- main
def speed(ctx, args, cache, res, out, pipeline: str):
    """Time to verdict: each library's standard ensemble on the same images, interleaved rounds, one process."""
    pipe, x, y, eps, _ = build(pipeline, ctx, args.speed_n, cache, args.data_root)
    libs = [lib for lib in args.speed_libraries.split(",") if lib]
    sp = {"pipeline": pipeline, "n": len(x), "device": str(ctx.device), "batch_size": args.batch_size,
          "threads": torch.get_num_threads(), "rounds": args.speed_rounds, "order": [], "libraries": libs,
          "commit": git_commit(), "load_average": os.getloadavg()[0], "gpu": host_info(ctx.device).get("gpu"),
          **{lib: {"seconds": [], "robust_accuracy": []} for lib in libs}}
    speeds, key = res.setdefault("speeds", {}), f"{pipeline}@{len(x)}:{','.join(libs)}"
    for _ in range(args.speed_rounds):
        for lib in libs:
            adv, sec = RUNNERS[lib](pipe, x, y, eps, args.batch_size, ctx.device)
            sp["order"].append(SHORT[lib])
            sp[lib]["seconds"].append(sec)
            sp[lib]["robust_accuracy"].append(judge(pipe, x, y, adv, eps, ctx.device)[0]["robust_accuracy"])
            print(f"speed {pipeline} {lib}: {sec:.1f} s", flush=True)
            speeds[key] = dict(sp, partial=True)  # saved after every run: a cut-off comparison keeps its rounds
            save(res, out)
    for lib in libs:
        sp[lib]["median"] = statistics.median(sp[lib]["seconds"])
        sp[lib]["min"] = min(sp[lib]["seconds"])
    sp["ratio"] = {lib: sp[lib]["median"] / sp["advshield"]["median"] for lib in libs if lib != "advshield"}
    speeds[key] = sp  # complete: no "partial" key
    save(res, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="MNIST test images per pipeline")
    ap.add_argument("--n-cifar", type=int, default=500, help="CIFAR-10 test images per pipeline")
    ap.add_argument("--pipelines", default=DEFAULT_PIPELINES, help=f"comma-separated, of: {', '.join(PIPELINES)}")
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=os.environ.get("ADVSHIELD_DATA"))
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--out", default="docs/benchmarks/autoattack-agreement", help="writes OUT.json and OUT.md")
    ap.add_argument("--cache", default="runs/benchmarks/autoattack-agreement", help="fitted DKN / CMAG go here")
    ap.add_argument("--force", action="store_true", help="recompute rows already in OUT.json")
    ap.add_argument("--chunk", type=int, default=0,
                    help="craft the peers' images this many at a time, each chunk kept in --cache (0: all at once)")
    ap.add_argument("--speed-n", type=int, default=0, help="images for the speed comparison (0: skip it)")
    ap.add_argument("--speed-rounds", type=int, default=2)
    ap.add_argument("--speed-pipeline", default="cru-net-a", help="comma-separated pipelines to time")
    ap.add_argument("--speed-libraries", default="advshield,torchattacks",
                    help="comma-separated, timed in this order each round: advshield, torchattacks, "
                         "torchattacks-reference (its members at the reference's 100 iterations), art")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--render-only", action="store_true", help="rewrite OUT.md from OUT.json and exit")
    ap.add_argument("--merge", nargs="+", default=[], metavar="PART.json",
                    help="fold results written elsewhere (e.g. one process per library) into OUT and exit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, cache = Path(args.out), Path(args.cache)
    res = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    if args.render_only or args.merge:
        for part in args.merge:
            merge(res, json.loads(Path(part).read_text()))
        save(res, out) if args.merge else atomic_write(out.with_suffix(".md"), render(res))
        return
    ctx = RunContext.create(args.device, data_root=args.data_root)
    res.setdefault("header", {}).setdefault("runs", [])
    res.setdefault("pipelines", {})
    command = "python benchmarks/autoattack_agreement.py " + " ".join(
        a if not a.startswith("/") else "<path>" for a in sys.argv[1:])
    res["header"]["runs"].append({"command": command, "host": host_info(ctx.device),
                                  "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                  "commit": git_commit(), "load_average": os.getloadavg()[0]})
    save(res, out)
    for name in [p for p in args.pipelines.split(",") if p]:
        dataset = PIPELINES[name][0]
        n = args.n if dataset == "mnist" else args.n_cifar
        entry = res["pipelines"].get(name)
        if entry is None or entry["n"] != n or args.force:
            entry = {"description": PIPELINES[name][5], "dataset": dataset, "n": n, "libraries": {}}
        todo = [lib for lib in args.libraries.split(",") if lib and lib not in entry["libraries"]]
        if not todo:
            print(f"{name}: done at n={n}, skipped", flush=True)
            continue
        pipe, x, y, eps, notes = build(name, ctx, n, cache, args.data_root)
        entry.update(eps=eps, notes=notes)
        for lib in todo:
            print(f"{name} / {lib}: n={len(x)} ...", flush=True)
            adv, sec = craft(name, lib, pipe, x, y, eps, args, ctx.device, cache, notes)
            row, _ = judge(pipe, x, y, adv.cpu(), eps, ctx.device)
            row.update(seconds=sec, device=str(ctx.device), threads=torch.get_num_threads())
            if args.chunk and lib != "advshield":
                row["chunk"] = args.chunk
            if lib == "advshield":
                row["members"] = run_advshield.members
            entry["libraries"][lib] = row
            res["pipelines"][name] = entry
            save(res, out)
            print(f"{name} / {lib}: robust {row['robust_accuracy']:.4f} in {sec:.1f} s", flush=True)
    if args.speed_n:
        for pipeline in [p for p in args.speed_pipeline.split(",") if p]:
            speed(ctx, args, cache, res, out, pipeline)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
