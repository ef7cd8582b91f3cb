"""Pretraining: the model every continual-learning run starts from.

One run folder per split kind, held-out id and seed (see :func:`run_dir`):
    model.pt        state dict of the final model (``torch.load(..., weights_only=True)``)
    split.npz       the split (index arrays into the merged file)
    config.json     every setting, package versions, the data file's SHA-256
    epochs.csv      epoch, loss, train accuracy (running, during the epoch), test accuracy, seconds (and validation
                    accuracy, for splits with a validation set)
    log.txt         a human-readable log
    checkpoint.pt   model + optimiser + history after the last finished epoch (resumes an interrupted run)
A run resumes from its checkpoint and ends with the same weights as an uninterrupted one: batches are
fixed (or reshuffled from (seed, epoch)), and nothing else random happens during training.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sccl.core.defaults import SHD
from sccl.core.device import resolve_device, set_threads
from sccl.core.disk import remove_stale_temps, write_error
from sccl.core.errors import ConfigError, DataError, TrainingDiverged
from sccl.core.locks import check_writable, folder_lock
from sccl.core.results import package_versions, read_json, torch_load, torch_save, write_csv, write_json
from sccl.data.shape import format_ids, resolve_groups
from sccl.data.splits import Split, make_batches, make_split
from sccl.learn.training import Dataset, accuracy, check_training_settings, input_batches, train_epoch
from sccl.net.model import RecurrentSNN


CSV_COLUMNS = ["epoch", "loss", "train_acc", "test_acc", "seconds"]
# settings that may differ between an interrupted run and its resumption
RESUMABLE_DIFFERENCES = {"epochs", "device", "threads", "quiet"}
FILES = ("model.pt", "checkpoint.pt", "epochs.csv", "log.txt", "config.json", "split.npz")


@dataclass
class PretrainConfig:
    scenario: str  # sample_incremental | class_incremental | progressive | speakers
    held_out: int | None  # speaker or class id of the two-task scenarios; None for the sequences
    split: str = "paper"
    epochs: int = 200
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    drop_last: bool = True
    shuffle: bool = False  # reshuffle training batches every epoch (the original kept one fixed order)
    eval_every: int = 1
    quiet: bool = False
    first_speakers: tuple[int, ...] | None = None  # speakers scenario: the first group (default: the first half)
    first_classes: tuple[int, ...] | None = None  # progressive: the first group (default: the first half)
    classes_per_step: int = 1  # progressive: classes per later task (names the folder when not 1)


#: settings added after runs were made: a config.json without them had these values
LATER_SETTINGS = {"first_classes": None, "classes_per_step": 1}


def run_id(scenario: str, held_out: int | None, first_speakers=None, first_classes=None,
           classes_per_step: int = 1) -> str:
    """speaker3, class7, classes0-9 (classes0-19_k5: 5 classes a step) or speakers0-5: what the pretrained model has
    seen or not. ``first_speakers`` / ``first_classes``: the resolved first groups (:func:`sccl.data.shape.resolve_groups`;
    None: SHD's, for records that predate them)."""
    if scenario == "speakers":
        return "speakers" + format_ids(first_speakers if first_speakers is not None else range(SHD["first_speakers"]))
    if scenario == "progressive":
        return ("classes" + format_ids(first_classes if first_classes is not None else range(SHD["first_classes"]))
                + (f"_k{classes_per_step}" if classes_per_step != 1 else ""))
    return {"sample_incremental": f"speaker{held_out}", "class_incremental": f"class{held_out}"}[scenario]


def run_dir(out_dir: str | Path, split: str, scenario: str, held_out: int | None, seed: int,
            first_speakers=None, first_classes=None, classes_per_step: int = 1) -> Path:
    name = run_id(scenario, held_out, first_speakers, first_classes, classes_per_step)
    return Path(out_dir) / "pretrain" / split / f"{name}_seed{seed}"


def is_finished(folder: Path, epochs: int | None = None) -> bool:
    """A final model exists (trained for at least ``epochs`` epochs when given)."""
    if not ((folder / "model.pt").is_file() and (folder / "config.json").is_file()):
        return False
    return epochs is None or read_config(folder)["settings"]["epochs"] >= epochs


def read_config(folder: Path) -> dict:
    """A pretraining run's config.json, checked to hold what is read from it; damaged: one line."""
    path = folder / "config.json"
    config = read_json(path)
    try:
        int(config["settings"]["epochs"]), str(config["data"]["sha256"])
        if not isinstance(config["settings"], dict):
            raise TypeError("'settings' is not a table")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a pretraining config ({type(exc).__name__}: {exc}); delete the run folder or "
                        "rerun with --force") from None
    return config


def _load_state(target, state, path: Path, what: str) -> None:
    """``target.load_state_dict(state)``; a file that does not fit the model is one line."""
    try:
        target.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not {what} of this model ({reason}); delete the run folder or rerun with "
                        "--force") from None


def _log(folder: Path, line: str, quiet: bool) -> None:
    try:
        with open(folder / "log.txt", "a") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        raise write_error(folder / "log.txt", exc) from None
    if not quiet:
        tqdm.write(line)


def _epoch_batches(train_idx: np.ndarray, cfg: PretrainConfig, epoch: int) -> list[np.ndarray]:
    order = train_idx
    if cfg.shuffle:
        order = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
    return make_batches(order, cfg.batch_size, cfg.drop_last)


def pretrain(cfg: PretrainConfig, ds: Dataset, out_dir: str | Path, force: bool = False) -> Path:
    """Train (or resume, or skip when finished) the model for ``cfg``; returns its run folder. Two processes asked
    for the same model take turns (the second waits, then finds it finished)."""
    check_training_settings(cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, min_epochs=1)
    if int(cfg.threads) < 1:
        raise ConfigError(f"--threads must be at least 1, got {cfg.threads}")
    check_writable(out_dir)
    speakers, classes = resolve_groups(cfg.first_speakers, cfg.first_classes, ds.shape)
    folder = run_dir(out_dir, cfg.split, cfg.scenario, cfg.held_out, cfg.seed, speakers, classes,
                     cfg.classes_per_step)
    lock = folder.parent / ".locks" / f"{folder.name}.lock"
    with folder_lock(lock, lambda pid: print(f"{folder.name}: being trained by process {pid}; waiting", flush=True)):
        return _pretrain(cfg, ds, folder, force)


def _pretrain(cfg: PretrainConfig, ds: Dataset, folder: Path, force: bool) -> Path:
    settings = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as config.json reads back
    config = {"settings": settings, "data": ds.record(), "versions": package_versions()}
    for name in FILES if folder.is_dir() else ():
        remove_stale_temps(folder / name)  # left by a killed process
        if force:
            (folder / name).unlink(missing_ok=True)
    if (folder / "config.json").is_file():
        old = read_config(folder)
        was = {**LATER_SETTINGS, **old["settings"]}
        diff = {k for k in set(settings) | set(was) if settings.get(k) != was.get(k)}
        diff -= RESUMABLE_DIFFERENCES
        if old["data"]["sha256"] != config["data"]["sha256"]:
            diff.add("data file")
        if old["data"].get("max_time", ds.binned.max_time) != ds.binned.max_time:
            diff.add("max_time")
        if diff:
            raise ConfigError(f"{folder} holds a run with other settings ({', '.join(sorted(diff))}); "
                              "pass --force to start it again")
        if is_finished(folder) and old["settings"]["epochs"] >= cfg.epochs:
            if not cfg.quiet:
                print(f"{folder}: already finished ({old['settings']['epochs']} epochs), skipping")
            return folder
    folder.mkdir(parents=True, exist_ok=True)

    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    speakers, classes = resolve_groups(cfg.first_speakers, cfg.first_classes, ds.shape)
    split = make_split(cfg.scenario, cfg.held_out, ds.labels, ds.speakers, ds.source, cfg.split, cfg.seed,
                       first_speakers=speakers, first_classes=classes, classes_per_step=cfg.classes_per_step,
                       nb_classes=ds.shape.nb_classes, nb_speakers=ds.shape.nb_speakers)
    train_idx, test_idx = split["pretrain_train"], split["pretrain_test"]
    if len(train_idx) < cfg.batch_size and cfg.drop_last:
        raise ConfigError(f"only {len(train_idx)} pretraining samples: fewer than one batch of {cfg.batch_size}")

    torch.manual_seed(cfg.seed)
    net = RecurrentSNN(nb_inputs=ds.shape.nb_units, nb_outputs=ds.shape.nb_classes).to(device)
    optimizer = torch.optim.Adamax(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    history: list[dict] = []
    start = 0
    if (folder / "checkpoint.pt").is_file():
        path = folder / "checkpoint.pt"
        ckpt = torch_load(path, map_location=device)
        if not isinstance(ckpt, dict) or not {"model", "optimizer", "history", "epoch"} <= set(ckpt):
            raise DataError(f"{path}: not a pretraining checkpoint (missing entries); delete it or rerun with --force")
        _load_state(net, ckpt["model"], path, "a checkpoint")
        _load_state(optimizer, ckpt["optimizer"], path, "a checkpoint")
        history, start = list(ckpt["history"]), int(ckpt["epoch"])
        _log(folder, f"resuming after epoch {start}", cfg.quiet)
        if not (folder / "split.npz").is_file():  # lost (e.g. a folder half-deleted): the split is deterministic
            split.save(folder / "split.npz")
            _log(folder, "split.npz was missing: written again from the same seed and data", cfg.quiet)
    else:
        split.save(folder / "split.npz")
        (folder / "log.txt").unlink(missing_ok=True)
        _log(folder, f"pretraining {folder.name.rsplit('_seed', 1)[0]} ({cfg.split} split, seed {cfg.seed}) "
             f"on {ds.path} [{ds.label}; {ds.shape.describe()}]", cfg.quiet)
        _log(folder, f"split: {split.describe()}", cfg.quiet)
        _log(folder, f"data: {len(ds.labels)} samples; {ds.binned.dropped} spikes at or after max_time "
             f"{ds.binned.max_time:g} s dropped", cfg.quiet)
    (folder / "model.pt").unlink(missing_ok=True)  # training more epochs: the old final model is not final
    write_json(folder / "config.json", config)

    test_batches = input_batches(ds, make_batches(test_idx, 256, drop_last=False), device)
    valid_batches = (input_batches(ds, make_batches(split["pretrain_valid"], 256, drop_last=False), device)
                     if split.has_validation else None)
    fixed_train = None if cfg.shuffle else input_batches(ds, _epoch_batches(train_idx, cfg, 0), device)
    n_batches = len(_epoch_batches(train_idx, cfg, 0))
    for epoch in range(start + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        batches = fixed_train if fixed_train is not None else input_batches(ds, _epoch_batches(train_idx, cfg, epoch),
                                                                            device)
        try:
            with tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=cfg.quiet) as bar:
                loss, train_acc = train_epoch(net, optimizer, batches, bar)
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{folder}: epoch {epoch}: {exc} with --force") from None
        evaluate = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
        test_acc = accuracy(net, test_batches) if evaluate else float("nan")
        row = {"epoch": epoch, "loss": round(loss, 6), "train_acc": round(train_acc, 6),
               "test_acc": round(test_acc, 6), "seconds": round(time.perf_counter() - t0, 3)}
        if valid_batches is not None:
            row["valid_acc"] = round(accuracy(net, valid_batches) if evaluate else float("nan"), 6)
        history.append(row)
        torch_save(folder / "checkpoint.pt", {"epoch": epoch, "model": net.state_dict(),
                                               "optimizer": optimizer.state_dict(), "history": history})
        write_csv(folder / "epochs.csv", history, CSV_COLUMNS + (["valid_acc"] if valid_batches is not None else []))
        valid_text = f", valid acc {row['valid_acc']:.4f}" if valid_batches is not None else ""
        _log(folder, f"epoch {epoch}: loss {loss:.4f}, train acc {train_acc:.4f}, test acc {test_acc:.4f}{valid_text}, "
             f"{row['seconds']:.1f} s", cfg.quiet)
    torch_save(folder / "model.pt", {k: v.detach().cpu() for k, v in net.state_dict().items()})
    final = history[-1]["test_acc"] if history else float("nan")
    _log(folder, f"done: test accuracy {final:.4f} -> {folder / 'model.pt'}", cfg.quiet)
    return folder


def load_pretrained(folder: Path, device: torch.device | str = "cpu") -> tuple[RecurrentSNN, Split, dict]:
    """(model, split, config) of a finished pretraining run."""
    if not is_finished(folder):
        raise ConfigError(f"no finished pretraining in {folder}: run statedicts/pretrain.py first")
    state = torch_load(folder / "model.pt")
    if isinstance(state, dict) and all(torch.is_tensor(state.get(k)) and state[k].ndim == 2 for k in ("w1", "w_out")):
        net = RecurrentSNN(nb_inputs=state["w1"].shape[0], nb_outputs=state["w_out"].shape[1])  # the data's sizes
    else:
        net = RecurrentSNN()  # _load_state names the problem
    _load_state(net, state, folder / "model.pt", "the weights")
    for name, tensor in net.state_dict().items():  # a diverged or altered model would give a "finished" run
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ConfigError(f"{folder / 'model.pt'}: parameter {name} is not finite ({bad} of {tensor.numel()} "
                              "values NaN or infinite); delete its folder and pretrain again")
    return net.to(device), Split.load(folder / "split.npz"), read_config(folder)
