"""The threat model of an attack setting: one value, parsed in one place.

``white-box`` and ``adaptive`` stand alone; ``transfer`` and ``transfer-feedback`` name the
substitute the attack differentiates (``transfer:b-net``). A config may leave the substitute to
the run (``transfer`` in a training mix crafted on the run's ``substitute``); it must be known by
the time a set is acquired. Strings are converted here, once, at the boundary (CLI, presets,
YAML configs); below it code compares :class:`ThreatModel` members, never strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Iterable

from pydantic import BeforeValidator, PlainSerializer

from advshield.attacks.pipeline import ThreatModel
from advshield.errors import InputError

_TRANSFER = (ThreatModel.TRANSFER, ThreatModel.TRANSFER_FEEDBACK)


@dataclass(frozen=True)
class Threat:
    """A threat model and, for the transfer kinds, the substitute's name (zoo name or checkpoint)."""

    kind: ThreatModel = ThreatModel.WHITE_BOX
    substitute: str | None = None

    def __post_init__(self) -> None:
        if self.substitute is not None and self.kind not in _TRANSFER:
            raise InputError(f"the {self.kind.value} threat model takes no substitute (got {self.substitute!r})")

    @classmethod
    def parse(cls, text: "str | Threat", allowed: Iterable[ThreatModel] | None = None) -> "Threat":
        """``white-box``, ``adaptive``, ``transfer[:SUBSTITUTE]`` or ``transfer-feedback[:SUBSTITUTE]``."""
        if isinstance(text, Threat):
            threat = text
        else:
            if not isinstance(text, str):
                raise InputError(f"a threat model is a string such as 'white-box', got {text!r}")
            name, sep, sub = text.strip().partition(":")
            choices = ", ".join(t.value for t in ThreatModel)
            try:
                kind = ThreatModel(name)
            except ValueError:
                raise InputError(f"unknown threat model {text!r}; choose one of {choices} "
                                 "(transfer kinds as transfer:<substitute>)") from None
            if sep and not sub:
                raise InputError(f"threat {text!r}: name the substitute after the colon")
            threat = cls(kind, sub or None)
        if allowed is not None and threat.kind not in set(allowed):
            raise InputError(f"threat {threat} is not allowed here; choose one of "
                             f"{', '.join(ThreatModel(t).value for t in allowed)}")
        return threat

    @property
    def transfers(self) -> bool:
        """Crafted on a substitute (``transfer`` or ``transfer-feedback``)."""
        return self.kind in _TRANSFER

    @property
    def adaptive(self) -> bool:
        return self.kind is ThreatModel.ADAPTIVE

    def with_substitute(self, substitute: str | None) -> "Threat":
        """This threat with the run's substitute filled in where it names none."""
        if not self.transfers or self.substitute or not substitute:
            return self
        return Threat(self.kind, substitute)

    def __str__(self) -> str:
        return self.kind.value if self.substitute is None else f"{self.kind.value}:{self.substitute}"


# A pydantic field holding a Threat: parsed from its string, written back as the same string.
ThreatField = Annotated[Threat, BeforeValidator(Threat.parse), PlainSerializer(str, return_type=str)]

__all__ = ["Threat", "ThreatField", "ThreatModel"]
