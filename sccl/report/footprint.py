"""The on-device tables: accuracy against bytes at each precision (float32, int16, int8) and the runs that chose
their settings for a byte budget (``--budget-bytes``), with the whole learner's bytes (:mod:`sccl.cl.footprint`)
and the network's activity per sample (:mod:`sccl.net.activity`)."""

from __future__ import annotations

import math

from sccl.report.records import aggregate, seed_mean_std
from sccl.report.tables import SCENARIO_TITLES, _caption, _n_text, config_name, fmt_bytes, fmt_pct, md_table


PRECISION_ORDER = ("float32", "int16", "int8")


def _budget(g: dict):
    return (g["runs"][0]["config"].get("options") or {}).get("budget_bytes")


def _bytes(g: dict, column: str) -> str:
    return fmt_bytes(seed_mean_std(g["runs"], column)[0])


def _ops(g: dict, column: str) -> str:
    mean = seed_mean_std(g["runs"], column)[0]
    return f"{mean / 1e6:,.2f} M" if math.isfinite(mean) else "–"


def _without_precision(g: dict) -> tuple:
    *head, other = g["key"]
    return (*head, tuple(kv for kv in other if kv[0] != "precision"))


def precision_table(groups: list[dict], label: str, number_: int | None = None) -> str | None:
    """Configurations run at more than one precision, one row per precision: accuracy and bytes."""
    by_config: dict[tuple, list[dict]] = {}
    for g in groups:
        if _budget(g) is None:
            by_config.setdefault(_without_precision(g), []).append(g)
    rows = []
    for same in by_config.values():
        if len({g["row"]["precision"] for g in same}) < 2:
            continue
        for g in sorted(same, key=lambda g: PRECISION_ORDER.index(g["row"]["precision"])
                        if g["row"]["precision"] in PRECISION_ORDER else len(PRECISION_ORDER)):
            r = g["row"]
            rows.append([SCENARIO_TITLES.get(r["scenario"], r["scenario"]).split(" (")[0], config_name(g),
                         r["precision"], _n_text(g), fmt_pct(seed_mean_std(g["runs"], "all_after"), 1),
                         fmt_pct(seed_mean_std(g["runs"], "acc"), 1), _bytes(g, "learning_state_bytes"),
                         _bytes(g, "whole_learner_bytes"), _bytes(g, "whole_learner_bytes_batch1")])
    if not rows:
        return None
    header = ["scenario", "method", "precision", "n", "all after", "ACC", "learning state B", "whole learner B",
              "whole learner B (batch 1)"]
    text = (f"Accuracy (%) against bytes at each precision (int16 / int8: fixed-point weights trained through "
            f"16-bit shadow weights with bfloat16 optimiser state; frozen weights at the precision). Learning state: "
            f"replay memory + trained weights + optimiser + regulariser state; whole learner: + frozen weights, the "
            f"activations of one training step and its batch, at the run's batch size and at batch 1. Mean ± std "
            f"over seeds; data: {label}.")
    return _caption(number_, text) + "\n\n" + md_table(header, rows)


def budget_table(groups: list[dict], label: str, number_: int | None = None) -> str | None:
    """The runs that chose depth, memory size and compression for a byte budget: what they chose and reached."""
    rows = []
    for g in sorted((g for g in groups if _budget(g) is not None), key=lambda g: (g["row"]["scenario"], _budget(g))):
        r = g["row"]
        rows.append([SCENARIO_TITLES.get(r["scenario"], r["scenario"]).split(" (")[0], f"{_budget(g):,}",
                     config_name(g), _n_text(g), fmt_pct(seed_mean_std(g["runs"], "all_after"), 1),
                     fmt_pct(seed_mean_std(g["runs"], "acc"), 1), _bytes(g, "learning_state_bytes"),
                     _bytes(g, "whole_learner_bytes_batch1"), _ops(g, "synaptic_ops_effective"),
                     _ops(g, "train_step_synaptic_ops_effective")])
    if not rows:
        return None
    header = ["scenario", "budget B", "chosen", "n", "all after", "ACC", "learning state B",
              "whole learner B (batch 1)", "inference SynOps / sample", "training-step SynOps / sample"]
    text = (f"Latent replay with --budget-bytes: the depth, replay batches and stored steps each run chose so that "
            f"its learning state fits the budget (it keeps the depth and memory size and compresses in time first), "
            f"and what it reached; synaptic operations are NeuroBench's effective ones (MACs + ACs) per sample, for "
            f"inference of the whole network and for one training step above the cut. Mean ± std over seeds; data: "
            f"{label}.")
    return _caption(number_, text) + "\n\n" + md_table(header, rows)


def footprint_tables(records: list[dict], label_of) -> str | None:
    """Both tables over every finished run (None when neither has rows)."""
    groups = aggregate(records)
    label = label_of(records)
    parts = [t for t in (precision_table(groups, label), budget_table(groups, label)) if t]
    return "\n\n".join(parts) or None


__all__ = ["footprint_tables", "precision_table", "budget_table"]
