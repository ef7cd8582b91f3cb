"""How :mod:`sccl.cli.tune` chooses: every candidate's validation scores per seed, their mean and std, the best mean
(ties: the smaller value), a warning when the choice is at the grid's edge; and the merge of the choices into the
tuned-defaults file. Only the runs' ``valid_metrics`` are read: a test number never enters the choice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sccl.core.errors import ConfigError
from sccl.core.locks import folder_lock
from sccl.core.results import read_json, write_json


METRIC = "acc"  # of summary.json "valid_metrics": ACC after the last task, on the validation sets
METRIC_TEXT = ("valid_metrics.acc: ACC after the last task on the validation sets (summary.json), mean over the "
               "seeds (std: sample standard deviation); ties within 1e-9 go to the smaller value (numeric flags) or "
               "the first listed")
TIE = 1e-9


@dataclass
class Dim:
    """One tuned flag: ``values`` typed by the flag, ``texts`` as given."""

    strategy: str
    flag: str
    dest: str
    values: list
    texts: list[str]

    @property
    def label(self) -> str:
        return f"{self.strategy}.{self.flag[2:]}"

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)


def valid_score(summary: dict, metric: str = METRIC) -> float:
    """A run's validation score: ``summary["valid_metrics"][metric]``, never a test number."""
    value = (summary.get("valid_metrics") or {}).get(metric)
    if value is None:
        raise ConfigError(f"run {summary.get('stamp', '?')} has no validation '{metric}' (valid_metrics): was it run "
                          "on a split with validation sets?")
    return float(value)


def choose(dims: list[Dim], scores: dict[tuple, dict[int, float]], seeds: list[int]):
    """(table, chosen row or None, warnings): every candidate (a combination of the dims' values) with its score
    per seed, mean and std over the seeds; the best mean is chosen, ties going to the smaller values (grid order
    for text values). None while any candidate misses a seed's score."""
    table = []
    for values in itertools.product(*(d.values for d in dims)):
        got = scores.get(tuple(values), {})
        row = {"values": {d.dest: v for d, v in zip(dims, values)}, "scores": {str(s): got.get(s) for s in seeds},
               "mean": None, "std": None, "_key": tuple(v if d.numeric else d.values.index(v)
                                                         for d, v in zip(dims, values))}
        if all(s in got for s in seeds):
            xs = np.array([got[s] for s in seeds], dtype=float)
            row["mean"], row["std"] = float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0
        table.append(row)
    keys = [row.pop("_key") for row in table]
    if any(row["mean"] is None for row in table):
        return table, None, []
    best = max(row["mean"] for row in table)
    chosen = min((i for i, row in enumerate(table) if row["mean"] >= best - TIE), key=lambda i: keys[i])
    warnings = []
    for d in dims:
        v = table[chosen]["values"][d.dest]
        if d.numeric and len(d.values) > 1 and v in (min(d.values), max(d.values)):
            warnings.append(f"{d.label}: chosen value {v:g} is at the edge of the grid ({min(d.values):g} .. "
                            f"{max(d.values):g}): widen it")
    return table, table[chosen], warnings


def write_tuned(path: Path, records: list[dict], lock_dir: Path) -> None:
    """Merge the records into the tuned-defaults file (atomically, one writer at a time): each method's chosen
    values update its "defaults"; an earlier record whose every value is chosen again is replaced."""
    with folder_lock(Path(lock_dir) / ".locks" / "tuned_defaults.lock"):
        old = read_json(path) if path.is_file() else {}
        defaults = {m: dict(v) for m, v in old.get("defaults", {}).items()}
        runs = list(old.get("runs", []))
        for rec in records:
            runs = [r for r in runs if not (r.get("method") == rec["method"] and set(r.get("chosen", {})) <=
                                            set(rec["chosen"]))]
            defaults.setdefault(rec["method"], {}).update(rec["chosen"])
            runs.append(rec)
        write_json(path, {"about": "written by python -m sccl.cli.tune: settings chosen on validation data; 'defaults' "
                          "is read by sccl.core.defaults.tuned", "defaults": defaults, "runs": runs})
