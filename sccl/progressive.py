"""Progressive class-incremental protocol: start from the model pretrained on the English digits (0-9), then
learn the German digits 10..19 one at a time with (compressed) latent replay.

Step 0 is the English block; step i (1..10) is class 9 + i. For each new class: re-draw its readout column,
create a fresh Adamax, train on its training split plus the replay memory, then add ``k`` batches of its own
training samples to the memory. The initial memory holds ``k`` batches of every English class (distinct
samples; the original stored the same mixed batches ten times). Evaluation always uses held-out test samples:
after every epoch (previous classes, the new class, all 20 classes) and after every step (the accuracy matrix).

summary.json: ``accuracy_matrix`` [i][j] = accuracy on step j's classes after learning step i (j > i: not yet
learned, still reported), ``average_accuracy`` and ``forgetting`` per step, memory bits and bytes per step.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sccl.continual import RunLog, already_finished, cached_batches, load_start_model, reinit_readout_column, start_process
from sccl.errors import ConfigError
from sccl.pretraining import run_dir
from sccl.replay import ReplayMemory, check_stored_steps
from sccl.results import write_csv, write_json
from sccl.splits import PROGRESSIVE_BASE, make_batches
from sccl.training import Dataset, predict, train_epoch

FOLDER = "class_incremental_multiclasses"


@dataclass
class ProgressiveConfig:
    latent_depth: int = 2
    latent_batches: int = 1  # k: batches per class in the memory (0 = no replay)
    stored_steps: int | None = None  # S; None = no compression
    compression: str = "or"
    epochs: int = 20
    lr: float = 2e-4
    batch_size: int = 64
    seed: int = 0
    protocol: str = "paper"
    device: str = "cpu"
    threads: int = 1
    float16_currents: bool = False
    pretrained: str | None = None
    quiet: bool = False

    def stamp(self) -> str:
        settings = {k: v for k, v in asdict(self).items() if k not in ("threads", "quiet")}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        comp = f"-S{self.stored_steps}{self.compression}" if self.stored_steps is not None else ""
        return f"progressive-d{self.latent_depth}-k{self.latent_batches}{comp}-seed{self.seed}-{digest}"


def run_folder(cfg: ProgressiveConfig, out_dir) -> Path:
    return Path(out_dir) / FOLDER / cfg.stamp()


def is_done(cfg: ProgressiveConfig, out_dir) -> bool:
    return (run_folder(cfg, out_dir) / "summary.json").is_file()


def _class_samples(indices: np.ndarray, labels: np.ndarray, c: int, k: int, bs: int, rng) -> list[np.ndarray]:
    members = indices[labels[indices] == c]
    if k * bs > len(members):
        raise ConfigError(f"--latent-batches {k} needs {k * bs} training samples of class {c}, "
                          f"which has only {len(members)}")
    return make_batches(rng.permutation(members)[: k * bs], bs, drop_last=True)


def _acc_on(pred: tuple[np.ndarray, np.ndarray], classes) -> float:
    """Accuracy on the samples of ``classes`` among one prediction pass ``pred`` = (predictions, labels)."""
    p, y = pred
    mask = np.isin(y, list(classes))
    return float((p[mask] == y[mask]).mean()) if mask.any() else float("nan")


def run_progressive(cfg: ProgressiveConfig, ds: Dataset, out_dir, force: bool = False) -> Path:
    if cfg.latent_depth not in (0, 1, 2, 3):
        raise ConfigError(f"--latent-depth must be 0, 1, 2 or 3, got {cfg.latent_depth}")
    if cfg.latent_batches < 0:
        raise ConfigError(f"--latent-batches must be >= 0, got {cfg.latent_batches}")
    if cfg.epochs < 0:
        raise ConfigError(f"--epochs must be >= 0, got {cfg.epochs}")
    T = ds.binned.nb_steps
    if cfg.stored_steps is not None:
        check_stored_steps(T, cfg.stored_steps)
    folder = run_folder(cfg, out_dir)
    if already_finished(folder, force, cfg.quiet):
        return folder
    t_start = time.perf_counter()
    log = RunLog(folder, cfg.quiet)
    device = start_process(cfg.threads, cfg.device, cfg.seed)
    pre_dir = Path(cfg.pretrained) if cfg.pretrained else run_dir(out_dir, cfg.protocol, "classes", None, cfg.seed)
    net, split, pre_config = load_start_model(pre_dir, ds, device)
    if split.scenario != "classes":
        raise ConfigError(f"{pre_dir} is not a progressive (classes 0-9) pretraining run")
    d, k, bs = cfg.latent_depth, cfg.latent_batches, cfg.batch_size
    new_classes = split.new_classes
    steps_classes = [tuple(PROGRESSIVE_BASE)] + [(c,) for c in new_classes]
    log(f"progressive: depth {d}, k {k}, S {cfg.stored_steps or T} ({cfg.compression}), seed {cfg.seed}, "
        f"{'synthetic SHD-format data, not SHD' if ds.synthetic else 'SHD'}; pretrained model {pre_dir}")

    test_sets = {0: split["pretrain_test"], **{i + 1: split[f"new_test_{c}"] for i, c in enumerate(new_classes)}}
    test_batches = {i: cached_batches(net, ds, make_batches(idx, 256, drop_last=False), d, device)
                    for i, idx in test_sets.items()}
    all_test = [b for i in sorted(test_batches) for b in test_batches[i]]

    rng = np.random.default_rng([cfg.seed, 4241])
    steps = cfg.stored_steps or T
    memory = ReplayMemory("currents" if d == 0 else "spikes", T, steps, cfg.compression, net.depth_size(d),
                          float_dtype=torch.float16 if cfg.float16_currents else torch.float32, depth=d)

    def add_to_memory(index_batches):
        for b in cached_batches(net, ds, index_batches, d, device):
            memory.add(b.x.transpose(0, 1).cpu(), b.y.cpu())

    if k:
        for c in PROGRESSIVE_BASE:
            add_to_memory(_class_samples(split["pretrain_train"], ds.labels, c, k, bs, rng))
    for name, p in net.named_parameters():
        p.requires_grad_(name in net.trainable_for_depth(d))

    pred = predict(net, all_test)  # one pass over every test set per evaluation; accuracies are masks of it
    matrix = [[_acc_on(pred, cls) for cls in steps_classes]]
    memory_per_step = [{"step": 0, "bits": memory.memory_bits_analytic, "bytes": memory.memory_bytes_stored,
                        "samples": len(memory)}]
    rows = []
    log(f"step 0 (English, pretrained): accuracy on classes 0-9 {matrix[0][0]:.4f}; memory {memory.describe()}")
    for step, c in enumerate(new_classes, start=1):
        reinit_readout_column(net, c, cfg.seed + c)
        optimizer = torch.optim.Adamax(net.trainable_parameters(d), lr=cfg.lr, betas=(0.9, 0.999))
        train_idx = make_batches(split[f"new_train_{c}"], bs, drop_last=True)
        if not train_idx:
            raise ConfigError(f"class {c} has {len(split[f'new_train_{c}'])} training samples: fewer than one batch")
        new_train = cached_batches(net, ds, train_idx, d, device)
        previous = sorted({x for cls in steps_classes[:step] for x in cls})
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            replay = memory.training_batches(bs, device=device)
            with tqdm(total=len(new_train) + len(replay), desc=f"class {c} epoch {epoch}/{cfg.epochs}", leave=False,
                      disable=cfg.quiet) as bar:
                loss, _ = train_epoch(net, optimizer, new_train + replay, bar)
            pred = predict(net, all_test)
            row = {"step": step, "new_class": c, "epoch": epoch, "loss": round(loss, 6),
                   "previous_acc": round(_acc_on(pred, previous), 6),
                   "new_acc": round(_acc_on(pred, (c,)), 6),
                   "all_acc": round(_acc_on(pred, range(20)), 6),
                   "memory_bits": memory.memory_bits_analytic, "memory_bytes": memory.memory_bytes_stored,
                   "seconds": round(time.perf_counter() - t0, 3)}
            rows.append(row)
            write_csv(folder / "epochs.csv", rows)
        pred = predict(net, all_test)
        matrix.append([_acc_on(pred, cls) for cls in steps_classes])
        if k:
            add_to_memory(_class_samples(split[f"new_train_{c}"], ds.labels, c, k, bs, rng))
        memory_per_step.append({"step": step, "bits": memory.memory_bits_analytic,
                                "bytes": memory.memory_bytes_stored, "samples": len(memory)})
        seen = sorted({x for cls in steps_classes[: step + 1] for x in cls})
        log(f"step {step} (class {c}): previous {rows[-1]['previous_acc'] if rows else float('nan'):.4f}, "
            f"new {matrix[-1][step]:.4f}, learned so far {_acc_on(pred, seen):.4f}, "
            f"all 20 {_acc_on(pred, range(20)):.4f}; memory {memory.memory_bytes_stored} bytes")

    n_steps = len(matrix)
    average = [float(np.mean(matrix[i][: i + 1])) for i in range(n_steps)]
    forgetting = [float(np.mean([max(matrix[m][j] for m in range(j, i)) - matrix[i][j] for j in range(i)]))
                  if i > 0 else 0.0 for i in range(n_steps)]
    summary = {
        "stamp": cfg.stamp(), "config": asdict(cfg), "pretrained": str(pre_dir),
        "data": {"path": str(ds.path), "synthetic": ds.synthetic},
        "steps": [list(map(int, cls)) for cls in steps_classes],
        "accuracy_matrix": [[round(a, 6) for a in r] for r in matrix],
        "average_accuracy": [round(a, 6) for a in average], "forgetting": [round(f, 6) for f in forgetting],
        "final_accuracy_all_classes": round(_acc_on(pred, range(20)), 6),
        "memory_per_step": memory_per_step,
        "memory_bits_analytic": memory.memory_bits_analytic, "memory_bytes_stored": memory.memory_bytes_stored,
        "wall_seconds": round(time.perf_counter() - t_start, 3),
    }
    write_json(folder / "summary.json", summary)
    log(f"done in {summary['wall_seconds']:.1f} s: final accuracy on all 20 classes "
        f"{summary['final_accuracy_all_classes']:.4f}, average accuracy {average[-1]:.4f}, "
        f"forgetting {forgetting[-1]:.4f}; memory {memory.memory_bytes_stored} bytes")
    return folder
