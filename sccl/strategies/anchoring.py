"""What the weight-importance regularisers (EWC, SI) share: an anchor θ* of the trained parameters, a per-scalar
importance w, and the penalty ``scale · Σ w (θ − θ*)²`` that pulls each trained scalar back in proportion to how
much the past tasks needed it. Also the check of a strategy's numeric flags (LwF uses it too).

What is kept across tasks is w and θ* for the trained parameters only (``ctx.trainable``): as a component of
latent replay the frozen layers need no protection, and counting them would overstate the memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sccl.errors import ConfigError
from sccl.strategies.base import Strategy


def flag_of(cls: type[Strategy], dest: str):
    return next(f for f in cls.flags if f.dest == dest)


def require(cls: type[Strategy], cfg, dest: str, ok: Callable[[float], bool], what: str) -> None:
    """Raise :class:`ConfigError` naming the flag when the option ``dest`` (its default if unset) is not ``ok``."""
    flag = flag_of(cls, dest)
    value = cfg.options.get(dest, flag.default)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
        raise ConfigError(f"{flag.name} must be {what}, got {value}")


def quadratic_penalty(params: dict[str, torch.Tensor], weights: dict[str, torch.Tensor],
                      anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ_n Σ w_n (θ_n − θ*_n)² over the named tensors (differentiable in ``params``)."""
    return sum((weights[n] * (p - anchor[n]) ** 2).sum() for n, p in params.items())


def detached_copies(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


class ImportanceAnchoredStrategy(Strategy):
    """A strategy whose extra loss is ``penalty_scale() · Σ importance · (θ − θ*)²`` once :meth:`consolidate` has run.

    Subclasses say how strong the pull is (:meth:`penalty_scale`) and where the importance comes from."""

    importance_name = "importance"

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty_scale(self) -> float:
        raise NotImplementedError

    def consolidate(self, new_importance: dict[str, torch.Tensor], decay: float = 1.0) -> None:
        """importance ← decay · importance + new_importance; θ* ← the trained parameters now."""
        for n, w in new_importance.items():
            old = self.importance.get(n)
            self.importance[n] = w.detach().clone() if old is None else decay * old + w.detach()
        self.anchor = detached_copies(self.trained_parameters())

    def extra_loss(self, batch, logits):
        if not self.anchor:
            return None
        return self.penalty_scale() * quadratic_penalty(self.trained_parameters(), self.importance, self.anchor)

    def penalty_gradient(self) -> dict[str, torch.Tensor]:
        """∂/∂θ of the penalty at the current parameters: 2 · scale · importance · (θ − θ*)."""
        scale = 2.0 * self.penalty_scale()
        return {n: scale * self.importance[n] * (p.detach() - self.anchor[n])
                for n, p in self.trained_parameters().items()}

    # ------------------------------------------------------------------------------------------ what it keeps

    @property
    def nb_scalars(self) -> int:
        return sum(self.anchor[n].numel() for n in self.anchor)

    @property
    def memory_bytes_stored(self) -> int:
        return nbytes(self.importance) + nbytes(self.anchor) if self.anchor else 0

    @property
    def memory_bits_analytic(self) -> int:
        return 2 * 32 * self.nb_scalars  # importance and anchor, one float32 each per trained scalar

    def describe_memory(self) -> str:
        if not self.anchor:
            return "none"
        return (f"{self.importance_name} and anchor, one value each per trained scalar ({self.nb_scalars} in "
                f"{', '.join(self.anchor)}): {self.memory_bytes_stored} bytes")
