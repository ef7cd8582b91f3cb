"""A replay memory's samples as training batches (:class:`sccl.learn.training.Batch`), at T steps or at its S steps.

* :func:`training_batches` un-compresses them to the network's T steps (:func:`sccl.replay.memory.uncompress`), so the
  layers above the cut run them exactly as they run new data (latent replay, rehearsal);
* :func:`fewer_step_batches` keeps the S = T/w stored steps and marks each batch with ``time_factor`` w: the
  layers above the cut run S steps with per-step decays alpha^w, beta^w (:mod:`sccl.net.model`), about w times less
  work per replayed sample (fewer-step replay, :mod:`sccl.cl.strategies.fewer_steps`). A window's stored value (OR
  bit or spike count; window sum of currents or counts) is the input of its one step.
"""

from __future__ import annotations

import numpy as np
import torch

from sccl.learn.training import Batch


def replay_depth(memory) -> int | None:
    """The depth replayed batches start from: the memory's latent depth, None for raw counts (network input)."""
    if memory.kind == "counts":
        return None
    if memory.depth is None:
        raise ValueError("this memory has no depth; set ReplayMemory.depth")
    return memory.depth


def training_batches(memory, batch_size: int = 64, dtype: torch.dtype = torch.float32, device=None) -> list[Batch]:
    """Every sample in insertion order, un-compressed to T steps: batch-first (B, T, H) batches."""
    depth = replay_depth(memory)
    return [Batch(x, y, from_depth=depth) for x, y in memory.batches(batch_size, dtype, device)]


def fewer_step_batches(memory, batch_size: int = 64, threshold: float = 1.0, dtype: torch.dtype = torch.float32,
                       device=None, readout_gain: float = 1.0) -> list[Batch]:
    """Every sample in insertion order at its S stored steps: batch-first (B, S, H) batches with ``time_factor``
    w = T/S and the given firing ``threshold`` and ``readout_gain`` for the layers that run on them."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    depth = replay_depth(memory)
    labels = memory.labels
    out = []
    for start in range(0, len(memory), batch_size):
        idx = np.arange(start, min(start + batch_size, len(memory)))
        x, y = memory.get_compressed(idx, dtype=dtype), labels[idx]
        if device is not None:
            x, y = x.to(device), y.to(device)
        out.append(Batch(x, y, from_depth=depth, time_factor=memory.window, threshold=threshold,
                         readout_gain=readout_gain))
    return out
