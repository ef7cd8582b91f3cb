"""The one train / evaluate loop every experiment uses, and the step from a merged file to model inputs.

A :class:`Batch` is whatever the network takes (raw spike counts, or stored activity at a latent depth
with ``from_depth``) plus its labels; it is built once and reused every epoch, as the original did.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from sccl.data import MAX_TIME, NB_CLASSES, NB_SPEAKERS, NB_STEPS, SOURCE_KEY, BinnedSpikes, file_sha256, load_binned
from sccl.errors import ConfigError, DataError, TrainingDiverged
from sccl.model import SparseInput


@dataclass
class Dataset:
    """The merged file, validated and binned: what every experiment reads."""

    path: Path
    labels: np.ndarray
    speakers: np.ndarray
    source: np.ndarray | None
    binned: BinnedSpikes
    description: str

    @property
    def synthetic(self) -> bool:
        return "synthetic" in self.description

    def sha256(self) -> str:
        return file_sha256(self.path)


def _read_sample_info(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    with h5py.File(path, "r") as f:
        labels = np.asarray(f["labels"][:], dtype=np.int64)
        speakers = np.asarray(f["extra/speaker"][:], dtype=np.int64)
        source = np.asarray(f[SOURCE_KEY][:], dtype=np.int64) if SOURCE_KEY in f else None
        description = str(f.attrs.get("description", ""))
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= NB_CLASSES or speakers.max(initial=0) >= NB_SPEAKERS:
        raise DataError(f"{path}: labels or speakers out of range")
    return labels, speakers, source, description


def load_dataset(path: str | os.PathLike, nb_steps: int = NB_STEPS, max_time: float = MAX_TIME) -> Dataset:
    """Bin (or reuse the cached bins of) the file at ``path``; the file is fully validated when binned."""
    path = Path(path)
    binned = load_binned(path, nb_steps=nb_steps, max_time=max_time)
    labels, speakers, source, description = _read_sample_info(path)
    if len(labels) != len(binned):
        raise DataError(f"{path}: {len(labels)} labels but {len(binned)} binned samples (stale cache?)")
    return Dataset(path, labels, speakers, source, binned, description)


@dataclass
class Batch:
    x: torch.Tensor | SparseInput  # raw counts (from_depth None) or activity at depth from_depth
    y: torch.Tensor
    from_depth: int | None = None
    time_major: bool = False  # x is (T, B, H) activity (cached frozen prefix): no transpose per step
    time_factor: int = 1  # one step of x stands for this many network steps (fewer-step replay)
    threshold: float = 1.0  # firing threshold of the layers that run on x

    def __len__(self) -> int:
        return len(self.y)

    def timing(self) -> dict:
        """The network's keyword arguments for this batch's steps and threshold ({} for the defaults)."""
        if self.time_factor == 1 and self.threshold == 1.0:
            return {}
        return {"time_factor": self.time_factor, "threshold": self.threshold}


def logits_of(net, batch: Batch) -> torch.Tensor:
    if batch.from_depth is None:
        return net(batch.x, **batch.timing())
    if batch.time_major:
        return net.forward_time_major(batch.x, batch.from_depth, **batch.timing())
    return net(batch.x, from_depth=batch.from_depth, **batch.timing())


def raw_batches(ds: Dataset, index_batches: list[np.ndarray], device: torch.device) -> list[Batch]:
    """Sparse model inputs of the given sample batches, built once."""
    out = []
    for idx in index_batches:
        b, t, u, c = ds.binned.coo(idx)
        x = SparseInput.from_coo(b, t, u, c, batch_size=len(idx), nb_steps=ds.binned.nb_steps, device=device)
        out.append(Batch(x, torch.as_tensor(ds.labels[idx], device=device)))
    return out


MAX_SEED = 2**31 - 1  # what every seeded generator here takes


def check_training_settings(epochs: int, lr: float, batch_size: int, seed: int, min_epochs: int = 0) -> None:
    """One clear error for a setting no run can train with (checked before anything is written)."""
    if epochs < min_epochs:
        raise ConfigError(f"--epochs must be >= {min_epochs}, got {epochs}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"--lr must be a positive number, got {lr}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")


def nll_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(F.log_softmax(logits, dim=1), y)


def train_epoch(net, optimizer, batches: list[Batch], progress=None, extra_loss=None,
                edit_gradients=None, after_step=None) -> tuple[float, float]:
    """One optimiser step per batch, in the given order. Returns (mean loss, running accuracy).

    A strategy's hooks: ``extra_loss(batch, logits)``, a term added to the NLL (or None); ``edit_gradients()``,
    called between backward and the step; ``after_step()``, called after the step. The loss reported is the
    whole objective."""
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    for batch in batches:
        logits = logits_of(net, batch)
        loss = nll_loss(logits, batch.y)
        if extra_loss is not None:
            extra = extra_loss(batch, logits)
            if extra is not None:
                loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if edit_gradients is not None:
            edit_gradients()
        optimizer.step()
        if after_step is not None:
            after_step()
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"the training loss became {value} (diverged); lower --lr and run again")
        total_loss += value * len(batch)
        correct += int((logits.argmax(1) == batch.y).sum())
        seen += len(batch)
        if progress is not None:
            progress.update(1)
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def predict(net, batches: list[Batch]) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) over all batches."""
    net.eval()
    preds, labels = [], []
    for batch in batches:
        logits = logits_of(net, batch)
        preds.append(logits.argmax(1).cpu().numpy())
        labels.append(batch.y.cpu().numpy())
    if not preds:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(preds), np.concatenate(labels)


def accuracy(net, batches: list[Batch]) -> float:
    """Sample-weighted accuracy (NaN for an empty set)."""
    p, y = predict(net, batches)
    return float((p == y).mean()) if len(y) else float("nan")
