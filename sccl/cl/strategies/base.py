"""What a strategy is: its flags, what it trains, and the few hooks the engine calls (:mod:`sccl.cl.engine`).

The engine runs a scenario's tasks in order (task 0 is the pretraining, already done) and calls, for a run:

    end_task(0)                           consolidate what pretraining taught (e.g. fill a replay memory)
    for each later task i:
        start_task(i)                     prepare for task i
        every epoch: epoch_batches(new)   the batches of the epoch: new data, plus whatever the strategy adds
            every step: loss = NLL + extra_loss(batch, logits); backward; edit_gradients(); optimiser step;
                        after_step()
        end_task(i)                       consolidate task i (not after the last task: nothing would use it)

What a strategy may read is its :class:`~sccl.cl.context.RunContext`: ``ctx.net``, ``ctx.trainable`` (the names of
the parameters trained), ``ctx.depth`` (the cut) and ``ctx.train_batches(i)`` (task i's training batches at the
cut, task 0 included).

A strategy that keeps something across tasks reports its size in ``memory_bytes_stored`` (the bytes actually
held) and ``memory_bits_analytic`` (the paper's formula where there is one); ``replay_memory_bytes`` says how
much of it is a replay memory (stored samples), the rest being regulariser state.

Everything else about a strategy is said here too, so that no other module needs its name: its settings (its
flags, completed into the run's ``options`` by :meth:`Strategy.complete`), what it keeps (:meth:`Strategy.keeps`),
its part of a run folder's name (:meth:`Strategy.label_parts`), its epochs.csv memory columns
(:meth:`Strategy.memory_columns`), its names and kinds of run in the report (``label``, :meth:`Strategy.variants`,
:meth:`Strategy.variant_of`, :meth:`Strategy.option_label`), the sweep axes it takes (:meth:`Strategy.sweep_runs`)
and the original's script names for it (``entry_points``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from sccl.cl.context import RunContext
from sccl.core.defaults import SCENARIO, tuned
from sccl.learn.training import Batch


@dataclass(frozen=True)
class Flag:
    """A command-line flag of a strategy. ``dest``: the setting it sets (a :class:`~sccl.cl.runs.RunConfig` field,
    else one of the run's ``options``). Its default is ``default``, or, with ``scenario_default``, that entry of
    :data:`sccl.core.defaults.SCENARIO` for the run's scenario (a value is never looked up by what it says).
    ``scenarios``: the scenarios that offer it (None: every one)."""

    name: str
    dest: str
    help: str
    type: Any = int
    default: Any = None
    choices: tuple | None = None
    action: str | None = None
    scenario_default: str | None = None
    scenarios: tuple[str, ...] | None = None

    def default_in(self, scenario: str, overrides: dict | None = None):
        """The flag's default in ``scenario`` (``overrides``: an entry point's defaults, by ``dest``)."""
        if overrides and self.dest in overrides:
            return overrides[self.dest]
        if self.scenario_default is not None:
            return SCENARIO[scenario][self.scenario_default]
        if self.action == "store_true" and self.default is None:
            return False
        return self.default

    def offered_in(self, scenario: str) -> bool:
        return self.scenarios is None or scenario in self.scenarios


@dataclass(frozen=True)
class Variant:
    """How the report names and orders one kind of run of a strategy: ``key`` (summary.csv's grouping), ``label``
    (the tables' name), ``rank`` (position in the tables; equal ranks go by name), ``marker`` (marker and colour in
    the accuracy-vs-memory figure, None: not in it), ``latent`` (in the latent-replay figures 5a / 5b), ``sized``
    (its memory size in batches is a setting: the tables show it), ``compresses`` (the key of the uncompressed
    variant the compression table compares it with)."""

    key: str
    label: str
    rank: int = 100
    marker: tuple[str, str] | None = None
    latent: bool = False
    sized: bool = True
    compresses: str | None = None


@dataclass(frozen=True)
class EntryPoint:
    """A named variant of a strategy with other defaults (the original's script names): ``defaults`` by setting,
    ``sweep`` the sweep axes' defaults (:meth:`Strategy.sweep_runs`), ``two_task_lr``: the learning rate sweeps use
    in the two-task scenarios when none is given."""

    defaults: dict
    sweep: dict
    two_task_lr: float | None = None


def tuned_flags(methods: str | tuple[str, ...], flags: tuple[Flag, ...]) -> tuple[Flag, ...]:
    """``flags`` whose numeric defaults are those :func:`sccl.core.defaults.tuned` holds for the first of ``methods``
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
    """A continual-learning method. ``cfg`` (every method's argument of that name) is the run's
    :class:`~sccl.cl.runs.RunConfig`: its own settings are ``cfg.options``, complete (:meth:`complete`)."""

    name = ""
    description = ""
    flags: tuple[Flag, ...] = ()
    #: the tables' name (default: ``name``)
    label = ""
    #: settings with one value for this strategy, always in its options (e.g. rehearsal sums raw counts)
    fixed_settings: dict = {}
    #: named variants with other defaults, as the original's scripts had them (name -> :class:`EntryPoint`)
    entry_points: dict[str, EntryPoint] = {}
    #: the sweep's axes (``python -m sccl.cli.cl_sweep``: depths, latent_batches, rehearsal_batches, subsample,
    #: compression) this strategy takes, each the flag it sets (:meth:`sweep_runs`)
    sweep_axes: dict[str, str] = {}

    def __init__(self, cfg, ctx: RunContext):
        self.cfg, self.ctx = cfg, ctx

    @classmethod
    def all_flags(cls) -> tuple[Flag, ...]:
        """Every flag of the strategy's command line (its own; more where it hosts other strategies' hooks)."""
        return cls.flags

    @classmethod
    def used_flags(cls, values: dict) -> tuple[Flag, ...]:
        """The flags whose values the run's settings record, given the run's ``values`` by ``dest`` (a hosting
        strategy records only the hosted strategy it was asked for, so that other strategies' defaults never enter
        its stamp)."""
        return cls.all_flags()

    @classmethod
    def complete(cls, scenario: str, options: dict, overrides: dict | None = None) -> dict:
        """``options`` with the default of every flag the run uses and the scenario offers, and the fixed
        settings: what a run's settings record, whoever built its configuration."""
        values = dict(options)
        for _ in range(2):  # a hosting strategy's used flags depend on its own values (e.g. --regularizer)
            for f in cls.used_flags(values):
                if f.offered_in(scenario):
                    values.setdefault(f.dest, f.default_in(scenario, overrides))
        values.update(cls.fixed_settings)
        return values

    # ------------------------------------------------------------------------------------------ declarations

    @classmethod
    def validate(cls, cfg, nb_steps: int) -> None:
        """Raise :class:`~sccl.core.errors.ConfigError` for settings this strategy cannot run with."""

    @classmethod
    def cut_depth(cls, cfg) -> int | None:
        """The network is trained from this depth's activity (None: from the input); the layers at or below it
        are frozen and their activity on fixed batches is computed once."""
        return None

    @classmethod
    def trainable(cls, cfg, net) -> tuple[str, ...]:
        """Names of the parameters this strategy trains."""
        return net.trainable_for_depth(cls.cut_depth(cfg))

    @classmethod
    def resolve_settings(cls, cfg, shape, nb_steps: int) -> list[str]:
        """Settings a strategy derives from the data before the run (``cfg.options`` changed in place; e.g. a byte
        budget's choice), one line each saying what it chose; the data's :class:`~sccl.data.shape.DataShape` and
        the time steps of a sample."""
        return []

    @classmethod
    def keeps(cls, cfg) -> frozenset[str]:
        """What a run keeps across tasks: "replay" (stored samples or latents) and / or "state" (regulariser
        state: importances, anchors, bases, a model copy); empty when it keeps nothing."""
        return frozenset()

    def option(self, dest: str):
        """One of the strategy's own settings (``cfg.options``)."""
        return self.cfg.options[dest]

    # ------------------------------------------------------------------------------------------ names and columns

    @classmethod
    def label_parts(cls, cfg) -> list[str]:
        """The run folder's name parts after the scenario's (e.g. ``d2``, ``n1``, ``S10or``)."""
        return []

    @classmethod
    def memory_columns(cls, cfg, nb_steps: int) -> dict:
        """epochs.csv's memory columns: replay batches, stored steps and compression (none without a replay
        memory)."""
        return {"replay_batches": 0, "stored_steps": "", "compression": "none"}

    @classmethod
    def variants(cls) -> tuple[Variant, ...]:
        """The kinds of run the report tells apart (:class:`Variant`)."""
        return (Variant(cls.name, cls.label or cls.name),)

    @classmethod
    def variant_of(cls, replay_batches: float, stored_steps: float, nb_steps: int, options: dict) -> str:
        """The variant key of a run from its summary row's replay batches and stored steps (NaN: blank) and its
        options."""
        return cls.name

    @classmethod
    def option_label(cls, options: dict) -> str | None:
        """A short name the tables add to the method's for its options (e.g. projection's "HLOP"), or None."""
        return None

    @classmethod
    def sweep_runs(cls, axes: dict[str, list]) -> list[list[str]]:
        """The command-line flags of every run a sweep makes of this strategy, given each of the sweep's axes'
        values (:attr:`sweep_axes`; a None value leaves its flag out): one run per combination."""
        runs: list[list[str]] = [[]]
        for axis, flag in cls.sweep_axes.items():
            runs = [argv + ([] if v is None else [flag, str(v)]) for argv in runs for v in axes[axis]]
        return runs

    # ------------------------------------------------------------------------------------------ hooks

    def start_task(self, i: int) -> None:
        """Before training on task ``i`` (i >= 1)."""

    def view(self, batches: list[Batch]) -> list[Batch]:
        """How the layers above the cut run fixed batches: each new task's training batches and every evaluation
        set (as they are by default; fewer-step replay runs them at its S steps). ``ctx.train_batches`` stays
        unviewed: what a strategy stores or estimates from is the network's own activity."""
        return batches

    def epoch_batches(self, new: list[Batch]) -> list[Batch]:
        """The batches of one epoch, in order."""
        return new

    def extra_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor | None:
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

    def memory_batches(self) -> list[Batch]:
        """The stored samples as batches (empty when the strategy stores none)."""
        return []
