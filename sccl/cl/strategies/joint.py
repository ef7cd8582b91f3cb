"""Joint training: every task trains on the union of all tasks seen so far (the pretraining's training samples
included), shuffled into class-mixed batches as a pretraining would be. Not continual learning (it keeps every
past sample) but the upper bound every comparison needs."""

from __future__ import annotations

import numpy as np
import torch

from sccl.cl.strategies.base import Strategy, Variant
from sccl.data.splits import make_batches
from sccl.net.sparse_input import SparseInput


SALT = 6151  # the shuffle's seed is [seed, SALT, task]


def batch_nbytes(batch) -> int:
    """Bytes a kept batch holds: its sparse entries (units, bags, offsets, counts) or its activity tensor."""
    x = batch.x
    if isinstance(x, SparseInput):
        return int(sum(t.nbytes for t in (x.units, x.bags, x.offsets, x.counts)))
    return int(x.nbytes) if isinstance(x, torch.Tensor) else 0


class Joint(Strategy):
    name = "joint"
    description = ("Joint training (upper bound): train every parameter on the union of all tasks seen so far, "
                   "shuffled into mixed batches (seeded).")

    @classmethod
    def keeps(cls, cfg):
        return frozenset({"replay"})  # every past training sample

    @classmethod
    def variants(cls):
        return (Variant("joint", "joint", rank=1),)

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.kept = np.zeros(0, dtype=np.int64)  # training samples of the tasks before the current one
        self.union: list = []

    def end_task(self, i: int) -> None:
        self.kept = np.concatenate([self.kept, self.ctx.scenario.tasks[i].train])

    def start_task(self, i: int) -> None:
        union = np.concatenate([self.kept, self.ctx.scenario.tasks[i].train])
        order = np.random.default_rng([self.cfg.seed, SALT, i]).permutation(union)
        self.union = self.ctx.batches_at_cut(make_batches(order, self.cfg.batch_size, drop_last=False))

    def epoch_batches(self, new):
        return self.union

    @property
    def memory_bits_analytic(self) -> int:
        """One bit per stored value (the paper's count for raw input): samples x T x channels."""
        return len(self.kept) * self.ctx.ds.binned.nb_steps * self.ctx.ds.binned.nb_units

    @property
    def memory_bytes_stored(self) -> int:
        """The kept samples in the dataset's own sparse form: per entry a step (uint8), a unit (uint16) and a count
        (uint8), plus an 8-byte offset per sample."""
        b = self.ctx.ds.binned
        entries = int((b.offsets[self.kept + 1] - b.offsets[self.kept]).sum())
        return entries * (b.steps.itemsize + b.units.itemsize + b.counts.itemsize) + 8 * len(self.kept)

    @property
    def replay_memory_bytes(self) -> int:
        """The kept samples are a replay memory (of everything): they count as such in the learning state."""
        return self.memory_bytes_stored

    def describe_memory(self) -> str:
        return f"every past training sample: {len(self.kept)} samples, {self.memory_bytes_stored:,} B (sparse)"
