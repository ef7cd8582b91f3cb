"""Learning without Forgetting (Li & Hoiem 2016): keep the model of the end of the last task and distil its outputs
on the new data into the model being trained, with no stored samples.

The distillation is over the old model's classes (class scenarios: the classes seen so far, since the old model
never learnt a later task's class and its column there is noise; speaker scenarios: every class), averaged over
the batch, weighted by α (``--lwf-loss``):

* ``mse`` (default): ½ · mean over the old classes of (z_new − z_old)². This is the high-temperature limit of
  T² · KL (Hinton et al. 2015: T² KL → ½ mean_k (d_k − d̄)², d = z_new − z_old) *without* its removal of the mean
  d̄, i.e. ½ mean_k (d_k − d̄)² + ½ d̄². A softmax is blind to a shift common to all its logits, so under ``kl``
  the new model may lower every old logit together, letting the new class win on old data at no distillation
  cost (behind a seed-to-seed spread of ±17 points); ``mse`` pins the old logits' level. For small changes at
  high T, α means the same under both (the same curvature in the shape d − d̄); the temperature plays no part.
* ``kl``: T² · KL(softmax(z_old / T) ‖ softmax(z_new / T)), Li & Hoiem's form (T² keeps the gradient's size
  independent of T).

Warm-up (Li & Hoiem's first step): for the first ``--lwf-warmup-epochs`` epochs of a task only the readout
columns of the task's new classes train (every other gradient is zeroed, so Adamax leaves those weights where
they are), so that the new head fits the frozen features before the shared weights move. Scenarios whose tasks
bring no class (speakers, sample-incremental) have no new head: there the warm-up is skipped (logged once).

The old model is copied at the end of each task (the same weights the next task starts from, before a new class's
readout column is re-drawn), so the copy is counted in the memory from task 0 on, as a replay memory is. Only the
trained parameters are copied; the frozen ones are the same in both models and shared. Its logits on a batch are
computed once and reused while that batch object lives (the new data's batches are the same objects every epoch).
"""

from __future__ import annotations

import copy
import weakref

import torch
import torch.nn.functional as F

from sccl.cl.strategies.anchoring import flag_of, nbytes, require, require_choice
from sccl.cl.strategies.base import Flag, Strategy, tuned_flags
from sccl.core.defaults import METHODS
from sccl.learn.training import Batch, logits_of


LOSSES = ("mse", "kl")


def distillation_loss(old_logits: torch.Tensor, new_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(old / T) ‖ softmax(new / T)), averaged over the batch (differentiable in ``new_logits``)."""
    log_old = F.log_softmax(old_logits / temperature, dim=1)
    log_new = F.log_softmax(new_logits / temperature, dim=1)
    return temperature ** 2 * F.kl_div(log_new, log_old, reduction="batchmean", log_target=True)


def logit_matching_loss(old_logits: torch.Tensor, new_logits: torch.Tensor) -> torch.Tensor:
    """½ · mean over the batch and the classes of (new − old)²: T² · KL's high-temperature limit that also pins a
    shift common to every logit (module docstring)."""
    return 0.5 * ((new_logits - old_logits) ** 2).mean()


def frozen_copy(net: torch.nn.Module, copied: tuple[str, ...]) -> torch.nn.Module:
    """A copy of ``net`` whose parameters named in ``copied`` are frozen copies and whose others are shared."""
    shared = {id(p): p for n, p in net.named_parameters() if n not in copied}
    old = copy.deepcopy(net, memo=shared)
    for n, p in old.named_parameters():
        if n in copied:
            p.requires_grad_(False)
    return old


class BatchCache:
    """A value per live batch object, dropped when the batch is garbage-collected (so batches rebuilt every epoch,
    such as a replay memory's, neither grow the cache nor hit a stale entry)."""

    def __init__(self):
        self._entries: dict[int, tuple[weakref.ref, torch.Tensor]] = {}

    def get(self, batch: Batch, compute) -> torch.Tensor:
        key = id(batch)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is batch:
            return entry[1]
        value = compute(batch)
        self._entries[key] = (weakref.ref(batch, lambda _, k=key: self._entries.pop(k, None)), value)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def classes_seen_up_to(scenario, i: int, nb_classes: int) -> list[int]:
    """The classes no task after ``i`` brings: what a model at the end of task ``i`` has been trained on."""
    later = {c for task in scenario.tasks[i + 1:] for c in task.new_classes}
    return [c for c in range(nb_classes) if c not in later]


class LearningWithoutForgetting(Strategy):
    name = "lwf"
    label = "LwF"
    description = ("Learning without Forgetting: after a warm-up that trains only the new classes' readout "
                   "columns, distil the outputs of the model from the end of the last task on the new data over the "
                   "classes seen so far: alpha/2 mean (z_new - z_old)^2 (--lwf-loss mse, pins the old logits' "
                   "level) or alpha T^2 KL(softmax(z_old/T) || softmax(z_new/T)) (kl); stores a copy of the trained "
                   "parameters, no samples.")
    untuned_flags = (
        Flag("--lwf-alpha", "lwf_alpha", "weight alpha of the distillation term", type=float,
             default=METHODS["lwf_alpha"]),
        Flag("--lwf-temperature", "lwf_temperature", "distillation temperature T (--lwf-loss kl)", type=float,
             default=METHODS["lwf_temperature"]),
        Flag("--lwf-loss", "lwf_loss", "mse: half the mean squared difference of the old classes' logits (pins "
             "their common level); kl: T^2 KL of their softmax at temperature T (Li & Hoiem)", type=str,
             default="mse", choices=LOSSES),
        Flag("--lwf-warmup-epochs", "lwf_warmup_epochs", "first epochs of a task that train only the new classes' "
             "readout columns (Li & Hoiem's warm-up; none in scenarios without new classes)", type=int, default=5),
    )
    flags = tuned_flags(name, untuned_flags)  # the defaults python -m sccl.cli.tune chose, else these

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.old_net: torch.nn.Module | None = None
        self.old_classes: torch.Tensor | None = None
        self.old_logits = BatchCache()
        self.epoch = 0  # of the current task (epoch_batches is called once per epoch)
        self.new_columns: list[int] = []
        self._said_no_head = False

    @classmethod
    def validate(cls, cfg, nb_steps):
        require(cls, cfg, "lwf_alpha", lambda v: v >= 0, "a number >= 0")
        require(cls, cfg, "lwf_temperature", lambda v: v > 0, "a number > 0")
        require_choice(cls, cfg, "lwf_loss")
        require(cls, cfg, "lwf_warmup_epochs", lambda v: v >= 0 and v == int(v), "an integer >= 0")

    # ------------------------------------------------------------------------------------------ warm-up

    def start_task(self, i):
        self.epoch = 0
        self.new_columns = list(self.ctx.scenario.tasks[i].new_classes)
        if not self.new_columns and self.option("lwf_warmup_epochs") > 0 and not self._said_no_head:
            self.ctx.log(f"lwf: the tasks bring no new class, so there is no new head to warm up: "
                         f"{flag_of(type(self), 'lwf_warmup_epochs').name} is ignored")
            self._said_no_head = True

    def epoch_batches(self, new):
        self.epoch += 1
        return new

    @property
    def warming_up(self) -> bool:
        """Whether this epoch trains only the new classes' readout columns."""
        return bool(self.new_columns) and self.epoch <= self.option("lwf_warmup_epochs")

    @torch.no_grad()
    def edit_gradients(self):
        if not self.warming_up:
            return
        for n, p in self.trained_parameters().items():
            if p.grad is None:
                continue
            if n == "w_out":
                keep = p.grad[:, self.new_columns].clone()
                p.grad.zero_()
                p.grad[:, self.new_columns] = keep
            else:
                p.grad.zero_()

    def end_task(self, i):
        net = self.ctx.net
        self.old_net = frozen_copy(net, self.ctx.trainable)
        self.old_classes = torch.as_tensor(classes_seen_up_to(self.ctx.scenario, i, net.nb_outputs),
                                           device=net.w_out.device)
        self.old_logits.clear()

    def _old_logits(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return logits_of(self.old_net, batch)[:, self.old_classes]

    def extra_loss(self, batch, logits):
        if self.old_net is None:
            return None
        old, new = self.old_logits.get(batch, self._old_logits), logits[:, self.old_classes]
        if self.option("lwf_loss") == "kl":
            return self.option("lwf_alpha") * distillation_loss(old, new, self.option("lwf_temperature"))
        return self.option("lwf_alpha") * logit_matching_loss(old, new)

    # ------------------------------------------------------------------------------------------ what it keeps

    @classmethod
    def keeps(cls, cfg):
        return frozenset({"state"})  # a copy of the last task's trained parameters

    def _copied(self) -> dict[str, torch.Tensor]:
        if self.old_net is None:
            return {}
        params = dict(self.old_net.named_parameters())
        return {n: params[n] for n in self.ctx.trainable}

    @property
    def memory_bytes_stored(self) -> int:
        return nbytes(self._copied())

    @property
    def memory_bits_analytic(self) -> int:
        return 32 * sum(p.numel() for p in self._copied().values())

    def describe_memory(self) -> str:
        copied = self._copied()
        if not copied:
            return "none"
        return (f"copy of the {len(copied)} trained parameters ({', '.join(copied)}) of the last task's model: "
                f"{self.memory_bytes_stored} bytes")
