"""Finished runs, read back: one record per run folder, one summary row per run, and seed aggregation.

A finished continual-learning run is a folder ``RUNS/<scenario>/<stamp>/`` holding ``summary.json`` (written
last by :mod:`sccl.cl.engine`), ``epochs.csv`` and ``accuracy_matrix.csv``. A finished pretraining run is
``RUNS/pretrain/<split>/<id>_seed<seed>/`` with ``model.pt``, ``config.json`` and ``epochs.csv``.

Every number shown comes from the run's own files: ACC, BWT, forgetting, AIA, FWT and the pooled old / new / all
accuracies are the ``metrics`` of summary.json, the learning state its ``learning_state`` (computed by
:mod:`sccl.cl.metrics`, never recomputed here); the per-step curves use :mod:`sccl.cl.metrics` on the stored accuracy
matrix. A folder that cannot be read (bad JSON, missing keys, a matrix that does not fit its tasks) is left out
with a note, never a crash.

Aggregation: runs are grouped by their configuration without the seed; within a group each seed's values are
averaged over the held-out ids first, then the mean and the sample std (ddof 1) over seeds are shown,
n = seeds x ids. Two groups compared (compressed vs uncompressed latent replay) are paired by seed: each shared
seed's difference (over the ids both ran), then its mean ± std over seeds and a two-sided paired t-test at 5 %.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from sccl.cl import metrics, strategies
from sccl.cl.runs import RunConfig
from sccl.core.errors import SCCLError
from sccl.core.locks import folder_lock
from sccl.core.results import read_csv, read_json, write_csv
from sccl.data.provenance import LAYOUT_PREFIX, SHD_LABEL as REAL_LABEL, SYNTHETIC_LABEL
from sccl.data.splits import _LEGACY_SCENARIO


__all__ = ["SYNTHETIC_LABEL", "REAL_LABEL", "SCENARIOS", "SUMMARY_COLUMNS", "load_runs_in", "load_runs",
           "load_pretrain_runs", "epoch_rows_of", "run_row", "summary_rows", "seed_mean_std", "mean_std",
           "paired_differences", "paired_t", "paired_t_rejects", "group_key", "aggregate", "number"]


#: the scenario folders under RUNS, in the order the report shows them
SCENARIOS = ("sample_incremental", "class_incremental", "progressive", "speakers")
NB_STEPS_DEFAULT = 100  # time steps of a sample when a run's memory text does not say

#: summary.csv columns of the learning state (summary.json ``learning_state``, :func:`sccl.cl.metrics.learning_state`)
LEARNING_STATE_COLUMNS = {"replay_memory_bytes": "replay_memory_bytes", "regularizer_bytes": "regularizer_bytes",
                          "parameter_bytes": "parameter_bytes", "optimizer_bytes": "optimizer_bytes",
                          "learning_state_bytes": "total_bytes"}
#: summary.csv columns of the whole learner's bytes (summary.json ``footprint``, :mod:`sccl.cl.footprint`)
FOOTPRINT_COLUMNS = ("frozen_parameter_bytes", "activation_bytes", "activation_bytes_batch1", "batch_bytes",
                     "whole_learner_bytes", "whole_learner_bytes_batch1")
#: summary.csv columns of the run's activity (neurobench.json, :mod:`sccl.net.activity`): per sample
ACTIVITY_COLUMNS = ("synaptic_ops_dense", "synaptic_ops_effective", "activation_sparsity", "spikes_per_sample",
                    "train_step_synaptic_ops_effective")
SUMMARY_COLUMNS = [
    "scenario", "strategy", "held_out", "depth", "replay_batches", "replay_samples", "stored_steps", "compression",
    "seed", "epochs", "lr", "old_before", "old_after", "new_after", "all_after", "acc", "bwt", "forgetting", "aia",
    "fwt", "replay_memory_accuracy", "compression_lost", "spikes_per_window", "memory_bits", "memory_bytes",
    "memory_kb", *LEARNING_STATE_COLUMNS, "precision", *FOOTPRINT_COLUMNS, *ACTIVITY_COLUMNS, "seconds_per_epoch",
    "seconds", "split", "data", "options", "run",
]
METRIC_KEYS = ("old_before", "old_after", "new_after", "all_after", "acc", "bwt", "forgetting")
LATER_METRIC_KEYS = ("aia", "fwt")  # blank in the rows of runs written before they were measured

# config entries with their own column, or that name the id / seed, or that do not change results
_NOT_OTHER_SETTINGS = {"seed", "held_out", "device", "threads", "quiet", "pretrained", "scenario", "strategy",
                       "latent_depth", "replay_batches", "stored_steps", "compression", "split"}
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, SCCLError)


def number(x) -> float:
    """A float from a CSV or JSON value ('' and None -> NaN)."""
    if x is None or x == "" or isinstance(x, bool):
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _blank_none(x):
    return "" if x is None else x


def _read_epochs(folder: Path) -> list[dict]:
    path = Path(folder) / "epochs.csv"
    return read_csv(path) if path.is_file() else []


def _data_label(data: dict | None) -> str:
    """What the run's data was (:mod:`sccl.data.provenance`); records made before the label was kept say only whether
    the data was synthetic: any other is named by its file, not assumed to be SHD."""
    data = data or {}
    if data.get("label"):
        return data["label"]
    if data.get("synthetic"):
        return SYNTHETIC_LABEL
    path = Path(data.get("path") or "unknown")
    return LAYOUT_PREFIX + (f"{path.parent.name}/{path.name}" if path.parent.name else path.name)


def _memory_numbers(text) -> tuple[int | str, int]:
    """(samples held, time steps of a sample) from a memory description such as
    ``"64 x depth-1 spikes (200 units), 10/100 steps (1:10, or), ..."``."""
    text = text if isinstance(text, str) else ""
    samples = re.match(r"\s*(\d+) x ", text)
    steps = re.search(r"\d+/(\d+) steps", text)
    return (int(samples.group(1)) if samples else ""), (int(steps.group(1)) if steps else NB_STEPS_DEFAULT)


def options_text(options: dict | None) -> str:
    """A strategy's own settings as one cell: "ewc_lambda=100;fisher_samples=200"."""
    return ";".join(f"{k}={v}" for k, v in sorted((options or {}).items()))


def _memory_columns(config: dict, nb_steps: int) -> tuple:
    """(depth, replay batches, stored steps, compression) as the run's strategy writes them in epochs.csv, from
    its recorded settings (for runs without an epochs.csv); blanks for a strategy that is no longer registered."""
    try:
        cfg = RunConfig.from_settings(config)
    except (SCCLError, TypeError):
        return "", "", "", ""
    cls = strategies.REGISTRY[cfg.strategy]
    depth, columns = cls.cut_depth(cfg), cls.memory_columns(cfg, nb_steps)
    return ("" if depth is None else depth), columns["replay_batches"], columns["stored_steps"], columns["compression"]


def _activity_columns(folder: Path) -> dict:
    """The run's per-sample activity from its neurobench.json (blank cells for runs written before it was kept)."""
    path = folder / "neurobench.json"
    record = read_json(path) if path.is_file() else {}
    ops = record.get("synaptic_operations") or {}
    step = (record.get("training_step") or {}).get("synaptic_operations") or {}
    effective = lambda o: (o["Effective_MACs"] + o["Effective_ACs"]) if o else ""  # noqa: E731
    return {"synaptic_ops_dense": ops.get("Dense", ""), "synaptic_ops_effective": effective(ops),
            "activation_sparsity": _blank_none(record.get("activation_sparsity")),
            "spikes_per_sample": _blank_none(record.get("spikes_per_sample")),
            "train_step_synaptic_ops_effective": effective(step)}


def run_row(folder, summary: dict, epochs: list[dict] | None = None) -> dict:
    """The summary row (:data:`SUMMARY_COLUMNS`) of one finished run of any scenario. Depth, replay batches,
    stored steps and compression are those the run wrote in its epochs.csv (derived from the config when the
    file is missing); the metrics are summary.json's. Raises KeyError / TypeError for a damaged summary."""
    folder = Path(folder)
    c, m = summary["config"], summary["metrics"]
    strategy = c["strategy"]
    rows = _read_epochs(folder) if epochs is None else epochs
    first = rows[0] if rows else {}
    samples, nb_steps = _memory_numbers(summary.get("memory"))
    if first:
        depth, batches = first.get("depth", ""), first.get("replay_batches", "")
        stored, compression = first.get("stored_steps", ""), first.get("compression", "")
    else:
        depth, batches, stored, compression = _memory_columns(c, nb_steps)
    as_int = lambda x: "" if x in ("", None) else int(number(x))  # noqa: E731
    lost = (summary.get("diagnostics") or {}).get("compression") or {}  # what a spike memory's compression lost
    memory_bytes = summary.get("memory_bytes_stored", 0)
    state = summary.get("learning_state") or {}  # runs written before it was kept: blank cells
    return {
        "scenario": c["scenario"], "strategy": strategy, "held_out": _blank_none(c.get("held_out")),
        "depth": as_int(depth), "replay_batches": as_int(batches), "replay_samples": samples,
        "stored_steps": as_int(stored), "compression": compression, "seed": c["seed"],
        "epochs": c.get("epochs", ""), "lr": c.get("lr", ""),
        **{k: _blank_none(m[k]) for k in METRIC_KEYS}, **{k: _blank_none(m.get(k)) for k in LATER_METRIC_KEYS},
        "replay_memory_accuracy": _blank_none(summary.get("replay_memory_accuracy")),
        "compression_lost": _blank_none(lost.get("lost_fraction")),
        "spikes_per_window": _blank_none(lost.get("spikes_per_active_window")),
        "memory_bits": summary.get("memory_bits_analytic", 0), "memory_bytes": memory_bytes,
        "memory_kb": number(memory_bytes) / 1000,
        **{column: _blank_none(state.get(key)) for column, key in LEARNING_STATE_COLUMNS.items()},
        "precision": c.get("precision", "float32"),
        **{column: _blank_none((summary.get("footprint") or {}).get(column)) for column in FOOTPRINT_COLUMNS},
        **_activity_columns(folder),
        "seconds_per_epoch": _blank_none(summary.get("seconds_per_epoch")),
        "seconds": _blank_none(summary.get("wall_seconds")),
        "split": c.get("split", ""), "data": _data_label(summary.get("data")),
        "options": options_text(c.get("options")), "run": folder.name,
    }


def _record(folder: Path, summary: dict) -> dict:
    """Everything the tables and figures need of one run (``row``: its summary row)."""
    epochs = _read_epochs(folder)
    row = run_row(folder, summary, epochs)
    R = metrics.accuracy_matrix(summary["accuracy_matrix"])
    counts = np.array([int(t["test"]) for t in summary["tasks"]], dtype=np.int64)
    if R.shape != (len(counts), len(counts)):
        raise ValueError(f"accuracy matrix of shape {R.shape} for {len(counts)} tasks")
    correct = metrics.correct_counts(R, counts)
    everything = range(len(counts))
    curve = [{"task": int(number(r.get("task", 1))), "epoch": int(number(r["epoch"])),
              **{k: number(r.get(k)) for k in ("old_acc", "new_acc", "all_acc")}} for r in epochs]
    _, nb_steps = _memory_numbers(summary.get("memory"))
    return {
        "row": row, "config": summary["config"], "summary": summary, "folder": folder, "epochs": epochs,
        "variant": strategies.variant_of(row["strategy"], number(row["replay_batches"]), number(row["stored_steps"]),
                                         nb_steps, summary["config"].get("options")),
        "nb_steps": nb_steps, "matrix": R, "counts": counts, "curve": curve,
        "task_names": [str(t.get("name", j)) for j, t in enumerate(summary["tasks"])],
        "acc_steps": [metrics.average_accuracy(R, t) for t in everything],
        "all_steps": [metrics.pooled(correct[t], counts, everything) for t in everything],
    }


def load_runs_in(scenario_folder: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """(records, notes) of the finished runs of one scenario folder such as ``RUNS/sample_incremental``."""
    records, notes = [], []
    for path in sorted(Path(scenario_folder).glob("*/summary.json")):
        try:
            summary = read_json(path)
            records.append(_record(path.parent, summary))
        except _READ_ERRORS as exc:
            notes.append(f"`{path.parent}` could not be read ({type(exc).__name__}: {exc}); left out.")
    return records, notes


def load_runs(runs_dir: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """(records, notes) of every scenario folder under ``runs_dir`` (known scenarios first; ``pretrain`` is not
    a scenario)."""
    runs_dir = Path(runs_dir)
    others = sorted(p.name for p in runs_dir.glob("*/") if p.is_dir() and p.name not in SCENARIOS + ("pretrain",))
    records, notes = [], []
    for name in [*SCENARIOS, *others]:
        r, n = load_runs_in(runs_dir / name)
        records += r
        notes += n
    return records, notes


def epoch_rows_of(record: dict) -> list[dict]:
    """The run's epochs.csv rows as dicts (values as written)."""
    return [dict(r) for r in record["epochs"]]


def summary_rows(records: list[dict]) -> list[dict]:
    return [{k: rec["row"].get(k, "") for k in SUMMARY_COLUMNS} for rec in records]


# ----------------------------------------------------------------------------------------------
# pretraining runs


def _last_finite(rows: list[dict], key: str) -> float:
    values = [number(r.get(key)) for r in rows]
    values = [v for v in values if math.isfinite(v)]
    return values[-1] if values else float("nan")


def load_pretrain_runs(runs_dir: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """(records, notes) of the finished pretraining runs under ``runs_dir/pretrain``: each ``{"scenario",
    "split", "id", "held_out", "seed", "epochs", "test_acc", "train_acc", "data", "folder"}`` (accuracies of the
    last epoch that measured them)."""

    records, notes = [], []
    for model in sorted(Path(runs_dir).glob("pretrain/*/*/model.pt")):
        folder = model.parent
        try:
            config = read_json(folder / "config.json")
            s = config["settings"]
            rows = _read_epochs(folder)
            records.append({"scenario": _LEGACY_SCENARIO.get(s["scenario"], s["scenario"]),
                            "split": s.get("split", folder.parent.name), "id": folder.name.rsplit("_seed", 1)[0],
                            "held_out": _blank_none(s.get("held_out")), "seed": s["seed"],
                            "epochs": len(rows) or s.get("epochs", ""), "test_acc": _last_finite(rows, "test_acc"),
                            "train_acc": _last_finite(rows, "train_acc"), "data": _data_label(config.get("data")),
                            "folder": folder})
        except _READ_ERRORS as exc:
            notes.append(f"`{folder}` could not be read ({type(exc).__name__}: {exc}); left out.")
    return records, notes


# ----------------------------------------------------------------------------------------------
# aggregation over ids and seeds


def _other_settings(rec: dict) -> tuple:
    """Config settings not shown in their own column (lists as tuples), a strategy's own options included."""
    items = []
    config = dict(rec["config"])
    config.update(config.pop("options", None) or {})
    for k, v in config.items():
        if k in _NOT_OTHER_SETTINGS or isinstance(v, dict):
            continue
        items.append((k, tuple(v) if isinstance(v, list) else v))
    return tuple(sorted(items, key=lambda kv: kv[0]))


def group_key(rec: dict) -> tuple:
    """The configuration of a run without its seed and held-out id."""
    r = rec["row"]
    return (r["scenario"], r["split"], r["data"], r["strategy"], r["depth"], r["replay_batches"], r["stored_steps"],
            r["compression"], _other_settings(rec))


def seed_mean_std(records: list[dict], value) -> tuple[float, float, int]:
    """(mean, std, seeds): each seed's finite values averaged over ids first, then the mean and the sample std
    (ddof 1; NaN for one seed) of those per-seed means. ``value``: a ``row`` column name or a record -> float."""
    get = value if callable(value) else (lambda rec: rec["row"][value])
    by_seed = defaultdict(list)
    for rec in records:
        v = number(get(rec))
        if math.isfinite(v):
            by_seed[str(rec["row"]["seed"])].append(v)
    return mean_std([float(np.mean(by_seed[s])) for s in sorted(by_seed)])


def mean_std(values) -> tuple[float, float, int]:
    """(mean, sample std (ddof 1; NaN for one value), n) of per-seed values; (NaN, NaN, 0) for none."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan"), 0
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return float(np.mean(values)), std, len(values)


def paired_differences(first: list[dict], second: list[dict], value) -> list[float]:
    """Per seed that both groups ran (in seed order): the mean over the ids both ran, with finite values, of
    second - first. ``value``: as :func:`seed_mean_std`'s."""
    get = value if callable(value) else (lambda rec: rec["row"][value])

    def by_seed_and_id(records):
        out = defaultdict(dict)
        for rec in records:
            v = number(get(rec))
            if math.isfinite(v):
                out[str(rec["row"]["seed"])][str(rec["row"]["held_out"])] = v
        return out

    a, b = by_seed_and_id(first), by_seed_and_id(second)
    diffs = []
    for seed in sorted(set(a) & set(b)):
        ids = sorted(set(a[seed]) & set(b[seed]))
        if ids:
            diffs.append(float(np.mean([b[seed][i] - a[seed][i] for i in ids])))
    return diffs


#: two-sided 5 % critical values of Student's t by degrees of freedom; between entries the next smaller one's
#: (conservative), above 120 that of 120
T_CRITICAL_5 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
                10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
                19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
                28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def paired_t(differences) -> float:
    """The paired t statistic mean(d) / (std(d, ddof 1) / sqrt(n)); NaN below two pairs; 0 or ±inf when every
    difference is the same (0 when they are all 0)."""
    d = np.asarray(list(differences), dtype=float)
    if len(d) < 2:
        return float("nan")
    mean, std = float(np.mean(d)), float(np.std(d, ddof=1))
    if std == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / (std / math.sqrt(len(d)))


def paired_t_rejects(differences) -> bool | None:
    """Does a two-sided paired t-test at 5 % reject a zero mean difference (|t| above :data:`T_CRITICAL_5` at
    n - 1 degrees of freedom)? None below two pairs."""
    d = list(differences)
    t = paired_t(d)
    if math.isnan(t):
        return None
    df = len(d) - 1
    return abs(t) > T_CRITICAL_5[max(k for k in T_CRITICAL_5 if k <= df)]


def _order(variant: str) -> int:
    """The variant's place in the tables (:attr:`sccl.cl.strategies.base.Variant.rank`)."""
    found = strategies.VARIANTS.get(variant)
    return found.rank if found else strategies.base.Variant("", "").rank


def _sort_key(group: dict):
    scenario, split, data, strategy, depth, batches, stored, compression, other = group["key"]
    num = lambda x: -1.0 if x in ("", None) else number(x)  # noqa: E731
    where = SCENARIOS.index(scenario) if scenario in SCENARIOS else len(SCENARIOS)
    return (where, str(scenario), str(split), str(data), _order(group["variant"]), str(strategy), num(depth),
            num(batches), -num(stored), str(compression), repr(other))


def aggregate(records: list[dict]) -> list[dict]:
    """Groups of runs with the same configuration without the seed, in table order: each ``{"key", "runs",
    "row" (the first run's, for the config columns), "variant", "ids", "seeds"}``."""
    groups = defaultdict(list)
    for rec in records:
        groups[group_key(rec)].append(rec)
    out = [{"key": key, "runs": runs, "row": runs[0]["row"], "variant": runs[0]["variant"],
            "ids": sorted({r["row"]["held_out"] for r in runs}, key=str),
            "seeds": sorted({r["row"]["seed"] for r in runs}, key=str)} for key, runs in groups.items()]
    return sorted(out, key=_sort_key)


def gather(root: Path) -> None:
    """Rebuild ``root/all_runs.csv`` (every epoch row of every finished run) and ``root/summary.csv`` (one row
    per run, the report's schema)."""
    with folder_lock(root / ".locks" / "gather.lock"):  # two runs finishing together: one at a time
        records, notes = load_runs_in(root)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        if not records:
            return
        rows = [{"run": rec["folder"].name, **r} for rec in records for r in epoch_rows_of(rec)]
        columns = list(dict.fromkeys(k for r in rows for k in r))
        write_csv(root / "all_runs.csv", [{k: r.get(k, "") for k in columns} for r in rows], columns)
        table = summary_rows(records)
        write_csv(root / "summary.csv", table, list(table[0]))
