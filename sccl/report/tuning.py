"""The table of the tuned defaults: which setting :mod:`sccl.cli.tune` chose for each method, on what, with which
validation score, read from ``sccl/core/tuned_defaults.json`` (docs/RESULTS.md's ``tuning`` block). Deterministic: the same
file gives the same text, so the README check compares it exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

from sccl.core.defaults import TUNED_FILE


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _score(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if std is not None else f"{100 * mean:.1f}"


def _grid(grid: dict) -> str:
    return "; ".join(f"{dest} {', '.join(_value(v) for v in values)}" for dest, values in grid.items())


def _runner_up(run: dict) -> str:
    """The best candidate other than the choice, with its score (how clear the choice was)."""
    others = [c for c in run.get("candidates", []) if c.get("values") != run.get("chosen") and c.get("mean") is not None]
    if not others:
        return "–"
    best = max(others, key=lambda c: c["mean"])
    values = ", ".join(f"{k} {_value(v)}" for k, v in best["values"].items())
    return f"{values}: {_score(best['mean'], best.get('std'))}"


def _data(run: dict) -> str:
    """Which tuning run: the data file's SHA-256 (first 12 digits) and the day."""
    sha = (run.get("data") or {}).get("sha256") or ""
    return f"{sha[:12] or '–'}, {str(run.get('date', '–'))[:10]}"


def tuning_table(path: Path | str = TUNED_FILE) -> str | None:
    """Markdown: one row per tuning record (method, scenario, seeds, grid, choice, validation ACC of the choice and
    of the runner-up, the data file and the day); None when there is no file or no record."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path) as fh:
        runs = json.load(fh).get("runs", [])
    if not runs:
        return None
    lines = ["Settings chosen by `python -m sccl.cli.tune` (`sccl/core/tuned_defaults.json`): validation ACC after the last "
             "task (%), mean ± std over the tuning seeds, on the split's validation sets; never a test set.", "",
             "| method | scenario | split, seeds | n | grid | chosen | validation ACC | runner-up | data, date |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in sorted(runs, key=lambda r: r["method"]):
        chosen = ", ".join(f"{k} {_value(v)}" for k, v in run["chosen"].items())
        seeds = ",".join(str(s) for s in run["seeds"])
        lines.append(f"| {run['method']} | {run['scenario']} | {run['split']}, {seeds} | {len(run['seeds'])} | "
                     f"{_grid(run['grid'])} | "
                     f"{chosen} | {_score(run.get('chosen_mean'), run.get('chosen_std'))} | {_runner_up(run)} | "
                     f"{_data(run)} |")
    return "\n".join(lines)
