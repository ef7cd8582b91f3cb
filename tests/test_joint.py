"""Joint training: each epoch is every past task's batches plus the new ones; its memory is what it keeps."""

import numpy as np
import torch

from sccl.engine import RunContext
from sccl.model import SparseInput
from sccl.runs import RunConfig
from sccl.scenarios import Scenario, Task
from sccl.strategies.joint import Joint, batch_nbytes
from sccl.training import Batch


def sparse_batch(n: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 10, 700, generator=g) < 0.01).float()
    return Batch(SparseInput.from_dense(x), torch.zeros(n, dtype=torch.int64))


def test_joint_trains_on_every_task_seen_so_far_and_counts_what_it_keeps():
    tasks = [Task(f"t{i}", np.arange(4), np.arange(4)) for i in range(3)]
    old, b1, b2 = [sparse_batch(4, 0), sparse_batch(3, 1)], [sparse_batch(4, 2)], [sparse_batch(4, 3)]
    ctx = RunContext(None, None, torch.device("cpu"), Scenario("speakers", tasks), print,
                     task_batches={0: old, 1: b1, 2: b2})
    joint = Joint(RunConfig("speakers", "joint"), ctx)
    assert joint.memory_bytes_stored == 0
    joint.end_task(0)
    epoch = joint.epoch_batches(b1)
    assert sorted(map(id, epoch)) == sorted(map(id, old + b1))  # every batch once
    assert epoch.index(b1[0]) == 1  # the new batch spread among the old ones (mixed schedule)
    joint.end_task(1)
    assert sorted(map(id, joint.epoch_batches(b2))) == sorted(map(id, old + b1 + b2))
    x = old[0].x
    assert batch_nbytes(old[0]) == 8 * x.nnz + 8 * x.nnz + 8 * 10 * 4 + 4 * x.nnz  # units, bags, offsets, counts
    assert joint.memory_bytes_stored == sum(batch_nbytes(b) for b in old + b1)
    assert joint.memory_bits_analytic == (4 + 3 + 4) * 10 * 700


def test_kept_activity_at_a_cut_is_counted_by_its_tensor():
    z = torch.zeros(100, 8, 50)
    assert batch_nbytes(Batch(z, torch.zeros(8), from_depth=3, time_major=True)) == 100 * 8 * 50 * 4


def test_a_task_prefix_is_built_without_keeping_the_whole_task(monkeypatch):
    import sccl.engine as engine

    built = []
    monkeypatch.setattr(engine, "cached_batches", lambda net, ds, idx, depth, device: built.append(idx) or
                        [Batch(torch.zeros(len(i)), torch.zeros(len(i))) for i in idx])
    tasks = [Task("t0", np.arange(100), np.arange(4))]
    ctx = RunContext(None, None, torch.device("cpu"), Scenario("speakers", tasks), print, batch_size=16)
    assert [len(b) for b in ctx.train_batches(0, max_samples=40)] == [16, 16, 16]
    assert ctx.task_batches == {}  # a prefix is not kept
    assert [len(b) for b in ctx.train_batches(0)] == [16] * 6 + [4]
    assert [len(b) for b in ctx.train_batches(0, max_samples=32)] == [16, 16]  # cut from the kept batches
    assert len(built) == 2
