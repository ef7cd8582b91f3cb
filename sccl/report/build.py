"""Results report: every finished run in one CSV, tables in REPORT.md, the paper's figures, the docs' result blocks.

    python -m sccl.report --results-dir results                          # reads results/runs, writes into results/
    python -m sccl.report --results-dir results --docs docs/RESULTS.md   # refresh the result blocks of that file
    python -m sccl.report --results-dir results --docs docs/RESULTS.md --check   # exit 1 when a block is stale

``--docs`` takes one or more markdown files (bare: :data:`BLOCK_FILES`, where the project keeps its blocks;
``--readme`` is the same flag under its old name).

:func:`build_report` reads every finished run under ``RUNS/<scenario>/<stamp>/`` (and the pretraining runs
under ``RUNS/pretrain/``; see :mod:`sccl.report.records`) and writes, each file atomically,

* ``summary.csv``: one row per run (:data:`~sccl.report.records.SUMMARY_COLUMNS`; the runs' own numbers);
* ``REPORT.md``: the metric definitions (:mod:`sccl.cl.metrics`' docstring), a table per scenario, compressed vs
  uncompressed latent replay, per-step tables and the accuracy matrix of the sequence scenarios, the
  continual-learning metrics, the pretrained models, and the figures (:mod:`sccl.report.figures`);
* ``figures/<name>.png`` and ``.pdf``.

Docs mode replaces, in each file given, every block between a line ``<!-- results:NAME -->`` and a line
``<!-- /results:NAME -->`` by the generated markdown of NAME (:func:`readme_blocks`: ``pretraining``,
``sample_incremental``, ``class_incremental``, ``progressive``, ``speakers``, ``compression``, ``methods``,
``tuning``: the tuned defaults, :mod:`sccl.report.tuning`). Every block must be in one of the files given, and
every file given must hold a block: a block the files lack, or a file without markers, fails (nothing goes
unchecked because it moved). The blocks hold no paths, and no timings but the methods' seconds per epoch.
``--check`` compares each committed block with the generated one cell by cell (:mod:`sccl.report.readme_check`):
text and integers exactly, each mean ± std within a band of K standard errors of n seeds (plus rounding), timings
not at all; it prints one line per block and one per difference outside the bands. Each block records the float32
numerics fingerprint of the machine that made it (:mod:`sccl.core.numerics`): information only, it never masks a
number. When any run used synthetic data, the title, headings and captions say "synthetic SHD-format data, not SHD".
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections import Counter
from pathlib import Path

from sccl.cl import metrics
from sccl.cl.strategies import PAPER_ORDER
from sccl.core.errors import SCCLError
from sccl.core.numerics import fingerprint
from sccl.core.results import write_csv, write_text
from sccl.report.figures import FIGURE_TITLES, FIGURES, make_figures, raster_figure
from sccl.report.footprint import footprint_tables
from sccl.report.methods import methods_tables
from sccl.report.readme_check import K, compare_blocks, numerics_note
from sccl.report.records import (REAL_LABEL, SCENARIOS, SUMMARY_COLUMNS, SYNTHETIC_LABEL, aggregate, group_key,
                                 load_pretrain_runs, load_runs, seed_mean_std, summary_rows)
from sccl.report.tables import (SCENARIO_TITLES, compression_table, label_of, metrics_table, pretraining_tables,
                                scenario_table, sequence_tables)
from sccl.report.tuning import tuning_table


__all__ = ["METRIC_DEFINITIONS", "SYNTHETIC_LABEL", "SUMMARY_COLUMNS", "FIGURES", "README_BLOCKS", "BLOCK_FILES",
           "build_report", "readme_blocks", "update_readme", "update_docs", "load_runs", "summary_rows", "seed_mean_std",
           "group_key", "aggregate", "raster_figure", "main"]

README_BLOCKS = ("pretraining", *SCENARIOS, "compression", "methods", "footprint", "tuning")
#: the files that hold the project's result blocks (relative to the repository root): ``--docs`` without a file
BLOCK_FILES = ("docs/RESULTS.md",)
SEQUENCE_SCENARIOS = ("progressive", "speakers")
_MARKER = re.compile(r"^\s*<!--\s*(/?)results:([\w.-]+)\s*-->\s*$")


def paper_groups(groups: list[dict]) -> list[dict]:
    """The paper's strategies (naive, rehearsal, latent replay, plain): the scenario tables' rows. Every method is
    in the methods tables (:mod:`sccl.report.methods`)."""
    return [g for g in groups if g["row"]["strategy"] in PAPER_ORDER and "+" not in g["variant"]
            and g["row"].get("precision", "float32") == "float32" and not g["runs"][0]["config"].get("options")]


def _metric_definitions() -> str:
    """The metrics section: :mod:`sccl.cl.metrics`' own docstring (RST literals as markdown code), then how the
    report aggregates runs and counts memory."""
    doc = inspect.cleandoc(metrics.__doc__ or "").replace("``", "`")
    return (doc + "\n\nAccuracies are top-1, in % in the tables and as fractions in `summary.csv`; ACC, BWT, "
            "forgetting and old / new / all are each run's `summary.json` metrics (this module's formulas).\n\n"
            "*Mean ± std*: runs are grouped by their configuration without the seed. Within a group each seed's "
            "runs are first averaged over the held-out ids (speakers or classes); a table shows the mean ± sample "
            "standard deviation (ddof = 1) of these per-seed means over seeds, and n = seeds × ids. A single seed "
            "shows the mean alone.\n\n"
            "*Memory*: memory KB = the bytes a strategy actually stores (`memory_bytes_stored`) / 1000; analytic "
            "KB = `memory_bits_analytic` / 8000 (samples × units × stored steps × bits per value). Naive "
            "fine-tuning stores nothing (0 KB); sequence scenarios report the memory after the last task.")


METRIC_DEFINITIONS = _metric_definitions()


def _scenarios_of(records) -> list[str]:
    present = {r["row"]["scenario"] for r in records}
    return [s for s in SCENARIOS if s in present] + sorted(present - set(SCENARIOS))


def _figure_lines(figures, captions, skipped, label) -> list[str]:
    lines = []
    for name in FIGURES:
        title = FIGURE_TITLES[name]
        if name in figures:
            lines += [f"**{title}** ({captions[name]}; data: {label}).", "", f"![{title}](figures/{name}.png)", "",
                      f"Files: `figures/{name}.png`, `figures/{name}.pdf`.", ""]
        else:
            lines += [f"**{title}**: skipped — {skipped[name]}.", ""]
    return lines


def build_report(results_dir, runs_dir=None, title_note: str | None = None) -> dict:
    """Write ``summary.csv``, ``REPORT.md`` and ``figures/`` into ``results_dir`` from the finished runs under
    ``runs_dir`` (default ``results_dir/runs``). Returns ``{"summary_csv", "report", "figures", "files",
    "skipped", "runs"}``: the written paths, ``skipped`` = {figure name: reason}, ``runs`` = finished runs read."""
    results_dir = Path(results_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else results_dir / "runs"
    records, notes = load_runs(runs_dir)
    pretrained, pre_notes = load_pretrain_runs(runs_dir)
    notes += pre_notes

    summary_csv = results_dir / "summary.csv"
    write_csv(summary_csv, summary_rows(records), SUMMARY_COLUMNS)
    figures, captions, skipped = make_figures(records, runs_dir, results_dir / "figures")

    synthetic = any(r["row"]["data"] == SYNTHETIC_LABEL for r in records)
    label = label_of(records) if records else "none"
    other = sorted({r["row"]["data"] for r in records} - {REAL_LABEL})  # not the official SHD: named in the title
    tag = f" — {'; '.join(other)}" if other else ""
    lines = [f"# Continual learning with compressed latent replay on spiking neural networks: results{tag}", ""]
    lines += [title_note, ""] if title_note else []
    if synthetic:
        lines += [f"> **Data: {label}.** The runs marked synthetic used generated SHD-format files (the layout of "
                  f"the Spiking Heidelberg Digits), not SHD: their numbers test the pipeline and say nothing about "
                  f"the paper's results.", ""]
    counts = Counter(r["row"]["scenario"] for r in records)
    lines += [f"Built from {len(records)} finished run(s) under `{runs_dir}`: "
              + ", ".join(f"{counts.get(s, 0)} {s}" for s in [*SCENARIOS, *sorted(set(counts) - set(SCENARIOS))])
              + ". Every run's numbers: `summary.csv` (one row per run).", "",
              f"## Metrics{tag}", "", METRIC_DEFINITIONS, ""]

    groups = aggregate(records)
    number, section = 1, 1
    for scenario in _scenarios_of(records):
        sg = [g for g in groups if g["row"]["scenario"] == scenario]
        sl = label_of([r for g in sg for r in g["runs"]])
        lines += [f"## {section}. {SCENARIO_TITLES.get(scenario, scenario)}{tag}", "",
                  scenario_table(paper_groups(sg) or sg, scenario, sl, number), ""]
        number += 1
        if scenario in SEQUENCE_SCENARIOS or max(len(r["acc_steps"]) for g in sg for r in g["runs"]) > 2:
            text, number = sequence_tables(sg, scenario, sl, number)
            lines += [text, ""]
        section += 1
    missing = [s for s in SCENARIOS if s not in counts]
    if missing:
        lines += [f"No finished runs of: {', '.join(missing)}.", ""]

    lines += [f"## {section}. Compressed vs uncompressed latent replay{tag}", ""]
    table = compression_table(groups, label, number)
    lines += [table if table else "No pair of compressed and uncompressed latent-replay runs at the same depth and "
                                  "number of replay batches.", ""]
    number += bool(table)
    section += 1
    lines += [f"## {section}. Every method compared{tag}", "", methods_tables(records, label_of) or "No finished runs.",
              ""]
    section += 1
    lines += [f"## {section}. Continual-learning metrics per strategy{tag}", "",
              metrics_table(paper_groups(groups) or groups, label, number) if groups else "No finished runs.", ""]
    section += 1
    lines += [f"## {section}. Pretrained models{tag}", "", pretraining_tables(pretrained) or
              "No finished pretraining runs.", ""]
    section += 1
    lines += [f"## {section}. Figures{tag}", ""] + _figure_lines(figures, captions, skipped, label)
    if notes:
        lines += [f"## Notes{tag}", ""] + [f"- {n}" for n in notes] + [""]

    report = results_dir / "REPORT.md"
    write_text(report, "\n".join(lines).rstrip() + "\n")
    fig_files = [p for name in FIGURES for p in figures.get(name, [])]
    return {"summary_csv": summary_csv, "report": report, "figures": fig_files,
            "files": [summary_csv, report, *fig_files], "skipped": skipped, "runs": len(records)}


# ----------------------------------------------------------------------------------------------
# result blocks (docs/RESULTS.md)


def readme_blocks(records: list[dict], pretrain_records: list[dict]) -> dict[str, str]:
    """The generated markdown of every result block (:data:`README_BLOCKS`): deterministic, no timings, no
    paths; a block without data is a one-line italic note."""
    groups = aggregate(records)
    blocks = {"pretraining": pretraining_tables(pretrain_records) or "_No finished pretraining runs._"}
    for scenario in SCENARIOS:
        sg = paper_groups([g for g in groups if g["row"]["scenario"] == scenario])
        blocks[scenario] = (scenario_table(sg, scenario, label_of([r for g in sg for r in g["runs"]]), readme=True)
                            if sg else f"_No finished {scenario} runs._")
    table = compression_table(groups, label_of(records)) if groups else None
    blocks["compression"] = table or "_No pair of compressed and uncompressed latent-replay runs._"
    blocks["methods"] = methods_tables(records, label_of) or "_No finished runs._"
    blocks["footprint"] = footprint_tables(records, label_of) or "_No runs at several precisions or with a budget._"
    blocks["tuning"] = tuning_table() or "_No tuned defaults (sccl/core/tuned_defaults.json)._"
    stamp = f"<!-- numerics: {fingerprint()} -->"
    return {name: f"{stamp}\n{text}" for name, text in blocks.items()}


def _update_file(path, blocks: dict[str, str], check: bool) -> tuple[list[str], list[str]]:
    """One file's blocks: ``(differ, found)``, the names of the blocks that differ(ed) and of every block the file
    marks (see :func:`update_readme`)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError as exc:
        raise SCCLError(f"cannot read {path}: {exc}") from None
    out, differ, found, i = [], [], [], 0
    here = fingerprint() if check else None
    while i < len(lines):
        m = _MARKER.match(lines[i])
        out.append(lines[i])
        i += 1
        if not m or m.group(1):
            continue
        name = m.group(2)
        found.append(name)
        end = next((k for k in range(i, len(lines)) if (e := _MARKER.match(lines[k])) and e.groups() == ("/", name)),
                   None)
        if end is None:
            raise SCCLError(f"{path}: <!-- results:{name} --> has no closing <!-- /results:{name} --> line")
        old = "".join(lines[i:end])
        new = old if name not in blocks else "\n" + blocks[name].strip("\n") + "\n\n"
        if check and name in blocks:
            result = compare_blocks(name, old, new, here)
            note = numerics_note(old, here)
            print(f"{path}: {result.summary()}" + (f" {note}" if note else ""))
            for line in result.failures:
                print(f"{path}: {line}")
            if not result.ok:
                differ.append(name)
        elif not check and new != old:
            differ.append(name)
        out += [new, lines[end]]
        i = end + 1
    if not found:
        raise SCCLError(f"{path} has no <!-- results:NAME --> marker (names: {', '.join(README_BLOCKS)}; the "
                        f"project keeps its blocks in {', '.join(BLOCK_FILES)})")
    if differ and not check:
        write_text(path, "".join(out))
    return differ, found


def update_readme(path, blocks: dict[str, str], check: bool) -> list[str]:
    """Replace every marked block of the markdown file at ``path`` whose name is in ``blocks`` (unless ``check``:
    then nothing is written) and return the names of the blocks that differ(ed). Blocks without generated text are
    left as they are. With ``check``, each generated block is compared by
    :func:`sccl.report.readme_check.compare_blocks` (printed: a line per block, a line per difference outside the
    bands) and only failing blocks are returned. Raises :class:`~sccl.core.errors.SCCLError` for a file without
    markers or an unclosed one."""
    return _update_file(path, blocks, check)[0]


def update_docs(paths, blocks: dict[str, str], check: bool) -> tuple[list[tuple[Path, str]], list[str]]:
    """:func:`update_readme` on each file of ``paths``. Returns ``(stale, missing)``: ``(file, name)`` for each block
    that differ(ed), and the names in ``blocks`` that none of the files marks (each printed with where to add it):
    a block that moved to a file not given fails, it is never left unchecked."""
    paths = [Path(p) for p in paths]
    stale, found = [], set()
    for path in paths:
        names, marked = _update_file(path, blocks, check)
        stale += [(path, name) for name in names]
        found.update(marked)
    missing = [name for name in blocks if name not in found]
    for name in missing:
        print(f"block '{name}' is in none of {', '.join(map(str, paths))}: add a line <!-- results:{name} --> and "
              f"a line <!-- /results:{name} --> where it belongs")
    return stale, missing


# ----------------------------------------------------------------------------------------------
# command line


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sccl.report",
                                description="Rebuild summary.csv, REPORT.md and figures/ from the finished runs, or "
                                            "(with --docs) the result blocks of the docs.")
    p.add_argument("--results-dir", default="results", help="where the report goes (default: %(default)s)")
    p.add_argument("--runs-dir", default=None, help="the run folders (default: RESULTS_DIR/runs)")
    p.add_argument("--title-note", default=None, help="an extra line under the report's title")
    p.add_argument("--docs", "--readme", dest="docs", nargs="*", default=None, metavar="FILE",
                   help="update the <!-- results:NAME --> blocks of these markdown files (bare: "
                        f"{' '.join(BLOCK_FILES)}) instead of writing the report; every block must be in one of "
                        "them. --readme is the same flag")
    p.add_argument("--check", action="store_true",
                   help="with --docs: write nothing; compare every block with the runs (numbers within bands of "
                        f"{K:g} standard errors over the seeds, the rest exactly); exit 1 when any differs or is "
                        "missing")
    args = p.parse_args(argv)
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path(args.results_dir) / "runs"
    if args.check and args.docs is None:
        print("error: --check needs --docs FILE (or --readme FILE)", file=sys.stderr)
        return 2
    if not runs_dir.is_dir():
        print(f"error: no run folder {runs_dir}", file=sys.stderr)
        return 2
    if args.docs is not None:
        files = args.docs or list(BLOCK_FILES)
        records, _ = load_runs(runs_dir)
        pretrained, _ = load_pretrain_runs(runs_dir)
        try:
            stale, missing = update_docs(files, readme_blocks(records, pretrained), args.check)
        except SCCLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.check:
            for path, name in stale:
                print(f"{path}: block '{name}' differs from the runs")
            return 1 if stale or missing else 0
        for path in map(Path, files):
            names = [name for where, name in stale if where == path]
            print(f"{path}: " + (f"updated {', '.join(names)}" if names else "already up to date"))
        return 1 if missing else 0
    out = build_report(args.results_dir, runs_dir, args.title_note)
    print(f"{out['runs']} run(s) -> {out['summary_csv']}, {out['report']}, {len(out['figures'])} figure file(s)")
    for name, why in out["skipped"].items():
        print(f"skipped {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
