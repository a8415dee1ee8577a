"""The user's own modules: a classifier or defense built by ``package.module:factory``, checked and wrapped.

* :func:`load_user_module` imports ``package.module:factory`` from the user's environment, calls the
  factory and loads weights from a safetensors file or a plain PyTorch state dict
  (``torch.load(..., weights_only=True)``: never a full pickle);
* :func:`check_classifier` refuses, with one line each, a model in training mode, one that fails on a
  batch, returns something other than ``[N, classes]`` logits, or returns non-finite logits;
* :func:`as_defense` wraps any image -> image ``nn.Module`` into the :class:`~advshield.defenses.Defense`
  protocol, reading (or measuring) whether it is differentiable and randomised;
* :func:`module_sha256` names a module by the SHA-256 of its ``state_dict``.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from advshield.checkpoint import load_weights
from advshield.defenses.base import Defense
from advshield.errors import InputError
from advshield.validation import check_images

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def is_user_spec(spec: object) -> bool:
    """True for ``package.module:factory`` (and not a path to an existing file)."""
    return isinstance(spec, str) and bool(_SPEC.match(spec)) and not Path(spec).exists()


def load_user_module(spec: str, weights: str | Path | None = None) -> nn.Module:
    """``factory()`` from ``package.module:factory``, with ``weights`` loaded, in eval mode.

    ``weights`` is a ``.safetensors`` file or a PyTorch state dict saved with ``torch.save(model.state_dict())``
    (``.pt``, ``.pth``, ``.bin``, ``.ckpt``; a dict holding it under ``state_dict`` is accepted too). Every
    tensor must match the module (no missing, unexpected or mis-shaped key). Anything else is refused with
    one line.
    """
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise InputError(f"{spec!r} is not of the form package.module:factory (e.g. mypkg.models:make_net)")
    module_name, attr = spec.split(":", 1)
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"{spec}: cannot import {module_name} ({exc}); is it installed or on PYTHONPATH?") from None
    except Exception as exc:  # the user's module raised while importing
        raise InputError(f"{spec}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{spec}: {module_name} has no attribute {attr}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{spec}: {attr} is not callable (a function or class returning an nn.Module)")
    try:
        module = obj()
    except Exception as exc:
        raise InputError(f"{spec}: calling {attr}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise InputError(f"{spec}: {attr}() returned {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        load_weights(module, read_state_dict(weights), str(weights))
    return module.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a weights-only PyTorch state dict; one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"{path}: not a valid safetensors file ({exc})") from None
    if suffix not in _TORCH_SUFFIXES:
        raise InputError(f"{path}: unknown weights format {suffix or '(no suffix)'}; pass a .safetensors file or a "
                         f"state dict saved by torch.save ({', '.join(_TORCH_SUFFIXES)})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a plain state dict (torch.load with weights_only=True refused it: {first}); "
                         "save model.state_dict() or a safetensors file instead of a pickled model") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise InputError(f"{path}: holds {type(state).__name__}, not a state dict (names -> tensors)")
    return state


def module_sha256(module: nn.Module) -> str:
    """SHA-256 over the module's ``state_dict``: every name, dtype, shape and the tensor bytes, in order."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _first_training(module: nn.Module) -> str | None:
    for name, m in module.named_modules():
        if m.training:
            return name or type(module).__name__
    return None


def check_module_mode(module: nn.Module, what: str) -> None:
    """Refuse a module that is not an ``nn.Module`` or is (partly) in training mode."""
    if not isinstance(module, nn.Module):
        raise InputError(f"the {what} must be a torch.nn.Module, got {type(module).__name__}")
    where = _first_training(module)
    if where is not None:
        raise InputError(f"the {what} ({type(module).__name__}) is in training mode ({where}.training is True): "
                         f"call .eval() first; dropout and batch-norm would change its outputs during the evaluation")


@torch.no_grad()
def check_classifier(model: nn.Module, x: torch.Tensor) -> int:
    """The number of classes ``model`` predicts on the image batch ``x``; refuses anything but finite
    ``[N, classes]`` logits with one line (and a model in training mode)."""
    check_module_mode(model, "model")
    shape = tuple(x.shape)
    try:
        out = model(x)
    except Exception as exc:
        raise InputError(f"the model failed on a float32 batch of shape {shape} in [0, 1]: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor):
        raise InputError(f"the model must return a logits tensor [N, classes], got {type(out).__name__}")
    if out.ndim != 2:
        raise InputError(f"the model must return logits of shape [N, classes], got shape {tuple(out.shape)} "
                         f"for a batch of shape {shape}")
    if out.shape[0] != shape[0]:
        raise InputError(f"the model returned {out.shape[0]} rows of logits for a batch of {shape[0]} images")
    if out.shape[1] < 2:
        raise InputError(f"the model must return one logit per class (at least 2), got shape {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise InputError("the model returned NaN or infinite logits on [0, 1] images; does it expect another "
                         "input range? advshield passes float32 images in [0, 1]: put any normalisation inside it")
    return int(out.shape[1])


class UserDefense(Defense):
    """A plain image -> image ``nn.Module`` in the :class:`Defense` protocol.

    Its backward pass, where it is not differentiable, is the module's own ``bpda(x, out, grad)`` if it
    defines one, else the straight-through estimator (identity).
    """

    def __init__(self, module: nn.Module, differentiable: bool, randomized: bool) -> None:
        super().__init__()
        self.module = module
        self.differentiable, self.randomized = bool(differentiable), bool(randomized)  # per instance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def bpda(self, x: torch.Tensor, out: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        own = getattr(self.module, "bpda", None)
        return own(x, out, grad) if callable(own) else grad


# Two calls of a defense on the same images that differ by more than this (a tenth of an 8-bit grey level)
# somewhere make it randomised; below it, floating-point non-determinism of a deterministic module.
RANDOM_TOLERANCE = 0.1 / 255


def as_defense(module: nn.Module, x: torch.Tensor) -> tuple[Defense, list[str]]:
    """``module`` as a :class:`Defense`, checked on the image batch ``x``; returns it and notes for the card.

    A :class:`Defense` is returned as is. For any other module, the attributes ``differentiable`` and
    ``randomized`` are read when it has them; otherwise they are measured: no finite non-zero gradient
    reaches the input (or the module defines ``bpda``) -> not differentiable, adaptive attacks use BPDA; two calls on the
    same images differ by more than RANDOM_TOLERANCE somewhere -> randomised, adaptive attacks use EOT (a
    deterministic module's floating-point noise, e.g. non-deterministic GPU kernels, stays below it). Each
    measurement adds a note.
    """
    check_module_mode(module, "defense")
    with torch.no_grad():
        try:
            out = module(x)
        except Exception as exc:
            raise InputError(f"the defense failed on a float32 batch of shape {tuple(x.shape)} in [0, 1]: "
                             f"{type(exc).__name__}: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"a defense maps images to images of the same shape: got {got} for {tuple(x.shape)}")
    check_images(out, name="the defense's output images")
    if isinstance(module, Defense):
        return module, []
    notes = []
    differentiable = getattr(module, "differentiable", None)
    if differentiable is None:
        if callable(getattr(module, "bpda", None)):
            differentiable = False
            notes.append("the defense defines bpda(): adaptive attacks use it as its backward pass")
        else:
            differentiable = _has_gradient(module, x)
            if not differentiable:
                notes.append("the defense's gradient is absent, zero or not finite on the probe images: adaptive "
                             "attacks use BPDA with the identity as its backward pass (define bpda(x, out, grad) "
                             "for a better one)")
    randomized = getattr(module, "randomized", None)
    if randomized is None:
        with torch.no_grad():
            randomized = bool((module(x) - out).abs().max() > RANDOM_TOLERANCE)
        if randomized:
            notes.append("two calls of the defense on the same images differed: treated as randomised, "
                         "adaptive attacks average gradients over draws (EOT)")
    return UserDefense(module, differentiable, randomized), notes


def _has_gradient(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether a random projection of ``module(x)`` has a finite, non-zero gradient with respect to ``x``
    (``torch.round``, ``sign`` or a numpy round trip have none: an attack through them would see nothing)."""
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        out = module(xg)
        if not out.requires_grad:
            return False
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.device, out.dtype)
        (g,) = torch.autograd.grad((out * weights).sum(), xg, allow_unused=True)
    return g is not None and bool(torch.isfinite(g).all()) and bool(g.abs().sum() > 0)


def module_identity(module: nn.Module) -> dict:
    """What names a user module in the adversarial-set store: class, scalar attributes and weights."""
    inner = module.module if isinstance(module, UserDefense) else module
    scalars = {k: v for k, v in vars(inner).items()
               if not k.startswith("_") and k != "training" and isinstance(v, (bool, int, float, str))}
    return {"name": type(inner).__qualname__, "module": type(inner).__module__, "params": scalars,
            "sha256": module_sha256(inner)}


__all__ = ["UserDefense", "as_defense", "check_classifier", "check_module_mode", "is_user_spec", "load_user_module",
           "module_identity", "module_sha256", "read_state_dict"]
