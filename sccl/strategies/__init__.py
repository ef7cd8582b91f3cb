"""Continual-learning strategies, one file each, and the registry that maps their names to their classes.

Adding a strategy = one new file here with a :class:`~sccl.strategies.base.Strategy` subclass, and one line in
:data:`REGISTRY` (see docs/ARCHITECTURE.md).
"""

from sccl.errors import ConfigError
from sccl.strategies.base import Flag, Strategy
from sccl.strategies.latent_replay import LatentReplay
from sccl.strategies.naive import Naive
from sccl.strategies.rehearsal import Rehearsal

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in (Naive, Rehearsal, LatentReplay)}


def get_strategy(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        raise ConfigError(f"unknown strategy '{name}' (choose from {', '.join(REGISTRY)})")
    return REGISTRY[name]


__all__ = ["REGISTRY", "Flag", "Strategy", "get_strategy"]
