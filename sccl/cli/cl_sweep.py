"""Sweeps of continual-learning runs (the testsuite.py drivers), one expansion for every scenario: expand the grid,
pretrain what is missing, skip finished runs by their stamp, retry failures, print a summary table.

    python -m sccl.cli.cl_sweep --scenario speakers --strategies naive,latent_replay --depths 1 --epochs 5
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from sccl.cl.runs import is_done
from sccl.cl.scenarios import HELD_OUT_FLAG
from sccl.cl.strategies import ENTRY_POINTS, REGISTRY, resolve
from sccl.cli.sweep_validation import (check_set_values, check_sets_reach, check_swept_flags_used, checked_run,
                                       swept_settings)
from sccl.core.defaults import PRETRAIN, SCENARIO
from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError
from sccl.core.results import read_csv
from sccl.data.merge import merged_if_present, merged_path
from sccl.data.shape import default_groups, format_ids
from sccl.data.splits import SCENARIOS, SPLIT_HELP, SPLITS
from sccl.jobs.launch import add_launcher_flags, launch
from sccl.jobs.study_fit import check_runs_fit
from sccl.jobs.sweep import Job, failure_summary, id_list, parse_int_list, pretrain_job
from sccl.learn.quantize import PRECISIONS, check_precision
from sccl.report.records import gather


#: what --strategies can name: every strategy, and their entry points (the original's script names)
SWEEPABLE = (*REGISTRY, *ENTRY_POINTS)
ID_FLAGS = {"sample_incremental": ("--speakers", "speaker"), "class_incremental": ("--classes", "class")}
GRID_DEFAULTS = {  # (strategies, latent batches, rehearsal batches, stored steps)
    "sample_incremental": ("all", "10,20,40,80", "1", "none"),
    "class_incremental": ("all", "1-4", "2", "none"),
    "progressive": ("latent_replay", "1-4", "1", "none,50"),
    "speakers": ("all", "2", "1", "none"),
}


def add_sweep_flags(p: argparse.ArgumentParser, scenario: str) -> None:
    strategies, n, rehearsal, steps = GRID_DEFAULTS[scenario]
    if scenario in ID_FLAGS:
        flag, what = ID_FLAGS[scenario]
        p.add_argument(flag, default="all", dest="ids",
                       help=f"which {what}s, e.g. 0-3, 3,5 or all: the data's (default: all)")
    if scenario == "speakers":
        p.add_argument("--first-speakers", default=None,
                       help="the pretraining's speaker group (default: the first half of the data's; SHD: 0-5)")
    if scenario == "progressive":
        p.add_argument("--first-classes", default=None,
                       help="the pretraining's classes (default: the first half of the data's; SHD: 0-9)")
        p.add_argument("--classes-per-step", type=int, default=1, help="later classes per task (default: 1)")
    names = ", ".join(SWEEPABLE)
    alias = ", ".join(f"{entry}: {','.join(map(str, point.sweep['subsample']))}"
                      for entry, (_, point) in ENTRY_POINTS.items() if "subsample" in point.sweep)
    p.add_argument("--strategies", default=strategies,
                   help=f"comma-separated from {names}, or all (default: %(default)s)")
    p.add_argument("--depths", default="0-3", help="latent depths (default: 0-3)")
    p.add_argument("--latent-batches", default=n, help="latent replay memory sizes in batches (default: %(default)s)")
    p.add_argument("--rehearsal-batches", default=rehearsal, help="rehearsal memory sizes in batches (default: %(default)s)")
    p.add_argument("--subsample", default=None,
                   help=f"stored steps S ('none' = uncompressed); default: {steps}" + (f"; {alias}" if alias else ""))
    p.add_argument("--compression", default="or", help="or, sum or or,sum")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="STRATEGY.FLAG=V1,V2",
                   help="sweep a strategy's own flag over values, e.g. ewc.ewc-lambda=10,100 or "
                        "latent_replay.regularizer=none,ewc (repeatable; every combination runs)")
    p.add_argument("--precisions", default="float32",
                   help=f"comma-separated from {', '.join(PRECISIONS)}: every run at each (default: %(default)s)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=SCENARIO[scenario]["epochs"], help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=SCENARIO[scenario]["batch_size"])
    p.add_argument("--eval-every", type=int, default=1, metavar="K",
                   help="test accuracy after every K-th epoch of a task and after its last (default: every epoch)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate of every run (default: the scenario's, {SCENARIO[scenario]['lr']}; "
                        "an entry point's own in the two-task scenarios, as its scripts: "
                        + ", ".join(f"{e} {p.two_task_lr}" for e, (_, p) in ENTRY_POINTS.items() if p.two_task_lr)
                        + ")")
    p.add_argument("--pretrain-epochs", type=int, default=PRETRAIN["epochs"], help="epochs of any pretraining still missing")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process, one thread each)")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper", help=SPLIT_HELP)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--max-time", default=None, help="binning window of any pretraining still missing, in seconds "
                   "or 'auto' (default: SHD's 1.4 s); the runs bin as their pretraining did")
    add_launcher_flags(p)


def _steps(text: str) -> list[int | None]:
    return [None if s.strip() == "none" else parse_int_list(s, 1, 10**6, "stored steps")[0] for s in text.split(",")]


def parse_sets(sets: list[str]) -> dict[str, list[tuple[str, list[str]]]]:
    """``["ewc.ewc-lambda=10,100"]`` -> ``{"ewc": [("--ewc-lambda", ["10", "100"])]}``; each value read with its
    flag's own type and choices."""
    out: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for text in sets:
        target, _, values = text.partition("=")
        strategy, _, flag = target.partition(".")
        if not (strategy and flag and values):
            raise ConfigError(f"--set takes STRATEGY.FLAG=V1,V2 (e.g. ewc.ewc-lambda=10,100), got '{text}'")
        if strategy not in REGISTRY:
            raise ConfigError(f"--set {text}: unknown strategy '{strategy}' (choose from {', '.join(REGISTRY)})")
        known = {f.name: f for f in REGISTRY[strategy].all_flags()}
        if "--" + flag not in known:
            raise ConfigError(f"--set {text}: {strategy} has no flag --{flag} (its flags: {', '.join(sorted(known))})")
        check_set_values(text, known["--" + flag], values.split(","))
        out[strategy].append(("--" + flag, values.split(",")))
    return dict(out)


def _with_sets(runs: list[tuple[str, list[str]]], sets: dict) -> list[tuple[str, list[str]]]:
    """Every run once per combination of its strategy's swept flags."""
    out = []
    for strategy, argv in runs:
        variants = [argv]
        for flag, values in sets.get(strategy, []):
            variants = [v + [flag, value] for v in variants for value in values]
        out += [(strategy, v) for v in variants]
    return out


def strategy_runs(args, scenario: str) -> list[tuple[str, list[str]]]:
    """(strategy, its own flags and learning rate) of every run of one seed and held-out id: each strategy's
    runs over the sweep's axes (:meth:`~sccl.cl.strategies.base.Strategy.sweep_runs`), every combination of its
    swept flags (``--set``)."""
    strategies = list(SWEEPABLE) if args.strategies == "all" else args.strategies.split(",")
    bad = [s for s in strategies if s not in SWEEPABLE]
    if bad:
        raise ConfigError(f"unknown strategy '{bad[0]}' (choose from {', '.join(SWEEPABLE)})")
    modes = args.compression.split(",")
    if any(m not in ("or", "sum") for m in modes):
        raise ConfigError(f"--compression takes or, sum or or,sum; got '{args.compression}'")
    axes = {"depths": parse_int_list(args.depths, 0, 3, "depth"),
            "latent_batches": parse_int_list(args.latent_batches, 0, 10**6, "buffer size"),
            "rehearsal_batches": parse_int_list(args.rehearsal_batches, 1, 10**6, "rehearsal size"),
            "subsample": _steps(args.subsample or GRID_DEFAULTS[scenario][3]), "compression": modes}
    runs = []
    for name in strategies:
        cls, point = resolve(name)
        lr, own = args.lr, axes
        if point is not None:  # an entry point: its own stored steps (all compressed) and two-task lr
            lr = point.two_task_lr if lr is None and scenario in HELD_OUT_FLAG else lr
            steps = _steps(args.subsample) if args.subsample else point.sweep["subsample"]
            own = {**axes, "subsample": [s for s in steps if s is not None]}
        argv = ["--lr", str(lr)] if lr is not None else []
        runs += [(cls.name, argv + more) for more in cls.sweep_runs(own)]
    sets = parse_sets(getattr(args, "sets", None) or [])
    check_sets_reach(sets, list(dict.fromkeys(resolve(s)[0].name for s in strategies)))
    return _with_sets(runs, sets)


def most_replay_batches(args, scenario: str) -> int:
    """The most replay batches any run of the grid stores (what its batch size must fill): each run's
    ``replay_batches`` flag, else that flag's default; 0 for strategies without one."""
    most = 0
    for strategy, argv in strategy_runs(args, scenario):
        flags = {f.name: f for f in REGISTRY[strategy].all_flags() if f.dest == "replay_batches"}
        value = next((f.default_in(scenario) for f in flags.values()), 0)
        for flag, text in zip(argv, argv[1:]):
            if flag in flags:
                value = int(text)
        most = max(most, value or 0)
    return most


def expand(args, scenario: str, data_file=None) -> list[tuple[str, list[str]]]:
    """(strategy, argv) of every run in the grid; ``data_file`` gives 'all' ids and default groups."""
    if getattr(args, "eval_every", 1) < 1:
        raise ConfigError(f"--eval-every must be a positive whole number of epochs, got {args.eval_every}")
    own = strategy_runs(args, scenario)
    precisions = [check_precision(p) for p in getattr(args, "precisions", "float32").split(",")]
    if scenario in ID_FLAGS:
        held = [[HELD_OUT_FLAG[scenario], str(i)] for i in id_list(args.ids, data_file, ID_FLAGS[scenario][1])]
    elif scenario == "speakers":
        first = getattr(args, "first_speakers", None)
        if first is None:  # named explicitly, as sweeps always did (SHD: 0-5)
            if not Path(data_file).is_file():
                raise ConfigError(f"no data file {data_file} to read the speakers from: pass --first-speakers")
            first = format_ids(default_groups(data_file)[0])
        held = [["--first-speakers", first]]
    elif scenario == "progressive":
        first, step = getattr(args, "first_classes", None), getattr(args, "classes_per_step", 1)
        held = [(["--first-classes", first] if first else []) + (["--classes-per-step", str(step)] if step != 1
                                                                  else [])]
    else:
        held = [[]]
    runs = []
    for seed in parse_int_list(args.seeds, 0, 2**31 - 1, "seed"):
        for ids in held:
            base = ids + ["--seed", str(seed), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
            base += ["--eval-every", str(args.eval_every)] if getattr(args, "eval_every", 1) != 1 else []
            for precision in precisions:
                at = [] if precision == "float32" else ["--precision", precision]
                runs += [(strategy, base + at + argv) for strategy, argv in own]
    return runs


def sweep_jobs(args, scenario: str) -> tuple[list[Job], list[Job]]:
    """(pretraining jobs for what is missing, continual-learning jobs) of the grid, every run's settings checked
    as the run will check them (:mod:`sccl.cli.sweep_validation`): a bad value is one error before anything runs."""
    common = ["--data-dir", args.data_dir, "--out-dir", args.out_dir, "--split", args.split,
              "--device", args.device, "--quiet"]
    # a dry run merges nothing: it reads a merged file that is there, and names the one a run would make
    data_file = (merged_path(Path(args.data_dir).expanduser()) if getattr(args, "dry_run", False)
                 else merged_if_present(args.data_dir, quiet=True))
    jobs, pretrain_needed, used, configs = [], set(), defaultdict(set), []
    sets = parse_sets(getattr(args, "sets", None) or [])
    for strategy, run_argv in expand(args, scenario, data_file):
        argv = ["--scenario", scenario, "--strategy", strategy] + run_argv + common
        cfg, flags = checked_run(strategy, scenario, argv, swept_settings(strategy, run_argv, sets), data_file)
        used[strategy] |= flags
        configs.append(cfg)
        pretrain_needed.add((cfg.held_out, cfg.seed, cfg.first_speakers, cfg.first_classes, cfg.classes_per_step))
        jobs.append(Job(f"{scenario}/{cfg.label()}", [sys.executable, "-m", "sccl.cli.continual"] + argv,
                        lambda cfg=cfg: is_done(cfg, args.out_dir, data_file)))
    check_swept_flags_used(sets, used)
    if Path(data_file).is_file():
        try:
            check_runs_fit(configs, data_file)
        except ConfigError as exc:  # a dry run still lists the runs, and says which would fail
            if not getattr(args, "dry_run", False):
                raise
            print(f"[dry run] these runs would stop at once: {exc}", flush=True)
    rest = ["--data-dir", args.data_dir, "--device", args.device, "--quiet"]
    if getattr(args, "max_time", None) is not None:
        rest += ["--max-time", str(args.max_time)]
    pre_jobs = [pretrain_job(scenario, held, seed, args.pretrain_epochs, args.out_dir, args.split, rest,
                             require_epochs=False, first_speakers=first, data_file=data_file,  # never retrain a
                             first_classes=classes, classes_per_step=step)  # model others used
                for held, seed, first, classes, step in sorted(pretrain_needed, key=str)]
    return pre_jobs, jobs


def run_sweep(args, scenario: str) -> int:
    """Pretrain what is missing, then run (or submit) every unfinished run of the grid; returns the number of
    local runs that failed."""
    return run_sweeps([args], scenario)


def run_sweeps(grids: list, scenario: str) -> int:
    """:func:`run_sweep` over several grids of one scenario (each an ``args`` namespace; the launcher flags, jobs,
    out_dir and dry_run of the first), pooled into one queue of runs, so that the cores never wait for a grid's
    last run before the next grid starts."""
    args = grids[0]
    pre_jobs, jobs = {}, []
    for grid in grids:
        pre, cl = sweep_jobs(grid, scenario)
        pre_jobs.update((job.name, job) for job in pre)  # grids share their pretrained models
        jobs += cl
    failed = launch([("pretrain", list(pre_jobs.values())), (scenario, jobs)], args, args.out_dir, summarise=False)
    root = Path(args.out_dir) / scenario
    if not args.dry_run and args.launcher == "local" and root.exists():
        gather(root)
        print_table(root / "summary.csv")
    summary = failure_summary(list(pre_jobs.values()) + jobs)
    if summary:  # the last line: why runs failed, after the table
        print("\n" + summary, file=sys.stderr, flush=True)
    return failed


def print_table(summary_csv: Path) -> None:
    """Mean over ids and seeds per (strategy, depth, memory size, stored steps, compression)."""
    if not summary_csv.is_file():
        return
    groups = defaultdict(list)
    for r in read_csv(summary_csv):
        groups[(r["strategy"], r["depth"], r["replay_batches"], r["stored_steps"], r["compression"],
                r.get("options", ""))].append(r)
    print(f"\n{'strategy':<16}{'depth':>6}{'memory':>7}{'S':>5}{'mode':>5}{'runs':>5}"
          f"{'old':>8}{'new':>8}{'all':>8}{'forget':>8}{'memory KB':>11}  options")
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = groups[key]
        mean = {c: float(np.nanmean([float(r[c] or "nan") for r in rs])) for c in
                ("old_after", "new_after", "all_after", "forgetting", "memory_bytes")}
        strategy, depth, n, s, mode, options = key
        s = s if s not in ("", "None") else "-"
        print(f"{strategy:<16}{depth or '-':>6}{n:>7}{s:>5}{mode if mode != 'none' else '-':>5}{len(rs):>5}"
              f"{mean['old_after']:>8.3f}{mean['new_after']:>8.3f}{mean['all_after']:>8.3f}"
              f"{mean['forgetting']:>8.3f}{mean['memory_bytes'] / 1000:>11.1f}  {options or '-'}")


def sweep_parser(scenario: str) -> argparse.ArgumentParser:
    """The testsuite's command line in one scenario: what scripts, studies (reproduce.py) and tuning parse."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=[scenario], default=scenario)
    add_sweep_flags(p, scenario)
    return p


def main(argv=None, scenario: str | None = None) -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--scenario", choices=SCENARIOS, default=scenario, required=scenario is None)
    known, rest = pre.parse_known_args(argv)
    if run_sweep(sweep_parser(known.scenario).parse_args(rest), known.scenario):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
