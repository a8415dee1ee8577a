"""advshield: does this purification or detection defense really work?

Images are float32 NCHW tensors in [0, 1] everywhere; every model holds its
own input normalisation.

``advshield.evaluate(model, data, defense)`` (see :mod:`advshield.api`) evaluates the user's own classifier
and defense; it is imported on first use, so ``import advshield`` stays light.
"""

import importlib

from advshield.errors import AdvShieldError

__version__ = "0.1.0"
__all__ = ["AdvShieldError", "Evaluation", "__version__", "evaluate"]
_LAZY = {"evaluate": "advshield.api", "Evaluation": "advshield.api"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'advshield' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
