"""Joint training: every epoch trains on the union of all tasks seen so far (the pretraining's training samples
included). Not continual learning (it keeps every past sample) but the upper bound every comparison needs."""

from __future__ import annotations

import torch

from sccl.sparse_input import SparseInput
from sccl.strategies.base import Strategy
from sccl.strategies.replaying import schedule_order


def batch_nbytes(batch) -> int:
    """Bytes a kept batch holds: its sparse entries (units, bags, offsets, counts) or its activity tensor."""
    x = batch.x
    if isinstance(x, SparseInput):
        return int(sum(t.nbytes for t in (x.units, x.bags, x.offsets, x.counts)))
    return int(x.nbytes) if isinstance(x, torch.Tensor) else 0


class Joint(Strategy):
    name = "joint"
    description = ("Joint training (upper bound): train every parameter on the union of all tasks seen so far, "
                   "old batches spread evenly among the new ones.")

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.kept: list = []  # batches of the tasks before the current one
        self.samples = 0

    def end_task(self, i: int) -> None:
        batches = self.ctx.train_batches(i)
        self.kept.extend(batches)
        self.samples += sum(len(b) for b in batches)

    def epoch_batches(self, new):
        return [new[j] if kind == "new" else self.kept[j]
                for kind, j in schedule_order(len(new), len(self.kept), "mixed")]

    @property
    def memory_bits_analytic(self) -> int:
        """One bit per stored value (the paper's count for raw input): samples x T x channels."""
        if not self.kept:
            return 0
        x = self.kept[0].x
        T, width = (x.nb_steps, x.nb_inputs) if isinstance(x, SparseInput) else (x.shape[0], x.shape[2])
        return self.samples * T * width

    @property
    def memory_bytes_stored(self) -> int:
        return sum(batch_nbytes(b) for b in self.kept)

    def describe_memory(self) -> str:
        return f"every past training sample: {self.samples} samples, {self.memory_bytes_stored:,} B held"
