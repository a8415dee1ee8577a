"""Helpers every benchmark script shares: the commit and CPU it ran on, and atomic writes of its results."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """The commit the benchmark ran on: git's, else ``ADVSHIELD_COMMIT`` (a copy of the tree without .git, as
    on a lent GPU machine), else None."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("ADVSHIELD_COMMIT")


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detection_run_pipeline(run: Path, detector_kind: str, data_root: str | None, n: int):
    """(pipeline, images, labels, detector) of a detection reproduction's folder ``run``: the zoo classifier it
    guarded, the detector it trained (checkpoint and calibrated threshold) and its first ``n`` test images."""
    import json

    from advshield.attacks import Pipeline
    from advshield.detectors.checkpoint import load_detector
    from advshield.experiment.context import RunContext

    summary = json.loads((run / "reproduction.json").read_text())
    ctx = RunContext.create("cpu", data_root=data_root)
    target = ctx.load_target(summary["preset"]["target"], summary["preset"]["dataset"])
    detector, _ = load_detector(run / detector_kind / "detector.safetensors", target.model, target.card["sha256"])
    calibrated = json.loads((run / detector_kind / "detection.json").read_text())["threshold"]
    if not detector.threshold == calibrated:  # the run calibrated after saving: its card holds the threshold
        detector._threshold.fill_(calibrated)
    x, y = ctx.load_data(summary["preset"]["dataset"], "test", n, target=target).tensors()
    return Pipeline(target.model.eval().requires_grad_(False), None, detector).eval(), x, y, detector
