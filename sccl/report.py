"""Results report: every finished run in one CSV, paper-style tables in REPORT.md, and the paper's figures.

    python -m sccl.report --results-dir results          # reads results/runs, writes into results/

:func:`build_report` reads every finished run (a run folder with ``summary.json``) under ``RUNS``:

* ``RUNS/sample_incremental/<stamp>/`` and ``RUNS/class_incremental/<stamp>/`` (:mod:`sccl.continual`),
* ``RUNS/class_incremental_multiclasses/<stamp>/`` (:mod:`sccl.progressive`),
* ``RUNS/pretrain/<protocol>/<id>_seed<s>/`` (:mod:`sccl.pretraining`; only for the compression raster),

and writes, each file atomically,

* ``summary.csv``: one row per run across all protocols (columns in :data:`SUMMARY_COLUMNS`; accuracies are
  fractions, exactly the values of the runs' summary.json where they exist there);
* ``REPORT.md``: tables like the paper's (accuracy per strategy x depth x memory per protocol, compressed vs
  uncompressed latent replay, progressive accuracy per step and one accuracy matrix, continual-learning
  metrics), every number with its memory in KB, its protocol and its data, mean ± std over seeds;
* ``figures/<name>.png`` and ``.pdf``: Fig. 5a (accuracy vs epoch per replay size), Fig. 5b (accuracy vs latent
  depth), accuracy vs replay memory, Fig. 6 (progressive accuracy per new class) and a spike raster of the
  time compression. A figure without data is skipped with a note in the report.

When any run used synthetic data, the title and every table heading and caption say
"synthetic SHD-format data, not SHD".
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sccl.results import read_csv, read_json, write_csv, write_text

__all__ = [
    "METRIC_DEFINITIONS", "SYNTHETIC_LABEL", "SUMMARY_COLUMNS", "FIGURES", "build_report", "load_runs",
    "summary_rows", "two_task_metrics", "matrix_metrics", "seed_mean_std", "group_key", "aggregate",
    "raster_figure", "main",
]

SYNTHETIC_LABEL = "synthetic SHD-format data, not SHD"
REAL_LABEL = "SHD"
#: protocol name -> run folder under RUNS
PROTOCOL_FOLDERS = {"sample_incremental": "sample_incremental", "class_incremental": "class_incremental",
                    "progressive": "class_incremental_multiclasses"}
PROTOCOL_TITLES = {"sample_incremental": "Sample-incremental (new speaker)",
                   "class_incremental": "Class-incremental (new class)",
                   "progressive": "Progressive class-incremental (classes 0-9, then 10..19 one at a time)"}
ID_NAMES = {"sample_incremental": "speakers", "class_incremental": "classes", "progressive": "ids"}
STRATEGY_ORDER = ("naive", "no_replay", "rehearsal", "latent_replay", "latent_replay_subsampled")
STRATEGY_NAMES = {"naive": "naive", "no_replay": "no replay", "rehearsal": "rehearsal", "latent_replay": "LR",
                  "latent_replay_subsampled": "compressed LR"}
LATENT = ("latent_replay", "latent_replay_subsampled")
FIGURES = ("fig5a_accuracy_vs_epoch", "fig5b_accuracy_vs_depth", "accuracy_vs_memory", "fig6_progressive",
           "raster_compression")
NB_STEPS_DEFAULT = 100

SUMMARY_COLUMNS = [
    "protocol", "strategy", "id", "depth", "replay_batches", "replay_samples", "stored_steps", "compression",
    "seed", "epochs", "lr", "old_before", "old_after", "new_after", "all_after", "forgetting", "backward_transfer",
    "average_accuracy", "memory_bits", "memory_bytes", "memory_kb", "seconds", "split", "data", "run",
]

# config entries that are shown in their own column, identify the id / seed, or do not change results
_NOT_OTHER_SETTINGS = {"seed", "held_out", "device", "threads", "quiet", "pretrained", "scenario", "protocol",
                       "strategy", "latent_depth", "replay_batches", "latent_batches", "stored_steps", "compression"}

METRIC_DEFINITIONS = """\
Accuracies are top-1 on held-out test samples: in % in the tables, as fractions in `summary.csv`.

*Two-task protocols* (sample-incremental: one new speaker; class-incremental: one new class). "old" is the
pretraining test set (the speakers or classes seen in pretraining), "new" the new speaker's or class's test set,
"all" both together (sample-weighted); "before" is the pretrained model (epoch 0), "after" the model after the
last continual-learning epoch.

- ACC (average accuracy) = (old after + new after) / 2
- Forgetting = old before − old after (positive: the model forgot)
- BWT (backward transfer) = old after − old before (= −forgetting; negative: the model forgot)

*Progressive protocol* (step 0: classes 0-9 learned in pretraining; step i = 1..10: class 9 + i). R[i][j] is the
accuracy on step j's classes after learning step i, for i, j = 0..T (T = the last step, 10):

- ACC_T = mean_{j ≤ T} R[T][j] (the steps learned so far, each step weighted equally: step 0 counts once
  although it holds 10 classes)
- BWT_T = mean_{j < T} (R[T][j] − R[j][j])
- Forgetting_T = mean_{j < T} (max_{j ≤ m < T} R[m][j] − R[T][j]): the best accuracy on step j at any earlier
  step after it was learned, minus the last one (steps m < j, before step j was learned, do not count)
- ACC_0 = R[0][0]; BWT_0 and Forgetting_0 are undefined (shown as –).

*Mean ± std*: runs are grouped by their configuration without the seed. Within a group each seed's runs are
first averaged over the ids (speakers or classes); a table shows the mean ± sample standard deviation
(ddof = 1) of these per-seed means over seeds, and n = seeds × ids. A single seed shows the mean alone.

*Memory*: memory KB = the bytes the replay memory actually stores (`memory_bytes_stored`: bit-packed spikes,
counts in the smallest unsigned integer type, float32 (or float16) depth-0 currents; labels excluded) / 1000;
analytic KB = `memory_bits_analytic` / 8000 (samples × units × stored steps × bits per value).
Naive fine-tuning stores nothing (0 KB). Progressive runs report the memory after the last step."""


# ----------------------------------------------------------------------------------------------
# reading runs


def _num(x):
    """A float from a CSV/JSON value ('' and None -> nan)."""
    if x is None or x == "":
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _data_label(summary: dict) -> str:
    return SYNTHETIC_LABEL if (summary.get("data") or {}).get("synthetic") else REAL_LABEL


def _epoch_rows(folder: Path) -> list[dict]:
    path = folder / "epochs.csv"
    if not path.is_file():
        return []
    try:
        return read_csv(path)
    except (OSError, ValueError):
        return []


def two_task_metrics(old_before: float, old_after: float, new_after: float) -> dict:
    """ACC, forgetting and BWT of a two-task (pretrained -> one new speaker / class) run."""
    return {"average_accuracy": (old_after + new_after) / 2, "forgetting": old_before - old_after,
            "backward_transfer": old_after - old_before}


def matrix_metrics(matrix, T: int | None = None) -> dict:
    """ACC_T, BWT_T and forgetting_T of accuracy matrix ``matrix`` (R[i][j]; rows i = after step i) at step ``T``
    (default: the last row), as in :data:`METRIC_DEFINITIONS`; BWT and forgetting are NaN at T = 0."""
    R = np.asarray(matrix, dtype=float)
    if R.ndim != 2 or R.shape[0] == 0:
        raise ValueError(f"the accuracy matrix must be 2-D and non-empty, got shape {R.shape}")
    T = R.shape[0] - 1 if T is None else int(T)
    if not 0 <= T < R.shape[0] or R.shape[1] <= T:
        raise ValueError(f"step {T} is outside the {R.shape[0]} x {R.shape[1]} accuracy matrix")
    acc = float(np.mean(R[T, : T + 1]))
    if T == 0:
        return {"average_accuracy": acc, "backward_transfer": float("nan"), "forgetting": float("nan")}
    bwt = float(np.mean([R[T, j] - R[j, j] for j in range(T)]))
    forgetting = float(np.mean([R[j:T, j].max() - R[T, j] for j in range(T)]))
    return {"average_accuracy": acc, "backward_transfer": bwt, "forgetting": forgetting}


def _continual_record(protocol: str, folder: Path, s: dict) -> dict:
    c = s["config"]
    epochs = _epoch_rows(folder)
    first = epochs[0] if epochs else {}
    strategy = c["strategy"]
    if first:
        depth, stored, compression = first.get("depth", ""), first.get("stored_steps", ""), first.get("compression", "")
        batches = int(_num(first.get("latent_batches", c.get("replay_batches", 0))))
    else:  # no epochs.csv: derive what it would say from the config
        latent = strategy.startswith("latent")
        depth = c.get("latent_depth") if latent else ""
        stored = (c.get("stored_steps") or NB_STEPS_DEFAULT) if strategy != "naive" else ""
        compression = c.get("compression") if c.get("stored_steps") else "none"
        batches = c.get("replay_batches", 0) if strategy != "naive" else 0
    depth = "" if depth in ("", None) else int(_num(depth))
    stored = "" if stored in ("", None) else int(_num(stored))
    ob, oa, na = s["before"]["old_acc"], s["final"]["old_acc"], s["final"]["new_acc"]
    m = two_task_metrics(ob, oa, na)
    row = {
        "protocol": protocol, "strategy": strategy, "id": c["held_out"], "depth": depth,
        "replay_batches": batches, "replay_samples": (s.get("samples") or {}).get("replay", ""),
        "stored_steps": stored, "compression": compression, "seed": c["seed"], "epochs": c.get("epochs", ""),
        "lr": c.get("lr", ""), "old_before": ob, "old_after": oa, "new_after": na, "all_after": s["final"]["all_acc"],
        "forgetting": s.get("forgetting", round(m["forgetting"], 6)),
        "backward_transfer": round(m["backward_transfer"], 6), "average_accuracy": round(m["average_accuracy"], 6),
        "memory_bits": s.get("memory_bits_analytic", 0), "memory_bytes": s.get("memory_bytes_stored", 0),
        "memory_kb": s.get("memory_bytes_stored", 0) / 1000, "seconds": s.get("wall_seconds", ""),
        "split": c.get("protocol", ""), "data": _data_label(s), "run": folder.name,
    }
    curve = [{"epoch": int(_num(r["epoch"])), **{k: _num(r.get(k)) for k in ("old_acc", "new_acc", "all_acc")}}
             for r in epochs]
    return {"row": row, "config": c, "summary": s, "folder": folder, "curve": curve}


def _progressive_record(folder: Path, s: dict) -> dict:
    c = s["config"]
    R = s["accuracy_matrix"]
    m = matrix_metrics(R)
    T = len(R) - 1
    k = int(c.get("latent_batches", 0))
    S = c.get("stored_steps")
    strategy = "no_replay" if k == 0 else ("latent_replay_subsampled" if S else "latent_replay")
    per_step = s.get("memory_per_step") or [{}]
    all20 = [float("nan")] * len(R)
    for r in _epoch_rows(folder):  # the last epoch of each step: accuracy on all 20 classes
        step = int(_num(r["step"]))
        if 0 <= step < len(all20):
            all20[step] = _num(r["all_acc"])
    row = {
        "protocol": "progressive", "strategy": strategy, "id": "", "depth": c.get("latent_depth", ""),
        "replay_batches": k, "replay_samples": per_step[-1].get("samples", ""),
        "stored_steps": (S or NB_STEPS_DEFAULT) if k else "", "compression": c.get("compression") if S else "none",
        "seed": c["seed"], "epochs": c.get("epochs", ""), "lr": c.get("lr", ""),
        "old_before": R[0][0], "old_after": R[T][0],
        "new_after": round(float(np.mean(R[T][1:T + 1])), 6) if T > 0 else float("nan"),
        "all_after": s.get("final_accuracy_all_classes", float("nan")),
        "forgetting": round(m["forgetting"], 6), "backward_transfer": round(m["backward_transfer"], 6),
        "average_accuracy": round(m["average_accuracy"], 6),
        "memory_bits": s.get("memory_bits_analytic", 0), "memory_bytes": s.get("memory_bytes_stored", 0),
        "memory_kb": s.get("memory_bytes_stored", 0) / 1000, "seconds": s.get("wall_seconds", ""),
        "split": c.get("protocol", ""), "data": _data_label(s), "run": folder.name,
    }
    acc_steps = [matrix_metrics(R, t)["average_accuracy"] for t in range(len(R))]
    return {"row": row, "config": c, "summary": s, "folder": folder, "matrix": R, "acc_steps": acc_steps,
            "all20_steps": all20, "steps": s.get("steps") or [[j] for j in range(len(R))]}


def load_runs(runs_dir: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """(records of every finished run, notes on run folders that could not be read)."""
    runs_dir = Path(runs_dir)
    records, notes = [], []
    for protocol, sub in PROTOCOL_FOLDERS.items():
        for path in sorted((runs_dir / sub).glob("*/summary.json")):
            try:
                s = read_json(path)
                rec = _progressive_record(path.parent, s) if protocol == "progressive" else \
                    _continual_record(protocol, path.parent, s)
            except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                notes.append(f"`{path.parent}` could not be read ({type(exc).__name__}: {exc}); left out.")
                continue
            records.append(rec)
    return records, notes


def summary_rows(records: list[dict]) -> list[dict]:
    return [{k: r["row"].get(k, "") for k in SUMMARY_COLUMNS} for r in records]


# ----------------------------------------------------------------------------------------------
# aggregation over ids and seeds


def _other_settings(rec: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in rec["config"].items() if k not in _NOT_OTHER_SETTINGS
                        and not isinstance(v, (dict, list))))


def group_key(rec: dict) -> tuple:
    r = rec["row"]
    return (r["protocol"], r["split"], r["data"], r["strategy"], r["depth"], r["replay_batches"], r["stored_steps"],
            r["compression"], _other_settings(rec))


def seed_mean_std(records: list[dict], value) -> tuple[float, float, int]:
    """(mean, std, seeds): each seed's finite values averaged over ids first, then the mean and the sample std
    (ddof 1; NaN for one seed) of those per-seed means. ``value``: a ``row`` column name or a record -> float."""
    get = value if callable(value) else (lambda rec: rec["row"][value])
    by_seed = defaultdict(list)
    for rec in records:
        v = _num(get(rec))
        if math.isfinite(v):
            by_seed[rec["row"]["seed"]].append(v)
    means = [float(np.mean(v)) for _, v in sorted(by_seed.items(), key=lambda kv: str(kv[0]))]
    if not means:
        return float("nan"), float("nan"), 0
    std = float(np.std(means, ddof=1)) if len(means) > 1 else float("nan")
    return float(np.mean(means)), std, len(means)


def _sort_key(key: tuple):
    protocol, split, data, strategy, depth, batches, stored, compression, other = key
    order = STRATEGY_ORDER.index(strategy) if strategy in STRATEGY_ORDER else len(STRATEGY_ORDER)
    num = lambda x: -1 if x in ("", None) else float(x)  # noqa: E731
    return (list(PROTOCOL_FOLDERS).index(protocol), str(split), str(data), order, num(depth), num(batches),
            -num(stored), str(compression), str(other))


def aggregate(records: list[dict]) -> list[dict]:
    """Groups of runs with the same configuration without the seed, sorted as the tables show them:
    each ``{"key", "runs", "ids", "seeds", "row"}`` (``row``: the first run's row, for the config columns)."""
    groups = defaultdict(list)
    for rec in records:
        groups[group_key(rec)].append(rec)
    out = []
    for key in sorted(groups, key=_sort_key):
        runs = groups[key]
        out.append({"key": key, "runs": runs, "row": runs[0]["row"],
                    "ids": sorted({r["row"]["id"] for r in runs}, key=str),
                    "seeds": sorted({r["row"]["seed"] for r in runs}, key=str)})
    return out


# ----------------------------------------------------------------------------------------------
# formatting


def _fmt_pct(stat: tuple[float, float, int], digits: int = 2) -> str:
    mean, std, n = stat
    if not math.isfinite(mean):
        return "–"
    text = f"{100 * mean:.{digits}f}"
    if n > 1 and math.isfinite(std):
        text += f" ± {100 * std:.{digits}f}"
    return text


def _fmt_kb(kb: float) -> str:
    if not math.isfinite(kb):
        return "–"
    if kb == 0:
        return "0"
    return f"{kb:,.3f}" if kb < 10 else f"{kb:,.1f}"


def _blank(x) -> str:
    return "–" if x in ("", None) or (isinstance(x, float) and not math.isfinite(x)) else str(x)


def _ratio_text(row: dict) -> str:
    S = row["stored_steps"]
    if S in ("", None) or row["strategy"] == "naive":
        return "–"
    return f"{S}" if row["compression"] == "none" else f"{S} ({row['compression']})"


def _n_text(g: dict) -> str:
    ids = [i for i in g["ids"] if i != ""]
    return f"{len(g['seeds'])} × {len(ids)}" if ids else f"{len(g['seeds'])}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _differing_settings(groups: list[dict]) -> set[str]:
    """Other config settings whose value is not the same in every group of a table (shown in a column)."""
    values = defaultdict(set)
    for g in groups:
        for k, v in g["key"][-1]:
            values[k].add(repr(v))
    return {k for k, v in values.items() if len(v) > 1}


def _other_text(g: dict, keys: set[str]) -> str:
    other = dict(g["key"][-1])
    return ", ".join(f"{k}={other.get(k, '–')}" for k in sorted(keys)) or "–"


# ----------------------------------------------------------------------------------------------
# figures


class _Skip(Exception):
    """A figure whose data is missing: skipped, with the reason noted in the report."""


@contextmanager
def _style():
    import matplotlib.style

    name = "seaborn-v0_8-whitegrid"
    with matplotlib.style.context(name if name in matplotlib.style.available else "default"):
        yield


def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_stem: str | os.PathLike) -> list[Path]:
    """``out_stem``.png and .pdf, each written under a temporary name and renamed."""
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "pdf"):
        final = out_stem.with_name(f"{out_stem.name}.{ext}")
        tmp = out_stem.with_name(f"{out_stem.name}.tmp{os.getpid()}.{ext}")
        try:
            fig.savefig(tmp, format=ext, dpi=150)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(final)
    return written


def _data_suffix(records) -> str:
    return f" [{SYNTHETIC_LABEL}]" if any(r["row"]["data"] == SYNTHETIC_LABEL for r in records) else ""


def _mean_curve(runs: list[dict], key: str = "all_acc") -> tuple[np.ndarray, np.ndarray]:
    per_epoch = defaultdict(list)
    for rec in runs:
        for p in rec["curve"]:
            if math.isfinite(p[key]):
                per_epoch[p["epoch"]].append(p[key])
    epochs = np.array(sorted(per_epoch))
    return epochs, np.array([100 * np.mean(per_epoch[e]) for e in epochs])


def _replay_size(rec: dict):
    r = rec["row"]
    return r["replay_samples"] if r["replay_samples"] not in ("", None) else r["replay_batches"]


def _most_common(values):
    return Counter(values).most_common(1)[0][0]


def _fig5a(records, out_stem) -> tuple[list[Path], str]:
    from matplotlib.ticker import MaxNLocator

    panels = []
    for protocol in ("sample_incremental", "class_incremental"):
        lr = [r for r in records if r["row"]["protocol"] == protocol and r["row"]["strategy"] in LATENT and r["curve"]]
        if lr:
            panels.append((protocol, lr))
    if not panels:
        raise _Skip("no sample- or class-incremental latent-replay runs with an epochs.csv")
    captions = []
    with _style():
        fig = _new_figure((6.2 * len(panels), 4.6))
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
        for ax, (protocol, lr) in zip(axes, panels):
            setting = _most_common((r["row"]["depth"], r["row"]["stored_steps"], r["row"]["compression"]) for r in lr)
            chosen = [r for r in lr
                      if (r["row"]["depth"], r["row"]["stored_steps"], r["row"]["compression"]) == setting]
            sizes = sorted({_replay_size(r) for r in chosen}, key=float)
            colors = _palette(len(sizes))
            for color, size in zip(colors, sizes):
                runs = [r for r in chosen if _replay_size(r) == size]
                ep, acc = _mean_curve(runs)
                ax.plot(ep, acc, marker="o", ms=3, lw=1.6, color=color, label=f"{size} replayed latents")
            ids = {r["row"]["id"] for r in chosen}
            naive = [r for r in records if r["row"]["protocol"] == protocol and r["row"]["strategy"] == "naive"
                     and r["curve"]]
            naive = [r for r in naive if r["row"]["id"] in ids] or naive
            if naive:
                ep, acc = _mean_curve(naive)
                ax.plot(ep, acc, ls="--", lw=1.4, color="0.25", label="naive fine-tuning")
            base = [p["all_acc"] for r in chosen for p in r["curve"] if p["epoch"] == 0 and math.isfinite(p["all_acc"])]
            if base:
                ax.axhline(100 * np.mean(base), ls=":", lw=1.4, color="0.45", label="pretrained (epoch 0)")
            depth, S, comp = setting
            comp_text = "uncompressed" if comp == "none" else f"S = {S} ({comp})"
            ax.set_title(f"{PROTOCOL_TITLES[protocol]}\nLR at depth {depth}, {comp_text}", fontsize=10)
            ax.set_xlabel("epoch (0 = pretrained model)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("accuracy on old + new test samples (%)")
            ax.legend(fontsize=8, loc="best")
            captions.append(f"{PROTOCOL_TITLES[protocol].split(' (')[0].lower()}: depth {depth}, {comp_text}, "
                            f"replay sizes {', '.join(map(str, sizes))}, mean over {len(ids)} id(s) and seeds")
        fig.suptitle("Fig. 5a: accuracy vs epoch per replay size" + _data_suffix(records), fontsize=11)
        written = _save(fig, out_stem)
    return written, "; ".join(captions)


def _palette(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.05, 0.85, max(n, 1))][:n] if n > 1 else [cmap(0.3)]


def _fig5b(records, out_stem) -> tuple[list[Path], str]:
    panels = []
    for protocol in ("sample_incremental", "class_incremental"):
        lr = [r for r in records if r["row"]["protocol"] == protocol and r["row"]["strategy"] in LATENT]
        if lr:
            panels.append((protocol, lr))
    if not panels:
        raise _Skip("no sample- or class-incremental latent-replay runs")
    captions = []
    with _style():
        fig = _new_figure((6.0 * len(panels), 4.6))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (protocol, lr) in zip(axes, panels):
            setting = _most_common((r["row"]["stored_steps"], r["row"]["compression"]) for r in lr)
            chosen = [r for r in lr if (r["row"]["stored_steps"], r["row"]["compression"]) == setting]
            sizes = sorted({_replay_size(r) for r in chosen}, key=float)
            for color, size in zip(_palette(len(sizes)), sizes):
                depths, means, stds = [], [], []
                for d in range(4):
                    runs = [r for r in chosen if _replay_size(r) == size and r["row"]["depth"] == d]
                    if runs:
                        m, s, _ = seed_mean_std(runs, "all_after")
                        depths.append(d), means.append(100 * m), stds.append(100 * s if math.isfinite(s) else 0.0)
                ax.errorbar(depths, means, yerr=stds, marker="o", capsize=3, lw=1.6, color=color,
                            label=f"{size} replayed latents")
            S, comp = setting
            comp_text = "uncompressed" if comp == "none" else f"S = {S} ({comp})"
            ax.set_xticks(range(4))
            ax.set_xlim(-0.3, 3.3)
            ax.set_title(f"{PROTOCOL_TITLES[protocol]}, {comp_text}", fontsize=10)
            ax.set_xlabel("latent depth (0 = layer-1 input currents, 1-3 = spikes of hidden layer 1-3)")
            ax.set_ylabel("final accuracy on old + new test samples (%)")
            ax.legend(fontsize=8, loc="best")
            captions.append(f"{PROTOCOL_TITLES[protocol].split(' (')[0].lower()}: {comp_text}")
        fig.suptitle("Fig. 5b: final accuracy vs latent depth per replay size (error bars: std over seeds)"
                     + _data_suffix(records), fontsize=11)
        written = _save(fig, out_stem)
    return written, "; ".join(captions)


_MEM_STYLE = {"rehearsal": ("s", "tab:red"), "latent_replay": ("o", "tab:blue"),
              "latent_replay_subsampled": ("^", "tab:green")}


def _fig_memory(records, out_stem) -> tuple[list[Path], str]:
    panels = []
    for protocol in ("sample_incremental", "class_incremental"):
        runs = [r for r in records if r["row"]["protocol"] == protocol and r["row"]["strategy"] in _MEM_STYLE
                and _num(r["row"]["memory_bytes"]) > 0]
        if runs:
            panels.append((protocol, runs))
    if not panels:
        raise _Skip("no rehearsal or latent-replay runs with a stored memory")
    with _style():
        fig = _new_figure((6.0 * len(panels), 4.8))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (protocol, runs) in zip(axes, panels):
            for strategy, (marker, color) in _MEM_STYLE.items():
                groups = aggregate([r for r in runs if r["row"]["strategy"] == strategy])
                if not groups:
                    continue
                xs = [seed_mean_std(g["runs"], "memory_kb")[0] for g in groups]
                ys = [100 * seed_mean_std(g["runs"], "all_after")[0] for g in groups]
                ax.scatter(xs, ys, marker=marker, s=46, color=color, edgecolor="k", lw=0.5,
                           label=STRATEGY_NAMES[strategy], zorder=3)
                for g, x, y in zip(groups, xs, ys):
                    r = g["row"]
                    tag = (f"d{r['depth']} " if r["depth"] != "" else "") + f"n{r['replay_batches']}"
                    if r["compression"] != "none":
                        tag += f" S{r['stored_steps']}"
                    ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            naive = [r for r in records if r["row"]["protocol"] == protocol and r["row"]["strategy"] == "naive"]
            if naive:
                m = seed_mean_std(naive, "all_after")[0]
                ax.axhline(100 * m, ls="--", color="0.3", lw=1.2, label="naive (0 KB)")
            ax.set_xscale("log")
            ax.set_title(PROTOCOL_TITLES[protocol], fontsize=10)
            ax.set_xlabel("replay memory actually stored (KB, log scale)")
            ax.set_ylabel("final accuracy on old + new test samples (%)")
            ax.legend(fontsize=8, loc="best")
        fig.suptitle("Final accuracy vs replay memory (labels: depth d, batches n, stored steps S)"
                     + _data_suffix(records), fontsize=11)
        written = _save(fig, out_stem)
    return written, ", ".join(PROTOCOL_TITLES[p].split(" (")[0].lower() for p, _ in panels)


def _fig6(records, out_stem) -> tuple[list[Path], str]:
    prog = [r for r in records if r["row"]["protocol"] == "progressive"]
    if not prog:
        raise _Skip("no progressive runs")
    groups = aggregate(prog)
    with _style():
        fig = _new_figure((8.0, 4.8))
        ax = fig.subplots()
        labels = None
        for color, g in zip(_palette(len(groups)), groups):
            n = min(len(r["acc_steps"]) for r in g["runs"])
            steps = np.arange(n)
            acc = [100 * seed_mean_std(g["runs"], lambda r, t=t: r["acc_steps"][t])[0] for t in range(n)]
            all20 = [100 * seed_mean_std(g["runs"], lambda r, t=t: r["all20_steps"][t])[0] for t in range(n)]
            name = _config_name(g["row"])
            ax.plot(steps, acc, marker="o", lw=1.7, color=color, label=f"{name}: classes learned so far (ACC)")
            ax.plot(steps, all20, marker="s", ms=4, ls="--", lw=1.2, color=color, label=f"{name}: all 20 classes")
            labels = labels or ["0-9" if len(c) > 1 else str(c[0]) for c in g["runs"][0]["steps"][:n]]
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_xlabel("after learning class (step 0: pretrained on classes 0-9)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7, loc="best")
        ax.set_title("Fig. 6: progressive accuracy after each new class" + _data_suffix(records), fontsize=11)
        written = _save(fig, out_stem)
    return written, f"{len(groups)} progressive configuration(s)"


def _config_name(row: dict) -> str:
    name = STRATEGY_NAMES.get(row["strategy"], row["strategy"])
    if row["depth"] != "":
        name += f" d{row['depth']}"
    if row["strategy"] != "naive":
        name += f" n{row['replay_batches']}"
    if row["compression"] not in ("none", ""):
        name += f" S{row['stored_steps']} {row['compression']}"
    return name


def raster_figure(pretrain_folder, out_stem, depth: int = 1, stored_steps: int = 10, sample: int = 0,
                  mode: str = "or") -> list[Path]:
    """Spike raster of one sample (index ``sample`` of the pretraining run's data file): its input spikes, its
    depth-``depth`` latent, the latent compressed to ``stored_steps`` steps (``mode`` OR / sum per window) and
    un-compressed again, as the replay memory stores and replays it. Writes ``out_stem``.png and .pdf."""
    import torch
    from matplotlib.ticker import MaxNLocator

    from sccl.pretraining import load_pretrained
    from sccl.replay import compress, kind_for_depth, uncompress
    from sccl.training import load_dataset, raw_batches

    folder = Path(pretrain_folder)
    net, _, config = load_pretrained(folder)
    data = config["data"]
    kw = {k: data[k] for k in ("nb_steps", "max_time") if k in data}
    ds = load_dataset(data["path"], **kw)
    if not 0 <= sample < len(ds.labels):
        raise ValueError(f"sample {sample} is outside the {len(ds.labels)} samples of {data['path']}")
    batch = raw_batches(ds, [np.array([sample])], torch.device("cpu"))[0]
    x = batch.x.to_dense()[0].numpy()  # (T, 700)
    z = net.latents(batch.x, depth)  # (1, T, H)
    kind = kind_for_depth(depth)
    T = z.shape[1]
    c = compress(z, stored_steps, mode, kind)
    u = uncompress(c, T, mode, kind)
    w = T // stored_steps
    bin_ms = 1000 * float(data.get("max_time", 1.4)) / T
    synthetic = bool(data.get("synthetic"))
    what = "spikes" if kind == "spikes" else "input currents"
    layer = f"hidden layer {depth}" if depth else "layer 1"

    with _style():
        fig = _new_figure((8.0, 10.0))
        axes = fig.subplots(4, 1, height_ratios=[1.6, 1, 1, 1])

        def raster(ax, a, title, ylabel, x_scale=1.0, x_label=None):
            a = np.asarray(a)
            if kind == "currents" and a is not x:
                lim = float(np.abs(a).max()) or 1.0
                im = ax.imshow(a.T, aspect="auto", origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim,
                               interpolation="nearest", extent=(-0.5 * x_scale, (a.shape[0] - 0.5) * x_scale,
                                                                -0.5, a.shape[1] - 0.5))
                fig.colorbar(im, ax=ax, label="current (a.u.)", pad=0.01)
                ax.grid(False)
            else:
                t, n = np.nonzero(a)
                size = np.clip(a[t, n], 1, None) * 4 if a.size else []
                ax.scatter(t * x_scale, n, s=size, marker="|", color="k", lw=0.8)
                ax.set_ylim(-0.5, a.shape[1] - 0.5)
            ax.set_xlim(-0.5 * x_scale, (a.shape[0] - 0.5) * x_scale)
            ax.set_title(title, fontsize=9.5)
            ax.set_ylabel(ylabel)
            ax.set_xlabel(x_label or f"time step ({bin_ms:.0f} ms bins)")

        raster(axes[0], x, f"input spikes: {int(x.sum())} spikes (counts) on {x.shape[1]} channels x {T} steps",
               "input channel")
        raster(axes[1], z[0].numpy(), f"latent at depth {depth}: {layer} {what}, {T} steps", "unit")
        how = (f"{mode.upper()} of the spikes" if kind == "spikes" and mode == "or" else
               "spike count" if kind == "spikes" else "sum of the currents") + f" in each window of {w} steps"
        raster(axes[2], c[0].numpy(), f"compressed: {stored_steps} stored steps (1:{w}, {how})", "unit",
               x_label=f"stored step (window of {w} time steps)")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        raster(axes[3], u[0].numpy(), "un-compressed for replay: " + (
               "each window's count as a burst of spikes from its first step" if kind == "spikes" and mode == "sum"
               else "each window's value at its first step, zeros elsewhere"),
               "unit")
        title = (f"Latent compression of sample {sample} (class {int(ds.labels[sample])}, "
                 f"speaker {int(ds.speakers[sample])}), model {folder.name}")
        if synthetic:
            title += f"\n[{SYNTHETIC_LABEL}]"
        fig.suptitle(title, fontsize=11)
        return _save(fig, out_stem)


def _fig_raster(records, runs_dir: Path, out_stem) -> tuple[list[Path], str]:
    candidates = sorted(p.parent for p in (runs_dir / "pretrain").glob("*/*/model.pt")
                        if (p.parent / "config.json").is_file() and (p.parent / "split.npz").is_file())
    if not candidates:
        raise _Skip(f"no finished pretraining run under {runs_dir / 'pretrain'}")
    candidates.sort(key=lambda p: (not p.name.startswith("speaker"), str(p)))
    lr = [r["row"] for r in records if r["row"]["strategy"] in LATENT]
    lr = [r for r in lr if r["protocol"] == "sample_incremental"] or lr
    depth = _most_common(r["depth"] for r in lr) if lr else 1
    compressed = [r["stored_steps"] for r in lr if r["compression"] != "none" and r["stored_steps"] != ""]
    S = _most_common(compressed) if compressed else 10
    for folder in candidates:
        try:
            data_path = Path(read_json(folder / "config.json")["data"]["path"])
        except (OSError, ValueError, KeyError):
            continue
        if data_path.is_file():
            written = raster_figure(folder, out_stem, depth=int(depth), stored_steps=int(S), sample=0)
            return written, f"model `{folder.name}`, depth {depth}, S = {S} (OR), sample 0 of `{data_path}`"
    raise _Skip("the data files of the pretrained models under runs/pretrain are missing")


# ----------------------------------------------------------------------------------------------
# the report


def _label_of(records) -> str:
    labels = {r["row"]["data"] for r in records}
    if labels == {SYNTHETIC_LABEL}:
        return SYNTHETIC_LABEL
    if SYNTHETIC_LABEL in labels:
        return f"{REAL_LABEL} and {SYNTHETIC_LABEL} (see the data column)"
    return REAL_LABEL


def _protocol_table(groups, protocol, label, number) -> str:
    ids = ID_NAMES[protocol]
    other = _differing_settings(groups)
    header = ["strategy", "depth", "replay batches", "replayed samples", "stored steps S (compr.)",
              f"n (seeds × {ids})",
              "old before", "old after", "new after", "all after", "forgetting (pp)", "memory KB", "analytic KB",
              "split", "data"] + (["other settings"] if other else [])
    rows = []
    for g in groups:
        r = g["row"]
        kb = seed_mean_std(g["runs"], "memory_kb")[0]
        analytic = seed_mean_std(g["runs"], lambda rec: _num(rec["row"]["memory_bits"]) / 8000)[0]
        rows.append([STRATEGY_NAMES.get(r["strategy"], r["strategy"]), _blank(r["depth"]),
                     _blank(r["replay_batches"]) if r["strategy"] != "naive" else "–", _blank(r["replay_samples"]),
                     _ratio_text(r), _n_text(g)]
                    + [_fmt_pct(seed_mean_std(g["runs"], k)) for k in ("old_before", "old_after", "new_after",
                                                                       "all_after", "forgetting")]
                    + [_fmt_kb(kb), _fmt_kb(analytic), r["split"], r["data"]]
                    + ([_other_text(g, other)] if other else []))
    caption = (f"**Table {number}.** {PROTOCOL_TITLES[protocol]}: accuracy (%) per strategy, latent depth and replay "
               f"memory; protocol {protocol.replace('_', '-')}; data: {label}. Mean ± std over seeds of the mean over "
               f"{ids}; forgetting = old before − old after in percentage points; memory in KB (1 KB = 1000 B).")
    return caption + "\n\n" + _md_table(header, rows)


def _compression_table(groups, label, number) -> str | None:
    def base(g):
        protocol, split, data, strategy, depth, batches, stored, compression, other = g["key"]
        other = tuple((k, v) for k, v in other if k != "lr")
        return (protocol, split, data, depth, batches, other)

    uncompressed = defaultdict(list)
    for g in groups:
        if g["row"]["strategy"] == "latent_replay":
            uncompressed[base(g)].append(g)
    rows = []
    for g in groups:
        if g["row"]["strategy"] != "latent_replay_subsampled" or base(g) not in uncompressed:
            continue
        u = max(uncompressed[base(g)], key=lambda x: len(x["runs"]))
        r = g["row"]
        au, ac = seed_mean_std(u["runs"], "all_after"), seed_mean_std(g["runs"], "all_after")
        ku, kc = seed_mean_std(u["runs"], "memory_kb")[0], seed_mean_std(g["runs"], "memory_kb")[0]
        delta = 100 * (ac[0] - au[0]) if math.isfinite(ac[0]) and math.isfinite(au[0]) else float("nan")
        ratio = f"{ku / kc:.1f}×" if kc > 0 and math.isfinite(ku) else "–"
        rows.append([r["protocol"].replace("_", "-"), _blank(r["depth"]), _blank(r["replay_batches"]),
                     f"{r['stored_steps']} (1:{NB_STEPS_DEFAULT // int(r['stored_steps'])}, {r['compression']})"
                     if r["stored_steps"] not in ("", 0) else "–",
                     f"{_n_text(u)} / {_n_text(g)}", _fmt_pct(au), _fmt_pct(ac),
                     f"{delta:+.2f}" if math.isfinite(delta) else "–",
                     _fmt_pct(seed_mean_std(u["runs"], "old_after")), _fmt_pct(seed_mean_std(g["runs"], "old_after")),
                     _fmt_kb(ku), _fmt_kb(kc), ratio, r["data"]])
    if not rows:
        return None
    header = ["protocol", "depth", "replay batches", "S (ratio, mode)", "n LR / n cLR", "all after: LR",
              "all after: compressed LR", "Δ (pp)", "old after: LR", "old after: compressed LR", "memory KB: LR",
              "memory KB: compressed LR", "memory ratio", "data"]
    caption = (f"**Table {number}.** Compressed vs uncompressed latent replay at the same depth and number of replay "
               f"batches (the learning rate may differ: the scripts' defaults do); accuracy in % (progressive: final "
               f"accuracy on all 20 classes), Δ = compressed − uncompressed, memory ratio = uncompressed / compressed "
               f"stored bytes; data: {label}.")
    return caption + "\n\n" + _md_table(header, rows)


def _progressive_tables(groups, label, number) -> tuple[str, int]:
    n_steps = max(len(r["acc_steps"]) for g in groups for r in g["runs"])
    step_names = []
    for g in groups:
        for r in g["runs"]:
            if len(r["steps"]) == n_steps:
                step_names = ["0-9" if len(c) > 1 else f"+{c[0]}" for c in r["steps"]]
                break
        if step_names:
            break
    step_names = step_names or [str(t) for t in range(n_steps)]
    other = _differing_settings(groups)
    head = ["config", "n (seeds)"]
    out = []
    rows_acc, rows_all = [], []
    for g in groups:
        r = g["row"]
        name = [_config_name(r) + (f" ({_other_text(g, other)})" if other else ""), _n_text(g)]
        acc = [_fmt_pct(seed_mean_std(g["runs"], lambda rec, t=t: rec["acc_steps"][t] if t < len(rec["acc_steps"])
                                      else float("nan")), 1) for t in range(n_steps)]
        all20 = [_fmt_pct(seed_mean_std(g["runs"], lambda rec, t=t: rec["all20_steps"][t]
                                        if t < len(rec["all20_steps"]) else float("nan")), 1) for t in range(n_steps)]
        kb = _fmt_kb(seed_mean_std(g["runs"], "memory_kb")[0])
        rows_acc.append(name + acc + [_fmt_pct(seed_mean_std(g["runs"], "all_after"), 1), kb, r["data"]])
        rows_all.append(name + all20 + [kb, r["data"]])
    out.append(f"**Table {number}.** Progressive protocol: ACC after each step (%), the mean accuracy over the steps "
               f"learned so far (row mean of the accuracy matrix over j ≤ i); last columns: final accuracy on all 20 "
               f"classes and the final replay memory; mean ± std over seeds; data: {label}.\n\n"
               + _md_table(head + step_names + ["final all 20", "memory KB", "data"], rows_acc))
    out.append(f"**Table {number + 1}.** Progressive protocol: accuracy on all 20 classes' test samples after the last "
               f"epoch of each step (%; step 0 is not measured on all 20 classes); mean ± std over seeds; "
               f"data: {label}.\n\n" + _md_table(head + step_names + ["memory KB", "data"], rows_all))
    g = max(groups, key=lambda x: (len(x["runs"]), -groups.index(x)))
    runs = [r for r in g["runs"] if len(r["matrix"]) == len(g["runs"][0]["matrix"])]
    M = np.mean([np.asarray(r["matrix"], dtype=float) for r in runs], axis=0)
    names = ["0-9" if len(c) > 1 else str(c[0]) for c in runs[0]["steps"]]
    mrows = [[f"after step {i} ({names[i] if i < len(names) else i})"]
             + [f"{100 * v:.1f}" if j <= i else f"({100 * v:.1f})" for j, v in enumerate(row)]
             for i, row in enumerate(M)]
    out.append(f"**Table {number + 2}.** Accuracy matrix R[i][j] (%) of {_config_name(g['row'])} (mean over "
               f"{len(runs)} seed(s)): rows = after learning step i, columns = accuracy on step j's classes; "
               f"entries in parentheses are steps not learned yet; data: {g['row']['data']}"
               + (f" ({label})" if g['row']['data'] != label else "") + ".\n\n"
               + _md_table(["", *[f"classes {n}" for n in names[: M.shape[1]]]], mrows))
    return "\n\n".join(out), number + 3


def _metrics_table(groups, label, number) -> str:
    other_of = {p: _differing_settings([g for g in groups if g["row"]["protocol"] == p]) for p in PROTOCOL_FOLDERS}
    show_other = any(other_of.values())
    header = ["protocol", "strategy", "depth", "replay batches", "stored steps S (compr.)", "n", "ACC (%)",
              "forgetting (pp)", "BWT (pp)", "memory KB", "data"] + (["other settings"] if show_other else [])
    rows = []
    for g in groups:
        r = g["row"]
        other = other_of.get(r["protocol"], set())
        rows.append([r["protocol"].replace("_", "-"), STRATEGY_NAMES.get(r["strategy"], r["strategy"]),
                     _blank(r["depth"]), _blank(r["replay_batches"]) if r["strategy"] != "naive" else "–",
                     _ratio_text(r), _n_text(g)]
                    + [_fmt_pct(seed_mean_std(g["runs"], k)) for k in ("average_accuracy", "forgetting",
                                                                       "backward_transfer")]
                    + [_fmt_kb(seed_mean_std(g["runs"], "memory_kb")[0]), r["data"]]
                    + ([_other_text(g, other)] if show_other else []))
    caption = (f"**Table {number}.** Continual-learning metrics per strategy and configuration (definitions above; "
               f"progressive: at the last step), mean ± std over seeds; data: {label}.")
    return caption + "\n\n" + _md_table(header, rows)


def build_report(results_dir: str | os.PathLike, runs_dir: str | os.PathLike | None = None,
                 title_note: str | None = None) -> dict:
    """Write ``summary.csv``, ``REPORT.md`` and ``figures/`` into ``results_dir`` from the finished runs under
    ``runs_dir`` (default ``results_dir/runs``). Returns ``{"summary_csv", "report", "figures", "files",
    "skipped", "runs"}``: the written paths, ``skipped`` = {figure name: reason}, ``runs`` = finished runs read."""
    results_dir = Path(results_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else results_dir / "runs"
    records, notes = load_runs(runs_dir)
    fig_dir = results_dir / "figures"

    summary_csv = results_dir / "summary.csv"
    write_csv(summary_csv, summary_rows(records), SUMMARY_COLUMNS)

    synthetic = any(r["row"]["data"] == SYNTHETIC_LABEL for r in records)
    label = _label_of(records) if records else "none"
    tag = f" — {SYNTHETIC_LABEL}" if synthetic else ""

    figures, skipped, captions = {}, {}, {}
    makers = {"fig5a_accuracy_vs_epoch": lambda stem: _fig5a(records, stem),
              "fig5b_accuracy_vs_depth": lambda stem: _fig5b(records, stem),
              "accuracy_vs_memory": lambda stem: _fig_memory(records, stem),
              "fig6_progressive": lambda stem: _fig6(records, stem),
              "raster_compression": lambda stem: _fig_raster(records, runs_dir, stem)}
    for name, make in makers.items():
        try:
            figures[name], captions[name] = make(fig_dir / name)
        except _Skip as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # a broken figure must not lose the tables: note it and go on
            skipped[name] = f"failed ({type(exc).__name__}: {exc})"

    lines = [f"# Continual learning with compressed latent replay on spiking neural networks: results{tag}", ""]
    if title_note:
        lines += [title_note, ""]
    if synthetic:
        lines += [f"> **Data: {label}.** The runs below marked synthetic used generated SHD-format files "
                  f"(the same layout as the Spiking Heidelberg Digits), not SHD: their numbers test the pipeline and "
                  f"say nothing about the paper's results.", ""]
    counts = Counter(r["row"]["protocol"] for r in records)
    lines += [f"Built from {len(records)} finished run(s) under `{runs_dir}`: "
              + ", ".join(f"{counts.get(p, 0)} {p.replace('_', '-')}" for p in PROTOCOL_FOLDERS)
              + ". Every run's numbers: `summary.csv` (one row per run).", ""]
    lines += [f"## Metrics{tag}", "", METRIC_DEFINITIONS, ""]

    groups = aggregate(records)
    number = 1
    section = 1
    for protocol in ("sample_incremental", "class_incremental"):
        pg = [g for g in groups if g["row"]["protocol"] == protocol]
        lines += [f"## {section}. {PROTOCOL_TITLES[protocol]}{tag}", ""]
        if pg:
            lines += [_protocol_table(pg, protocol, _label_of([r for g in pg for r in g["runs"]]), number), ""]
            number += 1
        else:
            lines += [f"No finished {protocol.replace('_', '-')} runs.", ""]
        section += 1

    lines += [f"## {section}. Compressed vs uncompressed latent replay{tag}", ""]
    table = _compression_table(groups, label, number)
    if table:
        lines += [table, ""]
        number += 1
    else:
        lines += ["No pair of compressed and uncompressed latent-replay runs at the same depth and number of replay "
                  "batches.", ""]
    section += 1

    lines += [f"## {section}. {PROTOCOL_TITLES['progressive']}{tag}", ""]
    pg = [g for g in groups if g["row"]["protocol"] == "progressive"]
    if pg:
        text, number = _progressive_tables(pg, _label_of([r for g in pg for r in g["runs"]]), number)
        lines += [text, ""]
    else:
        lines += ["No finished progressive runs.", ""]
    section += 1

    lines += [f"## {section}. Continual-learning metrics per strategy{tag}", ""]
    lines += ([_metrics_table(groups, label, number), ""] if groups else ["No finished runs.", ""])
    if groups:
        number += 1
    section += 1

    lines += [f"## {section}. Figures{tag}", ""]
    titles = {"fig5a_accuracy_vs_epoch": "Fig. 5a: accuracy vs epoch per replay size (latent replay, with "
                                         "naive fine-tuning and the pretrained model for reference)",
              "fig5b_accuracy_vs_depth": "Fig. 5b: final accuracy vs latent depth per replay size",
              "accuracy_vs_memory": "Final accuracy vs replay memory (KB, log scale): rehearsal, latent replay, "
                                    "compressed latent replay",
              "fig6_progressive": "Fig. 6: progressive accuracy after each new class",
              "raster_compression": "Spike raster of one sample: input, latent, compressed latent, un-compressed"}
    for name in FIGURES:
        if name in figures:
            lines += [f"**{titles[name]}** ({captions[name]}; data: {label}).", "",
                      f"![{titles[name]}](figures/{name}.png)", "",
                      f"Files: `figures/{name}.png`, `figures/{name}.pdf`.", ""]
        else:
            lines += [f"**{titles[name]}**: skipped — {skipped[name]}.", ""]
    if notes:
        lines += [f"## Notes{tag}", ""] + [f"- {n}" for n in notes] + [""]

    report = results_dir / "REPORT.md"
    write_text(report, "\n".join(lines).rstrip() + "\n")
    fig_files = [p for name in FIGURES for p in figures.get(name, [])]
    return {"summary_csv": summary_csv, "report": report, "figures": fig_files,
            "files": [summary_csv, report, *fig_files], "skipped": skipped, "runs": len(records)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sccl.report",
                                description="Rebuild summary.csv, REPORT.md and figures/ from the finished runs.")
    p.add_argument("--results-dir", default="results", help="where the report goes (default: %(default)s)")
    p.add_argument("--runs-dir", default=None, help="the run folders (default: RESULTS_DIR/runs)")
    p.add_argument("--title-note", default=None, help="an extra line under the report's title")
    args = p.parse_args(argv)
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path(args.results_dir) / "runs"
    if not runs_dir.is_dir():
        print(f"error: no run folder {runs_dir}", file=sys.stderr)
        return 2
    out = build_report(args.results_dir, runs_dir, args.title_note)
    print(f"{out['runs']} run(s) -> {out['summary_csv']}, {out['report']}, {len(out['figures'])} figure file(s)")
    for name, why in out["skipped"].items():
        print(f"skipped {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
