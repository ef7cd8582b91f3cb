"""Continual-learning strategies, one file each, and the registry that maps their names to their classes.

Adding a strategy = one new file in this folder defining a :class:`~sccl.strategies.base.Strategy` subclass with a
``name``: the registry finds it (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from sccl.errors import ConfigError
from sccl.strategies.base import Flag, Strategy

#: the strategies shown first, in this order (the paper's); any other registered one follows by name
PAPER_ORDER = ("naive", "rehearsal", "latent_replay")


def _discover() -> dict[str, type[Strategy]]:
    found: dict[str, type[Strategy]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Strategy) and obj.name and obj.__module__ == module.__name__:
                if obj.name in found:
                    raise ImportError(f"two strategies are named '{obj.name}'")
                found[obj.name] = obj
    order = [n for n in PAPER_ORDER if n in found] + sorted(n for n in found if n not in PAPER_ORDER)
    return {n: found[n] for n in order}


REGISTRY: dict[str, type[Strategy]] = _discover()


def get_strategy(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        raise ConfigError(f"unknown strategy '{name}' (choose from {', '.join(REGISTRY)})")
    return REGISTRY[name]


__all__ = ["REGISTRY", "Flag", "Strategy", "get_strategy"]
