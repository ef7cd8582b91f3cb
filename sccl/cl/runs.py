"""A continual-learning run's identity: its settings (:class:`RunConfig`), its stamp, its folder.

A run folder ``OUT/<scenario>/<stamp>/`` is named by a stamp of everything the run depends on: every setting,
the data file (SHA-256) and the pretrained model it starts from (SHA-256 of its weights). Another data file or a
retrained model gives another folder, never a stale "already finished". It holds

    epochs.csv           one row per task and epoch (epoch 0 = before training on the task); with --eval-every k
                         the accuracy cells are blank but after every k-th epoch and the task's last
    accuracy_matrix.csv  R[i][j]: accuracy on task j's test samples after task i (row 0: the pretrained model)
    log.txt              human-readable log
    neurobench.json      the network's activity per sample, in NeuroBench's names (sccl.net.activity)
    summary.json         written last (with the run's footprint in bytes): a folder without it is an unfinished run,
                         redone from scratch
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sccl.cl.strategies import get_strategy
from sccl.core.defaults import COMMON, SCENARIO
from sccl.core.errors import ConfigError
from sccl.data.hdf5 import file_sha256
from sccl.data.shape import format_ids, resolve_groups
from sccl.data.splits import SCENARIOS, SPLITS
from sccl.learn.pretraining import is_finished, run_dir


NOT_IN_STAMP = {"threads", "quiet"}  # settings that do not change results
#: settings added later: in the stamp only when not at this default, so that earlier runs keep their stamps
STAMPED_WHEN_SET = {"first_classes": None, "classes_per_step": 1, "eval_every": 1, "precision": "float32"}
SCENARIO_DEFAULTED = ("epochs", "lr", "batch_size")
#: replay settings that every run's stamp holds at its top level, as it did before they became the replay
#: strategies' options: a run's own value, else this (so that earlier run folders keep their names)
TOP_LEVEL_OPTIONS = {"latent_depth": None, "replay_batches": 0, "stored_steps": None,
                     "compression": COMMON["compression"], "schedule": COMMON["schedule"], "float16_currents": False,
                     "class_mixed": False}
#: the order of a run's recorded settings (summary.json "config")
SETTINGS_ORDER = ("scenario", "strategy", "held_out", "split", "epochs", "lr", "seed", "device", "threads",
                  "batch_size", "latent_depth", "replay_batches", "stored_steps", "compression", "schedule",
                  "float16_currents", "keep_last", "reinit_readout", "class_mixed", "first_speakers", "first_classes",
                  "classes_per_step", "eval_every", "precision", "pretrained", "quiet", "options")


@dataclass
class RunConfig:
    """Every setting of one continual-learning run. ``None`` for epochs, lr and batch size: the scenario's default
    (:data:`sccl.core.defaults.SCENARIO`). ``options``: the strategy's own settings (its flags), completed with
    its defaults for the scenario (:meth:`~sccl.cl.strategies.base.Strategy.complete`)."""

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
    keep_last: bool = False
    reinit_readout: bool = True  # class scenarios: re-draw the new class's readout column
    first_speakers: tuple[int, ...] | None = None  # speakers scenario: the pretraining's group (default: first half)
    first_classes: tuple[int, ...] | None = None  # progressive: the pretraining's classes (default: first half)
    classes_per_step: int = 1  # progressive: classes per later task
    eval_every: int = 1  # test accuracy after every k-th epoch of a task (and always after its last)
    precision: str = "float32"  # or int16 / int8: fixed-point weights, bfloat16 optimiser state (sccl.learn.quantize)
    pretrained: str | None = None  # a pretraining run folder (default: found in the output folder)
    quiet: bool = False
    options: dict = field(default_factory=dict)  # the strategy's own settings

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
        self.options = get_strategy(self.strategy).complete(self.scenario, self.options)

    @classmethod
    def of(cls, scenario: str, strategy: str, held_out: int | None = None, **settings) -> "RunConfig":
        """A configuration from settings by name, in code: the fields by theirs, every other name one of the
        strategy's options (``options=`` too)."""
        fields_ = {k: v for k, v in settings.items() if k in config_fields() and k != "options"}
        options = {**settings.get("options", {}), **{k: v for k, v in settings.items() if k not in config_fields()}}
        return cls(scenario, strategy, held_out, **fields_, options=options)

    @classmethod
    def from_settings(cls, settings: dict) -> "RunConfig":
        """The configuration a run recorded (summary.json "config", :meth:`settings`)."""
        values = {k: v for k, v in settings.items() if k in config_fields() and k != "options"}
        options = {**{k: settings[k] for k in TOP_LEVEL_OPTIONS if k in settings}, **(settings.get("options") or {})}
        return cls(**values, options=options)

    def settings(self) -> dict:
        """The settings that make the results (everything but threads and quiet), as JSON values."""
        values = {**asdict(self), **{k: self.options.get(k, v) for k, v in TOP_LEVEL_OPTIONS.items()}}
        values["options"] = {k: v for k, v in self.options.items() if k not in TOP_LEVEL_OPTIONS}
        return json.loads(json.dumps({k: values[k] for k in SETTINGS_ORDER if k not in NOT_IN_STAMP
                                      and not (k in STAMPED_WHEN_SET and values[k] == STAMPED_WHEN_SET[k])}))

    def label(self) -> str:
        """Human-readable part of the stamp: strategy, new task, the strategy's own parts (depth, memory,
        compression...), seed."""
        parts = [self.strategy]
        if self.held_out is not None:
            parts.append(("speaker" if self.scenario == "sample_incremental" else "class") + str(self.held_out))
        if self.scenario == "speakers" and self.first_speakers:
            parts.append("first" + format_ids(self.first_speakers))
        if self.scenario == "progressive" and self.first_classes:
            parts.append("first" + format_ids(self.first_classes))
        if self.scenario == "progressive" and self.classes_per_step != 1:
            parts.append(f"k{self.classes_per_step}")
        parts += get_strategy(self.strategy).label_parts(self)
        if self.precision != "float32":
            parts.append(self.precision)
        return "-".join(parts + [f"seed{self.seed}"])


def config_fields() -> set[str]:
    return {f.name for f in fields(RunConfig)}


def pretrained_dir(cfg: RunConfig, out_dir, data=None) -> Path:
    """The pretraining run a run starts from; ``data`` (a :class:`~sccl.data.shape.DataShape` or the data file) gives
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
