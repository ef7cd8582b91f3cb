"""The shape of an SHD-layout file, read once with its labels: classes (and their names), speakers, channels.

Nothing else in sccl assumes SHD's 20 classes, 12 speakers or 700 channels: scenarios, sweeps, the network's
input and output sizes, tables and figures take them from here. The defaults of the sequence scenarios are the
first half of the file's classes (progressive: SHD's 0-9) and of its speakers (speakers: SHD's 0-5).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import h5py
import numpy as np

from sccl.core.errors import ConfigError, DataError


@dataclass(frozen=True)
class DataShape:
    nb_classes: int  # output size: len(extra/keys) when the file has them, else the highest label + 1
    class_names: tuple[str, ...]
    classes: tuple[int, ...]  # classes with samples
    speakers: tuple[int, ...]  # speakers with samples
    nb_units: int  # input size (sccl.data.hdf5.channel_count)
    nb_speakers: int  # speaker ids 0..nb_speakers-1: the per-speaker tables' length (extra/meta_info), else max + 1

    @classmethod
    def of(cls, labels: np.ndarray, speakers: np.ndarray, keys, nb_units: int,
           speaker_table: int = 0) -> "DataShape":
        nb = len(keys) if keys is not None and len(keys) else int(np.max(labels, initial=-1)) + 1
        names = tuple(k.decode(errors="replace") if isinstance(k, bytes) else str(k) for k in keys) \
            if keys is not None and len(keys) else tuple(f"class {i}" for i in range(nb))
        return cls(nb, names, tuple(int(c) for c in np.unique(labels)), tuple(int(s) for s in np.unique(speakers)),
                   int(nb_units), max(int(speaker_table), int(np.max(speakers, initial=-1)) + 1))

    @property
    def default_first_classes(self) -> tuple[int, ...]:
        return first_half(self.classes)

    @property
    def default_first_speakers(self) -> tuple[int, ...]:
        return first_half(self.speakers)

    def describe(self) -> str:
        return (f"{self.nb_classes} classes, {len(self.speakers)} speakers ({format_ids(self.speakers)}), "
                f"{self.nb_units} channels")


def first_half(ids) -> tuple[int, ...]:
    """The default first group of a sequence scenario: the first half of the ids present (SHD: classes 0-9,
    speakers 0-5)."""
    ids = tuple(ids)
    return ids[: len(ids) // 2]


def class_steps(classes, first: tuple[int, ...], per_step: int) -> list[tuple[int, ...]]:
    """The progressive scenario's new tasks: the classes not in ``first``, ``per_step`` at a time, in order."""
    if per_step < 1:
        raise ConfigError(f"--classes-per-step must be >= 1, got {per_step}")
    rest = [c for c in sorted(classes) if c not in set(first)]
    return [tuple(rest[i:i + per_step]) for i in range(0, len(rest), per_step)]


def check_first_group(what: str, first: tuple[int, ...], present: tuple[int, ...], minimum: int) -> None:
    """One line when a sequence scenario's first group is unusable on this file."""
    missing = [g for g in first if g not in present]
    if missing:
        raise ConfigError(f"first {what} group: {what} {missing[0]} has no samples in this dataset "
                          f"(its {what}s: {format_ids(present)})")
    later = [g for g in present if g not in first]
    if len(first) < minimum or not later:
        raise ConfigError(f"the {'progressive' if what == 'class' else 'speakers'} scenario needs a first group of at "
                          f"least {minimum} {what}{'es' if what == 'class' else 's'} and at least one later one "
                          f"(first group {format_ids(first) or 'empty'}; the data has {what}"
                          f"{'es' if what == 'class' else 's'} {format_ids(present) or 'none'})")


def format_ids(ids) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    ids, parts, i = sorted(ids), [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def file_ids(path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(speakers, classes) with samples in the file at ``path`` (read once per process while it is unchanged)."""

    st = os.stat(path)
    return _file_ids(str(path), st.st_size, st.st_mtime_ns)


def default_groups(path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(first speakers, first classes) by default for the file at ``path``: the first half of each."""
    speakers, classes = file_ids(path)
    return first_half(speakers), first_half(classes)


@functools.lru_cache(maxsize=16)
def _file_ids(path: str, size: int, mtime_ns: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    try:
        with h5py.File(path, "r") as f:
            classes = tuple(int(c) for c in np.unique(f["labels"][:]))
            speakers = tuple(int(s) for s in np.unique(f["extra/speaker"][:]))
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: could not read labels and speakers ({exc})") from None
    return speakers, classes


def resolve_groups(first_speakers, first_classes, data) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sequence scenarios' first groups: the given ones, else the defaults of ``data`` (a
    :class:`DataShape` or a data file's path)."""
    if first_speakers is not None and first_classes is not None:
        return tuple(first_speakers), tuple(first_classes)
    speakers, classes = ((data.default_first_speakers, data.default_first_classes) if isinstance(data, DataShape)
                         else default_groups(data))
    return (tuple(first_speakers) if first_speakers is not None else speakers,
            tuple(first_classes) if first_classes is not None else classes)
