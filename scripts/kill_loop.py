"""Kill advshield at random moments and check that the next run completes with the uninterrupted result.

    python scripts/kill_loop.py --kills 20            # a few minutes on 2 cores
    python scripts/kill_loop.py --kills 3 --seed 1    # the quick version the test suite runs

Three jobs, each on fresh state per round: ``advshield data info`` loading a generated CIFAR-10 Python tarball
for the first time (extraction, decoding and the decode cache), ``advshield attack`` (BIM on the zoo A-net, the
embedded MNIST sample, adversarial-set store) and ``advshield train-target`` (A-net on 256 images of the embedded
MNIST sample, 3 epochs of batch 64, per-epoch checkpoints, resumed by the next run). Each round SIGKILLs the job at
a random moment one or two times in a row (half the moments counted from the job's first written file, so that
most kills hit the checkpoint, shard and resume paths rather than the imports), then runs it to the end on the same
cache/store/run folder and compares its JSON summary (timings left out) with an uninterrupted reference run; for
the attack also the stored ``adv.safetensors`` bytes, for the training every tensor of ``model.safetensors``. It
also checks that no temporary file is left behind. Exit status 1 on any difference.

By default each run is a fork of this process after it imported advshield (the CLI's ``main`` with the
job's arguments), which skips the seconds of import per run; ``--subprocess`` runs the ``advshield`` entry
point as a new interpreter instead. In fork mode the adversarial set is stored in shards of 100 images
(not 500) so that 600 images give six shards to be killed between.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

RUN_TIMEOUT = 300
VOLATILE = {"seconds", "images_per_s", "cached", "path", "train_time_s"}
JOBS = ("data", "attack", "train")


def make_cifar_tarball(folder: Path, n: int) -> Path:
    """A CIFAR-10 Python distribution with ``n`` random images per batch, as cifar-10-python.tar.gz."""
    src = folder / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"labels": rng.integers(0, 10, n).tolist(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        (src / name).write_bytes(pickle.dumps(batch, protocol=2))
    root = folder / "data" / "cifar10"
    root.mkdir(parents=True)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz", compresslevel=1) as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    shutil.rmtree(folder / "src")
    return folder / "data"


class Runner:
    """Starts one CLI run (a fork, or a new interpreter) with its output in a file; can kill it."""

    def __init__(self, use_fork: bool):
        self.use_fork = use_fork
        if use_fork:
            from advshield import cli  # noqa: F401 (imported once, before forking)

    def start(self, args: list[str], env: dict[str, str], out: Path):
        if not self.use_fork:
            with out.open("wb") as fh, out.with_suffix(".err").open("wb") as err:
                cmd = [sys.executable, "-c", "from advshield.cli import main; main()", *args]
                return subprocess.Popen(cmd, stdout=fh, stderr=err, env={**os.environ, **env})
        pid = os.fork()
        if pid == 0:  # the child: become `advshield <args>`
            code = 70
            try:
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(os.open(out.with_suffix(".err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
                sys.stdout = open(1, "w", closefd=False)  # not a capturing wrapper the parent may have
                sys.stderr = open(2, "w", closefd=False)
                os.environ.update(env)
                sys.argv = ["advshield", *args]
                import torch

                from advshield import adversarial
                from advshield.cli import main

                torch.set_num_threads(1)
                adversarial.SHARD = 100

                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()  # the one-line error of a failed run: the parent quotes it
                os._exit(code)
        return pid

    def wait(self, proc, timeout: float | None = None) -> int | None:
        """Exit status, or None while still running after ``timeout`` seconds (None: wait for the end)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.use_fork:
                pid, status = os.waitpid(proc, os.WNOHANG if deadline else 0)
                if pid:
                    return os.waitstatus_to_exitcode(status)
            else:
                try:
                    return proc.wait(timeout=0.01 if deadline else None)
                except subprocess.TimeoutExpired:
                    pass
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def kill(self, proc) -> None:
        if self.use_fork:
            os.kill(proc, signal.SIGKILL)
        else:
            proc.kill()
        self.wait(proc)

    def run(self, args: list[str], env: dict[str, str], out: Path) -> dict:
        proc = self.start(args, env, out)
        code = self.wait(proc, RUN_TIMEOUT)
        if code is None:
            self.kill(proc)
            raise SystemExit(f"FAIL: advshield {' '.join(args)} still running after {RUN_TIMEOUT} s (a hang?)")
        if code != 0:
            err = out.with_suffix(".err").read_text(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(f"FAIL: advshield {' '.join(args)} exited {code}: {' / '.join(err)}")
        return json.loads(out.read_text())


def stable(summary: dict) -> dict:
    """The summary without what may differ between equal runs (timings, cache flags, folders)."""
    if isinstance(summary, dict):
        return {k: stable(v) for k, v in summary.items() if k not in VOLATILE}
    if isinstance(summary, list):  # e.g. a training card's per-epoch history
        return [stable(v) for v in summary]
    return summary


def wrote_files(state: Path) -> bool:
    """Whether the job has written a file into its cache, store or run folder (not only its stdout)."""
    return any(p.is_file() for p in state.rglob("*") if p.parent != state)


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp-" in p.name)


def job(name: str, work: Path, data_root: Path) -> tuple[list[str], dict[str, str], Path]:
    """(CLI arguments, environment, state folder) of a job on a fresh state folder under ``work``."""
    state = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    env = {"ADVSHIELD_CACHE": str(state / "cache")}
    if name == "data":
        return ["data", "info", "--dataset", "cifar10", "--data-root", str(data_root), "--json"], env, state
    if name == "train":
        return ["train-target", "--dataset", "mnist", "--model", "a-net", "--n-train", "256", "--epochs", "3",
                "--batch-size", "64", "--device", "cpu", "--out", str(state / "run"), "--json"], env, state
    return ["attack", "--model", "a-net", "--attack", "bim", "--eps", "0.2", "--param", "steps=2", "--n", "600",
            "--out", str(state / "store"), "--json"], env, state


def weights_differ(a: Path, b: Path) -> list[str]:
    """Names of the tensors of two safetensors files that differ (in shape, dtype or any value), or that
    only one of them holds."""
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    return sorted(set(ta) ^ set(tb)) + [k for k in sorted(set(ta) & set(tb))
                                        if ta[k].dtype != tb[k].dtype or not ta[k].equal(tb[k])]


def differences(name: str, result: dict, reference: dict, state: Path, ref_state: Path) -> str | None:
    """What differs between a run after kills and the uninterrupted one (None: nothing)."""
    if stable(result) != stable(reference):
        return (f"summary differs from the uninterrupted run\n{json.dumps(stable(result), sort_keys=True)}\n"
                f"{json.dumps(stable(reference), sort_keys=True)}")
    if name == "attack" and Path(result["path"], "adv.safetensors").read_bytes() != \
            Path(reference["path"], "adv.safetensors").read_bytes():
        return "stored adversarial set differs from the uninterrupted run"
    if name == "train":
        if result["test_accuracy"] != reference["test_accuracy"]:
            return f"test accuracy {result['test_accuracy']} != {reference['test_accuracy']} of the uninterrupted run"
        bad = weights_differ(state / "run" / "model.safetensors", ref_state / "run" / "model.safetensors")
        if bad:
            return f"model.safetensors differs from the uninterrupted run in {len(bad)} tensor(s): {bad[:5]}"
    return None


def kill_rounds(runner: Runner, name: str, kills: int, work: Path, data_root: Path, rng: random.Random) -> dict:
    args, env, ref_state = job(name, work, data_root)
    t0 = time.monotonic()
    reference = runner.run(args, env, ref_state / "out.json")
    duration = time.monotonic() - t0
    done, missed, left_state, rounds = 0, 0, 0, 0
    while done < kills:
        args, env, state = job(name, work, data_root)
        rounds += 1
        for _ in range(min(rng.choice([1, 1, 2]), kills - done)):  # sometimes kill the recovering run too
            proc, start, code = runner.start(args, env, state / "killed.json"), time.monotonic(), None
            if rng.random() < 0.5:  # half the kills land after the job wrote its first file: the resume paths
                while code is None and not wrote_files(state) and time.monotonic() - start < duration:
                    code = runner.wait(proc, 0.005)
            if code is None:
                code = runner.wait(proc, rng.uniform(0.0, max(duration - (time.monotonic() - start), 0.0)))
            if code is None:
                runner.kill(proc)
                done += 1
                left_state += wrote_files(state)
            else:
                missed += 1  # finished before the kill: not counted
        result = runner.run(args, env, state / "out.json")
        diff = differences(name, result, reference, state, ref_state)
        if diff:
            raise SystemExit(f"FAIL {name} round {rounds}: {diff}")
        if temporaries(state):
            raise SystemExit(f"FAIL {name} round {rounds}: temporaries left behind: {temporaries(state)[:3]}")
        shutil.rmtree(state)
    return {"job": name, "kills": done, "rounds": rounds, "finished_before_kill": missed,
            "kills_after_files_were_written": left_state, "reference_run_s": round(duration, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per job (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated: {', '.join(JOBS)} (default: all)")
    ap.add_argument("--images", type=int, default=2000, help="images per generated CIFAR-10 batch file")
    ap.add_argument("--subprocess", action="store_true", help="new interpreter per run instead of a fork")
    opts = ap.parse_args(argv)
    if opts.kills < 1:
        ap.error("--kills must be at least 1")
    jobs = [j.strip() for j in opts.jobs.split(",") if j.strip()]
    if not jobs or set(jobs) - set(JOBS):
        ap.error(f"--jobs: choose among {', '.join(JOBS)}")
    use_fork = hasattr(os, "fork") and not opts.subprocess
    rng = random.Random(opts.seed)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="advshield-kill-loop-") as tmp:
        work = Path(tmp)
        data_root = make_cifar_tarball(work, opts.images)
        runner = Runner(use_fork)
        for name in jobs:
            report = kill_rounds(runner, name, opts.kills, work, data_root, rng)
            print(json.dumps(report), flush=True)
    print(f"OK: every run after a kill matched the uninterrupted one ({time.monotonic() - t0:.0f} s, "
          f"{'fork' if use_fork else 'subprocess'} mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
