"""Preset names become folder names: confined to the output folder."""

from __future__ import annotations

import re

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(name: str) -> str:
    """A preset's name becomes a folder name: letters, digits, '.', '_' and '-' only (no '/', no '..')."""
    if not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"name {name!r} must be letters, digits, '.', '_' or '-' (it names the output folder)")
    return name
