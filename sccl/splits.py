"""Splits: index arrays into the merged file, seeded, saved as .npz (never data, never pickles).

What a split holds depends on the scenario (the continual-learning setting, :mod:`sccl.scenarios`):
    sample_incremental  pretrain on every speaker but ``held_out``; the new task is that speaker.
    class_incremental   pretrain on every class but ``held_out``; the new task is that class.
    progressive         pretrain on classes 0-9 (English); classes 10-19 arrive one at a time.
    speakers            pretrain on a first group of speakers; the others arrive one at a time.

How test samples are chosen is the split kind (``--split``):
    paper     the merged file is split at random, stratified by label, a clean 1/5 of every group
              (old data, new data, each new class or speaker) to test: no sample is lost and none is in two
              sets (the original lost one batch per group and leaked test into train for small groups).
    official  train = samples of the official train file, test = those of the official test file.

Sets are named ``pretrain_train``, ``pretrain_test``, ``new_train``, ``new_test``; in the sequence scenarios the
new sets are per group: ``new_train_10``, ``new_test_10``, ... (a class or a speaker id).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sccl.data import NB_CLASSES, NB_SPEAKERS
from sccl.disk import atomic_path
from sccl.errors import ConfigError, DataError

SCENARIOS = ("sample_incremental", "class_incremental", "progressive", "speakers")
SPLITS = ("paper", "official")
TEST_FRACTION = 0.2
PROGRESSIVE_BASE = tuple(range(10))
PROGRESSIVE_NEW = tuple(range(10, 20))
DEFAULT_FIRST_SPEAKERS = tuple(range(6))
# the seeds of the index draws (codes kept from the first version, so that its splits stay identical)
_SCENARIO_CODE = {"sample_incremental": 1, "class_incremental": 2, "progressive": 3, "speakers": 4}
_SPLIT_CODE = {"paper": 1, "official": 2}
# split files written before the engine refactor named scenarios by what was held out
_LEGACY_SCENARIO = {"speaker": "sample_incremental", "class": "class_incremental", "classes": "progressive"}


@dataclass
class Split:
    scenario: str
    kind: str  # paper | official
    held_out: int | None
    seed: int
    sets: dict[str, np.ndarray]
    first_speakers: tuple[int, ...] | None = None  # the speakers scenario's first group

    def __getitem__(self, name: str) -> np.ndarray:
        return self.sets[name]

    @property
    def new_groups(self) -> tuple[int, ...]:
        """Sequence scenarios: the classes (progressive) or speakers that arrive one at a time, in order."""
        return tuple(int(k.rsplit("_", 1)[1]) for k in self.sets if k.startswith("new_train_"))

    def describe(self) -> str:
        return ", ".join(f"{k}: {len(v)}" for k, v in self.sets.items())

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        meta = json.dumps({"scenario": self.scenario, "split": self.kind, "held_out": self.held_out,
                           "seed": self.seed, "first_speakers": self.first_speakers})
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, _meta=np.array(meta), **self.sets)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Split":
        """The split saved at ``path``; a damaged file (truncated, not a zip, missing or wrong arrays) is one line."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["_meta"]))
                sets = {k: z[k] for k in z.files if k != "_meta"}
            bad = [k for k, v in sets.items() if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer) or
                   (v < 0).any()]
            if bad:
                raise ValueError(f"'{bad[0]}' is not a list of sample indices")
            first = meta.get("first_speakers")
            return cls(_LEGACY_SCENARIO.get(meta["scenario"], meta["scenario"]), meta.get("split", meta.get("protocol")),
                       meta["held_out"], meta["seed"], {k: v.astype(np.int64) for k, v in sets.items()},
                       tuple(first) if first is not None else None)
        except Exception as exc:  # truncated, not a zip, missing keys, garbage: numpy and zipfile raise many kinds
            raise DataError(f"{path}: damaged or not a split file ({type(exc).__name__}: {exc}); delete the run "
                            "folder or rerun with --force") from None


def _rng(seed: int, scenario: str, kind: str, held_out: int | None, group: int) -> np.random.Generator:
    key = [seed, _SCENARIO_CODE[scenario], _SPLIT_CODE[kind], -1 if held_out is None else held_out, group]
    return np.random.default_rng(np.random.SeedSequence([k + 2 for k in key]))  # SeedSequence wants >= 0


def stratified_test_split(
    indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator, test_fraction: float = TEST_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test), both shuffled. The test set holds round(test_fraction * n) samples in total, shared
    among labels in proportion (each label gets the floor or the ceiling of its share; the remainder goes to
    the largest fractional shares, ties broken at random), so even a group with one sample per label gets
    its fifth."""
    classes, counts = np.unique(labels[indices], return_counts=True)
    if len(indices) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    share = test_fraction * counts
    quota = np.floor(share).astype(np.int64)
    remainder = int(np.floor(test_fraction * len(indices) + 0.5)) - int(quota.sum())
    if remainder > 0:
        order = np.lexsort((rng.random(len(classes)), -(share - quota)))
        quota[order[:remainder]] += 1
    train, test = [], []
    for label, n_test in zip(classes, quota):
        members = rng.permutation(indices[labels[indices] == label])
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)).astype(np.int64), rng.permutation(np.concatenate(test)).astype(np.int64)


def _official_split(indices, source, rng) -> tuple[np.ndarray, np.ndarray]:
    return rng.permutation(indices[source[indices] == 0]), rng.permutation(indices[source[indices] == 1])


def make_split(
    scenario: str, held_out: int | None, labels: np.ndarray, speakers: np.ndarray, source: np.ndarray | None = None,
    kind: str = "paper", seed: int = 0, test_fraction: float = TEST_FRACTION,
    first_speakers: tuple[int, ...] | None = None,
) -> Split:
    """The split of one scenario (see the module docstring); ``held_out`` is the new speaker or class of the
    two-task scenarios, ``first_speakers`` the first group of the speakers scenario (default 0-5)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario '{scenario}' (choose from {', '.join(SCENARIOS)})")
    if kind not in SPLITS:
        raise ConfigError(f"unknown split '{kind}' (choose from {', '.join(SPLITS)})")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    everything = np.arange(len(labels))
    if scenario == "sample_incremental":
        if held_out is None or not 0 <= held_out < NB_SPEAKERS:
            raise ConfigError(f"speaker must be in 0..{NB_SPEAKERS - 1}, got {held_out}")
        if not (speakers == held_out).any():
            raise ConfigError(f"speaker {held_out} has no samples in this dataset")
        groups = {"pretrain": everything[speakers != held_out], "new": everything[speakers == held_out]}
    elif scenario == "class_incremental":
        if held_out is None or not 0 <= held_out < NB_CLASSES:
            raise ConfigError(f"class must be in 0..{NB_CLASSES - 1}, got {held_out}")
        if not (labels == held_out).any():
            raise ConfigError(f"class {held_out} has no samples in this dataset")
        groups = {"pretrain": everything[labels != held_out], "new": everything[labels == held_out]}
    elif scenario == "progressive":
        held_out = None
        groups = {"pretrain": everything[np.isin(labels, PROGRESSIVE_BASE)]}
        for c in PROGRESSIVE_NEW:
            if not (labels == c).any():
                raise ConfigError(f"class {c} has no samples in this dataset (the progressive scenario needs 10-19)")
            groups[f"new_{c}"] = everything[labels == c]
    else:
        held_out = None
        first_speakers = tuple(sorted(set(DEFAULT_FIRST_SPEAKERS if first_speakers is None else first_speakers)))
        present = sorted(set(np.unique(speakers).tolist()))
        missing = [s for s in first_speakers if s not in present]
        if missing:
            raise ConfigError(f"first speaker group: speaker {missing[0]} has no samples in this dataset")
        later = [s for s in present if s not in first_speakers]
        if not first_speakers or not later:
            raise ConfigError(f"the speakers scenario needs a non-empty first group and at least one later speaker "
                              f"(first group {list(first_speakers)}, speakers in the data {present})")
        groups = {"pretrain": everything[np.isin(speakers, first_speakers)]}
        for spk in later:
            groups[f"new_{spk}"] = everything[speakers == spk]
    if kind == "official" and source is None:
        raise ConfigError("the official split needs a merged file with 'extra/source' (re-run the merge)")
    sets = {}
    for g, (name, members) in enumerate(groups.items()):
        rng = _rng(seed, scenario, kind, held_out, g)
        if kind == "paper":
            train, test = stratified_test_split(members, labels, rng, test_fraction)
        else:
            train, test = _official_split(members, np.asarray(source), rng)
        for part, idx in (("train", train), ("test", test)):
            if len(idx) == 0:
                raise ConfigError(
                    f"the {kind} split leaves no {part} samples for '{name}'"
                    + (" (speakers 4 and 5 are only in the official test file; use --split paper)"
                       if kind == "official" and scenario in ("sample_incremental", "speakers") else "")
                )
        prefix, suffix = (name, "") if name == "pretrain" else ("new", name[3:])
        sets[f"{prefix}_train{suffix}"] = train
        sets[f"{prefix}_test{suffix}"] = test
    return Split(scenario, kind, held_out, seed, sets,
                 first_speakers if scenario == "speakers" else None)


def make_batches(indices: np.ndarray, batch_size: int = 64, drop_last: bool = True) -> list[np.ndarray]:
    """Consecutive batches of ``indices``; the last incomplete one is dropped (as the original) unless asked."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    n_full = len(indices) // batch_size
    batches = [indices[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
    if not drop_last and len(indices) % batch_size:
        batches.append(indices[n_full * batch_size :])
    return batches


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
