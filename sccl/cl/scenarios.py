"""Scenarios as task sequences.

A scenario is the list of tasks a model meets, the first being its pretraining:

    sample_incremental  [every speaker but S, speaker S]                 (new speaker; the paper's)
    class_incremental   [every class but C, class C]                     (new class; the paper's)
    progressive         [a first group of classes, then the others k at a time] (the paper's on SHD: classes 0-9,
                        then class 10, class 11, ..., class 19)
    speakers            [a first group of speakers, then each other speaker alone] (domain-incremental; ours)

Each task holds the index arrays of its training, test and (splits with one) validation samples (from the
pretraining run's split) and the classes whose readout column is new when the task starts. Accuracies are measured per task's test set: R[i][j]
is the accuracy on task j's test samples after training on task i (:mod:`sccl.cl.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sccl.core.defaults import SHD
from sccl.data.shape import format_ids
from sccl.data.splits import SCENARIOS, Split


#: scenarios whose new tasks bring new classes (a new readout column; replay memories chosen per class)
CLASS_SCENARIOS = ("class_incremental", "progressive")
#: two-task scenarios: the new task is one held-out speaker or class (given on the command line)
HELD_OUT_FLAG = {"sample_incremental": "--speaker", "class_incremental": "--removed-class"}
#: salts of the replay memories' seeded choice (kept from the first version, so that its memories stay identical)
MEMORY_SALT = {"sample_incremental": 7919, "class_incremental": 7919, "progressive": 4241, "speakers": 7919}


@dataclass(frozen=True)
class Task:
    name: str
    train: np.ndarray
    test: np.ndarray
    new_classes: tuple[int, ...] = ()  # classes first seen in this task (their readout column is re-drawn)
    valid: np.ndarray | None = None  # validation samples (splits with a validation set)


@dataclass
class Scenario:
    name: str
    tasks: list[Task]

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def has_validation(self) -> bool:
        return all(t.valid is not None for t in self.tasks)

    @property
    def brings_new_classes(self) -> bool:
        """A later task brings classes never trained before (class_incremental, progressive): FWT is undefined and
        the projection leaves the readout free there."""
        return any(t.new_classes for t in self.tasks[1:])

    @property
    def per_class_memory(self) -> bool:
        """Replay memories hold k batches per class (class scenarios) rather than k batches per task."""
        return self.name in CLASS_SCENARIOS

    @property
    def memory_salt(self) -> int:
        return MEMORY_SALT[self.name]

    def readout_seed(self, seed: int, column: int) -> int:
        """Seed of a re-drawn readout column: the run's seed (class_incremental) or seed + class (progressive),
        as the first version drew them."""
        return seed + column if self.name == "progressive" else seed


def from_split(split: Split) -> Scenario:
    """The scenario whose tasks are the given pretraining run's split."""
    if split.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {split.scenario!r}")
    def task(name: str, group: str, new_classes=()) -> Task:
        prefix, suffix = ("pretrain", "") if group == "pretrain" else ("new", group)
        return Task(name, split[f"{prefix}_train{suffix}"], split[f"{prefix}_test{suffix}"], tuple(new_classes),
                    split.sets.get(f"{prefix}_valid{suffix}"))

    first = task(_first_task_name(split), "pretrain")
    if split.scenario == "sample_incremental":
        tasks = [first, task(f"speaker {split.held_out}", "")]
    elif split.scenario == "class_incremental":
        tasks = [first, task(f"class {split.held_out}", "", (split.held_out,))]
    elif split.scenario == "progressive":
        steps = split.class_steps or tuple((g,) for g in split.new_groups)  # older splits: one class a step
        tasks = [first] + [task(_classes_name(step), f"_{step[0]}", step) for step in steps]
    else:
        tasks = [first] + [task(f"speaker {g}", f"_{g}") for g in split.new_groups]
    return Scenario(split.scenario, tasks)


def _classes_name(classes) -> str:
    return f"class {classes[0]}" if len(classes) == 1 else f"classes {format_ids(classes)}"


def _first_task_name(split: Split) -> str:
    if split.scenario == "sample_incremental":
        return f"speakers except {split.held_out}"
    if split.scenario == "class_incremental":
        return f"classes except {split.held_out}"
    if split.scenario == "progressive":
        return f"classes {format_ids(split.first_classes or range(SHD['first_classes']))}"  # splits before the record: SHD's 0-9
    return f"speakers {format_ids(split.first_speakers or ())}"


def memory_units(scenario: str, shape, first_speakers=None, first_classes=None, classes_per_step: int = 1) -> int:
    """How many units a replay memory holds by the scenario's last task, each ``replay_batches`` batches: the
    classes of every task before the last (class scenarios), or those tasks (speaker scenarios). ``shape``: the
    data's :class:`~sccl.data.shape.DataShape` (first groups by default its first halves)."""
    if scenario == "sample_incremental":
        return 1
    if scenario == "class_incremental":
        return len(shape.classes) - 1
    if scenario == "progressive":
        first = tuple(first_classes) if first_classes is not None else shape.default_first_classes
        later = len([c for c in shape.classes if c not in first])
        last = later % classes_per_step or classes_per_step
        return len(shape.classes) - min(last, later)
    first = tuple(first_speakers) if first_speakers is not None else shape.default_first_speakers
    return len([s for s in shape.speakers if s not in first])  # the first group, then every later one but the last
