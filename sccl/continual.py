"""Continual learning after pretraining: naive fine-tuning, rehearsal, latent replay and compressed latent
replay, on the sample-incremental (new speaker) and class-incremental (new class) protocols.

One run = one config; its folder is named by a stamp of the whole config (strategy, id, depth, buffer,
compression, seed and a hash of every other setting), and holds
    epochs.csv    one row per epoch (epoch 0 = the pretrained model before any training)
    log.txt       human-readable log
    summary.json  final / best accuracies, forgetting, memory (analytic bits, bytes stored), wall time, config
``summary.json`` is written last: a folder without it is an unfinished run and is redone from scratch.

Speed: layers at or below the latent depth are frozen, so their activity on every fixed batch (new-data
training batches and test sets) is computed once without autograd and cached; each step runs only the
layers above the cut. Replay batches are un-compressed from the stored memory when used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sccl.device import resolve_device, set_threads
from sccl.errors import ConfigError
from sccl.pretraining import load_pretrained, run_dir
from sccl.replay import build_latent_memory, build_raw_memory, check_stored_steps
from sccl.results import read_csv, read_json, write_csv, write_json
from sccl.splits import make_batches
from sccl.training import Batch, Dataset, accuracy, predict, raw_batches, train_epoch

STRATEGIES = ("naive", "rehearsal", "latent_replay", "latent_replay_subsampled")
SCHEDULES = ("original", "mixed")
FOLDER_OF_SCENARIO = {"speaker": "sample_incremental", "class": "class_incremental"}
NOT_IN_STAMP = {"threads", "quiet"}  # settings that do not change results


@dataclass
class CLConfig:
    scenario: str  # speaker | class
    held_out: int
    strategy: str
    protocol: str = "paper"
    epochs: int = 50
    lr: float = 2e-4
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 64
    latent_depth: int | None = None  # latent strategies only
    replay_batches: int = 0  # latent or rehearsal batches (per old class in class-incremental)
    stored_steps: int | None = None  # S; None = every time step (no compression)
    compression: str = "or"
    schedule: str = "original"
    float16_currents: bool = False
    keep_last: bool = False
    reinit_new_class: bool = True  # class-incremental: re-draw w_out[:, C] ~ N(0.003, 0.003)
    class_mixed: bool = False  # class-incremental: class-mixed replay batches instead of single-class ones
    pretrained: str | None = None
    quiet: bool = False

    def stamp(self) -> str:
        settings = {k: v for k, v in asdict(self).items() if k not in NOT_IN_STAMP}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        parts = [self.strategy, f"{self.scenario}{self.held_out}"]
        if self.latent_depth is not None:
            parts.append(f"d{self.latent_depth}")
        if self.strategy != "naive":
            parts.append(f"n{self.replay_batches}")
        if self.stored_steps is not None:
            parts.append(f"S{self.stored_steps}{self.compression}")
        parts += [f"seed{self.seed}", digest]
        return "-".join(parts)


def run_folder(cfg: CLConfig, out_dir: str | Path) -> Path:
    return Path(out_dir) / FOLDER_OF_SCENARIO[cfg.scenario] / cfg.stamp()


def is_done(cfg: CLConfig, out_dir: str | Path) -> bool:
    return (run_folder(cfg, out_dir) / "summary.json").is_file()


def validate(cfg: CLConfig, nb_steps: int) -> None:
    if cfg.strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy '{cfg.strategy}' (choose from {', '.join(STRATEGIES)})")
    if cfg.scenario not in FOLDER_OF_SCENARIO:
        raise ConfigError(f"unknown scenario '{cfg.scenario}'")
    if cfg.epochs < 0:
        raise ConfigError(f"--epochs must be >= 0, got {cfg.epochs}")
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}")
    if cfg.compression not in ("or", "sum"):
        raise ConfigError(f"--compression must be 'or' or 'sum', got '{cfg.compression}'")
    latent = cfg.strategy.startswith("latent")
    if latent and cfg.latent_depth not in (0, 1, 2, 3):
        raise ConfigError(f"--latent-depth must be 0, 1, 2 or 3, got {cfg.latent_depth}")
    if cfg.strategy != "naive" and cfg.replay_batches < 1:
        raise ConfigError(f"the {cfg.strategy} strategy needs at least one replay batch, got {cfg.replay_batches}")
    if cfg.stored_steps is not None:
        check_stored_steps(nb_steps, cfg.stored_steps)


# ----------------------------------------------------------------------------------------------
# building blocks


def choose_replay_batches(cfg: CLConfig, split, labels: np.ndarray) -> list[np.ndarray]:
    """Sample batches for the replay / rehearsal memory, drawn only from the pretraining-train split.

    Sample-incremental: ``replay_batches`` of the pretraining batches (a seeded choice, no repeats).
    Class-incremental: ``replay_batches`` batches per old class from that class's pretraining-train samples,
    single-class batches (the original) or the same samples dealt into class-mixed batches."""
    train = split["pretrain_train"]
    rng = np.random.default_rng([cfg.seed, 7919])
    if cfg.scenario == "speaker":
        available = make_batches(train, cfg.batch_size, drop_last=True)
        if cfg.replay_batches > len(available):
            raise ConfigError(f"asked for {cfg.replay_batches} replay batches but the pretraining split holds only "
                              f"{len(available)} full batches of {cfg.batch_size}")
        chosen = np.sort(rng.choice(len(available), cfg.replay_batches, replace=False))
        return [available[i] for i in chosen]
    per_class = []
    for c in sorted(set(np.unique(labels[train])) - {cfg.held_out}):
        members = train[labels[train] == c]
        need = cfg.replay_batches * cfg.batch_size
        if need > len(members):
            raise ConfigError(f"asked for {cfg.replay_batches} replay batches of {cfg.batch_size} per old class but "
                              f"class {c} has only {len(members)} pretraining-train samples")
        per_class.append(rng.permutation(members)[:need])
    if cfg.class_mixed:
        pool = rng.permutation(np.concatenate(per_class))
        return make_batches(pool, cfg.batch_size, drop_last=True)
    return [b for members in per_class for b in make_batches(members, cfg.batch_size, drop_last=True)]


def cached_batches(net, ds: Dataset, index_batches, depth: int | None, device) -> list[Batch]:
    """Raw batches, or (depth given) the frozen prefix's activity on them, computed once, time-major."""
    raw = raw_batches(ds, index_batches, device)
    if depth is None:
        return raw
    return [Batch(net.activity_time_major(b.x, depth), b.y, from_depth=depth, time_major=True) for b in raw]


def schedule_order(n_new: int, n_replay: int, schedule: str) -> list[tuple[str, int]]:
    """original: every new batch, then every replay batch; mixed: replay batches spread evenly among the new ones."""
    new = [("new", i) for i in range(n_new)]
    replay = [("replay", j) for j in range(n_replay)]
    if schedule == "original":
        return new + replay
    keyed = [((i + 0.5) / n_new, 0, x) for i, x in enumerate(new)] + [
        ((j + 0.5) / n_replay, 1, x) for j, x in enumerate(replay)]
    return [x for *_, x in sorted(keyed)]


def reinit_readout_column(net, column: int, seed: int) -> None:
    """w_out[:, column] ~ Normal(0.003, 0.003), as the original's class-incremental scripts (seeded here)."""
    g = torch.Generator().manual_seed(seed + 104729)
    with torch.no_grad():
        fresh = torch.normal(0.003, 0.003, size=(net.w_out.shape[0],), generator=g, dtype=torch.float64)
        net.w_out[:, column] = fresh.to(net.w_out.dtype).to(net.w_out.device)


def _accuracies(net, old: list[Batch], new: list[Batch]) -> dict[str, float]:
    po, yo = predict(net, old)
    pn, yn = predict(net, new)
    correct = int((po == yo).sum()) + int((pn == yn).sum())
    return {"old_acc": float((po == yo).mean()) if len(yo) else float("nan"),
            "new_acc": float((pn == yn).mean()) if len(yn) else float("nan"),
            "all_acc": correct / max(len(yo) + len(yn), 1)}


def per_class_accuracy(net, batches: list[Batch]) -> dict[str, float]:
    p, y = predict(net, batches)
    return {str(int(c)): float((p[y == c] == c).mean()) for c in np.unique(y)}


# ----------------------------------------------------------------------------------------------
# shared by every continual-learning run (here and in sccl.progressive)


def already_finished(folder: Path, force: bool, quiet: bool) -> bool:
    """True when ``folder`` holds a finished run (and not ``force``); otherwise empty it for a fresh start."""
    if (folder / "summary.json").is_file() and not force:
        if not quiet:
            print(f"{folder}: already finished, skipping")
        return True
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished run (or --force): start again from scratch
    folder.mkdir(parents=True)
    return False


class RunLog:
    """Append lines to the run's log.txt and echo them (unless quiet)."""

    def __init__(self, folder: Path, quiet: bool):
        self.path, self.quiet = folder / "log.txt", quiet

    def __call__(self, line: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
        if not self.quiet:
            tqdm.write(line)


def start_process(threads: int, device: str, seed: int) -> torch.device:
    set_threads(threads)
    torch.manual_seed(seed)
    return resolve_device(device)


def load_start_model(pre_dir: Path, ds: Dataset, device):
    """(net, split, config) of the pretrained model, checked to come from this data file."""
    net, split, pre_config = load_pretrained(pre_dir, device)
    if pre_config["data"]["sha256"] != ds.sha256():
        raise ConfigError(f"the model in {pre_dir} was pretrained on another data file than {ds.path}")
    return net, split, pre_config


# ----------------------------------------------------------------------------------------------
# one run


def run_continual(cfg: CLConfig, ds: Dataset, out_dir: str | Path, force: bool = False) -> Path:
    """Run (or skip, when finished) one continual-learning run; returns its folder."""
    validate(cfg, ds.binned.nb_steps)
    folder = run_folder(cfg, out_dir)
    if already_finished(folder, force, cfg.quiet):
        return folder
    t_start = time.perf_counter()
    log = RunLog(folder, cfg.quiet)
    device = start_process(cfg.threads, cfg.device, cfg.seed)
    pre_dir = Path(cfg.pretrained) if cfg.pretrained else run_dir(out_dir, cfg.protocol, cfg.scenario, cfg.held_out,
                                                                  cfg.seed)
    net, split, pre_config = load_start_model(pre_dir, ds, device)
    if (split.scenario, split.held_out) != (cfg.scenario, cfg.held_out):
        raise ConfigError(f"the model in {pre_dir} was pretrained with {split.scenario} {split.held_out} held out, "
                          f"not {cfg.scenario} {cfg.held_out}")
    depth = cfg.latent_depth if cfg.strategy.startswith("latent") else None
    data_label = "synthetic SHD-format data, not SHD" if ds.synthetic else "SHD"
    log(f"{cfg.strategy}, {cfg.scenario} {cfg.held_out}, {cfg.protocol} protocol, seed {cfg.seed} on {ds.path} "
        f"({data_label}); pretrained model {pre_dir}")

    new_train_idx = make_batches(split["new_train"], cfg.batch_size, drop_last=not cfg.keep_last)
    if not new_train_idx:
        raise ConfigError(f"the new {cfg.scenario}'s training split holds {len(split['new_train'])} samples: fewer "
                          f"than one batch of {cfg.batch_size} (use --keep-last or a smaller --batch-size)")
    new_train = cached_batches(net, ds, new_train_idx, depth, device)
    old_test = cached_batches(net, ds, make_batches(split["pretrain_test"], 256, drop_last=False), depth, device)
    new_test = cached_batches(net, ds, make_batches(split["new_test"], 256, drop_last=False), depth, device)

    memory, replay_acc = None, float("nan")
    if cfg.strategy != "naive":
        replay_idx = choose_replay_batches(cfg, split, ds.labels)
        source = raw_batches(ds, replay_idx, torch.device("cpu"))
        float_dtype = torch.float16 if cfg.float16_currents else torch.float32
        steps = cfg.stored_steps if cfg.stored_steps is not None else ds.binned.nb_steps
        if depth is None:
            memory = build_raw_memory(source, None, steps, cfg.compression)
        else:
            memory = build_latent_memory(net.cpu(), source, depth, steps, cfg.compression, float_dtype)
            net.to(device)
        log(f"replay memory: {memory.describe()}")

    def replay_batches() -> list[Batch]:
        if memory is None:
            return []
        return memory.training_batches(cfg.batch_size, device=device)

    if memory is not None:
        replay_acc = accuracy(net, replay_batches())
        log(f"pretrained model's accuracy on the replay memory: {replay_acc:.4f}")

    if cfg.scenario == "class" and cfg.reinit_new_class:
        reinit_readout_column(net, cfg.held_out, cfg.seed)
    trainable = set(net.trainable_for_depth(depth))
    for name, p in net.named_parameters():
        p.requires_grad_(name in trainable)
    optimizer = torch.optim.Adamax([p for n, p in net.named_parameters() if n in trainable], lr=cfg.lr,
                                   betas=(0.9, 0.999))

    n_bits = memory.memory_bits_analytic if memory is not None else 0
    n_bytes = memory.memory_bytes_stored if memory is not None else 0
    fixed = {"strategy": cfg.strategy, cfg.scenario: cfg.held_out,
             "depth": "" if depth is None else depth,
             "latent_batches": cfg.replay_batches if cfg.strategy != "naive" else 0,
             "stored_steps": (cfg.stored_steps or ds.binned.nb_steps) if cfg.strategy != "naive" else "",
             "compression": cfg.compression if cfg.stored_steps is not None else "none",
             "seed": cfg.seed, "memory_bits": n_bits, "memory_bytes": n_bytes}
    rows = []

    def record(epoch: int, loss: float, seconds: float) -> None:
        acc = _accuracies(net, old_test, new_test)
        rows.append({**fixed, "epoch": epoch, "loss": round(loss, 6), **{k: round(v, 6) for k, v in acc.items()},
                     "seconds": round(seconds, 3)})
        write_csv(folder / "epochs.csv", rows)
        log(f"epoch {epoch}: loss {loss:.4f}, old {acc['old_acc']:.4f}, new {acc['new_acc']:.4f}, "
            f"all {acc['all_acc']:.4f}")

    record(0, float("nan"), 0.0)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        replay = replay_batches()
        order = schedule_order(len(new_train), len(replay), cfg.schedule)
        batches = [new_train[i] if kind == "new" else replay[i] for kind, i in order]
        with tqdm(total=len(batches), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=cfg.quiet) as bar:
            loss, _ = train_epoch(net, optimizer, batches, bar)
        record(epoch, loss, time.perf_counter() - t0)

    first, last = rows[0], rows[-1]
    trained = rows[1:] or rows
    best = max(trained, key=lambda r: r["all_acc"])
    summary = {
        "stamp": cfg.stamp(), "config": asdict(cfg), "data": {"path": str(ds.path), "synthetic": ds.synthetic},
        "pretrained": str(pre_dir), "pretrained_config": pre_config["settings"],
        "before": {k: first[k] for k in ("old_acc", "new_acc", "all_acc")},
        "final": {k: last[k] for k in ("old_acc", "new_acc", "all_acc")},
        "best": {"epoch": best["epoch"], **{k: best[k] for k in ("old_acc", "new_acc", "all_acc")}},
        "forgetting": round(first["old_acc"] - last["old_acc"], 6),
        "replay_memory_accuracy": replay_acc,
        "memory_bits_analytic": n_bits, "memory_bytes_stored": n_bytes,
        "memory": memory.describe() if memory is not None else "none",
        "samples": {"new_train": len(split["new_train"]), "new_test": len(split["new_test"]),
                    "old_test": len(split["pretrain_test"]), "replay": len(memory) if memory is not None else 0},
        "wall_seconds": round(time.perf_counter() - t_start, 3),
    }
    if cfg.scenario == "class":
        summary["per_class_accuracy"] = per_class_accuracy(net, old_test + new_test)
    summary["frozen_parameters"] = sorted(n for n, _ in net.named_parameters() if n not in trainable)
    write_json(folder / "summary.json", summary)
    log(f"done in {summary['wall_seconds']:.1f} s: old {last['old_acc']:.4f} (forgetting {summary['forgetting']:+.4f}), "
        f"new {last['new_acc']:.4f}, all {last['all_acc']:.4f}; memory {n_bits} bits analytic, {n_bytes} bytes stored")
    gather(Path(out_dir) / FOLDER_OF_SCENARIO[cfg.scenario])
    return folder


def gather(root: Path) -> Path:
    """Rebuild ``root/all_runs.csv`` (every epoch row of every finished run) and ``root/summary.csv``."""
    rows, summaries = [], []
    for summary_path in sorted(root.glob("*/summary.json")):
        run = summary_path.parent
        rows += [{"run": run.name, **r} for r in read_csv(run / "epochs.csv")]
        s = read_json(summary_path)
        c = s["config"]
        summaries.append({"run": run.name, "strategy": c["strategy"], c["scenario"]: c["held_out"],
                          "depth": c["latent_depth"], "replay_batches": c["replay_batches"],
                          "stored_steps": c["stored_steps"] or "",
                          "compression": c["compression"] if c["stored_steps"] else "none", "seed": c["seed"],
                          "old_before": s["before"]["old_acc"], "old_after": s["final"]["old_acc"],
                          "new_after": s["final"]["new_acc"], "all_after": s["final"]["all_acc"],
                          "forgetting": s["forgetting"], "memory_bits": s["memory_bits_analytic"],
                          "memory_bytes": s["memory_bytes_stored"], "seconds": s["wall_seconds"]})
    if rows:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        write_csv(root / "all_runs.csv", [{k: r.get(k, "") for k in columns} for r in rows], columns)
        columns = list(dict.fromkeys(k for r in summaries for k in r))
        write_csv(root / "summary.csv", [{k: r.get(k, "") for k in columns} for r in summaries], columns)
    return root / "all_runs.csv"
