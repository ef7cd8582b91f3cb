"""What the weight-importance regularisers (EWC, SI) share: an anchor θ* of the trained parameters, a per-scalar
importance w, and the penalty ``scale · Σ w (θ − θ*)²`` that pulls each trained scalar back in proportion to how
much the past tasks needed it. Also the check of a strategy's numeric flags (LwF and the projection use it too).

What is kept across tasks is w and θ* for the trained parameters only (``ctx.trainable``): as a component of
latent replay the frozen layers need no protection, and counting them would overstate the memory.

Two choices shared by EWC and SI:

* **A new class's readout column is free during its task.** The engine re-draws w_out[:, c] for the task's new
  classes *after* ``start_task`` (the anchor was taken before), and the old importance of that column only says
  how the old tasks wanted the logit of a class they never saw. So during task i the penalty uses the importance
  with w_out[:, c] set to 0 for c in task i's new classes (``penalty_weights``); the stored importance is not
  changed, and from the next task on (the anchor then holds the learnt column) the column is protected as any.
* **Importance normalised per parameter tensor** (``--importance-norm``, default ``mean``): each task's new
  importance tensor is divided by its mean absolute value (the mean, for the non-negative Fisher) before it joins
  the running sum, so λ (EWC) and c (SI) weigh every layer alike; the raw Fisher of these small weights spans
  about 7 decades from w1 to w_out, so one λ either frees the input layers or freezes the readout. ``none``
  keeps the papers' unnormalised form. An all-zero tensor (SI's unobserved pretraining) stays zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sccl.cl.strategies.base import Flag, Strategy
from sccl.core.errors import ConfigError


IMPORTANCE_NORMS = ("mean", "none")
IMPORTANCE_NORM_FLAG = Flag("--importance-norm", "importance_norm", "mean: divide each task's importance tensor "
                            "by its mean before adding it, so the strength means the same on every layer; none: the "
                            "paper's unnormalised importance", type=str, default="mean", choices=IMPORTANCE_NORMS)


def flag_of(cls: type[Strategy], dest: str):
    return next(f for f in cls.flags if f.dest == dest)


def require(cls: type[Strategy], cfg, dest: str, ok: Callable[[float], bool], what: str) -> None:
    """Raise :class:`ConfigError` naming the flag when the option ``dest`` (its default if unset) is not ``ok``."""
    flag = flag_of(cls, dest)
    value = cfg.options.get(dest, flag.default)
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
        raise ConfigError(f"{flag.name} must be {what}, got {value}")


def require_choice(cls: type[Strategy], cfg, dest: str) -> None:
    """Raise :class:`ConfigError` naming the flag when the option ``dest`` is not one of its flag's choices."""
    flag = flag_of(cls, dest)
    value = cfg.options.get(dest, flag.default)
    if value not in flag.choices:
        raise ConfigError(f"{flag.name} must be one of {', '.join(flag.choices)}, got '{value}'")


def quadratic_penalty(params: dict[str, torch.Tensor], weights: dict[str, torch.Tensor],
                      anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ_n Σ w_n (θ_n − θ*_n)² over the named tensors (differentiable in ``params``)."""
    return sum((weights[n] * (p - anchor[n]) ** 2).sum() for n, p in params.items())


def normalised(importance: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor divided by its mean absolute value (an all-zero tensor stays zero)."""
    out = {}
    for n, w in importance.items():
        scale = float(w.abs().mean()) if w.numel() else 0.0
        out[n] = w / scale if scale > 0 and math.isfinite(scale) else w
    return out


def detached_copies(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


class ImportanceAnchoredStrategy(Strategy):
    """A strategy whose extra loss is ``penalty_scale() · Σ importance · (θ − θ*)²`` once :meth:`consolidate` has run
    (the importance with the current task's new readout columns at 0: module docstring).

    Subclasses say how strong the pull is (:meth:`penalty_scale`) and where the importance comes from."""

    importance_name = "importance"

    @classmethod
    def keeps(cls, cfg):
        return frozenset({"state"})  # importances and anchors

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}
        self.free_columns: list[int] = []  # the current task's new classes: their readout columns are free

    @classmethod
    def validate(cls, cfg, nb_steps):
        require_choice(cls, cfg, "importance_norm")

    def penalty_scale(self) -> float:
        raise NotImplementedError

    def consolidate(self, new_importance: dict[str, torch.Tensor], decay: float = 1.0) -> None:
        """importance ← decay · importance + new_importance (normalised per tensor with ``--importance-norm
        mean``); θ* ← the trained parameters now."""
        if self.option("importance_norm") == "mean":
            new_importance = normalised(new_importance)
        for n, w in new_importance.items():
            old = self.importance.get(n)
            self.importance[n] = w.detach().clone() if old is None else decay * old + w.detach()
        self.anchor = detached_copies(self.trained_parameters())
        self.free_columns = []  # the task is learnt: its columns are protected from now on

    def start_task(self, i):
        """Free the readout columns of task ``i``'s new classes from the penalty (module docstring)."""
        scenario = self.ctx.scenario
        self.free_columns = list(scenario.tasks[i].new_classes) if scenario is not None else []

    @property
    def penalty_weights(self) -> dict[str, torch.Tensor]:
        """The importance the penalty uses: w_out's columns of the current task's new classes at 0."""
        if not self.free_columns or "w_out" not in self.importance:
            return self.importance
        free = self.importance["w_out"].clone()
        free[:, self.free_columns] = 0
        return {**self.importance, "w_out": free}

    def extra_loss(self, batch, logits):
        if not self.anchor:
            return None
        weights = self.penalty_weights
        return self.penalty_scale() * quadratic_penalty(self.trained_parameters(), weights, self.anchor)

    def penalty_gradient(self) -> dict[str, torch.Tensor]:
        """∂/∂θ of the penalty at the current parameters: 2 · scale · importance · (θ − θ*)."""
        scale, weights = 2.0 * self.penalty_scale(), self.penalty_weights
        return {n: scale * weights[n] * (p.detach() - self.anchor[n])
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
