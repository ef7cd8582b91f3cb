"""What a strategy sees of its run (:class:`RunContext`), and batches computed once at the cut depth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sccl.cl.scenarios import Scenario
from sccl.data.splits import make_batches
from sccl.learn.training import Batch, Dataset, raw_batches


@dataclass
class RunContext:
    """What a strategy may look at: the network, the data, the device, the scenario, the run's log, the cut depth
    and the names of the parameters the run trains, and every task's training batches (:meth:`train_batches`)."""

    net: torch.nn.Module
    ds: Dataset
    device: torch.device
    scenario: Scenario
    log: Callable[[str], None]
    depth: int | None = None
    trainable: tuple[str, ...] = ()
    batch_size: int = 64
    task_batches: dict = field(default_factory=dict)

    def train_batches(self, i: int, max_samples: int | None = None) -> list[Batch]:
        """Task ``i``'s training batches (task 0: the pretraining's), at the cut depth, built once and reused
        (the new tasks' are the very batches the run trains on). ``max_samples``: only the first batches that
        hold that many samples (what a Fisher estimate needs, without keeping a whole pretraining set)."""
        if i in self.task_batches:
            batches = self.task_batches[i]
            if max_samples is None:
                return batches
            counts = np.cumsum([len(b) for b in batches])
            return batches[: int(np.searchsorted(counts, max_samples)) + 1]
        idx = make_batches(self.scenario.tasks[i].train, self.batch_size, drop_last=False)
        if max_samples is not None:
            return cached_batches(self.net, self.ds, idx[: -(-max_samples // self.batch_size)], self.depth,
                                  self.device)
        self.task_batches[i] = cached_batches(self.net, self.ds, idx, self.depth, self.device)
        return self.task_batches[i]

    def batches_at_cut(self, index_batches) -> list[Batch]:
        """Batches of any samples (index arrays) as the run trains on them: at the cut depth, computed once."""
        return cached_batches(self.net, self.ds, index_batches, self.depth, self.device)


def cached_batches(net, ds: Dataset, index_batches, depth: int | None, device) -> list[Batch]:
    """Raw batches, or (depth given) the frozen prefix's activity on them, computed once, time-major (each raw
    batch built only while its activity is computed: they are not all held at once)."""
    if depth is None:
        return raw_batches(ds, index_batches, device)
    out = []
    for idx in index_batches:
        raw = raw_batches(ds, [idx], device)[0]
        out.append(Batch(net.activity_time_major(raw.x, depth), raw.y, from_depth=depth, time_major=True))
    return out
