"""The one continual-learning runner: any strategy over any scenario's task sequence.

Speed: layers at or below the strategy's cut depth are frozen, so their activity on every fixed batch (each
task's training batches and every test set) is computed once without autograd and cached; each step runs only
the layers above the cut. Every evaluation is one prediction pass over all tasks' test samples.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sccl.cl import metrics
from sccl.cl.context import RunContext, cached_batches
from sccl.cl.footprint import footprint_of, learning_state_of, value_bytes_of
from sccl.cl.runs import RunConfig, pretrained_dir, run_folder
from sccl.cl.scenarios import HELD_OUT_FLAG, Scenario, from_split
from sccl.cl.strategies import Strategy, get_strategy
from sccl.core.defaults import READOUT_REDRAW
from sccl.core.device import resolve_device, set_threads
from sccl.core.disk import write_error
from sccl.core.errors import ConfigError
from sccl.core.locks import check_writable, folder_lock
from sccl.core.results import write_csv, write_json
from sccl.data.splits import make_batches
from sccl.learn.pretraining import is_finished, load_pretrained
from sccl.learn.quantize import LowPrecision, check_precision
from sccl.learn.training import Batch, Dataset, accuracy, check_training_settings, input_batches, predict, train_epoch
from sccl.net.activity import inference_activity, neurobench_record, training_step_activity
from sccl.net.model import RecurrentSNN


EVAL_BATCH = 256


class RunLog:
    """Append lines to the run's log.txt and echo them (unless quiet). Lines logged before the run's folder exists
    (it is created only once every setting, file and memory has been checked) are written when it is attached."""

    def __init__(self, quiet: bool):
        self.path, self.quiet, self.held = None, quiet, []

    def attach(self, folder: Path) -> None:
        self.path = folder / "log.txt"
        for line in self.held:
            self._write(line)
        self.held = []

    def _write(self, line: str) -> None:
        try:
            with open(self.path, "a") as fh:
                fh.write(line + "\n")
        except OSError as exc:  # a full disk: one line naming the file
            raise write_error(self.path, exc) from None

    def __call__(self, line: str) -> None:
        if self.path is None:
            self.held.append(line)
        else:
            self._write(line)
        if not self.quiet:
            tqdm.write(line)


def reinit_readout_column(net, column: int, seed: int) -> None:
    """w_out[:, column] ~ Normal(0.003, 0.003), as the original's class-incremental scripts (seeded here)."""
    g = torch.Generator().manual_seed(seed + 104729)
    mean, std = READOUT_REDRAW
    with torch.no_grad():
        fresh = torch.normal(mean, std, size=(net.w_out.shape[0],), generator=g, dtype=torch.float64)
        net.w_out[:, column] = fresh.to(net.w_out.dtype).to(net.w_out.device)


class Evaluator:
    """Every task's test set (or, ``part="valid"``, validation set), cached at the cut depth; one call = one
    prediction pass over all of them."""

    def __init__(self, net, ds: Dataset, scenario: Scenario, depth: int | None, device, part: str = "test",
                 view: Callable[[list[Batch]], list[Batch]] | None = None):
        self.net = net
        sets = [getattr(task, part) for task in scenario.tasks]
        index = [b for idx in sets for b in make_batches(idx, EVAL_BATCH, drop_last=False)]
        # raw input over the memory budget (SSC's test set) is built at each evaluation instead of held
        self.batches = input_batches(ds, index, device) if depth is None else cached_batches(net, ds, index, depth,
                                                                                              device)
        if view is not None:  # the strategy's view of fixed batches (fewer-step replay: S steps)
            self.batches = view(self.batches)
        self.counts = np.array([len(idx) for idx in sets], dtype=np.int64)
        self.task_of = np.repeat(np.arange(len(scenario.tasks)), self.counts)

    def __call__(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(correct samples per task, predictions, labels)."""
        pred, y = predict(self.net, self.batches)
        correct = np.bincount(self.task_of, weights=(pred == y), minlength=len(self.counts)).astype(np.int64)
        return correct, pred, y

    def row(self, correct: np.ndarray) -> list[float]:
        """One row of the accuracy matrix (NaN for a task without test samples)."""
        return [c / n if n else float("nan") for c, n in zip(correct.tolist(), self.counts.tolist())]


def random_init_accuracy(net, ds: Dataset, scenario: Scenario, seed: int, device) -> list[float]:
    """FWT's baseline b: every task's test accuracy of a freshly initialised network of ``net``'s architecture,
    drawn as a pretraining with ``seed`` draws its start (its own generator: the run's random stream is not
    touched); one prediction pass over the raw test sets."""
    fresh = RecurrentSNN(nb_inputs=net.nb_inputs, nb_outputs=net.nb_outputs, time_step=net.time_step,
                         tau_syn=net.tau_syn, tau_mem=net.tau_mem, weight_scale=net.weight_scale,
                         hidden_sizes=net.hidden_sizes, generator=torch.Generator().manual_seed(seed)).to(device)
    evaluate = Evaluator(fresh, ds, scenario, None, device)
    return evaluate.row(evaluate()[0])


def fit_task(net, strategy: Strategy, i: int, new: list[Batch], epochs: int, lr: float, trainable: tuple[str, ...],
             evaluate: Evaluator, quiet: bool = True, on_row: Callable[[dict], None] | None = None,
             validation: Evaluator | None = None, eval_every: int = 1, precision: str = "float32",
             shadows: dict | None = None) -> list[dict]:
    """Train on task ``i`` for ``epochs`` epochs (a fresh Adamax over ``trainable``) and return its rows: epoch 0
    (before training) and every epoch's loss, pooled old / new / all accuracy (and, with ``validation``, the same
    on the validation sets as ``valid_*``), memory and seconds. The accuracies are measured at epoch 0, after every
    ``eval_every``-th epoch and after the last, and left blank ("") in the other rows: evaluation never changes
    what is trained, so the run's results are the same whatever ``eval_every``. ``precision`` int16 / int8: the
    trained weights run at that precision with 16-bit shadow weights and optimiser state
    (:class:`sccl.learn.quantize.LowPrecision`; ``shadows``: the previous task's, updated in place)."""
    params = {n: p for n, p in net.named_parameters() if n in trainable}
    optimizer = torch.optim.Adamax(list(params.values()), lr=lr, betas=(0.9, 0.999))
    low = LowPrecision(precision, params, optimizer, shadows=shadows)
    low.start()
    edit_gradients, after_step = low.compose(strategy.edit_gradients, strategy.after_step)
    rows = []

    sets = [("", evaluate)] + ([("valid_", validation)] if validation is not None else [])

    def record(epoch: int, loss: float, seconds: float) -> None:
        measured = epoch % eval_every == 0 or epoch == epochs
        acc = {}
        for prefix, evaluator in sets:
            values = (metrics.old_new_all(evaluator()[0], evaluator.counts, i) if measured
                      else dict.fromkeys(metrics.ACCURACY_COLUMNS))
            acc.update({prefix + k: round(v, 6) if measured else "" for k, v in values.items()})
        rows.append({"task": i, "epoch": epoch, "loss": round(loss, 6), **acc,
                     "memory_bits": strategy.memory_bits_analytic, "memory_bytes": strategy.memory_bytes_stored,
                     "seconds": round(seconds, 3)})
        if on_row is not None:
            on_row(rows[-1])

    record(0, float("nan"), 0.0)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        batches = strategy.epoch_batches(new)
        with tqdm(total=len(batches), desc=f"task {i} epoch {epoch}/{epochs}", leave=False, disable=quiet) as bar:
            loss, _ = train_epoch(net, optimizer, batches, bar, strategy.extra_loss, edit_gradients, after_step)
        record(epoch, loss, time.perf_counter() - t0)
    if shadows is not None:
        shadows.update(low.shadows)
    return rows


# ----------------------------------------------------------------------------------------------
# one run


def validate(cfg: RunConfig, nb_steps: int) -> type[Strategy]:
    """The strategy class, once every setting is checked (before anything is written)."""
    cls = get_strategy(cfg.strategy)
    check_training_settings(cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed)
    if isinstance(cfg.eval_every, bool) or not isinstance(cfg.eval_every, int) or cfg.eval_every < 1:
        raise ConfigError(f"--eval-every must be a positive whole number of epochs, got {cfg.eval_every}")
    check_precision(cfg.precision)
    if (cfg.held_out is not None) != (cfg.scenario in HELD_OUT_FLAG):
        raise ConfigError(f"the {cfg.scenario} scenario " + ("takes no held-out id" if cfg.held_out is not None
                                                             else "needs a held-out speaker or class"))
    cls.validate(cfg, nb_steps)
    return cls


def already_finished(folder: Path, force: bool, quiet: bool) -> bool:
    """True when ``folder`` holds a finished run (and not ``force``)."""
    if (folder / "summary.json").is_file() and not force:
        if not quiet:
            print(f"{folder}: already finished, skipping")
        return True
    return False


def fresh_folder(folder: Path) -> None:
    """An empty run folder: an unfinished run's (or, with --force, a finished one's) files are removed."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run(cfg: RunConfig, ds: Dataset, out_dir, force: bool = False) -> Path:
    """Run (or skip, when finished) one continual-learning run; returns its folder. Two processes asked for the
    same run (two sweeps on one folder) take turns: the second waits, then finds it finished. (The folder's tables
    of every run, :func:`sccl.report.records.gather`, are the command line's to rebuild.)"""
    cls = validate(cfg, ds.binned.nb_steps)
    check_writable(out_dir)
    pre_dir = pretrained_dir(cfg, out_dir, ds.shape)
    if not is_finished(pre_dir):
        raise ConfigError(f"no finished pretraining in {pre_dir}: run statedicts/pretrain.py first")
    folder = run_folder(cfg, out_dir, ds.path)
    lock = folder.parent / ".locks" / f"{folder.name}.lock"
    with folder_lock(lock, lambda pid: print(f"{folder.name}: being run by process {pid}; waiting", flush=True)):
        if already_finished(folder, force, cfg.quiet):
            return folder
        _run(cfg, cls, ds, pre_dir, folder)
    return folder


def _run(cfg: RunConfig, cls: type[Strategy], ds: Dataset, pre_dir: Path, folder: Path) -> None:
    t_start = time.perf_counter()
    log = RunLog(cfg.quiet)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    net, split, pre_config = load_pretrained(pre_dir, device)
    if pre_config["data"]["sha256"] != ds.sha256():
        raise ConfigError(f"the model in {pre_dir} was pretrained on another data file than {ds.path}")
    pre_max_time = pre_config["data"].get("max_time", ds.binned.max_time)
    if pre_max_time != ds.binned.max_time:
        raise ConfigError(f"the model in {pre_dir} was pretrained on spikes binned up to {pre_max_time:g} s, not "
                          f"{ds.binned.max_time:g} s (leave out --max-time to use the pretraining's)")
    if (split.scenario, split.held_out) != (cfg.scenario, cfg.held_out):
        raise ConfigError(f"the model in {pre_dir} was pretrained for {split.scenario} {split.held_out}, "
                          f"not {cfg.scenario} {cfg.held_out}")
    scenario = from_split(split)
    depth = cls.cut_depth(cfg)
    log(f"{cfg.strategy}, {cfg.scenario}: {' -> '.join(t.name for t in scenario.tasks)}; {cfg.split} split, seed "
        f"{cfg.seed} on {ds.path} ({ds.label}); pretrained model {pre_dir}")
    if ds.binned.dropped:
        log(f"data: {ds.binned.dropped} spikes at or after max_time {ds.binned.max_time:g} s dropped")

    new_index = []  # each new task's training batches: built when the task starts, released when it ends
    for task in scenario.tasks[1:]:
        idx = make_batches(task.train, cfg.batch_size, drop_last=not cfg.keep_last)
        if not idx:
            raise ConfigError(f"task '{task.name}' has {len(task.train)} training samples: fewer than one batch of "
                              f"{cfg.batch_size} (use --keep-last or a smaller --batch-size)")
        new_index.append(idx)
    trainable = tuple(cls.trainable(cfg, net))
    # reduced precision: frozen weights rounded once, trained ones held at their forward value from the start (so
    # the cached activity at the cut and row 0 of R are the quantised network's); nothing changes at float32
    low = LowPrecision(cfg.precision, {n: p for n, p in net.named_parameters() if n in trainable})
    low.freeze({n: p for n, p in net.named_parameters() if n not in trainable})
    low.start()
    shadows = dict(low.shadows)
    ctx = RunContext(net, ds, device, scenario, log, depth, trainable, cfg.batch_size, {})
    strategy = cls(cfg, ctx)
    evaluate = Evaluator(net, ds, scenario, depth, device, view=strategy.view)
    validation = (Evaluator(net, ds, scenario, depth, device, "valid", view=strategy.view)
                  if scenario.has_validation else None)
    correct, _, _ = evaluate()
    matrix = [evaluate.row(correct)]
    valid_matrix = [validation.row(validation()[0])] if validation else []
    # FWT is defined only where no task brings new classes (metrics docstring): only there is b measured
    baseline = None if scenario.brings_new_classes else random_init_accuracy(net, ds, scenario, cfg.seed, device)

    strategy.end_task(0)
    ctx.task_batches.pop(0, None)  # the pretraining set's batches, if the strategy used them: no later task does
    replay = strategy.memory_batches()
    replay_acc = accuracy(net, replay) if replay else float("nan")
    if replay:
        log(f"pretrained model's accuracy on the replay memory: {replay_acc:.4f}")
    for name, p in net.named_parameters():
        p.requires_grad_(name in trainable)
    fresh_folder(folder)  # everything is checked: only now is anything written
    log.attach(folder)

    fixed = {"strategy": cfg.strategy, "scenario": cfg.scenario,
             "held_out": "" if cfg.held_out is None else cfg.held_out, "depth": "" if depth is None else depth,
             **cls.memory_columns(cfg, ds.binned.nb_steps), "seed": cfg.seed}
    rows: list[dict] = []
    memory_per_task = [{"task": 0, "bits": strategy.memory_bits_analytic, "bytes": strategy.memory_bytes_stored}]

    def on_row(row: dict) -> None:
        rows.append({**fixed, **row})
        write_csv(folder / "epochs.csv", rows)
        if row["all_acc"] == "":
            log(f"task {row['task']} epoch {row['epoch']}: loss {row['loss']:.4f}")
        else:
            log(f"task {row['task']} epoch {row['epoch']}: loss {row['loss']:.4f}, old {row['old_acc']:.4f}, "
                f"new {row['new_acc']:.4f}, all {row['all_acc']:.4f}")

    for i, task in enumerate(scenario.tasks[1:], start=1):
        # the frozen prefix's activity does not change during training: computing it now gives what it gave before
        ctx.task_batches[i] = cached_batches(net, ds, new_index[i - 1], depth, device)
        strategy.start_task(i)
        if cfg.reinit_readout:
            for c in task.new_classes:
                reinit_readout_column(net, c, scenario.readout_seed(cfg.seed, c))
        fit_task(net, strategy, i, strategy.view(ctx.task_batches[i]), cfg.epochs, cfg.lr, trainable, evaluate,
                 cfg.quiet, on_row, validation, cfg.eval_every, cfg.precision, shadows)
        if i == len(scenario) - 1:  # the activity of one training step, on the last task's first batch
            step_activity = training_step_activity(net, strategy.view(ctx.task_batches[i][:1])[0], depth)
        correct, pred, y = evaluate()
        matrix.append(evaluate.row(correct))
        if validation:
            valid_matrix.append(validation.row(validation()[0]))
        if i < len(scenario) - 1:  # consolidate only what a later task will use
            strategy.end_task(i)
        del ctx.task_batches[i]  # at SSC's size, holding every task's batches at once would not fit in memory
        memory_per_task.append({"task": i, "bits": strategy.memory_bits_analytic,
                                "bytes": strategy.memory_bytes_stored})
        log(f"after task {i} ({task.name}): accuracy per task " + " ".join(f"{a:.3f}" for a in matrix[-1]))

    # NeuroBench-style activity: the whole network on every task's test samples, and one training step
    test_index = [b for task in scenario.tasks for b in make_batches(task.test, EVAL_BATCH, drop_last=False)]
    write_json(folder / "neurobench.json",
               neurobench_record(inference_activity(net, input_batches(ds, test_index, device)), step_activity))
    write_csv(folder / "accuracy_matrix.csv",
              [{"after_task": i, **{f"task_{j}": round(a, 6) for j, a in enumerate(r)}} for i, r in enumerate(matrix)])
    summary = build_summary(cfg, ds, pre_dir, pre_config, scenario, evaluate, matrix, rows, strategy, replay_acc,
                            memory_per_task, trainable, net, pred, y, folder.name, baseline)
    if validation:
        summary["valid_accuracy_matrix"] = [[round(a, 6) for a in r] for r in valid_matrix]
        summary["valid_metrics"] = {k: round(v, 6) for k, v in
                                    metrics.run_metrics(valid_matrix, validation.counts).items()}
    summary["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    write_json(folder / "summary.json", summary)
    m = summary["metrics"]
    log(f"done in {summary['wall_seconds']:.1f} s: ACC {m['acc']:.4f}, forgetting {m['forgetting']:+.4f}, old "
        f"{m['old_after']:.4f}, new {m['new_after']:.4f}, all {m['all_after']:.4f}; memory "
        f"{strategy.memory_bits_analytic} bits analytic, {strategy.memory_bytes_stored} bytes stored")


def build_summary(cfg, ds, pre_dir, pre_config, scenario, evaluate, matrix, rows, strategy, replay_acc,
                  memory_per_task, trainable, net, pred, y, stamp, baseline=None) -> dict:
    """summary.json of a finished run (``baseline``: FWT's random-init accuracy per task, or None)."""
    last = rows[-1]
    last_task = [r for r in rows if r["task"] == last["task"]]
    # the paper's "up to" numbers: the last task's best measured epoch (--eval-every), chosen on the validation sets
    # when the split has them
    selected_on = "valid" if "valid_all_acc" in last else "test"
    measured = [r for r in last_task[1:] if r["all_acc"] != ""]
    best = max(measured or last_task, key=lambda r: r["valid_all_acc" if selected_on == "valid" else "all_acc"])
    epoch_seconds = [r["seconds"] for r in rows if r["epoch"] > 0]
    return {
        "stamp": stamp, "config": cfg.settings(),
        "data": ds.record(),
        "pretrained": str(pre_dir), "pretrained_config": pre_config["settings"],
        "tasks": [{"name": t.name, "new_classes": list(t.new_classes), "train": len(t.train), "test": len(t.test)}
                  for t in scenario.tasks],
        "accuracy_matrix": [[round(a, 6) for a in r] for r in matrix],
        "metrics": {k: round(v, 6) for k, v in metrics.run_metrics(matrix, evaluate.counts, baseline).items()},
        "random_init_accuracy": None if baseline is None else [round(b, 6) for b in baseline],
        "final": {k: last[k] for k in ("old_acc", "new_acc", "all_acc")},
        "best": {"epoch": best["epoch"], "selected_on": selected_on,
                 **{k: best[k] for k in ("old_acc", "new_acc", "all_acc")}},
        "replay_memory_accuracy": replay_acc,
        "memory_bits_analytic": strategy.memory_bits_analytic, "memory_bytes_stored": strategy.memory_bytes_stored,
        "memory": strategy.describe_memory(), "memory_per_task": memory_per_task,
        "learning_state": learning_state_of(strategy, value_bytes_of(cfg.precision)),
        "footprint": footprint_of(strategy, net, strategy.cut_depth(cfg), cfg.batch_size, ds.binned.nb_steps,
                                  value_bytes_of(cfg.precision)),
        "diagnostics": strategy.diagnostics(),
        "seconds_per_epoch": round(float(np.mean(epoch_seconds)), 4) if epoch_seconds else None,
        "per_class_accuracy": {str(int(c)): float((pred[y == c] == c).mean()) for c in np.unique(y)},
        "frozen_parameters": sorted(n for n, _ in net.named_parameters() if n not in trainable),
    }
