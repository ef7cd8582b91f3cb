"""Protocol splits: index arrays into the merged file, seeded, saved as .npz (never data, never pickles).

Scenarios:
    speaker   sample-incremental: pretrain on every speaker but ``held_out``; the new task is that speaker.
    class     class-incremental: pretrain on every class but ``held_out``; the new task is that class.
    classes   progressive: pretrain on classes 0-9 (English); classes 10-19 arrive one at a time.

Protocols:
    paper     the merged file is split at random, stratified by label, a clean 1/5 of every group
              (old data, new data, each new class) to test: no sample is lost and none is in two sets
              (the original lost one batch per group and leaked test into train for small groups).
    official  train = samples of the official train file, test = those of the official test file.

Sets are named ``pretrain_train``, ``pretrain_test``, ``new_train``, ``new_test``; in the progressive
scenario the new sets are per class: ``new_train_10``, ``new_test_10``, ..., ``new_train_19``, ``new_test_19``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sccl.data import NB_CLASSES, NB_SPEAKERS
from sccl.errors import ConfigError, DataError

SCENARIOS = ("speaker", "class", "classes")
PROTOCOLS = ("paper", "official")
TEST_FRACTION = 0.2
PROGRESSIVE_BASE = tuple(range(10))
PROGRESSIVE_NEW = tuple(range(10, 20))
_SCENARIO_CODE = {"speaker": 1, "class": 2, "classes": 3}
_PROTOCOL_CODE = {"paper": 1, "official": 2}


@dataclass
class Split:
    scenario: str
    protocol: str
    held_out: int | None
    seed: int
    sets: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.sets[name]

    @property
    def new_classes(self) -> tuple[int, ...]:
        """Progressive scenario: the classes that arrive one at a time, in order."""
        return tuple(int(k.rsplit("_", 1)[1]) for k in self.sets if k.startswith("new_train_"))

    def describe(self) -> str:
        return ", ".join(f"{k}: {len(v)}" for k, v in self.sets.items())

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        meta = json.dumps(
            {"scenario": self.scenario, "protocol": self.protocol, "held_out": self.held_out, "seed": self.seed}
        )
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez(fh, _meta=np.array(meta), **self.sets)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Split":
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["_meta"]))
                sets = {k: z[k].astype(np.int64) for k in z.files if k != "_meta"}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a readable split file ({exc})") from None
        return cls(meta["scenario"], meta["protocol"], meta["held_out"], meta["seed"], sets)


def _rng(seed: int, scenario: str, protocol: str, held_out: int | None, group: int) -> np.random.Generator:
    key = [seed, _SCENARIO_CODE[scenario], _PROTOCOL_CODE[protocol], -1 if held_out is None else held_out, group]
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
    protocol: str = "paper", seed: int = 0, test_fraction: float = TEST_FRACTION,
) -> Split:
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario '{scenario}' (choose from {', '.join(SCENARIOS)})")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{protocol}' (choose from {', '.join(PROTOCOLS)})")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    everything = np.arange(len(labels))
    if scenario == "speaker":
        if held_out is None or not 0 <= held_out < NB_SPEAKERS:
            raise ConfigError(f"speaker must be in 0..{NB_SPEAKERS - 1}, got {held_out}")
        if not (speakers == held_out).any():
            raise ConfigError(f"speaker {held_out} has no samples in this dataset")
        groups = {"pretrain": everything[speakers != held_out], "new": everything[speakers == held_out]}
    elif scenario == "class":
        if held_out is None or not 0 <= held_out < NB_CLASSES:
            raise ConfigError(f"class must be in 0..{NB_CLASSES - 1}, got {held_out}")
        if not (labels == held_out).any():
            raise ConfigError(f"class {held_out} has no samples in this dataset")
        groups = {"pretrain": everything[labels != held_out], "new": everything[labels == held_out]}
    else:
        held_out = None
        groups = {"pretrain": everything[np.isin(labels, PROGRESSIVE_BASE)]}
        for c in PROGRESSIVE_NEW:
            if not (labels == c).any():
                raise ConfigError(f"class {c} has no samples in this dataset (the progressive protocol needs 10-19)")
            groups[f"new_{c}"] = everything[labels == c]
    if protocol == "official" and source is None:
        raise ConfigError("the official protocol needs a merged file with 'extra/source' (re-run the merge)")
    sets = {}
    for g, (name, members) in enumerate(groups.items()):
        rng = _rng(seed, scenario, protocol, held_out, g)
        if protocol == "paper":
            train, test = stratified_test_split(members, labels, rng, test_fraction)
        else:
            train, test = _official_split(members, np.asarray(source), rng)
        for part, idx in (("train", train), ("test", test)):
            if len(idx) == 0:
                raise ConfigError(
                    f"the {protocol} protocol leaves no {part} samples for '{name}'"
                    + (" (speakers 4 and 5 are only in the official test file; use --protocol paper)"
                       if protocol == "official" and scenario == "speaker" else "")
                )
        prefix, suffix = (name, "") if name == "pretrain" else ("new", name[3:])
        sets[f"{prefix}_train{suffix}"] = train
        sets[f"{prefix}_test{suffix}"] = test
    return Split(scenario, protocol, held_out, seed, sets)


def make_batches(indices: np.ndarray, batch_size: int = 64, drop_last: bool = True) -> list[np.ndarray]:
    """Consecutive batches of ``indices``; the last incomplete one is dropped (as the original) unless asked."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    n_full = len(indices) // batch_size
    batches = [indices[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
    if not drop_last and len(indices) % batch_size:
        batches.append(indices[n_full * batch_size :])
    return batches
