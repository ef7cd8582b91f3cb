"""Joint training: each epoch is the shuffled union of every task so far; its memory is what it keeps. And a
task's batch prefix (for estimates that need only a few samples)."""

import numpy as np
import torch

from sccl.cl.context import RunContext
from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import Scenario, Task
from sccl.cl.strategies.joint import Joint, batch_nbytes
from sccl.learn.training import Batch
from sccl.net.model import SparseInput


class FakeBinned:
    nb_steps, nb_units = 10, 700
    steps, units, counts = np.zeros(1, np.uint8), np.zeros(1, np.uint16), np.zeros(1, np.uint8)
    offsets = np.arange(0, 5 * 101, 5)  # sample i holds 5 entries


def test_joint_trains_on_the_shuffled_union_of_every_task_seen_so_far(monkeypatch):
    import sccl.cl.context as context

    monkeypatch.setattr(context, "cached_batches", lambda net, ds, idx, depth, device: [Batch(i, i) for i in idx])
    tasks = [Task("t0", np.arange(0, 40), np.arange(4)), Task("t1", np.arange(40, 50), np.arange(4)),
             Task("t2", np.arange(50, 60), np.arange(4))]
    ds = type("DS", (), {"binned": FakeBinned()})()
    ctx = RunContext(None, ds, torch.device("cpu"), Scenario("speakers", tasks), print)
    joint = Joint(RunConfig.of("speakers", "joint", batch_size=16, seed=3), ctx)
    assert joint.memory_bytes_stored == 0
    joint.end_task(0)
    joint.start_task(1)
    epoch = joint.epoch_batches(["the new batches are not used alone"])
    assert [len(b) for b in epoch] == [16, 16, 16, 2]
    seen = np.concatenate([b.x for b in epoch])
    assert sorted(seen) == list(range(50)) and list(seen) != list(range(50))  # every sample once, shuffled
    assert joint.memory_bytes_stored == 40 * 5 * (1 + 2 + 1) + 40 * 8  # 40 kept samples of 5 entries
    assert joint.memory_bits_analytic == 40 * 10 * 700
    joint.end_task(1)
    joint.start_task(2)
    assert sorted(np.concatenate([b.x for b in joint.epoch_batches([])])) == list(range(60))
    assert joint.memory_bytes_stored == 50 * (5 * 4 + 8)


def test_kept_batches_are_counted_by_their_tensors():
    z = torch.zeros(100, 8, 50)
    assert batch_nbytes(Batch(z, torch.zeros(8), from_depth=3, time_major=True)) == 100 * 8 * 50 * 4
    x = SparseInput.from_dense((torch.rand(4, 10, 700, generator=torch.Generator().manual_seed(0)) < 0.01).float())
    assert batch_nbytes(Batch(x, torch.zeros(4))) == 8 * x.nnz + 8 * x.nnz + 8 * 10 * 4 + 4 * x.nnz


def test_a_task_prefix_is_built_without_keeping_the_whole_task(monkeypatch):
    import sccl.cl.context as context

    built = []
    monkeypatch.setattr(context, "cached_batches", lambda net, ds, idx, depth, device: built.append(idx) or
                        [Batch(torch.zeros(len(i)), torch.zeros(len(i))) for i in idx])
    tasks = [Task("t0", np.arange(100), np.arange(4))]
    ctx = RunContext(None, None, torch.device("cpu"), Scenario("speakers", tasks), print, batch_size=16)
    assert [len(b) for b in ctx.train_batches(0, max_samples=40)] == [16, 16, 16]
    assert ctx.task_batches == {}  # a prefix is not kept
    assert [len(b) for b in ctx.train_batches(0)] == [16] * 6 + [4]
    assert [len(b) for b in ctx.train_batches(0, max_samples=32)] == [16, 16]  # cut from the kept batches
    assert len(built) == 2
