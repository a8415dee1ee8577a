"""How cost grows (issue 30): throughput against batch size, peak memory against N, torchrun 2 processes against 1.

    python benchmarks/scaling.py --data-root <data> [--parts throughput,memory,torchrun,peak-site] [--threads 1]
        [--out docs/benchmarks/scaling] [--force] [--render-only]

1. Throughput: images per second of a fixed-work attack, ``run_attack(PGD(random_start=False, early_stop=False))``
   (every image takes every step), at batch sizes 32 ... 2048 in one process with ``--threads`` torch threads, on
   three pipelines built with the experiment layer (``RunContext``): zoo A-net undefended (PGD 10 steps on 2048
   MNIST test images at every batch size), zoo CRU-Net for A-net in front of A-net attacked white-box through the
   pipeline (``threat="adaptive"``, PGD 2 steps) and the CIFAR-10 zoo ResNet-20 (PGD 5 steps). The last two run
   on max(batch size, 512) images, so every batch size fills at least one batch. No random start: with it, batch i
   draws from seed ``seed + i`` and the starts would change with the batch size. Robust accuracy (right clean and
   right on the adversarial image) is compared per image on the images every batch size ran (the first 512 or
   2048), and the adversarial images against those of batch 32.
2. Peak memory: one real CLI run per N in a fresh parent process, which reports
   ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the largest process of the run); every run gets an empty
   adversarial-set store, so it crafts. ``advshield attack`` (FGSM on A-net) and ``advshield evaluate`` (FGSM,
   white-box, through the zoo CRU-Net restorer, ``--no-figures``); both again at N = 1000 and 10000 with
   ``MALLOC_MMAP_THRESHOLD_=262144`` (the ``+mmap`` kinds), which takes glibc's heap retention, tens of MB of
   run-to-run noise in the peak, out of the reading.
3. torchrun: the same ``advshield evaluate`` on one process and under ``torch.distributed.run --standalone
   --nproc_per_node 2`` (gloo), interleaved rounds (1, 2, then 2, 1), ``OMP_NUM_THREADS=1`` per process, each run
   with an empty store; wall time of the launch and the cards' rows compared.
4. Peak site: the ``advshield attack`` of part 2 in-process at N = 1000 and 10000, VmRSS sampled every 5 ms with the
   advshield stack at the highest reading, and the RSS before and after the adversarial set is made.

Every child runs with ``OMP_NUM_THREADS=1``. Results go to OUT.json after every measurement (a rerun skips what
is there with the same settings; ``--force`` redoes it, keeping the memory and peak-site results it replaces under
``history`` with the commit they ran on, so the document shows before and after) and OUT.md is rendered from
OUT.json only; parts not named in ``--parts`` are left as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from advshield.attacks import Pipeline, run_attack
from advshield.attacks.iterative import PGD
from advshield.experiment.context import RunContext
from common import atomic_write, cpu_model, git_commit  # benchmarks/common.py, beside this script

BATCH_SIZES = (32, 64, 128, 256, 512, 1024, 2048)
# name -> (dataset, classifier, defense, eps, PGD steps, images: max(batch size, this), description)
PIPES = {
    "a-net": ("mnist", "a-net", None, 0.3, 10, 2048, "zoo A-net, undefended"),
    "cru-net-a": ("mnist", "a-net", "cru-net-for-a-net", 0.3, 2, 512,
                  "zoo CRU-Net for A-net + A-net, white-box through the pipeline"),
    "resnet20": ("cifar10", "resnet20", None, 8 / 255, 5, 512, "zoo ResNet-20 (CIFAR-10), undefended"),
}
MEMORY_N = (100, 1000, 2000, 5000, 10000)
TORCHRUN_N, TORCHRUN_ROUNDS = 5000, 2
MB = 1e6  # MB = 10^6 bytes throughout


def cli(kind: str, n: int, tmp: Path, data_root: str) -> list[str]:
    """The advshield CLI arguments of one memory / torchrun run (``tmp`` holds its store and output)."""
    kind = kind.split("+")[0]  # a "+mmap" kind runs the same command under another allocator setting
    common = ["--n", str(n), "--device", "cpu", "--data-root", data_root, "--json"]
    if kind == "attack-a-net":
        return ["attack", "--model", "a-net", "--attack", "fgsm", "--eps", "0.3", "--out", str(tmp / "store"),
                *common]
    if kind == "evaluate-cru-net-a":
        return ["evaluate", "--target", "a-net", "--defense", "cru-net-for-a-net", "--attacks", "fgsm",
                "--attack-param", "fgsm.eps=0.3", "--threat", "white-box", "--no-ensemble", "--store",
                str(tmp / "store"), "--out", str(tmp / "eval"), "--no-figures", *common]
    raise ValueError(kind)


CLI_KINDS = {"attack-a-net": "advshield attack: FGSM (eps 0.3) on zoo A-net",
             "evaluate-cru-net-a": "advshield evaluate: FGSM (eps 0.3, white-box) against zoo CRU-Net for A-net + A-net"}
# The same commands with glibc's heap retention taken out of the reading: MALLOC_MMAP_THRESHOLD_ fixed at 256 KiB
# (blocks above it are mmapped and handed back to the system when freed, instead of the default dynamic threshold
# that keeps freed tensors' pages in the heap), at N = 1000 and 10000 only.
MMAP = {"MALLOC_MMAP_THRESHOLD_": "262144"}
MMAP_N = (1000, 10000)
CLI_KINDS.update({f"{k}+mmap": f"{d}, with MALLOC_MMAP_THRESHOLD_=262144" for k, d in list(CLI_KINDS.items())})

# Runs one command as its child and reports the child's peak RSS: a fresh parent per measurement.
PARENT = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "seconds": time.perf_counter() - t0,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "stderr": p.stderr[-2000:]}))
"""


def child_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src
    return env


def measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` under a fresh parent; (rc, wall seconds, peak RSS of the largest child in MB, load averages)."""
    load = os.getloadavg()
    p = subprocess.run([sys.executable, "-c", PARENT, json.dumps(cmd)], capture_output=True, text=True,
                       env=dict(child_env(), **(env or {})), check=True)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed ({r['rc']}): {r['stderr']}")
    return {"seconds": round(r["seconds"], 2), "peak_rss_mb": round(r["maxrss_kb"] * 1024 / MB, 1),
            "load_before": [round(v, 2) for v in load], "load_after": [round(v, 2) for v in os.getloadavg()]}


# --------------------------------------------------------------------------------------------------- parts
def throughput(res: dict, args, save) -> None:
    torch.set_num_threads(args.threads)
    ctx = RunContext.create("cpu", data_root=args.data_root)
    part = res.setdefault("throughput", {})
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    for name, (dataset, target, defense, eps, steps, n_min, desc) in PIPES.items():
        conf = {"description": desc, "dataset": dataset, "eps": eps, "steps": steps, "images": f"max(batch, {n_min})",
                "attack": f"PGD L-inf eps {eps:.4g}, {steps} steps of 2.5 eps / steps, no random start, no early stop",
                "threat": "adaptive" if defense else "white-box", "threads": args.threads}
        entry = part.get(name)
        if entry is None or entry["config"] != conf or args.force:
            entry = part[name] = {"config": conf, "rows": {}}
        todo = [b for b in BATCH_SIZES if str(b) not in entry["rows"]]
        if not todo:
            continue
        tgt = ctx.load_target(target, dataset)
        data = ctx.load_data(dataset, "test", max(n_min, max(BATCH_SIZES)), target=tgt)
        pipe = Pipeline(tgt.model, ctx.load_defense(defense)[0] if defense else None).eval()
        attack = PGD(eps, steps=steps, rel_stepsize=2.5 / steps, random_start=False, early_stop=False)
        threat = conf["threat"]
        x, y = data.tensors(slice(0, 32))
        run_attack(attack, pipe, x, y, threat=threat, eot_samples=1, batch_size=32, device="cpu")  # warm-up
        for bs in todo:
            n = max(bs, n_min)
            x, y = data.tensors(slice(0, n))
            load = os.getloadavg()
            t0 = time.perf_counter()
            r = run_attack(attack, pipe, x, y, threat=threat, eot_samples=1, batch_size=bs, device="cpu")
            sec = time.perf_counter() - t0
            robust = ((r.clean_pred == y) & (r.adv_pred == y))[:n_min]
            adv = r.adv[:n_min].contiguous()
            torch.save(adv, cache / f"adv-{name}-{bs}.pt")
            ref = cache / f"adv-{name}-{BATCH_SIZES[0]}.pt"
            diff = float((adv - torch.load(ref)).abs().max()) if ref.exists() else None
            entry["rows"][str(bs)] = {
                "n": n, "seconds": round(sec, 2), "images_per_s": round(n / sec, 1),
                "robust_accuracy": float(robust.float().mean()), "robust_images": int(robust.sum()),
                "compared_images": n_min, "robust_mask_sha256": hashlib.sha256(robust.numpy().tobytes()).hexdigest()[:16],
                "adv_sha256": hashlib.sha256(adv.numpy().tobytes()).hexdigest()[:16], "adv_max_diff_vs_32": diff,
                "load_before": [round(v, 2) for v in load], "load_after": [round(v, 2) for v in os.getloadavg()]}
            print(f"throughput {name} batch {bs}: {n / sec:.1f} img/s, robust {float(robust.float().mean()):.4f}",
                  flush=True)
            save()
        rows = entry["rows"]
        entry["identical_robust"] = len({r["robust_mask_sha256"] for r in rows.values()}) == 1
        entry["identical_adv"] = len({r["adv_sha256"] for r in rows.values()}) == 1
        save()


def archive(res: dict, key: str, part: str) -> None:
    """Before ``--force`` redoes ``part``: keep what it replaces (and the commit of the run that measured it)."""
    if not res.get(key) or not any(e.get("rows") for e in (res[key], *res[key].values()) if isinstance(e, dict)):
        return
    earlier = [r for r in res["header"]["runs"][:-1] if part in r["parts"].split(",")]
    res.setdefault("history", {}).setdefault(key, []).append(
        {"commit": earlier[-1]["commit"] if earlier else None, "started": earlier[-1]["started"] if earlier else None,
         "result": res.pop(key)})


def memory(res: dict, args, save) -> None:
    if args.force:
        archive(res, "memory", "memory")
    part = res.setdefault("memory", {})
    for kind, desc in CLI_KINDS.items():
        entry = part.setdefault(kind, {"description": desc, "rows": {}})
        if args.force:
            entry["rows"] = {}
        for n in MMAP_N if kind.endswith("+mmap") else MEMORY_N:
            if str(n) in entry["rows"]:
                continue
            tmp = Path(tempfile.mkdtemp(prefix="advshield-scaling-"))
            env = MMAP if kind.endswith("+mmap") else {}
            try:
                row = measured([sys.executable, "-m", "advshield", *cli(kind, n, tmp, args.data_root)], env)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            row["command"] = "".join(f"{k}={v} " for k, v in env.items()) + "python -m advshield " + " ".join(
                cli(kind, n, Path("<tmp>"), "<data>"))
            entry["rows"][str(n)] = row
            print(f"memory {kind} n={n}: {row['peak_rss_mb']} MB in {row['seconds']} s", flush=True)
            save()
        rows = entry["rows"]
        if "1000" in rows and "10000" in rows:
            entry["growth_1000_to_10000_mb"] = round(rows["10000"]["peak_rss_mb"] - rows["1000"]["peak_rss_mb"], 1)
            save()


# In-process ``advshield attack``: a 5 ms sampler of VmRSS keeps the advshield stack at the highest reading, and
# the RSS around acquire_set's generate_adversarial_set shows what the finished set keeps alive.
PROBE = """
import json, re, sys, tempfile, threading, time, traceback, io, contextlib
import advshield.experiment.acquire as acq
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024 / 1e6
main, best, around = threading.main_thread().ident, [0.0, []], {}
def sample():
    while True:
        r = rss()
        if r > best[0]:
            f = sys._current_frames().get(main)
            best[:] = [r, [f"{s.filename.split('advshield/')[-1]}:{s.lineno} {s.name}" for s in traceback.extract_stack(f)
                           if "advshield" in s.filename][-5:]]
        time.sleep(0.005)
gen = acq.generate_adversarial_set
def wrapped(*a, **k):
    around["rss_before_set_mb"] = rss()
    out = gen(*a, **k)
    around["rss_after_set_mb"] = rss()
    return out
acq.generate_adversarial_set = wrapped
threading.Thread(target=sample, daemon=True).start()
from advshield.cli import main as cli_main
sys.argv = ["advshield", *json.loads(sys.argv[1])]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        cli_main()
    except SystemExit:
        pass
time.sleep(0.05)
print(json.dumps(dict(around, peak_rss_mb=best[0], peak_stack=best[1][::-1])))
"""


def peak_site(res: dict, args, save) -> None:
    if args.force:
        archive(res, "peak_site", "peak-site")
    part = res.setdefault("peak_site", {"kind": "attack-a-net", "rows": {}})
    for n in (1000, 10000):
        if str(n) in part["rows"] and not args.force:
            continue
        tmp = Path(tempfile.mkdtemp(prefix="advshield-scaling-"))
        try:
            p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cli(part["kind"], n, tmp, args.data_root))],
                               capture_output=True, text=True, env=child_env(), check=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        row = {k: round(v, 1) if isinstance(v, float) else v
               for k, v in json.loads(p.stdout.strip().splitlines()[-1]).items()}
        row["kept_by_set_mb"] = round(row["rss_after_set_mb"] - row["rss_before_set_mb"], 1)
        part["rows"][str(n)] = row
        print(f"peak site n={n}: {row}", flush=True)
        save()


def card_numbers(card: dict) -> dict:
    """The card's numbers a launch could change: every row but its timing, and the verdict."""
    rows = [{k: v for k, v in r.items() if k != "attack_seconds"} for r in card["rows"]]
    return {"n": card["n"], "rows": rows, "verdict": card.get("verdict")}


def differences(a, b, path: str = "") -> dict[str, float]:
    """Path -> absolute difference of every number (or other value: inf) that differs between two JSON values."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {k: v for key in a for k, v in differences(a[key], b[key], f"{path}.{key}").items()}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return {k: v for i, (x, y) in enumerate(zip(a, b)) for k, v in differences(x, y, f"{path}[{i}]").items()}
    if a == b:
        return {}
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return {path: abs(float(a) - float(b))}
    return {path: float("inf")}


def torchrun(res: dict, args, save) -> None:
    part = res.setdefault("torchrun", {"kind": "evaluate-cru-net-a", "n": TORCHRUN_N, "runs": []})
    if args.force:
        part["runs"] = []
    order = [p for r in range(TORCHRUN_ROUNDS) for p in ((1, 2) if r % 2 == 0 else (2, 1))]
    launch = {1: [sys.executable, "-m", "advshield"],
              2: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  "-m", "advshield", "--"]}  # "--": torchrun's argparse refuses advshield's --n as ambiguous
    for i, procs in enumerate(order):
        if i < len(part["runs"]):
            continue
        tmp = Path(tempfile.mkdtemp(prefix="advshield-scaling-"))
        try:
            row = measured(launch[procs] + cli(part["kind"], TORCHRUN_N, tmp, args.data_root))
            card = json.loads((tmp / "eval" / "card.json").read_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        row.update(processes=procs, world_size=card["world_size"], numbers=card_numbers(card),
                   restored_accuracy=card["rows"][0]["restored_accuracy"], card_seconds=card["seconds"])
        part["runs"].append(row)
        print(f"torchrun {procs} process(es): {row['seconds']} s, restored {row['restored_accuracy']:.4f}", flush=True)
        save()
    runs = part["runs"]
    part["commands"] = {p: " ".join(["python", *launch[p][1:]]) + " " + " ".join(
        cli(part["kind"], TORCHRUN_N, Path("<tmp>"), "<data>")) for p in (1, 2)}
    ones, twos = [r for r in runs if r["processes"] == 1], [r for r in runs if r["processes"] == 2]
    if ones and twos:
        diff: dict[str, float] = {}
        for r in runs:
            for k, v in differences(ones[0]["numbers"], r["numbers"]).items():
                diff[k] = max(diff.get(k, 0.0), v)
        part["identical_numbers"] = not diff
        part["differences_vs_first_1_process_run"] = diff
        part["median_seconds"] = {str(p): statistics.median(r["seconds"] for r in rs) for p, rs in ((1, ones), (2, twos))}
        part["median_card_seconds"] = {str(p): statistics.median(r["card_seconds"] for r in rs)
                                       for p, rs in ((1, ones), (2, twos))}
    save()


# ----------------------------------------------------------------------------------------------- storage
def host_info(threads: int) -> dict:
    import numpy

    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version(), "platform": platform.platform()}


def _load(r: dict) -> str:
    return f"{r['load_before'][0]:.1f}/{r['load_after'][0]:.1f}"


def memory_lines(mem: dict) -> list[str]:
    """The table of part 2 (peak RSS per N for each CLI kind) and its growth from 1000 to 10000 images."""
    kinds = list(mem)
    lines = ["| N | float32 images MB | " + " | ".join(f"{k}: peak RSS MB | {k}: s" for k in kinds) + " |",
             "|---|---|" + "---|---|" * len(kinds)]
    for n in MEMORY_N:
        cells = []
        for k in kinds:
            r = mem[k]["rows"].get(str(n))
            cells += [f"{r['peak_rss_mb']:.1f}", f"{r['seconds']:.1f}"] if r else ["-", "-"]
        lines.append(f"| {n} | {n * 784 * 4 / MB:.1f} | " + " | ".join(cells) + " |")
    lines.append("")
    for k in kinds:
        g = mem[k].get("growth_1000_to_10000_mb")
        if g is not None:
            lines.append(f"- {k}: growth from 1000 to 10000 images {g:.1f} MB "
                         f"({g / (9000 * 784 * 4 / MB):.2f}x the float32 size of the 9000 extra images): "
                         + ("flat in N." if g < 10 else "**not flat in N**."))
    return lines


def render_md(res: dict) -> str:
    lines = ["# How cost grows: batch size, number of images, processes", "",
             ("Written by `benchmarks/scaling.py` from `scaling.json` (every number below is in the JSON; see the "
             "script's docstring for what each part runs). MB = 10^6 bytes."), ""]
    for run in res.get("header", {}).get("runs", []):
        h = run["host"]
        lines.append(f"- `{run['command']}` (parts {run['parts']}): commit {run['commit']}, {h['cpu']}, {h['cpus']} "
                     f"CPUs, {h['torch_threads']} torch thread(s), torch {h['torch']}, numpy {h['numpy']}, Python "
                     f"{h['python']}; started {run['started']}, load average (1/5/15 min) "
                     f"{'/'.join(str(v) for v in run['load_average'])}"
                     + (f", at the end {'/'.join(str(v) for v in run['load_average_end'])}"
                        if run.get("load_average_end") else "") + ".")
    if res.get("findings"):  # hand-written conclusions kept in the JSON, so a re-render keeps them
        lines += ["", "## Findings", ""] + [f"- {f}" for f in res["findings"]]
    tp = res.get("throughput", {})
    if tp:
        names = list(tp)
        lines += ["", "## 1. Throughput against batch size", "",
                  ("Images per second of a fixed-work PGD (no random start, no early stop: every image takes every "
                  "step) in one process on the CPU; load = 1-minute load average before/after the row (another "
                  "benchmark shared the 2 cores). Robust = right clean and right on the adversarial image, on the "
                  "images every batch size ran."), ""]
        for name in names:
            c = tp[name]["config"]
            lines.append(f"- {name}: {c['description']}; {c['attack']}; {c['threat']}; images {c['images']}; "
                         f"{c['threads']} torch thread(s).")
        lines += ["", "| batch | " + " | ".join(f"{n}: img/s (n) | {n}: robust | {n}: load" for n in names) + " |",
                  "|---|" + "---|---|---|" * len(names)]
        for bs in BATCH_SIZES:
            cells = []
            for name in names:
                r = tp[name]["rows"].get(str(bs))
                cells += ([f"{r['images_per_s']:.1f} ({r['n']})", (f"{100 * r['robust_accuracy']:.2f} % "
                           f"({r['robust_images']}/{r['compared_images']})"), _load(r)] if r else ["-", "-", "-"])
            lines.append(f"| {bs} | " + " | ".join(cells) + " |")
        lines.append("")
        for name in names:
            e, rows = tp[name], tp[name]["rows"]
            if "identical_robust" not in e:
                continue
            ips = [r["images_per_s"] for r in rows.values()]
            diffs = [r["adv_max_diff_vs_32"] for r in rows.values() if r["adv_max_diff_vs_32"] is not None]
            lines.append(f"- {name}: fastest/slowest batch {max(ips) / min(ips):.2f}x; robust images per image "
                         f"{'identical' if e['identical_robust'] else '**not identical**'} across batch sizes; "
                         f"adversarial images {'bit-identical' if e['identical_adv'] else 'not bit-identical'}"
                         + (f" (largest difference from batch 32: {max(diffs):.3g})" if diffs else "") + ".")
    mem = res.get("memory", {})
    history = res.get("history", {})
    if mem:
        kinds = list(mem)
        lines += ["", "## 2. Peak memory against the number of images", "",
                  ("Peak resident set size of one CLI run per N (the largest process, `ru_maxrss` of a fresh parent), "
                  "each with an empty adversarial-set store, `OMP_NUM_THREADS=1`; seconds = wall time of the run. "
                  "The N MNIST test images themselves take N x 784 x 4 bytes in float32 (10000: 31.4 MB). "
                  "'Flat in N' is read here as: growth from 1000 to 10000 images below 10 MB, a third of the "
                  "28.2 MB the 9000 extra images take in float32 (a structure keeping every adversarial image "
                  "alone adds at least that)."), ""]
        for k in kinds:
            lines.append(f"- {k}: {mem[k]['description']}: `{next(iter(mem[k]['rows'].values()))['command']}`"
                         if mem[k]["rows"] else f"- {k}: {mem[k]['description']}")
        commit = next((r["commit"] for r in reversed(res.get("header", {}).get("runs", []))
                       if "memory" in r["parts"].split(",")), None)
        lines += ["", f"Now (commit {commit}):", ""] + memory_lines(mem)
        for old in history.get("memory", []):
            lines += ["", f"Before (commit {old['commit']}, measured {old['started']}):", ""] + memory_lines(old["result"])
    ps = res.get("peak_site", {})
    if ps.get("rows"):
        lines += ["", (f"Where the peak sits ({ps['kind']}, in-process run of the same CLI command, VmRSS sampled every "
                  "5 ms; 'kept by the set' = RSS after `generate_adversarial_set` returns minus RSS before it starts, "
                  "what the finished set and its transient copies leave behind):"), "",
                  ("| commit | N | RSS before the set MB | after the set MB | kept by the set MB | sampled peak MB | "
                  "innermost advshield frames at the peak |"), "|---|---|---|---|---|---|---|"]
        commit = next((r["commit"] for r in reversed(res.get("header", {}).get("runs", []))
                       if "peak-site" in r["parts"].split(",")), None)
        for c, part in [(commit, ps)] + [(o["commit"] + " (before)", o["result"]) for o in history.get("peak_site", [])]:
            for n, r in part["rows"].items():
                lines.append(f"| {c} | {n} | {r['rss_before_set_mb']:.1f} | {r['rss_after_set_mb']:.1f} | "
                             f"{r['kept_by_set_mb']:.1f} | {r['peak_rss_mb']:.1f} | "
                             f"{' <- '.join(f'`{f}`' for f in r['peak_stack'])} |")
    tr = res.get("torchrun", {})
    if tr.get("runs"):
        lines += ["", f"## 3. torchrun: 2 processes against 1 ({tr['kind']}, N = {tr['n']})", "",
                  ("The same `advshield evaluate` launched on one process and under torchrun with two (gloo, "
                  "each rank evaluates its contiguous half and the sums are all-reduced), in interleaved rounds, "
                  "one thread per process, each run with an empty store. Wall s = the whole launch (start-up "
                  "included); card s = the evaluation as the card times it."), ""]
        lines += [f"- {p} process(es): `{c}`" for p, c in tr.get("commands", {}).items()]
        lines += ["", ("| run | processes | world size | wall s | card s | peak RSS MB (largest process) | restored "
                  "accuracy | load |"), "|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(tr["runs"], 1):
            lines.append(f"| {i} | {r['processes']} | {r['world_size']} | {r['seconds']:.1f} | {r['card_seconds']:.1f} "
                         f"| {r['peak_rss_mb']:.1f} | {100 * r['restored_accuracy']:.2f} % | {_load(r)} |")
        if "median_seconds" in tr:
            m = tr["median_seconds"]
            mc = tr.get("median_card_seconds")
            lines += ["", f"Median wall time: 1 process {m['1']:.1f} s, 2 processes {m['2']:.1f} s "
                      f"(speed-up {m['1'] / m['2']:.2f}x)"
                      + (f"; median card time {mc['1']:.1f} s against {mc['2']:.1f} s ({mc['1'] / mc['2']:.2f}x)"
                         if mc else "") + ". Card numbers (every row but its timing, and the verdict) "
                      + ("identical across all runs." if tr["identical_numbers"] else
                         "not identical; these differ (largest absolute difference from the first 1-process run): "
                         + ", ".join(f"`{k}` {v:.3g}" for k, v in tr["differences_vs_first_1_process_run"].items())
                         + ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("ADVSHIELD_DATA"))
    ap.add_argument("--parts", default="throughput,memory,torchrun,peak-site")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the throughput part")
    ap.add_argument("--out", default="docs/benchmarks/scaling", help="writes OUT.json and OUT.md")
    ap.add_argument("--cache", default="runs/benchmarks/scaling", help="adversarial images compared across batches")
    ap.add_argument("--force", action="store_true", help="redo the parts named in --parts")
    ap.add_argument("--render-only", action="store_true", help="rewrite OUT.md from OUT.json and exit")
    args = ap.parse_args()
    out = Path(args.out)
    res = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}

    def save() -> None:
        atomic_write(out.with_suffix(".json"), json.dumps(res, indent=1) + "\n")
        atomic_write(out.with_suffix(".md"), render_md(res))

    if args.render_only:
        save()
        return
    if not args.data_root:
        ap.error("--data-root (or ADVSHIELD_DATA) is needed")
    args.data_root = str(Path(args.data_root).resolve())
    argv = sys.argv[1:]
    command = "python benchmarks/scaling.py " + " ".join(
        "<data>" if i and argv[i - 1] == "--data-root" or a.startswith("--data-root=") else a for i, a in enumerate(argv))
    res.setdefault("header", {}).setdefault("runs", []).append(
        {"command": command, "parts": args.parts, "commit": git_commit(), "host": host_info(args.threads),
         "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "load_average": [round(v, 2) for v in os.getloadavg()]})
    save()
    for p in args.parts.split(","):
        {"throughput": throughput, "memory": memory, "torchrun": torchrun, "peak-site": peak_site}[p](res, args, save)
    res["header"]["runs"][-1]["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["header"]["runs"][-1]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    save()
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
