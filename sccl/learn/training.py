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

from sccl.core.defaults import SHD
from sccl.core.errors import ConfigError, DataError, TrainingDiverged
from sccl.data.hdf5 import (MAX_TIME, NB_STEPS, SOURCE_KEY, UNITS_ATTR, BinnedSpikes, file_sha256, load_binned,
                            load_shd_tables)
from sccl.data.provenance import SYNTHETIC_LABEL, data_label
from sccl.data.shape import DataShape
from sccl.net.model import SparseInput


@dataclass
class Dataset:
    """The merged file, validated and binned: what every experiment reads."""

    path: Path
    labels: np.ndarray
    speakers: np.ndarray
    source: np.ndarray | None
    binned: BinnedSpikes
    description: str
    shape: DataShape | None = None  # classes, speakers, channels (set by load_dataset)
    label: str = ""  # what the data is (sccl.data.provenance): "SHD", synthetic, or "SHD-layout data: <name>"

    @property
    def synthetic(self) -> bool:
        return self.label == SYNTHETIC_LABEL

    def record(self) -> dict:
        """What run records say about the data."""
        return {"path": str(self.path), "sha256": self.sha256(), "synthetic": self.synthetic, "label": self.label,
                "nb_classes": self.shape.nb_classes, "nb_units": self.shape.nb_units,
                "speakers": list(self.shape.speakers), "nb_steps": self.binned.nb_steps,
                "max_time": self.binned.max_time, "dropped_spikes": self.binned.dropped}

    def sha256(self) -> str:
        return file_sha256(self.path)


def _read_sample_info(path: Path):
    """(labels, speakers, source, keys, attributes, length of the per-speaker tables): what the bins do not hold."""
    try:
        with h5py.File(path, "r") as f:
            labels = np.asarray(f["labels"][:], dtype=np.int64)
            speakers = np.asarray(f["extra/speaker"][:], dtype=np.int64)
            source = np.asarray(f[SOURCE_KEY][:], dtype=np.int64) if SOURCE_KEY in f else None
            keys = np.asarray(f["extra/keys"][:]) if "extra/keys" in f else None
            attrs = dict(f.attrs)
            tables = f["extra/meta_info"] if "extra/meta_info" in f else {}
            speaker_table = max((len(tables[k]) for k in tables if tables[k].ndim == 1), default=0)
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: could not read labels and speakers ({exc})") from None
    if labels.min(initial=0) < 0 or speakers.min(initial=0) < 0 or (keys is not None and len(keys) and
                                                                    labels.max(initial=0) >= len(keys)):
        raise DataError(f"{path}: labels or speakers out of range")
    return labels, speakers, source, keys, attrs, speaker_table


AUTO = "auto"


def auto_max_time(last_spike: float) -> float:
    """The smallest whole millisecond above the last spike: a window that keeps every spike."""
    return (math.floor(last_spike * 1000) + 1) / 1000


def parse_max_time(text: str | float | None) -> float | str | None:
    """``--max-time``: seconds, ``auto`` (from the data) or None (the default)."""
    if text is None or text == AUTO:
        return text
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--max-time takes seconds or 'auto', got '{text}'") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--max-time must be positive, got {text}")
    return value


def load_dataset(path: str | os.PathLike, nb_steps: int = NB_STEPS, max_time: float | str | None = MAX_TIME) -> Dataset:
    """Bin (or reuse the cached bins of) the file at ``path``; the file is fully validated when binned.
    ``max_time``: the binning window in seconds, or ``"auto"`` (just past the file's last spike)."""
    path = Path(path)
    if max_time is None:
        max_time = MAX_TIME
    if max_time == AUTO:
        max_time = auto_max_time(load_shd_tables(path).last_spike)  # validates the file, spikes read in chunks
    binned = load_binned(path, None, nb_steps=nb_steps, max_time=max_time, nb_units=_declared_units(path))
    labels, speakers, source, keys, attrs, speaker_table = _read_sample_info(path)
    if len(labels) != len(binned):
        raise DataError(f"{path}: {len(labels)} labels but {len(binned)} binned samples (stale cache?)")
    shape = DataShape.of(labels, speakers, keys, binned.nb_units, speaker_table)
    return Dataset(path, labels, speakers, source, binned, str(attrs.get("description", "")), shape,
                   data_label(attrs, path))


def data_shape(path: str | os.PathLike) -> DataShape:
    """The data file's :class:`DataShape` from its tables, without binning its spikes."""
    labels, speakers, _, keys, _, speaker_table = _read_sample_info(Path(path))
    return DataShape.of(labels, speakers, keys, _declared_units(Path(path)) or SHD["nb_units"], speaker_table)


def _declared_units(path: Path) -> int | None:
    """The file's ``nb_units`` attribute (None when absent or unreadable: binning then reports the problem)."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(UNITS_ATTR)
        return None if value is None else int(value)
    except (OSError, KeyError, RuntimeError, TypeError, ValueError):
        return None


@dataclass
class Batch:
    x: torch.Tensor | SparseInput  # raw counts (from_depth None) or activity at depth from_depth
    y: torch.Tensor
    from_depth: int | None = None
    time_major: bool = False  # x is (T, B, H) activity (cached frozen prefix): no transpose per step
    time_factor: int = 1  # one step of x stands for this many network steps (fewer-step replay)
    threshold: float = 1.0  # firing threshold of the layers that run on x
    readout_gain: float = 1.0  # factor on the readout's input current (fewer-step replay)

    def __len__(self) -> int:
        return len(self.y)

    def timing(self) -> dict:
        """The network's keyword arguments for this batch's steps, threshold and readout gain ({} for the
        defaults)."""
        if self.time_factor == 1 and self.threshold == 1.0 and self.readout_gain == 1.0:
            return {}
        return {"time_factor": self.time_factor, "threshold": self.threshold, "readout_gain": self.readout_gain}


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
        x = SparseInput.from_coo(b, t, u, c, batch_size=len(idx), nb_steps=ds.binned.nb_steps,
                                 nb_inputs=ds.binned.nb_units, device=device)
        out.append(Batch(x, torch.as_tensor(ds.labels[idx], device=device)))
    return out


#: input batches held in memory at most (bytes); larger sets (SSC's training file) are built batch by batch, each
#: time they are used: the same batches, a little slower (SCCL_BATCH_MEMORY_MB overrides it)
BATCH_MEMORY_BYTES = int(float(os.environ.get("SCCL_BATCH_MEMORY_MB", 2048)) * 2**20)
SPARSE_ENTRY_BYTES = 28  # bytes per entry of a built batch (its tensors), measured by benchmarks/bench_ssc_scale.py


class LazyBatches:
    """Input batches built when iterated (every time), never all held: a sequence as :func:`raw_batches`'s list."""

    def __init__(self, ds: "Dataset", index_batches: list[np.ndarray], device):
        self.ds, self.index_batches, self.device = ds, index_batches, device

    def __len__(self) -> int:
        return len(self.index_batches)

    def __iter__(self):
        for idx in self.index_batches:
            yield raw_batches(self.ds, [idx], self.device)[0]


def input_batches(ds: "Dataset", index_batches: list[np.ndarray], device, budget: int | None = None):
    """The batches built once (a list) when their estimated size fits ``budget`` (default
    :data:`BATCH_MEMORY_BYTES`), else a :class:`LazyBatches`."""
    budget = BATCH_MEMORY_BYTES if budget is None else budget
    entries = np.diff(ds.binned.offsets)
    estimate = SPARSE_ENTRY_BYTES * sum(int(entries[idx].sum()) for idx in index_batches)
    return raw_batches(ds, index_batches, device) if estimate <= budget else LazyBatches(ds, index_batches, device)


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
