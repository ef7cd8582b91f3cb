"""What a strategy is: its flags, what it trains, and the few hooks the engine calls (:mod:`sccl.engine`).

The engine runs a scenario's tasks in order (task 0 is the pretraining, already done) and calls, for a run:

    end_task(0)                           consolidate what pretraining taught (e.g. fill a replay memory)
    for each later task i:
        start_task(i)                     prepare for task i
        every epoch: epoch_batches(new)   the batches of the epoch: new data, plus whatever the strategy adds
            every step: loss = NLL + extra_loss(batch, logits); backward; edit_gradients(); optimiser step;
                        after_step()
        end_task(i)                       consolidate task i (not after the last task: nothing would use it)

What a strategy may read is its :class:`~sccl.engine.RunContext`: ``ctx.net``, ``ctx.trainable`` (the names of
the parameters trained), ``ctx.depth`` (the cut) and ``ctx.train_batches(i)`` (task i's training batches at the
cut, task 0 included).

A strategy that keeps something across tasks reports its size in ``memory_bytes_stored`` (the bytes actually
held) and ``memory_bits_analytic`` (the paper's formula where there is one); ``replay_memory_bytes`` says how
much of it is a replay memory (stored samples), the rest being regulariser state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from sccl.defaults import tuned

if TYPE_CHECKING:
    from sccl.engine import RunContext
    from sccl.runs import RunConfig
    from sccl.training import Batch


@dataclass(frozen=True)
class Flag:
    """A command-line flag of a strategy: ``dest`` is the :class:`~sccl.runs.RunConfig` field it sets; ``default``
    a value, or the name of a per-scenario entry of :data:`sccl.defaults.SCENARIO`."""

    name: str
    dest: str
    help: str
    type: Any = int
    default: Any = None
    choices: tuple | None = None
    action: str | None = None


def tuned_flags(methods: str | tuple[str, ...], flags: tuple[Flag, ...]) -> tuple[Flag, ...]:
    """``flags`` whose numeric defaults are those :func:`sccl.defaults.tuned` holds for the first of ``methods``
    (a strategy's name, or ``HOST+NAME`` for a hosted one) that has one, each flag's own default where none has."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)

    def default(f: Flag):
        value = f.default
        for method in reversed(methods):  # the first method wins: it is asked last
            value = tuned(method, f.dest, value)
        return value

    return tuple(replace(f, default=default(f))
                 if f.action is None and f.type in (int, float) and isinstance(f.default, (int, float)) else f
                 for f in flags)


class Strategy:
    name = ""
    description = ""
    flags: tuple[Flag, ...] = ()

    def __init__(self, cfg: "RunConfig", ctx: "RunContext"):
        self.cfg, self.ctx = cfg, ctx

    @classmethod
    def all_flags(cls) -> tuple[Flag, ...]:
        """Every flag of the strategy's command line (its own; more where it hosts other strategies' hooks)."""
        return cls.flags

    @classmethod
    def used_flags(cls, args) -> tuple[Flag, ...]:
        """The flags whose values the run's settings record, given the parsed ``args`` (a hosting strategy records
        only the hosted strategy it was asked for, so that other strategies' defaults never enter its stamp)."""
        return cls.all_flags()

    # ------------------------------------------------------------------------------------------ declarations

    @classmethod
    def validate(cls, cfg: "RunConfig", nb_steps: int) -> None:
        """Raise :class:`~sccl.errors.ConfigError` for settings this strategy cannot run with."""

    @classmethod
    def cut_depth(cls, cfg: "RunConfig") -> int | None:
        """The network is trained from this depth's activity (None: from the input); the layers at or below it
        are frozen and their activity on fixed batches is computed once."""
        return None

    @classmethod
    def trainable(cls, cfg: "RunConfig", net) -> tuple[str, ...]:
        """Names of the parameters this strategy trains."""
        return net.trainable_for_depth(cls.cut_depth(cfg))

    def option(self, dest: str):
        """A strategy's own setting (``cfg.options``), or its flag's default when the config was built without it."""
        if dest in self.cfg.options:
            return self.cfg.options[dest]
        for flag in self.flags:
            if flag.dest == dest:
                return flag.default
        raise KeyError(f"{self.name} has no option '{dest}'")

    # ------------------------------------------------------------------------------------------ hooks

    def start_task(self, i: int) -> None:
        """Before training on task ``i`` (i >= 1)."""

    def view(self, batches: list["Batch"]) -> list["Batch"]:
        """How the layers above the cut run fixed batches: each new task's training batches and every evaluation
        set (as they are by default; fewer-step replay runs them at its S steps). ``ctx.train_batches`` stays
        unviewed: what a strategy stores or estimates from is the network's own activity."""
        return batches

    def epoch_batches(self, new: list["Batch"]) -> list["Batch"]:
        """The batches of one epoch, in order."""
        return new

    def extra_loss(self, batch: "Batch", logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the NLL of a step (None: nothing)."""
        return None

    def edit_gradients(self) -> None:
        """Change the gradients between backward and the optimiser step (e.g. project them)."""

    def after_step(self) -> None:
        """After the optimiser step (e.g. accumulate a path integral)."""

    def end_task(self, i: int) -> None:
        """After task ``i`` (task 0: the pretraining, before the first new task)."""

    # ------------------------------------------------------------------------------------------ what it keeps

    @property
    def memory_bits_analytic(self) -> int:
        return 0

    @property
    def memory_bytes_stored(self) -> int:
        return 0

    @property
    def replay_memory_bytes(self) -> int:
        """The part of ``memory_bytes_stored`` that is a replay memory (stored samples or latents); the rest is
        regulariser state (summary.json ``learning_state``)."""
        return 0

    def describe_memory(self) -> str:
        return "none"

    def diagnostics(self) -> dict:
        """Numbers about what the strategy keeps that a user should see (summary.json "diagnostics")."""
        return {}

    def trained_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The parameters this run trains (``ctx.trainable``), by name."""
        params = dict(self.ctx.net.named_parameters())
        return {n: params[n] for n in self.ctx.trainable}

    def replay_batches(self) -> list["Batch"]:
        """The stored samples as batches (empty when the strategy stores none)."""
        return []
