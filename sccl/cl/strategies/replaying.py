"""What rehearsal and latent replay share: a memory of past samples, filled at the end of every task and replayed
with the new data every epoch.

Which samples are stored (a seeded choice, drawn only from training samples):
* class scenarios (class_incremental, progressive): ``replay_batches`` batches per class of the task, from that
  class's samples (single-class batches, or dealt into class-mixed batches with ``class_mixed``);
* speaker scenarios (sample_incremental, speakers): ``replay_batches`` of the task's full training batches.
"""

from __future__ import annotations

import numpy as np

from sccl.cl.scenarios import CLASS_SCENARIOS
from sccl.cl.strategies.base import Flag, Strategy
from sccl.core.errors import ConfigError
from sccl.data.splits import make_batches
from sccl.replay.memory import ReplayMemory, check_stored_steps


SCHEDULES = ("original", "mixed")

REPLAY_FLAGS = (
    Flag("--schedule", "schedule", "original: all new batches then all replay batches each epoch (the original); "
         "mixed: replay batches spread evenly among the new ones", type=str, default="original", choices=SCHEDULES),
    Flag("--float16", "float16_currents", "store depth-0 currents as float16 (default float32)", action="store_true"),
    Flag("--class-mixed", "class_mixed", "class scenarios: deal the per-class replay samples into class-mixed "
         "batches (default: single-class batches, as the original)", action="store_true",
         scenarios=CLASS_SCENARIOS),
)


def schedule_order(n_new: int, n_replay: int, schedule: str) -> list[tuple[str, int]]:
    """original: every new batch, then every replay batch; mixed: replay batches spread evenly among the new ones."""
    new = [("new", i) for i in range(n_new)]
    replay = [("replay", j) for j in range(n_replay)]
    if schedule == "original":
        return new + replay
    keyed = [((i + 0.5) / n_new, 0, x) for i, x in enumerate(new)] + [
        ((j + 0.5) / n_replay, 1, x) for j, x in enumerate(replay)]
    return [x for *_, x in sorted(keyed)]


class ReplayStrategy(Strategy):
    """A strategy with a replay memory; subclasses say what is stored (:meth:`store`)."""

    min_replay_batches = 1

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.memory: ReplayMemory | None = None
        self._rng = np.random.default_rng([cfg.seed, ctx.scenario.memory_salt])

    @classmethod
    def validate(cls, cfg, nb_steps: int) -> None:
        o = cfg.options
        if o["replay_batches"] < cls.min_replay_batches:
            raise ConfigError(f"the {cls.name} strategy needs at least {cls.min_replay_batches} replay batch(es), "
                              f"got {o['replay_batches']}")
        if o["schedule"] not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got '{o['schedule']}'")
        if o["stored_steps"] is not None:
            check_stored_steps(nb_steps, o["stored_steps"])

    @classmethod
    def keeps(cls, cfg):
        return frozenset({"replay"}) if cfg.options["replay_batches"] > 0 else frozenset()

    @classmethod
    def label_parts(cls, cfg):
        o = cfg.options
        parts = [] if o.get("latent_depth") is None else [f"d{o['latent_depth']}"]
        parts.append(f"n{o['replay_batches']}")
        if o["stored_steps"] is not None:
            parts.append(f"S{o['stored_steps']}{o['compression']}")
        return parts

    @classmethod
    def memory_columns(cls, cfg, nb_steps):
        o = cfg.options
        return {"replay_batches": o["replay_batches"], "stored_steps": o["stored_steps"] or nb_steps,
                "compression": o["compression"] if o["stored_steps"] is not None else "none"}

    # ------------------------------------------------------------------------------------------ hooks

    def end_task(self, i: int) -> None:
        if self.option("replay_batches") == 0:
            return
        self.store(self.choose(self.ctx.scenario.tasks[i].train))
        if i == 0:
            self.ctx.log(f"replay memory: {self.describe_memory()}")
            lost = self.diagnostics().get("compression")
            if lost:
                self.ctx.log(f"compression: {100 * lost['lost_fraction']:.1f} % of the latents' spikes lost; "
                             f"{lost['spikes_per_unit_window']:.3f} spikes per unit and window, "
                             f"{lost['spikes_per_active_window']:.2f} per window holding any")

    def epoch_batches(self, new):
        replay = self.memory_batches()
        return [new[j] if kind == "new" else replay[j]
                for kind, j in schedule_order(len(new), len(replay), self.option("schedule"))]

    # ------------------------------------------------------------------------------------------ the memory

    def choose(self, train: np.ndarray) -> list[np.ndarray]:
        """The index batches of one task's training samples that go into the memory (module docstring)."""
        n, bs, labels = self.option("replay_batches"), self.cfg.batch_size, self.ctx.ds.labels
        if not self.ctx.scenario.per_class_memory:
            available = make_batches(train, bs, drop_last=True)
            if n > len(available):
                raise ConfigError(f"asked for {n} replay batches but the task's training split holds only "
                                  f"{len(available)} full batches of {bs}")
            chosen = np.sort(self._rng.choice(len(available), n, replace=False))
            return [available[j] for j in chosen]
        per_class = []
        for c in np.unique(labels[train]):
            members = train[labels[train] == c]
            if n * bs > len(members):
                raise ConfigError(f"asked for {n} replay batches of {bs} per class but class {c} has only "
                                  f"{len(members)} training samples")
            per_class.append(self._rng.permutation(members)[: n * bs])
        if self.option("class_mixed"):
            return make_batches(self._rng.permutation(np.concatenate(per_class)), bs, drop_last=True)
        return [b for members in per_class for b in make_batches(members, bs, drop_last=True)]

    def store(self, index_batches: list[np.ndarray]) -> None:
        raise NotImplementedError

    def memory_batches(self):
        if self.memory is None:
            return []
        return self.memory.training_batches(self.cfg.batch_size, device=self.ctx.device)

    @property
    def memory_bits_analytic(self) -> int:
        return self.memory.memory_bits_analytic if self.memory is not None else 0

    @property
    def memory_bytes_stored(self) -> int:
        return self.replay_memory_bytes

    @property
    def replay_memory_bytes(self) -> int:
        """The replay memory's own bytes (a host of a regularizer adds the regularizer's state to
        ``memory_bytes_stored``, never to this)."""
        return self.memory.memory_bytes_stored if self.memory is not None else 0

    def describe_memory(self) -> str:
        return self.memory.describe() if self.memory is not None else "none"

    def diagnostics(self) -> dict:
        found = self.memory.compression_diagnostics() if self.memory is not None else None
        return {"compression": {k: round(v, 6) for k, v in found.items()}} if found else {}

    @property
    def stored_steps(self) -> int:
        return self.option("stored_steps") or self.ctx.ds.binned.nb_steps
