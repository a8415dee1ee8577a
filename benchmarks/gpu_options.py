"""Accelerator options against the time to a verdict (issue 30): does mixed precision, channels-last, cuDNN
autotuning or CUDA graphs make advshield's attack faster *without* weakening it?

    python benchmarks/gpu_options.py --data-root <data> --device cuda [--targets a-net,cru-net-a,resnet20]
        [--attacks APGD-100,AutoAttack] [--options default,no-tf32,bf16,fp16,channels-last,cudnn-benchmark,cuda-graphs]
        [--rounds 3] [--n 500] [--out docs/benchmarks/gpu-options]

Each option is applied to the frozen pipeline the attack runs through (``build`` of side_by_side.py: classifier
and restorer, parameters frozen); everything else is identical. Options:

* ``default``: torch's defaults (on CUDA, convolutions already use TF32; matmuls do not);
* ``no-tf32``: strict float32 convolutions and matmuls (the reference for "weakened?");
* ``bf16`` / ``fp16``: the classifier and the restorer run under ``torch.autocast`` (outputs cast back to float32,
  so the attack's loss, step and projection stay float32);
* ``channels-last``: weights and inputs in NHWC memory format;
* ``cudnn-benchmark``: ``torch.backends.cudnn.benchmark`` (autotuned kernels per shape; early exit makes shapes vary);
* ``cuda-graphs``: ``torch.compile(mode="reduce-overhead")`` of classifier and restorer (each new batch size
  records its own graph; an error is recorded, not raised).

Every (option, attack) runs once per round, order rotated each round (interleaved, one process); the clock stops
after ``torch.cuda.synchronize()``. Every run's images are judged by one rule on the unmodified float32 pipeline
(``side_by_side.judge``), so an option that weakens the attack shows as a higher robust accuracy: it is marked
"weaker" when every one of its rounds left more than one image more robust than every round of strict float32
(ranges, in images: float32 on a GPU is not bit-reproducible). Options that need a GPU are skipped on the CPU and
say so.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from advshield.attacks import APGD, craft_images
from advshield.attacks.autoattack import AutoAttack
from advshield.experiment.context import RunContext
from common import atomic_write, git_commit  # benchmarks/common.py, beside this script
from side_by_side import TARGETS, build, host_info, judge, sync

OPTIONS = ("default", "no-tf32", "bf16", "fp16", "channels-last", "cudnn-benchmark", "cuda-graphs")
CUDA_ONLY = {"no-tf32", "fp16", "cudnn-benchmark", "cuda-graphs"}
ATTACKS = ("APGD-100", "AutoAttack")


class Wrapper(torch.nn.Module):
    """Forwards attribute look-ups (``randomized``, a BPDA backward, ...) to the wrapped defense or classifier."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)


class Autocast(Wrapper):
    """Runs ``module`` under ``torch.autocast`` and hands float32 back, so only the network's arithmetic changes."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.module(x).float()


class ChannelsLast(Wrapper):
    """Hands ``module`` its input in channels-last memory format (the weights are converted once)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.contiguous(memory_format=torch.channels_last))


class Graphed(Wrapper):
    """A ``torch.compile(mode="reduce-overhead")`` module called as an attack calls it: each call starts a new
    CUDA-graph step and its output is cloned, because the attack keeps outputs across calls (logits of the best
    iterate) that the next replay would overwrite (the first H100 run failed on exactly that)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return self.module(x).clone()


def wrap(pipe, option: str):
    """A copy of the pipeline with ``option`` applied to copies of its classifier and restorer (the run context
    caches and shares those modules: the untouched originals stay the reference and the other options' start)."""
    pipe = copy.copy(pipe)
    pipe._modules = dict(pipe._modules)
    for part in ("classifier", "defense"):
        module = getattr(pipe, part, None)
        if module is None:
            continue
        module = copy.deepcopy(module)
        if option in ("bf16", "fp16"):
            module = Autocast(module, torch.bfloat16 if option == "bf16" else torch.float16)
        elif option == "channels-last":
            module = ChannelsLast(module)
        elif option == "cuda-graphs":
            module = Graphed(torch.compile(module, mode="reduce-overhead"))
        setattr(pipe, part, module)
    return pipe


@contextlib.contextmanager
def flags(option: str):
    """Global backend flags an option needs, restored afterwards."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.allow_tf32 = option != "no-tf32" and saved[0]
    torch.backends.cuda.matmul.allow_tf32 = saved[1] and option != "no-tf32"
    torch.backends.cudnn.benchmark = option == "cudnn-benchmark" or saved[2]
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved


def make_attack(name: str, eps: float):
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    return APGD(eps, steps=100, early_stop=True) if name == "APGD-100" else AutoAttack(eps, version="standard")


def measure(ctx, target: str, attack: str, options: list[str], n: int, rounds: int) -> dict:
    reference, _, x, y, eps = build(target, ctx, n)  # judged on this untouched float32 pipeline
    pipes = {o: wrap(reference, o) for o in options}
    cell = {"target": target, "attack": attack, "n": len(x), "eps": eps["linf"], "runs": {o: {
        "seconds": [], "robust_accuracy": [], "error": None} for o in options}}
    for r in range(rounds):
        for option in options[r % len(options):] + options[:r % len(options)]:
            entry = cell["runs"][option]
            if entry["error"]:
                continue
            try:
                with flags(option):
                    sync(ctx.device)
                    t0 = time.perf_counter()
                    adv = craft_images(make_attack(attack, eps["linf"]), pipes[option], x, y, threat="adaptive",
                                       eot_samples=1, batch_size=len(x), seed=0)
                    sync(ctx.device)
                    sec = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - an option that cannot run is a result, not a crash
                entry["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                continue
            with flags("no-tf32"):
                entry["robust_accuracy"].append(judge(reference, x, y, adv, attack, eps)["robust_accuracy"])
            entry["seconds"].append(round(sec, 3))
            print(f"  {target} {attack} round {r + 1} {option}: {sec:.2f} s, robust "
                  f"{entry['robust_accuracy'][-1]:.3f}", flush=True)
    for entry in cell["runs"].values():
        if entry["seconds"]:
            entry["median"], entry["min"] = statistics.median(entry["seconds"]), min(entry["seconds"])
    return cell


def verdict(cell: dict, option: str) -> str:
    """Speed-up over ``default`` and whether the option weakened the attack (more than one image above strict fp32)."""
    e, base = cell["runs"][option], cell["runs"].get("default", {})
    if e["error"]:
        return f"failed: {e['error']}"
    ref = "no-tf32" if "no-tf32" in cell["runs"] else "default"
    strict = cell["runs"].get(ref) or {}
    # Weaker: every round of the option left more than one image more robust than any round of strict float32,
    # counted in images (the accuracies are float32 fractions: 1/500 is not exactly 0.002). Ranges, not single
    # runs: float32 on a GPU is not bit-reproducible (atomics in the convolutions' backward); through the CRU-Net
    # on the H100 the default's three rounds left 27, 29 and 31 of 500 images robust.
    n = cell["n"]
    worse = option != ref and e["robust_accuracy"] and strict.get("robust_accuracy") and (
        round(min(e["robust_accuracy"]) * n) > round(max(strict["robust_accuracy"]) * n) + 1)
    # no ratio for a cell cut off mid-round (its note says so): its options ran different numbers of rounds
    speed = (f"{base['median'] / e['median']:.2f}x of default" if base.get("median") and e.get("median")
             and not cell.get("note") else "")
    return speed + (" **weaker: more robust images than strict float32**" if worse else "")


def render(res: dict) -> str:
    h = res["host"]
    lines = ["# Accelerator options and the time to a verdict (issue 30)", "",
             f"Written by `benchmarks/gpu_options.py` (its docstring says what each option does). Command: "
             f"`{res['command']}`, commit {res['commit']}, started {res['started']}.", "",
             f"Host: {h['cpu']}, {h['cpus']} CPUs, device {h['device']}" + (f" ({h['gpu']})" if h.get("gpu") else "")
             + f", torch {h['torch']}. Seconds: median over the rounds (minimum in brackets), crafting only; robust "
             "accuracy judged on the unmodified float32 pipeline (every round's value listed); \"weaker\": every round "
             "of the option left more than one image more robust than any round of strict float32 (no-tf32).", ""]
    lines += [f"Provenance: {res['provenance']}", ""] if res.get("provenance") else []
    for cell in res["cells"].values():
        lines += [f"## {cell['target']}, {cell['attack']} (n = {cell['n']}, L-inf eps {cell['eps']:.4g})", ""]
        lines += [f"*{cell['note']}*", ""] if cell.get("note") else []
        lines += ["| option | seconds | robust acc. | verdict |", "|---|---|---|---|"]
        for option, e in cell["runs"].items():
            secs = f"{e['median']:.2f} ({e['min']:.2f})" if e.get("median") else "-"
            secs += f" [{len(e['seconds'])} round(s)]" if cell.get("note") and e["seconds"] else ""
            accs = "-" if not e["robust_accuracy"] else "/".join(f"{100 * a:.1f} %" for a in sorted(set(
                e["robust_accuracy"])))
            lines.append(f"| {option} | {secs} | {accs} | {verdict(cell, option)} |")
        lines.append("")
    if res.get("skipped"):
        lines.append("Skipped on this device (GPU only): " + ", ".join(res["skipped"]) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("ADVSHIELD_DATA"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--options", default=",".join(OPTIONS))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/benchmarks/gpu-options", help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ctx = RunContext.create(args.device, data_root=args.data_root)
    if ctx.device.type == "cuda":
        if ctx.device.index is not None:  # cuda:N: every allocation and library default on that card
            torch.cuda.set_device(ctx.device)
    wanted = args.options.split(",")
    for what, given, known in (("option", wanted, OPTIONS), ("attack", args.attacks.split(","), ATTACKS),
                               ("target", args.targets.split(","), tuple(TARGETS))):
        unknown = sorted(set(given) - set(known))
        if unknown:
            sys.exit(f"error: unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    options = [o for o in wanted if ctx.device.type == "cuda" or o not in CUDA_ONLY]
    res = {"command": "python benchmarks/gpu_options.py " + " ".join(
               "<data>" if a == args.data_root else a for a in sys.argv[1:]),
           "commit": git_commit(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "host": host_info(ctx.device), "skipped": [o for o in wanted if o not in options], "cells": {}}
    out = Path(args.out)
    for target in args.targets.split(","):
        for attack in args.attacks.split(","):
            print(f"{target}/{attack}: n={args.n}", flush=True)
            res["cells"][f"{target}/{attack}"] = measure(ctx, target, attack, options, args.n, args.rounds)
            atomic_write(out.with_suffix(".json"), json.dumps(res, indent=1) + "\n")
            atomic_write(out.with_suffix(".md"), render(res))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
