"""Name -> factory registries (in the spirit of timm's ``register_model``).

The CLI, configs and tests enumerate models, attacks, defenses and detectors
through these, so a new component is usable everywhere once registered.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from advshield.errors import AdvShieldError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of factories with free-form metadata per entry."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, factory, dict(meta))
            return factory

        return decorator

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise AdvShieldError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        """The entry's object; an argument its factory does not take fails naming the ones it does."""
        self.check_params(name, kwargs)
        return self.entry(name).factory(**kwargs)

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Fail, naming the culprit, when ``params`` holds an argument the factory does not take."""
        sig = inspect.signature(self.entry(name).factory)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        unknown = sorted(set(params) - set(sig.parameters))
        if unknown:
            raise AdvShieldError(f"{self.kind} {name!r} takes no argument {', '.join(map(repr, unknown))}; "
                                 f"it takes: {', '.join(sig.parameters) or 'none'}")

    def names(self, **where: Any) -> list[str]:
        """Registered names, optionally filtered on metadata (``names(dataset="mnist")``)."""
        return sorted(
            n for n, e in self._entries.items() if all(e.meta.get(k) == v for k, v in where.items())
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
