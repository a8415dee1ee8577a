"""YAML configuration files validated with pydantic: unknown keys and bad values are named."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from advshield.errors import AdvShieldError

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: str | Path, model: type[M], what: str = "config") -> M:
    """Parse ``path`` as YAML and validate it as ``model``; any problem raises one clear error."""
    path = Path(path)
    if not path.is_file():
        raise AdvShieldError(f"{what} file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AdvShieldError(f"{path.name}: not valid YAML ({exc})") from None
    return validate_mapping(raw, model, path.name, what)


def validate_mapping(raw: object, model: type[M], where: str, what: str = "config") -> M:
    """Validate parsed YAML as ``model``; ``where`` (a file name) starts the error message."""
    if not isinstance(raw, dict):
        raise AdvShieldError(f"{where}: a {what} must be a YAML mapping")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())
        raise AdvShieldError(f"{where}: invalid {what}: {problems}") from None
