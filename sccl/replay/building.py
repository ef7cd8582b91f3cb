"""Building replay memories: a network's latents on raw-input batches, and raw-input rehearsal memories, each
compressed batch by batch into a :class:`~sccl.replay.memory.ReplayMemory` (so the full-resolution activity never exists
all at once)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from sccl.replay.memory import ReplayMemory, _as_3d, kind_for_depth


def _xy(batch):
    if hasattr(batch, "x") and hasattr(batch, "y"):
        if getattr(batch, "from_depth", None) is not None:
            raise ValueError("expected raw-input batches (from_depth None)")
        return batch.x, batch.y
    x, y = batch
    return x, y


def _net_device(net) -> torch.device:
    return next(net.parameters()).device


def generate_latents(net, batches: Iterable, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth-``depth`` activity of ``net`` (no gradients) on raw-input batches (``sccl.learn.training.Batch`` or
    (x, y) pairs), concatenated: (z (N, T, H) float on the CPU, y int64 (N,))."""
    zs, ys = [], []
    for z, y in _iter_latents(net, batches, depth):
        zs.append(z)
        ys.append(y)
    if not zs:
        raise ValueError("no batches given")
    return torch.cat(zs), torch.cat(ys)


def _iter_latents(net, batches, depth):
    device = _net_device(net)
    for batch in batches:
        x, y = _xy(batch)
        if isinstance(x, torch.Tensor):
            x = x.to(device)
        with torch.no_grad():
            z = net.latents(x, depth)
        yield z.to("cpu"), torch.as_tensor(y).to("cpu", torch.int64)


def build_latent_memory(net, batches: Iterable, depth: int, stored_steps: int, mode: str = "or",
                        float_dtype: torch.dtype = torch.float32, memory: ReplayMemory | None = None) -> ReplayMemory:
    """A :class:`ReplayMemory` of ``net``'s depth-``depth`` latents on the given raw-input batches (compressed
    batch by batch, so the full-resolution latents never exist all at once); ``memory``: extend this one."""
    for z, y in _iter_latents(net, batches, depth):
        if memory is None:
            memory = ReplayMemory(kind_for_depth(depth), z.shape[1], stored_steps, mode, units=net.depth_size(depth),
                                  float_dtype=float_dtype, depth=depth)
        memory.add(z, y, compressed=False)
    if memory is None:
        raise ValueError("no batches given")
    return memory


def build_raw_memory(inputs: Sequence, labels, stored_steps: int, mode: str = "or",
                     memory: ReplayMemory | None = None) -> ReplayMemory:
    """Compressed raw-input rehearsal memory (window sums of counts) from ``sccl.learn.training.Batch`` objects
    (``labels=None``; ``x`` a :class:`SparseInput` or dense tensor) or from dense (B, T, 700) tensors with
    ``labels`` (one label tensor per input tensor, or one tensor for all); ``memory``: extend this one."""
    inputs = list(inputs)
    if not inputs:
        raise ValueError("no inputs given")
    pairs = []
    if labels is None:
        pairs = [_xy(b) for b in inputs]
    else:
        if isinstance(labels, (torch.Tensor, np.ndarray)) and len(inputs) > 1:
            sizes = [len(x) for x in inputs]
            labels = torch.as_tensor(labels).reshape(-1)
            if len(labels) != sum(sizes):
                raise ValueError(f"{sum(sizes)} samples but {len(labels)} labels")
            labels = torch.split(labels, sizes)
        elif isinstance(labels, (torch.Tensor, np.ndarray)):
            labels = [labels]
        labels = list(labels)
        if len(labels) != len(inputs):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} label groups")
        pairs = list(zip(inputs, labels))
    for x, y in pairs:
        x = _as_3d(x, "x").to("cpu")
        if memory is None:
            memory = ReplayMemory("counts", x.shape[1], stored_steps, mode, units=x.shape[2])
        memory.add(x, y, compressed=False)
    return memory
