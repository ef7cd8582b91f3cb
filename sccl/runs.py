"""A continual-learning run's identity: its settings (:class:`RunConfig`), its stamp, its folder.

A run folder ``OUT/<scenario>/<stamp>/`` is named by a stamp of everything the run depends on: every setting,
the data file (SHA-256) and the pretrained model it starts from (SHA-256 of its weights). Another data file or a
retrained model gives another folder, never a stale "already finished". It holds

    epochs.csv           one row per task and epoch (epoch 0 = before training on the task); with --eval-every k
                         the accuracy cells are blank but after every k-th epoch and the task's last
    accuracy_matrix.csv  R[i][j]: accuracy on task j's test samples after task i (row 0: the pretrained model)
    log.txt              human-readable log
    summary.json         written last: a folder without it is an unfinished run, redone from scratch
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sccl.data import file_sha256
from sccl.defaults import COMMON, SCENARIO
from sccl.errors import ConfigError
from sccl.pretraining import is_finished, run_dir
from sccl.shape import resolve_groups
from sccl.splits import SCENARIOS, SPLITS, format_ids

NOT_IN_STAMP = {"threads", "quiet"}  # settings that do not change results
#: settings added later: in the stamp only when not at this default, so that earlier runs keep their stamps
STAMPED_WHEN_SET = {"first_classes": None, "classes_per_step": 1, "eval_every": 1}
SCENARIO_DEFAULTED = ("epochs", "lr", "batch_size")


@dataclass
class RunConfig:
    """Every setting of one continual-learning run. ``None`` for epochs, lr and batch size: the scenario's default
    (:data:`sccl.defaults.SCENARIO`)."""

    scenario: str
    strategy: str
    held_out: int | None = None  # two-task scenarios: the new speaker or class
    split: str = COMMON["split"]
    epochs: int | None = None  # per new task
    lr: float | None = None
    seed: int = COMMON["seed"]
    device: str = COMMON["device"]
    threads: int = COMMON["threads"]
    batch_size: int | None = None
    latent_depth: int | None = None  # latent replay
    replay_batches: int = 0  # the replay memory's size in batches (class scenarios: per class)
    stored_steps: int | None = None  # S; None = every time step (no compression)
    compression: str = COMMON["compression"]
    schedule: str = COMMON["schedule"]
    float16_currents: bool = False
    keep_last: bool = False
    reinit_readout: bool = True  # class scenarios: re-draw the new class's readout column
    class_mixed: bool = False
    first_speakers: tuple[int, ...] | None = None  # speakers scenario: the pretraining's group (default: first half)
    first_classes: tuple[int, ...] | None = None  # progressive: the pretraining's classes (default: first half)
    classes_per_step: int = 1  # progressive: classes per later task
    eval_every: int = 1  # test accuracy after every k-th epoch of a task (and always after its last)
    pretrained: str | None = None  # a pretraining run folder (default: found in the output folder)
    quiet: bool = False
    options: dict = field(default_factory=dict)  # a strategy's own settings (its flags without a field here)

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario '{self.scenario}' (choose from {', '.join(SCENARIOS)})")
        for name in SCENARIO_DEFAULTED:
            if getattr(self, name) is None:
                setattr(self, name, SCENARIO[self.scenario][name])
        if self.first_speakers is not None:
            self.first_speakers = tuple(int(s) for s in self.first_speakers)
        if self.first_classes is not None:
            self.first_classes = tuple(int(c) for c in self.first_classes)

    def settings(self) -> dict:
        """The settings that make the results (everything but threads and quiet), as JSON values."""
        return json.loads(json.dumps({k: v for k, v in asdict(self).items() if k not in NOT_IN_STAMP
                                      and not (k in STAMPED_WHEN_SET and v == STAMPED_WHEN_SET[k])}))

    def label(self) -> str:
        """Human-readable part of the stamp: strategy, new task, depth, memory, compression, seed."""
        parts = [self.strategy]
        if self.held_out is not None:
            parts.append(("speaker" if self.scenario == "sample_incremental" else "class") + str(self.held_out))
        if self.scenario == "speakers" and self.first_speakers:
            parts.append("first" + format_ids(self.first_speakers))
        if self.scenario == "progressive" and self.first_classes:
            parts.append("first" + format_ids(self.first_classes))
        if self.scenario == "progressive" and self.classes_per_step != 1:
            parts.append(f"k{self.classes_per_step}")
        if self.latent_depth is not None:
            parts.append(f"d{self.latent_depth}")
        if self.strategy == "rehearsal" or self.latent_depth is not None:  # a replay memory of n batches
            parts.append(f"n{self.replay_batches}")
        if self.stored_steps is not None:
            parts.append(f"S{self.stored_steps}{self.compression}")
        if self.options.get("regularizer", "none") != "none":
            parts.append(self.options["regularizer"])
        return "-".join(parts + [f"seed{self.seed}"])


def config_fields() -> set[str]:
    return {f.name for f in fields(RunConfig)}


def pretrained_dir(cfg: RunConfig, out_dir, data=None) -> Path:
    """The pretraining run a run starts from; ``data`` (a :class:`~sccl.shape.DataShape` or the data file) gives
    the sequence scenarios' default first groups."""
    if cfg.pretrained:
        return Path(cfg.pretrained)
    if cfg.split not in SPLITS:
        raise ConfigError(f"unknown split '{cfg.split}' (choose from {', '.join(SPLITS)})")
    speakers, classes = cfg.first_speakers, cfg.first_classes
    if data is not None and cfg.scenario in ("speakers", "progressive"):
        speakers, classes = resolve_groups(speakers, classes, data)
    return run_dir(out_dir, cfg.split, cfg.scenario, cfg.held_out, cfg.seed, speakers, classes, cfg.classes_per_step)


def stamp(cfg: RunConfig, data_sha256: str, weights_sha256: str) -> str:
    identity = {"settings": cfg.settings(), "data": data_sha256, "pretrained_weights": weights_sha256}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return f"{cfg.label()}-{digest}"


def run_folder(cfg: RunConfig, out_dir, data_file) -> Path | None:
    """The run's folder, or None while its pretrained model does not exist (nothing to stamp it with yet)."""
    if not Path(data_file).is_file():
        return None
    pre = pretrained_dir(cfg, out_dir, data_file)
    if not is_finished(pre):
        return None
    return Path(out_dir) / cfg.scenario / stamp(cfg, file_sha256(data_file), file_sha256(pre / "model.pt"))


def is_done(cfg: RunConfig, out_dir, data_file) -> bool:
    folder = run_folder(cfg, out_dir, data_file)
    return folder is not None and (folder / "summary.json").is_file()
