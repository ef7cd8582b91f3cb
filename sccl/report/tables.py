"""Markdown tables of the report and of docs/RESULTS.md: per scenario, compressed vs uncompressed latent replay, the
per-step and accuracy-matrix tables of the sequence scenarios, the continual-learning metrics, pretraining.

Every table takes the groups of :func:`sccl.report.records.aggregate` (runs with one configuration, all seeds and
ids) and shows mean ± std over seeds (:func:`sccl.report.records.seed_mean_std`). Accuracies are in %. Every
fractional result of a README table is printed with its spread (:func:`fmt_stat`), so that a check can compare it
within the seeds' spread; byte counts are whole numbers, compared exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from sccl.cl import strategies
from sccl.report.records import mean_std, number, paired_differences, paired_t_rejects, seed_mean_std


__all__ = ["SCENARIO_TITLES", "fmt_stat", "fmt_pct", "fmt_kb", "fmt_bytes", "md_table", "label_of",
           "config_name", "scenario_table", "compression_table", "sequence_tables", "metrics_table",
           "pretraining_tables"]

SCENARIO_TITLES = {"sample_incremental": "Sample-incremental (new speaker)",
                   "class_incremental": "Class-incremental (new class)",
                   "progressive": "Progressive class-incremental (a first group of classes, then the others)",
                   "speakers": "Speakers (a first group of speakers, then one speaker at a time)"}
ID_NAMES = {"sample_incremental": "speakers", "class_incremental": "classes"}


# ----------------------------------------------------------------------------------------------
# formatting


def fmt_stat(stat: tuple[float, float, int], digits: int = 2, scale: float = 1.0, sign: bool = False) -> str:
    """``mean ± std`` over seeds (times ``scale``; ``sign``: "+" on positive means), so that every fractional
    number of a table carries its spread; the mean alone for one seed; "–" when nothing was measured."""
    mean, std, n = stat
    if not math.isfinite(mean):
        return "–"
    text = f"{scale * mean:{'+' if sign else ''}.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if n > 1 and math.isfinite(std) else "")


def fmt_pct(stat: tuple[float, float, int], digits: int = 2, sign: bool = False) -> str:
    """``mean ± std`` of a fraction, in % (or percentage points)."""
    return fmt_stat(stat, digits, 100, sign)


def fmt_kb(kb: float) -> str:
    if not math.isfinite(kb):
        return "–"
    return "0" if kb == 0 else (f"{kb:,.3f}" if kb < 10 else f"{kb:,.1f}")


def fmt_bytes(b: float) -> str:
    """A byte count (a mean over seeds, rounded to whole bytes): "1,234"; "–" when unknown."""
    return f"{b:,.0f}" if math.isfinite(b) else "–"


def _blank(x) -> str:
    return "–" if x in ("", None) or (isinstance(x, float) and not math.isfinite(x)) else str(x)


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def label_of(records) -> str:
    """The data label of a set of runs: what their data was ("SHD", synthetic, "SHD-layout data: <name>"), or
    several labels (see the data column)."""
    labels = sorted({r["row"]["data"] for r in records})
    if len(labels) == 1:
        return labels[0]
    return " and ".join(labels) + " (see the data column)"


def _strategy(g: dict) -> str:
    """"LR", or "LR + EWC" for a regularizer hosted by latent replay."""
    return " + ".join(strategies.label(part) for part in g["variant"].split("+"))


def _s_text(row: dict) -> str:
    """Stored steps S and the compression mode: "10 (or)", "100" uncompressed, "–" without a memory."""
    S = row["stored_steps"]
    if S in ("", None) or number(row["replay_batches"]) == 0:
        return "–"
    return f"{S}" if row["compression"] == "none" else f"{S} ({row['compression']})"


def _sized(g: dict) -> bool:
    """Whether the group's memory size in batches is a setting of its kind of run (not of naive fine-tuning)."""
    found = strategies.VARIANTS.get(g["variant"])
    return found is None or found.sized


def _n_text(g: dict) -> str:
    ids = [i for i in g["ids"] if i != ""]
    return f"{len(g['seeds'])} × {len(ids)}" if ids else f"{len(g['seeds'])}"


def _batches(g: dict) -> str:
    return _blank(g["row"]["replay_batches"]) if _sized(g) else "–"


def config_name(g: dict) -> str:
    """A short name of a group's configuration: "compressed LR d2 n1 S10 or"."""
    r = g["row"]
    name = _strategy(g) + (f" d{r['depth']}" if r["depth"] != "" else "")
    if _sized(g):
        name += f" n{r['replay_batches']}"
    if r["compression"] not in ("none", ""):
        name += f" S{r['stored_steps']} {r['compression']}"
    return name


def _differing(groups: list[dict], shown=("lr",)) -> list[str]:
    """Other settings whose value differs between the groups of one table (and no column shows)."""
    settings = [dict(g["key"][-1]) for g in groups]
    keys = {k for d in settings for k in d} - set(shown)
    return sorted(k for k in keys if len({repr(d.get(k, "–")) for d in settings}) > 1)


def _other_text(g: dict, keys: list[str]) -> str:
    other = dict(g["key"][-1])
    return ", ".join(f"{k}={other.get(k, '–')}" for k in keys) or "–"


def _mean(g: dict, value) -> float:
    return seed_mean_std(g["runs"], value)[0]


def _caption(number_: int | None, text: str) -> str:
    return (f"**Table {number_}.** " if number_ is not None else "") + text


# ----------------------------------------------------------------------------------------------
# tables


def scenario_table(groups: list[dict], scenario: str, label: str, number_: int | None = None,
                   readme: bool = False) -> str:
    """One scenario's accuracy per strategy, depth and memory. ``readme``: the compact, deterministic form (no
    timings, no paths)."""
    ids = ID_NAMES.get(scenario)
    other = _differing(groups)
    n_head = f"n (seeds × {ids})" if ids else "n (seeds)"
    rows = []
    for g in groups:
        r, pct = g["row"], (lambda k, g=g: fmt_pct(seed_mean_std(g["runs"], k)))
        head = [_strategy(g), _blank(r["depth"]), _batches(g)]
        if readme:
            rows.append(head + [_s_text(r), _blank(r["lr"]), _n_text(g), f"{pct('old_before')} → {pct('old_after')}",
                                pct("new_after"), pct("all_after"), pct("acc"), pct("forgetting"),
                                fmt_bytes(_mean(g, "memory_bytes"))] + ([_other_text(g, other)] if other else []))
            continue
        analytic = _mean(g, lambda rec: number(rec["row"]["memory_bits"]) / 8000)
        spe = _mean(g, "seconds_per_epoch")
        rows.append(head + [_blank(r["replay_samples"]), _s_text(r), _blank(r["lr"]), _n_text(g)]
                    + [pct(k) for k in ("old_before", "old_after", "new_after", "all_after", "acc", "bwt",
                                        "forgetting")]
                    + [fmt_kb(_mean(g, "memory_kb")), fmt_kb(analytic), f"{spe:.2f}" if math.isfinite(spe) else "–",
                       r["split"], r["data"]] + ([_other_text(g, other)] if other else []))
    if readme:
        header = ["strategy", "depth", "replay batches", "S (mode)", "lr", n_head, "old before → after", "new after",
                  "all after", "ACC", "forgetting", "memory stored (B)"]
    else:
        header = ["strategy", "depth", "replay batches", "replayed samples", "S (mode)", "lr", n_head, "old before",
                  "old after", "new after", "all after", "ACC", "BWT", "forgetting", "memory KB", "analytic KB",
                  "s / epoch", "split", "data"]
    header += ["other settings"] if other else []
    text = (f"{SCENARIO_TITLES.get(scenario, scenario)}: accuracy (%) per strategy, latent depth and replay memory; "
            f"scenario {scenario}; data: {label}. Mean ± std over seeds"
            + (f" of the mean over {ids}" if ids else "") + "; old / new / all: pooled over the old tasks, the "
            "last task, every task; before / after: the last task; "
            + ("forgetting" if readme else "BWT and forgetting") + " in percentage points.")
    return _caption(number_, text) + "\n\n" + md_table(header, rows)


def compression_table(groups: list[dict], label: str, number_: int | None = None) -> str | None:
    """Compressed latent replay next to uncompressed latent replay at the same scenario, depth and number of
    replay batches (other settings but the learning rate equal); None when there is no such pair."""
    def base(g):
        scenario, split, data, _, depth, batches, _, _, other = g["key"]
        return (scenario, split, data, depth, batches, tuple(kv for kv in other if kv[0] != "lr"))

    compressed = {v.key: v.compresses for v in strategies.VARIANTS.values() if v.compresses}
    plain = defaultdict(list)
    for g in groups:
        if g["variant"] in compressed.values():
            plain[(g["variant"], base(g))].append(g)
    rows = []
    for g in groups:
        key = (compressed.get(g["variant"]), base(g))
        if key not in plain:
            continue
        u = max(plain[key], key=lambda x: len(x["runs"]))
        r = g["row"]
        au, ac = seed_mean_std(u["runs"], "all_after"), seed_mean_std(g["runs"], "all_after")
        bu, bc = _mean(u, "memory_bytes"), _mean(g, "memory_bytes")
        delta, rejects = paired_delta(u, g, "all_after")
        window = g["runs"][0]["nb_steps"] // int(r["stored_steps"]) if number(r["stored_steps"]) > 0 else "?"
        rows.append([r["scenario"], _blank(r["depth"]), _blank(r["replay_batches"]),
                     f"{r['stored_steps']} (1:{window}, {r['compression']})", f"{_n_text(u)} / {_n_text(g)}",
                     fmt_pct(au), fmt_pct(ac), delta, rejects,
                     fmt_pct(seed_mean_std(u["runs"], "old_after")), fmt_pct(seed_mean_std(g["runs"], "old_after")),
                     fmt_bytes(bu), fmt_bytes(bc), f"{bu / bc:.1f}×" if bc > 0 and math.isfinite(bu) else "–",
                     fmt_pct(seed_mean_std(g["runs"], "compression_lost"), 1),
                     fmt_stat(seed_mean_std(g["runs"], "spikes_per_window")), r["data"]])
    if not rows:
        return None
    header = ["scenario", "depth", "replay batches", "S (ratio, mode)", "n LR / n cLR", "all after: LR",
              "all after: compressed LR", "Δ (pp)", "Δ ≠ 0 (paired t, 5 %)", "old after: LR",
              "old after: compressed LR", "memory (B): LR", "memory (B): compressed LR", "memory ratio",
              "spikes lost (%)", "spikes per active window", "data"]
    text = (f"Compressed vs uncompressed latent replay at the same depth and number of replay batches (the learning "
            f"rate may differ); accuracy after the last task on every task's test samples (%), mean ± std over "
            f"seeds; Δ = compressed − uncompressed, the mean ± std over the seeds both ran of each seed's difference "
            f"(the difference of the means, without spread, where they share no seed); Δ ≠ 0: whether a two-sided "
            f"paired t-test over those seeds rejects a zero mean difference at the 5 % level (yes / no; – below two "
            f"shared seeds); memory = stored bytes, memory ratio = uncompressed / compressed stored bytes; spikes "
            f"lost = share of the latents' "
            f"spikes the compressed memory no longer holds (OR keeps one per window), spikes per active window = "
            f"mean spikes of a unit's window that holds any (above 1, OR merges spikes); data: {label}.")
    return _caption(number_, text) + "\n\n" + md_table(header, rows)


def paired_delta(first: dict, second: dict, value, digits: int = 2) -> tuple[str, str]:
    """(Δ cell, test cell) of second - first, in pp: the per-seed paired differences' mean ± std and whether a
    paired t-test rejects zero; without a shared seed, the difference of the means and "–"."""
    diffs = paired_differences(first["runs"], second["runs"], value)
    if not diffs:
        delta = seed_mean_std(second["runs"], value)[0] - seed_mean_std(first["runs"], value)[0]
        return fmt_pct((delta, float("nan"), 1), digits, sign=True), "–"
    rejects = paired_t_rejects(diffs)
    return fmt_pct(mean_std(diffs), digits, sign=True), "–" if rejects is None else ("yes" if rejects else "no")


def _at(values: list[float], t: int) -> float:
    return values[t] if t < len(values) else float("nan")


def sequence_tables(groups: list[dict], scenario: str, label: str, number_: int) -> tuple[str, int]:
    """Tables of a sequence scenario (progressive, speakers): ACC after each step, accuracy on every task after
    each step, and the accuracy matrix of the configuration with the most runs. Returns (text, next number)."""
    runs = [rec for g in groups for rec in g["runs"]]
    n_steps = max(len(rec["acc_steps"]) for rec in runs)
    names = next(rec["task_names"] for rec in runs if len(rec["task_names"]) == n_steps)
    other = _differing(groups, shown=())
    head = ["configuration", "n (seeds)"]
    rows_acc, rows_all = [], []
    for g in groups:
        name = [config_name(g) + (f" ({_other_text(g, other)})" if other else ""), _n_text(g)]
        acc = [fmt_pct(seed_mean_std(g["runs"], lambda rec, t=t: _at(rec["acc_steps"], t)), 1) for t in range(n_steps)]
        every = [fmt_pct(seed_mean_std(g["runs"], lambda rec, t=t: _at(rec["all_steps"], t)), 1)
                 for t in range(n_steps)]
        kb = fmt_kb(_mean(g, "memory_kb"))
        rows_acc.append(name + acc + [fmt_pct(seed_mean_std(g["runs"], "forgetting"), 1), kb, g["row"]["data"]])
        rows_all.append(name + every + [kb, g["row"]["data"]])
    title = SCENARIO_TITLES.get(scenario, scenario)
    out = [_caption(number_, f"{title}: ACC after each step (%), the mean accuracy over the tasks learned so far "
                             f"(row mean of the accuracy matrix over j ≤ i); then the final forgetting (pp) and "
                             f"replay memory; mean ± std over seeds; data: {label}.")
           + "\n\n" + md_table(head + names + ["forgetting", "memory KB", "data"], rows_acc),
           _caption(number_ + 1, f"{title}: accuracy on every task's test samples (pooled, %) after each step; "
                                 f"mean ± std over seeds; data: {label}.")
           + "\n\n" + md_table(head + names + ["memory KB", "data"], rows_all)]
    g = max(groups, key=lambda x: (len(x["runs"]), number(x["row"]["memory_bytes"]) > 0))  # most runs, a memory
    same = [rec for rec in g["runs"] if rec["matrix"].shape == g["runs"][0]["matrix"].shape]
    M = np.mean([rec["matrix"] for rec in same], axis=0)
    cols = same[0]["task_names"]
    mrows = [[f"after {cols[i]}"] + [f"{100 * v:.1f}" if j <= i else f"({100 * v:.1f})" for j, v in enumerate(row)]
             for i, row in enumerate(M)]
    out.append(_caption(number_ + 2, f"{title}: accuracy matrix R[i][j] (%) of {config_name(g)} (mean over "
                                     f"{len(same)} run(s)): rows = after learning task i, columns = accuracy on task "
                                     f"j's test samples; in parentheses: tasks not learned yet; data: "
                                     f"{g['row']['data']}.")
               + "\n\n" + md_table(["", *cols], mrows))
    return "\n\n".join(out), number_ + 3


def metrics_table(groups: list[dict], label: str, number_: int | None = None) -> str:
    """ACC, AIA, BWT, FWT, forgetting and the pooled accuracies after the last task, every scenario and
    configuration."""
    other_of = {s: _differing([g for g in groups if g["row"]["scenario"] == s], shown=())
                for s in {g["row"]["scenario"] for g in groups}}
    show_other = any(other_of.values())
    rows = []
    for g in groups:
        r = g["row"]
        rows.append([r["scenario"], _strategy(g), _blank(r["depth"]), _batches(g), _s_text(r), _n_text(g)]
                    + [fmt_pct(seed_mean_std(g["runs"], k)) for k in ("acc", "aia", "bwt", "fwt", "forgetting",
                                                                      "old_after", "new_after", "all_after",
                                                                      "replay_memory_accuracy")]
                    + [fmt_kb(_mean(g, "memory_kb")), r["data"]]
                    + ([_other_text(g, other_of[r["scenario"]])] if show_other else []))
    header = ["scenario", "strategy", "depth", "replay batches", "S (mode)", "n", "ACC", "AIA", "BWT (pp)",
              "FWT (pp)", "forgetting (pp)", "old after", "new after", "all after", "replay memory acc.", "memory KB",
              "data"]
    header += ["other settings"] if show_other else []
    text = (f"Continual-learning metrics after the last task (definitions above), accuracies in %, mean ± std over "
            f"seeds; replay memory acc. = the pretrained model's accuracy on its replay memory; data: {label}.")
    return _caption(number_, text) + "\n\n" + md_table(header, rows)


def pretraining_tables(records: list[dict]) -> str | None:
    """One table per pretrained model kind (scenario): final test and train accuracy, mean ± std over seeds."""
    order = list(SCENARIO_TITLES)
    kinds = sorted({r["scenario"] for r in records}, key=lambda s: (order.index(s) if s in order else len(order), s))
    out = []
    for kind in kinds:
        groups = defaultdict(list)
        for r in records:
            if r["scenario"] == kind:
                groups[(str(r["split"]), str(r["id"]), str(r["epochs"]), r["data"])].append(r)
        rows = []
        for (split, id_, epochs, data), runs in sorted(groups.items()):
            stat = lambda key, runs=runs: seed_mean_std([{"row": r} for r in runs], key)  # noqa: E731
            rows.append([id_, split, epochs, len({r["seed"] for r in runs}), fmt_pct(stat("test_acc")),
                         fmt_pct(stat("train_acc")), data])
        out.append(f"Pretrained models for {kind}: final test and train accuracy (%; train: running accuracy "
                   f"during the last epoch), mean ± std over seeds.\n\n"
                   + md_table(["model", "split", "epochs", "seeds", "test accuracy", "train accuracy", "data"], rows))
    return "\n\n".join(out) or None
