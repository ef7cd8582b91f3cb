"""The comparison of every method at once: one table per scenario (final old / new / all accuracy, ACC, AIA, BWT,
FWT, forgetting, memory and learning-state bytes, seconds per epoch) and the accuracy-vs-bytes figures with every
method (bytes of the memory kept across tasks, or of the whole learning state).

A method is a group of :func:`sccl.report.records.aggregate` (one configuration, every seed and id); its name says
the strategy, the hosted regularizer and the settings that make it differ (depth, memory, S, its own options).
"""

from __future__ import annotations

import math
from pathlib import Path

from sccl.cl import strategies
from sccl.report.plotting import Skip, figure, style, write
from sccl.report.records import SCENARIOS, aggregate, number, seed_mean_std
from sccl.report.tables import SCENARIO_TITLES, _caption, _n_text, fmt_bytes, fmt_pct, md_table, paired_delta


__all__ = ["method_name", "methods_table", "methods_tables", "methods_figure", "TIMING_UNIT"]

TIMING_UNIT = " s"  # seconds cells end with it (README checks mask them: times are the machine's, not results)
NO_MEMORY_KB = 0.01  # where the figure puts methods that keep nothing (log axis)
#: what the accuracy-vs-bytes figure can put on its x axis: summary.csv column, axis label
BYTES_AXES = {"memory": ("memory_bytes", "memory kept across tasks"),
              "learning_state": ("learning_state_bytes", "learning state: replay memory + trained parameters + "
                                                         "optimiser + regulariser state"),
              "whole_learner": ("whole_learner_bytes_batch1", "whole learner at batch 1: learning state + frozen "
                                                              "weights + one step's activations and sample")}


def _options(g: dict) -> dict:
    return dict(g["runs"][0]["config"].get("options") or {})


def method_name(g: dict) -> str:
    """"LR d2 n1 + EWC", "projection (HLOP)", "compressed LR d1 n8 S10 or"."""
    r, options = g["row"], _options(g)
    base, _, hosted = g["variant"].partition("+")
    name = strategies.label(base)
    if r["depth"] not in ("", None):
        name += f" d{r['depth']}"
    if number(r["replay_batches"]) > 0:
        name += f" n{r['replay_batches']}"
    if r["compression"] not in ("none", ""):
        name += f" S{r['stored_steps']} {r['compression']}"
    if hosted:
        name += f" + {strategies.label(hosted)}"
    if r.get("precision", "float32") != "float32":
        name += f" {r['precision']}"
    named = strategies.REGISTRY.get(hosted or r["strategy"])  # its options' short name: "HLOP"
    short = named.option_label(options) if named else None
    return name + (f" ({short})" if short else "")


def _flag_defaults(strategy: str) -> dict:
    cls = strategies.REGISTRY.get(strategy)
    return {f.dest: f.default for f in cls.all_flags()} if cls else {}


def _changed_options(g: dict) -> dict:
    """The method's own options that differ from their defaults (what its row must say)."""
    defaults = _flag_defaults(g["row"]["strategy"])
    return {k: v for k, v in sorted(_options(g).items())
            if k != "regularizer" and (k not in defaults or defaults[k] != v)}


def _settings_text(g: dict, lr_differs: bool) -> str:
    """The method's learning rate (when the rows' differ) and its options that are not the defaults."""
    parts = [f"lr {g['row']['lr']}"] if lr_differs else []
    parts += [f"{k}={v}" for k, v in _changed_options(g).items()]
    return ", ".join(parts) or "–"


def _seconds(g: dict) -> str:
    spe = seed_mean_std(g["runs"], "seconds_per_epoch")[0]
    return f"{spe:.2f}{TIMING_UNIT}" if math.isfinite(spe) else "–"


def methods_table(groups: list[dict], scenario: str, label: str, number_: int | None = None) -> str:
    """Every method of one scenario: final accuracies, ACC, AIA, BWT, FWT, forgetting, bytes kept (memory and
    whole learning state), seconds per epoch."""
    lr_differs = len({repr(g["row"]["lr"]) for g in groups}) > 1
    naive = next((g for g in groups if g["row"]["strategy"] == strategies.BASELINE), None)
    rows = []
    for g in groups:
        pct = lambda k, g=g: fmt_pct(seed_mean_std(g["runs"], k), 1)  # noqa: E731
        bytes_ = lambda k, g=g: fmt_bytes(seed_mean_std(g["runs"], k)[0])  # noqa: E731
        versus = paired_delta(naive, g, "acc", 1) if naive is not None and g is not naive else ("–", "–")
        rows.append([method_name(g), _n_text(g), pct("old_after"), pct("new_after"), pct("all_after"), pct("acc"),
                     *versus, pct("aia"), pct("bwt"), pct("fwt"), pct("forgetting"), bytes_("memory_bytes"),
                     bytes_("learning_state_bytes"), bytes_("whole_learner_bytes_batch1"), _seconds(g),
                     _settings_text(g, lr_differs)])
    header = ["method", "n", "old", "new", "all", "ACC", "ACC − naive (pp)", "≠ 0 (paired t, 5 %)", "AIA",
              "BWT (pp)", "FWT (pp)", "forgetting (pp)", "memory (B)", "learning state (B)", "whole learner (B)",
              "s / epoch", "settings"]
    text = (f"{SCENARIO_TITLES.get(scenario, scenario)}: every method after the last task; accuracies in %, mean ± "
            f"std over seeds (n = seeds, or seeds × held-out ids); AIA = mean ACC over every step, the pretrained "
            f"model's included; ACC − naive = the per-seed paired difference of ACC with naive fine-tuning (same "
            f"seed, same pretrained model), mean ± std, and whether a two-sided paired t-test over the seeds rejects "
            f"a zero difference at 5 % (yes / no; – below two pairs); FWT = accuracy on each task before training on it minus a randomly initialised "
            f"network's (– where tasks bring new classes); memory = bytes the method keeps across tasks; learning "
            f"state = memory + trained parameters + optimiser state (– for runs that did not record it); whole learner = "
            f"learning state + frozen parameters + one training step's activations and sample at batch 1; "
            f"s / epoch = training time per epoch on the machine that ran it (not comparable across machines); "
            f"settings: the learning rate and the method's options that are not its defaults (README, sccl/core/defaults.py); "
            f"data: {label}.")
    return _caption(number_, text) + "\n\n" + md_table(header, rows)


def methods_tables(records: list[dict], label_of) -> str | None:
    """The methods table of every scenario with at least one run (None when there is none)."""
    groups = aggregate(records)
    out = []
    for scenario in SCENARIOS:
        sg = [g for g in groups if g["row"]["scenario"] == scenario]
        if sg:
            out.append(f"**{SCENARIO_TITLES[scenario]}**\n\n"
                       + methods_table(sg, scenario, label_of([r for g in sg for r in g["runs"]])))
    return "\n\n".join(out) or None


def methods_figure(records: list[dict], stem: Path, axis: str = "memory") -> tuple[list[Path], str]:
    """Final accuracy (old + new test samples) vs bytes, every method, one panel per scenario; error bars: std
    over seeds. ``axis`` (:data:`BYTES_AXES`): the memory kept across tasks (methods that keep nothing sit at the
    left edge, marked 0), the whole learning state, or the whole learner at batch 1 (runs that did not record
    them are left out)."""
    column, what = BYTES_AXES[axis]
    groups = [g for g in aggregate(records) if math.isfinite(seed_mean_std(g["runs"], column)[0])]
    panels = [(s, [g for g in groups if g["row"]["scenario"] == s]) for s in SCENARIOS]
    panels = [(s, gs) for s, gs in panels if gs]
    if not panels:
        raise Skip("no finished runs" + ("" if axis == "memory" else f" that recorded their {axis.replace('_', ' ')}"))
    with style():
        fig = figure((5.6 * len(panels), 5.0))
        for ax, (scenario, sg) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            for g in sg:
                kb = seed_mean_std(g["runs"], column)[0] / 1000
                mean, std, _ = seed_mean_std(g["runs"], "all_after")
                x = kb if kb > 0 else NO_MEMORY_KB
                ax.errorbar([x], [100 * mean], yerr=[100 * std] if math.isfinite(std) else None, fmt="o", ms=5,
                            capsize=2, lw=1)
                ax.annotate(method_name(g), (x, 100 * mean), textcoords="offset points", xytext=(4, 3), fontsize=6)
            ax.set_xscale("log")
            ax.axvline(NO_MEMORY_KB * 1.8, color="0.7", lw=0.8, ls=":")
            ax.set_title(SCENARIO_TITLES[scenario], fontsize=9)
            ax.set_xlabel(f"{what} (KB, log; {NO_MEMORY_KB} = nothing kept)")
            ax.set_ylabel("final accuracy on old + new test samples (%)")
        fig.suptitle(f"Every method: final accuracy vs {axis.replace('_', ' ')} (mean ± std over seeds)", fontsize=11)
        return write(fig, stem), ", ".join(s.replace("_", "-") for s, _ in panels)

