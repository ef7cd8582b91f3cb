"""Continual-learning strategies, one file each, and the registry that maps their names to their classes.

Adding a strategy = one new file in this folder defining a :class:`~sccl.cl.strategies.base.Strategy` subclass with a
``name``: the registry finds it (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from sccl.cl.strategies.base import EntryPoint, Flag, Strategy, Variant
from sccl.core.errors import ConfigError


#: the strategies shown first, in this order (the paper's); any other registered one follows by name
PAPER_ORDER = ("naive", "rehearsal", "latent_replay")
#: the command lines' strategy when none is named (the paper's method)
DEFAULT_STRATEGY = "latent_replay"
#: the strategy every comparison is measured against (the report's "ACC - naive", the figures' reference line)
BASELINE = "naive"


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


#: every strategy's entry points (the original's script names for a strategy with other defaults): name ->
#: (the strategy's name, its :class:`EntryPoint`)
ENTRY_POINTS: dict[str, tuple[str, EntryPoint]] = {
    entry: (name, point) for name, cls in REGISTRY.items() for entry, point in cls.entry_points.items()}


def resolve(name: str) -> tuple[type[Strategy], EntryPoint | None]:
    """A strategy's or an entry point's name -> (the strategy's class, the entry point or None)."""
    if name in ENTRY_POINTS:
        strategy, point = ENTRY_POINTS[name]
        return REGISTRY[strategy], point
    return get_strategy(name), None


VARIANTS: dict[str, Variant] = {v.key: v for cls in REGISTRY.values() for v in cls.variants()}


def variant_of(strategy: str, replay_batches: float, stored_steps: float, nb_steps: int, options: dict) -> str:
    """The report's variant key of a run (a strategy that is no longer registered: its name)."""
    cls = REGISTRY.get(strategy)
    return cls.variant_of(replay_batches, stored_steps, nb_steps, options or {}) if cls else strategy


def label(key: str) -> str:
    """The tables' name of a variant or strategy key ("LR", "EWC"); the key itself when unknown."""
    found = VARIANTS.get(key)
    return found.label if found else key


__all__ = ["BASELINE", "DEFAULT_STRATEGY", "ENTRY_POINTS", "PAPER_ORDER", "REGISTRY", "VARIANTS", "EntryPoint", "Flag", "Strategy",
           "Variant", "get_strategy", "label", "resolve", "variant_of"]
