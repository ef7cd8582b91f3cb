"""The paper's figures from finished runs, each written as ``<name>.png`` and ``<name>.pdf`` (atomically).

* ``fig5a_accuracy_vs_epoch``: accuracy on every task vs epoch per replay size (latent replay; naive fine-tuning
  and the pretrained model for reference), one panel per two-task scenario;
* ``fig5b_accuracy_vs_depth``: final accuracy vs latent depth per replay size;
* ``accuracy_vs_memory``: final accuracy vs the replay memory actually stored (rehearsal, LR, compressed LR);
* ``fig6_progressive``: ACC and accuracy on every task after each step, one panel per sequence scenario;
* ``methods_accuracy_vs_bytes``: every method's final accuracy vs the bytes it keeps (:mod:`sccl.report.methods`);
* ``methods_accuracy_vs_learning_state``: the same vs the bytes of its whole learning state (replay memory,
  trained parameters, optimiser and regulariser state);
* ``raster_compression``: one sample's input spikes, its latent, the compressed latent and its un-compressed
  replay (needs a finished pretraining run and its data file).

A figure without data raises :class:`Skip` with the reason; :func:`make_figures` notes it and goes on.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.ticker import MaxNLocator

from sccl.cl import strategies
from sccl.core.errors import SCCLError
from sccl.core.results import read_json
from sccl.data.provenance import SHD_LABEL
from sccl.learn.pretraining import load_pretrained
from sccl.learn.training import load_dataset, raw_batches
from sccl.replay.memory import compress, kind_for_depth, uncompress
from sccl.report import plotting
from sccl.report.methods import methods_figure
from sccl.report.plotting import Skip
from sccl.report.records import aggregate, number, seed_mean_std
from sccl.report.tables import SCENARIO_TITLES, config_name


__all__ = ["FIGURES", "FIGURE_TITLES", "Skip", "make_figures", "raster_figure"]

FIGURE_TITLES = {
    "fig5a_accuracy_vs_epoch": "Fig. 5a: accuracy vs epoch per replay size (latent replay, with naive fine-tuning "
                               "and the pretrained model for reference)",
    "fig5b_accuracy_vs_depth": "Fig. 5b: final accuracy vs latent depth per replay size",
    "accuracy_vs_memory": "Final accuracy vs replay memory (KB, log scale): rehearsal, latent replay, compressed "
                          "latent replay",
    "fig6_progressive": "Fig. 6: accuracy after each new task of the sequence scenarios",
    "raster_compression": "Spike raster of one sample: input, latent, compressed latent, un-compressed",
    "methods_accuracy_vs_bytes": "Every method: final accuracy vs the memory it keeps across tasks (KB, log scale)",
    "methods_accuracy_vs_whole_learner": "Every method: final accuracy vs the whole learner's bytes at batch 1 "
                                         "(learning state + frozen weights + one training step's activations and "
                                         "sample; KB, log scale)",
    "methods_accuracy_vs_learning_state": "Every method: final accuracy vs its whole learning state (replay memory "
                                          "+ trained parameters + optimiser + regulariser state; KB, log scale)",
}
FIGURES = tuple(FIGURE_TITLES)
TWO_TASK = ("sample_incremental", "class_incremental")
SEQUENCES = ("progressive", "speakers")
#: the latent-replay figures' kinds of run (:attr:`sccl.cl.strategies.base.Variant.latent`)
LATENT = tuple(v.key for v in strategies.VARIANTS.values() if v.latent)
#: the accuracy-vs-memory figure's kinds of run, each with its marker and colour, in the tables' order
MEMORY_STYLE = {v.key: v.marker for v in sorted(strategies.VARIANTS.values(), key=lambda v: v.rank) if v.marker}


def _colors(n: int):
    cmap = colormaps["viridis"]
    return [cmap(0.3)] if n <= 1 else [cmap(x) for x in np.linspace(0.05, 0.85, n)]


def _tag(records) -> str:
    """Every figure names data that is not the official SHD (synthetic, or another SHD-layout file)."""
    other = sorted({r["row"]["data"] for r in records} - {SHD_LABEL})
    return f" [{'; '.join(other)}]" if other else ""


def _short(scenario: str) -> str:
    return SCENARIO_TITLES.get(scenario, scenario).split(" (")[0].lower()


def _size(rec: dict):
    """A run's replay size: stored samples when known, else batches."""
    r = rec["row"]
    return r["replay_samples"] if r["replay_samples"] not in ("", None) else r["replay_batches"]


def _commonest(values):
    return Counter(values).most_common(1)[0][0]


def _panels(records, scenarios, keep) -> list[tuple[str, list[dict]]]:
    out = []
    for scenario in scenarios:
        runs = [r for r in records if r["row"]["scenario"] == scenario and keep(r)]
        if runs:
            out.append((scenario, runs))
    return out


def _comp_text(stored, compression) -> str:
    return "uncompressed" if compression == "none" else f"S = {stored} ({compression})"


def _epoch_curve(runs: list[dict]) -> tuple[list[int], list[float]]:
    """Mean accuracy on every task per epoch of the last task (epoch 0 = before it), in %."""
    by_epoch = defaultdict(list)
    for rec in runs:
        last = max((p["task"] for p in rec["curve"]), default=1)
        for p in rec["curve"]:
            if p["task"] == last and math.isfinite(p["all_acc"]):
                by_epoch[p["epoch"]].append(p["all_acc"])
    epochs = sorted(by_epoch)
    return epochs, [100 * float(np.mean(by_epoch[e])) for e in epochs]


# ----------------------------------------------------------------------------------------------
# the figures


def fig5a(records, stem) -> tuple[list[Path], str]:
    panels = _panels(records, TWO_TASK, lambda r: r["variant"] in LATENT and r["curve"])
    if not panels:
        raise Skip("no sample- or class-incremental latent-replay runs with an epochs.csv")
    notes = []
    with plotting.style():
        fig = plotting.figure((6.2 * len(panels), 4.6))
        for ax, (scenario, runs) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            setting = lambda r: (r["row"]["depth"], r["row"]["stored_steps"], r["row"]["compression"])  # noqa: E731
            chosen_setting = _commonest(setting(r) for r in runs)
            chosen = [r for r in runs if setting(r) == chosen_setting]
            sizes = sorted({_size(r) for r in chosen}, key=number)
            for color, size in zip(_colors(len(sizes)), sizes):
                ax.plot(*_epoch_curve([r for r in chosen if _size(r) == size]), marker="o", ms=3, lw=1.6,
                        color=color, label=f"{size} replayed latents")
            ids = {r["row"]["held_out"] for r in chosen}
            naive = [r for r in records if r["row"]["scenario"] == scenario and r["variant"] == strategies.BASELINE and r["curve"]]
            naive = [r for r in naive if r["row"]["held_out"] in ids] or naive
            if naive:
                ax.plot(*_epoch_curve(naive), ls="--", lw=1.4, color="0.25", label="naive fine-tuning")
            base = [p["all_acc"] for r in chosen for p in r["curve"] if p["epoch"] == 0 and math.isfinite(p["all_acc"])]
            if base:
                ax.axhline(100 * float(np.mean(base)), ls=":", lw=1.4, color="0.45", label="pretrained (epoch 0)")
            depth, stored, compression = chosen_setting
            comp = _comp_text(stored, compression)
            ax.set_title(f"{SCENARIO_TITLES[scenario]}\nLR at depth {depth}, {comp}", fontsize=10)
            ax.set_xlabel("epoch (0 = pretrained model)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("accuracy on old + new test samples (%)")
            ax.legend(fontsize=8, loc="best")
            notes.append(f"{_short(scenario)}: depth {depth}, {comp}, replay sizes {', '.join(map(str, sizes))}, "
                         f"mean over {len(ids)} id(s) and seeds")
        fig.suptitle("Fig. 5a: accuracy vs epoch per replay size" + _tag(records), fontsize=11)
        return plotting.write(fig, stem), "; ".join(notes)


def fig5b(records, stem) -> tuple[list[Path], str]:
    panels = _panels(records, TWO_TASK, lambda r: r["variant"] in LATENT and r["row"]["depth"] != "")
    if not panels:
        raise Skip("no sample- or class-incremental latent-replay runs")
    notes = []
    with plotting.style():
        fig = plotting.figure((6.0 * len(panels), 4.6))
        for ax, (scenario, runs) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            stored, compression = _commonest((r["row"]["stored_steps"], r["row"]["compression"]) for r in runs)
            chosen = [r for r in runs if (r["row"]["stored_steps"], r["row"]["compression"]) == (stored, compression)]
            sizes = sorted({_size(r) for r in chosen}, key=number)
            for color, size in zip(_colors(len(sizes)), sizes):
                points = []
                for depth in sorted({int(r["row"]["depth"]) for r in chosen}):
                    same = [r for r in chosen if _size(r) == size and r["row"]["depth"] == depth]
                    if same:
                        mean, std, _ = seed_mean_std(same, "all_after")
                        points.append((depth, 100 * mean, 100 * std if math.isfinite(std) else 0.0))
                xs, ys, es = zip(*points)
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, lw=1.6, color=color,
                            label=f"{size} replayed latents")
            comp = _comp_text(stored, compression)
            ax.set_xticks(range(4))
            ax.set_xlim(-0.3, 3.3)
            ax.set_title(f"{SCENARIO_TITLES[scenario]}, {comp}", fontsize=10)
            ax.set_xlabel("latent depth (0 = layer-1 input currents, 1-3 = spikes of hidden layer 1-3)")
            ax.set_ylabel("final accuracy on old + new test samples (%)")
            ax.legend(fontsize=8, loc="best")
            notes.append(f"{_short(scenario)}: {comp}")
        fig.suptitle("Fig. 5b: final accuracy vs latent depth per replay size (error bars: std over seeds)"
                     + _tag(records), fontsize=11)
        return plotting.write(fig, stem), "; ".join(notes)


def accuracy_vs_memory(records, stem) -> tuple[list[Path], str]:
    panels = _panels(records, TWO_TASK, lambda r: r["variant"] in MEMORY_STYLE and number(r["row"]["memory_bytes"]) > 0)
    if not panels:
        raise Skip("no sample- or class-incremental rehearsal or latent-replay runs with a stored memory (every "
                   "scenario's memory: methods_accuracy_vs_bytes)")
    with plotting.style():
        fig = plotting.figure((6.0 * len(panels), 4.8))
        for ax, (scenario, runs) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            for variant, (marker, color) in MEMORY_STYLE.items():
                groups = aggregate([r for r in runs if r["variant"] == variant])
                if not groups:
                    continue
                xs = [seed_mean_std(g["runs"], "memory_kb")[0] for g in groups]
                ys = [100 * seed_mean_std(g["runs"], "all_after")[0] for g in groups]
                ax.scatter(xs, ys, marker=marker, s=46, color=color, edgecolor="k", lw=0.5,
                           label=strategies.label(variant), zorder=3)
                for g, x, y in zip(groups, xs, ys):
                    ax.annotate(config_name(g).split(" ", 1)[-1], (x, y), textcoords="offset points", xytext=(4, 4),
                                fontsize=7)
            naive = [r for r in records if r["row"]["scenario"] == scenario and r["variant"] == strategies.BASELINE]
            if naive:
                ax.axhline(100 * seed_mean_std(naive, "all_after")[0], ls="--", color="0.3", lw=1.2,
                           label="naive (0 KB)")
            ax.set_xscale("log")
            ax.set_title(SCENARIO_TITLES[scenario], fontsize=10)
            ax.set_xlabel("replay memory actually stored (KB, log scale)")
            ax.set_ylabel("final accuracy on old + new test samples (%)")
            ax.legend(fontsize=8, loc="best")
        fig.suptitle("Final accuracy vs replay memory (labels: depth d, batches n, stored steps S)" + _tag(records),
                     fontsize=11)
        return plotting.write(fig, stem), ", ".join(_short(s) for s, _ in panels)


def fig6(records, stem) -> tuple[list[Path], str]:
    panels = _panels(records, SEQUENCES, lambda r: len(r["acc_steps"]) > 1)
    if not panels:
        raise Skip("no progressive or speakers runs")
    notes = []
    with plotting.style():
        fig = plotting.figure((8.0 * len(panels), 4.8))
        for ax, (scenario, runs) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            groups = aggregate(runs)
            n = max(len(r["acc_steps"]) for r in runs)
            for color, g in zip(_colors(len(groups)), groups):
                acc = [100 * seed_mean_std(g["runs"], lambda r, t=t: r["acc_steps"][t] if t < len(r["acc_steps"])
                                           else float("nan"))[0] for t in range(n)]
                every = [100 * seed_mean_std(g["runs"], lambda r, t=t: r["all_steps"][t] if t < len(r["all_steps"])
                                             else float("nan"))[0] for t in range(n)]
                name = config_name(g)
                ax.plot(range(n), acc, marker="o", lw=1.7, color=color, label=f"{name}: tasks learned so far (ACC)")
                ax.plot(range(n), every, marker="s", ms=4, ls="--", lw=1.2, color=color, label=f"{name}: every task")
            names = next(r["task_names"] for r in runs if len(r["task_names"]) == n)
            ax.set_xticks(range(n))
            ax.set_xticklabels([name.split()[-1] for name in names], fontsize=8)
            ax.set_xlabel(f"after learning (step 0: {names[0]})")
            ax.set_ylabel("accuracy (%)")
            ax.legend(fontsize=7, loc="best")
            ax.set_title(SCENARIO_TITLES[scenario], fontsize=10)
            notes.append(f"{_short(scenario)}: {len(groups)} configuration(s)")
        fig.suptitle("Fig. 6: accuracy after each new task" + _tag(records), fontsize=11)
        return plotting.write(fig, stem), "; ".join(notes)


def raster_figure(pretrain_folder, out_stem, depth: int = 1, stored_steps: int = 10, sample: int = 0,
                  mode: str = "or") -> list[Path]:
    """Spike raster of sample ``sample`` of a pretraining run's data file: its input, its depth-``depth`` latent,
    the latent compressed to ``stored_steps`` steps (``mode``) and un-compressed again for replay."""


    folder = Path(pretrain_folder)
    net, _, config = load_pretrained(folder)
    data = config["data"]
    ds = load_dataset(data["path"], **{k: data[k] for k in ("nb_steps", "max_time") if k in data})
    if not 0 <= sample < len(ds.labels):
        raise ValueError(f"sample {sample} is outside the {len(ds.labels)} samples of {data['path']}")
    batch = raw_batches(ds, [np.array([sample])], torch.device("cpu"))[0]
    x = batch.x.to_dense()[0].numpy()  # (T, 700)
    with torch.no_grad():
        z = net.latents(batch.x, depth)  # (1, T, H)
    kind = kind_for_depth(depth)
    T = z.shape[1]
    c = compress(z, stored_steps, mode, kind)
    u = uncompress(c, T, mode, kind)
    w = T // stored_steps
    bin_ms = 1000 * ds.binned.max_time / T

    with plotting.style():
        fig = plotting.figure((8.0, 10.0))
        axes = fig.subplots(4, 1, height_ratios=[1.6, 1, 1, 1])

        def draw(ax, a, title, ylabel, xlabel=None, currents=False):
            a = np.asarray(a, dtype=float)
            if currents:
                lim = float(np.abs(a).max()) or 1.0
                im = ax.imshow(a.T, aspect="auto", origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim,
                               interpolation="nearest")
                fig.colorbar(im, ax=ax, label="current (a.u.)", pad=0.01)
                ax.grid(False)
            else:
                t, n = np.nonzero(a)
                ax.scatter(t, n, s=np.clip(a[t, n], 1, None) * 4, marker="|", color="k", lw=0.8)
                ax.set_ylim(-0.5, a.shape[1] - 0.5)
            ax.set_xlim(-0.5, a.shape[0] - 0.5)
            ax.set_title(title, fontsize=9.5)
            ax.set_ylabel(ylabel)
            ax.set_xlabel(xlabel or f"time step ({bin_ms:.0f} ms bins)")

        currents = kind == "currents"
        what = f"hidden layer {depth} spikes" if depth else "layer-1 input currents"
        draw(axes[0], x, f"input spikes: {int(x.sum())} spikes on {x.shape[1]} channels x {T} steps", "input channel")
        draw(axes[1], z[0].numpy(), f"latent at depth {depth}: {what}, {T} steps", "unit", currents=currents)
        how = ("OR of the spikes" if mode == "or" and not currents else
               "spike count" if not currents else "sum of the currents") + f" in each window of {w} steps"
        draw(axes[2], c[0].numpy(), f"compressed: {stored_steps} stored steps (1:{w}, {how})", "unit",
             xlabel=f"stored step (window of {w} time steps)", currents=currents)
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        spread = ("each window's count as a burst of spikes from its first step" if mode == "sum" and not currents
                  else "each window's value at its first step, zeros elsewhere")
        draw(axes[3], u[0].numpy(), f"un-compressed for replay: {spread}", "unit", currents=currents)
        title = (f"Latent compression of sample {sample} (class {int(ds.labels[sample])}, speaker "
                 f"{int(ds.speakers[sample])}), model {folder.name}")
        label = ds.label
        fig.suptitle(title + (f"\n[{label}]" if label != SHD_LABEL else ""), fontsize=11)
        return plotting.write(fig, out_stem)


def raster_compression(records, runs_dir: Path, stem) -> tuple[list[Path], str]:
    """The raster of the first pretrained model whose data file exists, at the commonest latent depth and
    compressed step count of the latent-replay runs (default depth 1, S = 10)."""
    pre = Path(runs_dir) / "pretrain"
    folders = sorted((p.parent for p in pre.glob("*/*/model.pt")
                      if (p.parent / "config.json").is_file() and (p.parent / "split.npz").is_file()),
                     key=lambda p: (not p.name.startswith("speaker"), str(p)))
    if not folders:
        raise Skip(f"no finished pretraining run under {pre}")
    lr = [r["row"] for r in records if r["variant"] in LATENT and r["row"]["depth"] != ""]
    lr = [r for r in lr if r["scenario"] == "sample_incremental"] or lr
    depth = int(_commonest(r["depth"] for r in lr)) if lr else 1
    compressed = [r["stored_steps"] for r in lr if r["compression"] != "none" and r["stored_steps"] != ""]
    S = int(_commonest(compressed)) if compressed else 10
    for folder in folders:
        try:
            data_path = Path(read_json(folder / "config.json")["data"]["path"])
        except (OSError, ValueError, KeyError, TypeError, SCCLError):
            continue
        if data_path.is_file():
            written = raster_figure(folder, stem, depth=depth, stored_steps=S)
            return written, f"model `{folder.name}`, depth {depth}, S = {S} (OR), sample 0 of `{data_path.name}`"
    raise Skip(f"the data files of the pretrained models under {pre} are missing")


def make_figures(records: list[dict], runs_dir, fig_dir) -> tuple[dict, dict, dict]:
    """Every figure into ``fig_dir``: ({name: written paths}, {name: caption}, {name: why skipped})."""
    makers = {"fig5a_accuracy_vs_epoch": lambda stem: fig5a(records, stem),
              "fig5b_accuracy_vs_depth": lambda stem: fig5b(records, stem),
              "accuracy_vs_memory": lambda stem: accuracy_vs_memory(records, stem),
              "fig6_progressive": lambda stem: fig6(records, stem),
              "raster_compression": lambda stem: raster_compression(records, runs_dir, stem),
              "methods_accuracy_vs_bytes": lambda stem: methods_figure(records, stem),
              "methods_accuracy_vs_learning_state": lambda stem: methods_figure(records, stem, "learning_state"),
              "methods_accuracy_vs_whole_learner": lambda stem: methods_figure(records, stem, "whole_learner")}
    written, captions, skipped = {}, {}, {}
    for name, make in makers.items():
        try:
            written[name], captions[name] = make(Path(fig_dir) / name)
        except Skip as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # a broken figure must not lose the tables: note it and go on
            skipped[name] = f"failed ({type(exc).__name__}: {exc})"
    return written, captions, skipped
