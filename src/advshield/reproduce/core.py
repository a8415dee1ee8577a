"""What every preset kind shares: finding and loading presets (``extends`` resolved, ``kind`` dispatched),
names confined to the output folder, and the header of every reproduction card."""

from __future__ import annotations

import os
import platform
import time
from importlib import resources
from pathlib import Path

import torch
import yaml

from advshield.config_file import validate_mapping
from advshield.errors import AdvShieldError
from advshield.experiment import RunContext

def builtin_presets() -> dict[str, Path]:
    folder = Path(str(resources.files("advshield.reproduce") / "presets"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _preset_path(spec: str | Path, folder: Path | None = None) -> Path:
    """A built-in preset's file, or a YAML file (relative to ``folder`` when given)."""
    builtins = builtin_presets()
    path = builtins.get(str(spec)) or (folder / spec if folder else Path(spec))
    if not path.is_file():
        raise AdvShieldError(f"unknown preset {spec!r}: not a file, and the built-in presets are "
                             f"{', '.join(builtins)}")
    return path


def _preset_mapping(path: Path, seen: tuple[Path, ...] = ()) -> object:
    """A preset file's YAML with ``extends: <preset>`` resolved: the base's top-level keys, replaced by this file's."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AdvShieldError(f"{path.name}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    base_path = _preset_path(raw.pop("extends"), path.parent)
    if base_path.resolve() in seen:
        raise AdvShieldError(f"{path.name}: 'extends' comes back to {base_path.name}")
    base = _preset_mapping(base_path, seen + (path.resolve(),))
    if not isinstance(base, dict):
        raise AdvShieldError(f"{base_path.name} (extended by {path.name}): a preset must be a YAML mapping")
    return {**base, **raw}


def load_preset(spec: str | Path):
    """A built-in preset by name, or a YAML file; ``kind: detection`` selects a :class:`DetectionPreset`;
    ``extends: <preset>`` starts from another preset and replaces the top-level keys this file gives."""
    from advshield.reproduce.detection.preset import DetectionPreset
    from advshield.reproduce.propagation.preset import PropagationPreset
    from advshield.reproduce.restoration.preset import Preset

    path = _preset_path(spec)
    raw = _preset_mapping(path)
    kind = raw.get("kind", "restoration") if isinstance(raw, dict) else "restoration"
    model = {"detection": DetectionPreset, "propagation": PropagationPreset}.get(kind, Preset)
    return validate_mapping(raw, model, path.name, "preset")


def run_header(preset, budget, *, full: bool, t_start: float, phases: dict, command: str, ctx: RunContext) -> dict:
    """The part of a reproduction card every preset kind shares: recipe, budget, timing, data, machine."""
    test = ctx.load_data(preset.dataset.value, "test")
    return {"preset": preset.model_dump(mode="json"), "variant": "full" if full else "fast",
            "budget": budget.model_dump(), "seconds": round(time.perf_counter() - t_start, 1), "phases": phases,
            "command": command, "data_source": test.meta.get("source", ""), "test_split_size": len(test),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "device": ctx.requested_device}}
