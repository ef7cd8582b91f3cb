"""Splits: index arrays into the merged file, seeded, saved as .npz (never data, never pickles).

What a split holds depends on the scenario (the continual-learning setting, :mod:`sccl.cl.scenarios`):
    sample_incremental  pretrain on every speaker but ``held_out``; the new task is that speaker.
    class_incremental   pretrain on every class but ``held_out``; the new task is that class.
    progressive         pretrain on a first group of classes (default: the first half, SHD's English 0-9); the
                        others arrive k at a time (default one: SHD's 10, 11, ..., 19).
    speakers            pretrain on a first group of speakers (default: the first half); the others arrive one at
                        a time.

How test samples are chosen is the split kind (``--split``):
    paper     the merged file is split at random, stratified by label, a clean 1/5 of every group
              (old data, new data, each new class or speaker) to test: no sample is lost and none is in two
              sets (the original lost one batch per group and leaked test into train for small groups).
    official  train = samples of the official train file, test = those of the official test file; when the data
              has a validation file (SSC), its samples are the validation sets.
    paper_valid, official_valid
              the same train and test sets as ``paper`` / ``official``, with a validation set carved from each
              group's training samples (a stratified ``VALID_FRACTION``, so from the training speakers): for data
              without a validation file (SHD), so that no epoch or setting is chosen on the test set.

Sets are named ``pretrain_train``, ``pretrain_test``, ``new_train``, ``new_test`` (and ``*_valid`` with a
validation set); in the sequence scenarios the new sets are per group: ``new_train_10``, ``new_test_10``, ... (a
speaker id, or the first class of a step).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sccl.core.disk import atomic_path
from sccl.core.errors import ConfigError, DataError
from sccl.data.datasets import SOURCE_CODES
from sccl.data.shape import check_first_group, class_steps, first_half


SCENARIOS = ("sample_incremental", "class_incremental", "progressive", "speakers")
SPLITS = ("paper", "official", "paper_valid", "official_valid")
SPLIT_HELP = ("paper: the merged data, a random stratified 1/5 test set; official: the dataset's own files (and "
              "its validation file, SSC); paper_valid / official_valid: the same with a validation set carved from "
              "the training samples, on which the best epoch is chosen (default: %(default)s)")
TEST_FRACTION = 0.2
VALID_FRACTION = 0.1  # of each group's training samples, in the *_valid splits
# the seeds of the index draws (codes kept from the first version, so that its splits stay identical; a *_valid
# split draws the same train and test sets as its base, then carves the validation set from the train set)
_SCENARIO_CODE = {"sample_incremental": 1, "class_incremental": 2, "progressive": 3, "speakers": 4}
_SPLIT_CODE = {"paper": 1, "official": 2, "paper_valid": 1, "official_valid": 2}
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
    class_steps: tuple[tuple[int, ...], ...] | None = None  # progressive: the classes of each new task
    first_classes: tuple[int, ...] | None = None  # progressive: the pretraining's classes

    def __getitem__(self, name: str) -> np.ndarray:
        return self.sets[name]

    @property
    def new_groups(self) -> tuple[int, ...]:
        """Sequence scenarios: the classes (progressive) or speakers that arrive one at a time, in order."""
        return tuple(int(k.rsplit("_", 1)[1]) for k in self.sets if k.startswith("new_train_"))

    @property
    def has_validation(self) -> bool:
        return "pretrain_valid" in self.sets

    def describe(self) -> str:
        return ", ".join(f"{k}: {len(v)}" for k, v in self.sets.items())

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        meta = {"scenario": self.scenario, "split": self.kind, "held_out": self.held_out, "seed": self.seed,
                "first_speakers": self.first_speakers}
        if self.class_steps is not None:
            meta.update(class_steps=self.class_steps, first_classes=self.first_classes)
        meta = json.dumps(meta)
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
            first, steps, first_classes = meta.get("first_speakers"), meta.get("class_steps"), meta.get("first_classes")
            return cls(_LEGACY_SCENARIO.get(meta["scenario"], meta["scenario"]), meta.get("split", meta.get("protocol")),
                       meta["held_out"], meta["seed"], {k: v.astype(np.int64) for k, v in sets.items()},
                       tuple(first) if first is not None else None,
                       tuple(tuple(int(c) for c in step) for step in steps) if steps is not None else None,
                       tuple(int(c) for c in first_classes) if first_classes is not None else None)
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
    return (rng.permutation(indices[source[indices] == SOURCE_CODES["train"]]),
            rng.permutation(indices[source[indices] == SOURCE_CODES["test"]]))


def _validation_part(kind: str, members, train, labels, source, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """(train, validation or None): the validation file's samples (official split of data that has one), or a
    stratified ``VALID_FRACTION`` carved from ``train`` (the *_valid splits)."""
    if kind.endswith("_valid"):
        return stratified_test_split(train, labels, rng, VALID_FRACTION)
    if kind == "official" and source is not None and (source == SOURCE_CODES["valid"]).any():
        return train, rng.permutation(members[source[members] == SOURCE_CODES["valid"]])
    return train, None


def make_split(
    scenario: str, held_out: int | None, labels: np.ndarray, speakers: np.ndarray, source: np.ndarray | None = None,
    kind: str = "paper", seed: int = 0, test_fraction: float = TEST_FRACTION,
    first_speakers: tuple[int, ...] | None = None, first_classes: tuple[int, ...] | None = None,
    classes_per_step: int = 1, nb_classes: int | None = None, nb_speakers: int | None = None,
) -> Split:
    """The split of one scenario (see the module docstring); ``held_out`` is the new speaker or class of the
    two-task scenarios, ``first_speakers`` / ``first_classes`` the first group of the speakers / progressive
    scenario (default: the first half of the data's), ``nb_classes`` / ``nb_speakers`` the file's class / speaker
    count (default: from the labels / speakers)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario '{scenario}' (choose from {', '.join(SCENARIOS)})")
    if kind not in SPLITS:
        raise ConfigError(f"unknown split '{kind}' (choose from {', '.join(SPLITS)})")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    everything = np.arange(len(labels))
    classes = tuple(int(c) for c in np.unique(labels))
    present = tuple(int(s) for s in np.unique(speakers))
    nb_classes = int(np.max(labels, initial=-1)) + 1 if nb_classes is None else nb_classes
    steps = first = None
    if scenario == "sample_incremental":
        top = int(np.max(speakers, initial=-1)) + 1 if nb_speakers is None else max(nb_speakers, len(present))
        _check_held_out("speaker", held_out, top, present)
        if len(present) < 2:
            raise ConfigError(f"the sample-incremental scenario needs at least 2 speakers; the data has "
                              f"{len(present)}")
        groups = {"pretrain": everything[speakers != held_out], "new": everything[speakers == held_out]}
    elif scenario == "class_incremental":
        _check_held_out("class", held_out, nb_classes, classes)
        if len(classes) < 3:
            raise ConfigError(f"the class-incremental scenario needs at least 3 classes (2 to pretrain on, 1 new); "
                              f"the data has {len(classes)}")
        groups = {"pretrain": everything[labels != held_out], "new": everything[labels == held_out]}
    elif scenario == "progressive":
        held_out = None
        first = tuple(sorted(set(first_half(classes) if first_classes is None else first_classes)))
        check_first_group("class", first, classes, minimum=2)
        steps = tuple(class_steps(classes, first, classes_per_step))
        groups = {"pretrain": everything[np.isin(labels, first)]}
        for step in steps:
            groups[f"new_{step[0]}"] = everything[np.isin(labels, step)]
    else:
        held_out = None
        first_speakers = tuple(sorted(set(first_half(present) if first_speakers is None
                                          else first_speakers)))
        check_first_group("speaker", first_speakers, present, minimum=1)
        groups = {"pretrain": everything[np.isin(speakers, first_speakers)]}
        for spk in present:
            if spk not in first_speakers:
                groups[f"new_{spk}"] = everything[speakers == spk]
    if kind.startswith("official") and source is None:
        raise ConfigError("the official split needs a merged file with 'extra/source' (re-run the merge)")
    source = None if source is None else np.asarray(source)
    if kind == "official_valid" and (source == SOURCE_CODES["valid"]).any():
        raise ConfigError("this data has its own validation file: use --split official, which selects on it")
    sets = {}
    for g, (name, members) in enumerate(groups.items()):
        rng = _rng(seed, scenario, kind, held_out, g)
        if kind.startswith("paper"):
            train, test = stratified_test_split(members, labels, rng, test_fraction)
        else:
            train, test = _official_split(members, source, rng)
        train, valid = _validation_part(kind, members, train, labels, source, rng)
        for part, idx in (("train", train), ("test", test)):
            if len(idx) == 0:
                raise ConfigError(
                    f"the {kind} split leaves no {part} samples for '{name}'"
                    + (" (speakers 4 and 5 are only in the official test file; use --split paper)"
                       if kind.startswith("official") and scenario in ("sample_incremental", "speakers") else "")
                )
        prefix, suffix = (name, "") if name == "pretrain" else ("new", name[3:])
        sets[f"{prefix}_train{suffix}"] = train
        sets[f"{prefix}_test{suffix}"] = test
        if valid is not None:
            sets[f"{prefix}_valid{suffix}"] = valid
    return Split(scenario, kind, held_out, seed, sets,
                 first_speakers if scenario == "speakers" else None, steps, first)


def _check_held_out(what: str, held_out: int | None, top: int, present: tuple[int, ...]) -> None:
    if held_out is None or not 0 <= held_out < top:
        raise ConfigError(f"{what} must be in 0..{top - 1}, got {held_out}")
    if held_out not in present:
        raise ConfigError(f"{what} {held_out} has no samples in this dataset")


def make_batches(indices: np.ndarray, batch_size: int = 64, drop_last: bool = True) -> list[np.ndarray]:
    """Consecutive batches of ``indices``; the last incomplete one is dropped (as the original) unless asked."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    n_full = len(indices) // batch_size
    batches = [indices[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
    if not drop_last and len(indices) % batch_size:
        batches.append(indices[n_full * batch_size :])
    return batches
