"""Sweeps of continual-learning runs (the testsuite.py drivers): expand the grid, pretrain what is missing,
skip finished runs by their config stamp, retry failures, print a summary table."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from sccl.continual import FOLDER_OF_SCENARIO, STRATEGIES, gather, is_done
from sccl.continual_cli import build_parser, config_from_args
from sccl.errors import ConfigError
from sccl.results import read_csv
from sccl.sweep import Job, parse_int_list, pretrain_job, run_jobs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_DIR = {"speaker": ROOT / "sample_incremental", "class": ROOT / "class_incremental"}


def add_sweep_flags(p: argparse.ArgumentParser, scenario: str) -> None:
    ids, n_default = ("--speakers", "0-11") if scenario == "speaker" else ("--classes", "0-19")
    p.add_argument(ids, default="all", help=f"which {scenario}s, e.g. {n_default}, 3,5 or all (default: all)")
    p.add_argument("--strategies", default="all", help=f"comma-separated from {', '.join(STRATEGIES)}, or all")
    p.add_argument("--depths", default="0-3", help="latent depths (default: 0-3)")
    n = "10,20,40,80" if scenario == "speaker" else "1-4"
    p.add_argument("--latent-batches", default=n, help=f"replay buffer sizes in batches (default: {n})")
    p.add_argument("--rehearsal-batches", default="1" if scenario == "speaker" else "2",
                   help="rehearsal buffer sizes in batches (default: %(default)s)")
    p.add_argument("--subsample", default="100,50,20,10", help="stored steps S of the compressed runs")
    p.add_argument("--compression", default="or", help="or, sum or or,sum")
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="learning rate of every run (default: each script's own)")
    p.add_argument("--pretrain-epochs", type=int, default=200, help="epochs of any pretraining still missing")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process, one thread each)")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--protocol", choices=["paper", "official"], default="paper")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])


def expand(args, scenario: str) -> list[list[str]]:
    """Argument lists (strategy first) of every run in the grid."""
    ids = getattr(args, "speakers" if scenario == "speaker" else "classes")
    ids = parse_int_list(ids, 0, 11 if scenario == "speaker" else 19, scenario)
    strategies = list(STRATEGIES) if args.strategies == "all" else args.strategies.split(",")
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad:
        raise ConfigError(f"unknown strategy '{bad[0]}' (choose from {', '.join(STRATEGIES)})")
    depths = parse_int_list(args.depths, 0, 3, "depth")
    sizes = parse_int_list(args.latent_batches, 1, 10**6, "buffer size")
    rehearsal = parse_int_list(args.rehearsal_batches, 1, 10**6, "rehearsal size")
    steps = parse_int_list(args.subsample, 1, 10**6, "stored steps")
    modes = args.compression.split(",")
    if any(m not in ("or", "sum") for m in modes):
        raise ConfigError(f"--compression takes or, sum or or,sum; got '{args.compression}'")
    flag = "--speaker" if scenario == "speaker" else "--removed-class"
    runs = []
    for seed in parse_int_list(args.seeds, 0, 2**31 - 1, "seed"):
        for held in ids:
            base = [flag, str(held), "--seed", str(seed), "--epochs", str(args.epochs),
                    "--batch-size", str(args.batch_size)] + (["--lr", str(args.lr)] if args.lr else [])
            for strategy in strategies:
                if strategy == "naive":
                    runs.append([strategy] + base)
                elif strategy == "rehearsal":
                    runs += [[strategy] + base + ["--rehearsal-batches", str(r)] for r in rehearsal]
                elif strategy == "latent_replay":
                    runs += [[strategy] + base + ["--latent-depth", str(d), "--latent-batches", str(n)]
                             for d in depths for n in sizes]
                else:
                    runs += [[strategy] + base + ["--latent-depth", str(d), "--latent-batches", str(n),
                                                  "--latent-subsample", str(s), "--compression", m]
                             for d in depths for n in sizes for s in steps for m in modes]
    return runs


def run_sweep(args, scenario: str) -> int:
    common = ["--data-dir", args.data_dir, "--out-dir", args.out_dir, "--protocol", args.protocol,
              "--device", args.device, "--quiet"]
    runs = expand(args, scenario)
    jobs, pretrain_needed = [], set()
    for run in runs:
        strategy, argv = run[0], run[1:] + common
        cfg = config_from_args(build_parser(strategy, scenario).parse_args(argv), strategy, scenario)
        pretrain_needed.add((cfg.held_out, cfg.seed))
        name = cfg.stamp().rsplit("-", 1)[0]
        jobs.append(Job(name, [sys.executable, str(SCRIPT_DIR[scenario] / f"{strategy}.py")] + argv,
                        lambda cfg=cfg: is_done(cfg, args.out_dir)))
    rest = ["--data-dir", args.data_dir, "--device", args.device, "--quiet"]
    pre_jobs = [pretrain_job(scenario, held, seed, args.pretrain_epochs, args.out_dir, args.protocol, rest,
                             require_epochs=False)  # any finished model: never retrain one other runs used
                for held, seed in sorted(pretrain_needed)]
    failed = run_jobs(pre_jobs, parallel=args.jobs, retries=args.retries, dry_run=args.dry_run)
    failed += run_jobs(jobs, parallel=args.jobs, retries=args.retries, dry_run=args.dry_run)
    root = Path(args.out_dir) / FOLDER_OF_SCENARIO[scenario]
    if not args.dry_run and root.exists():
        gather(root)
        print_table(root / "summary.csv", scenario)
    return failed


def print_table(summary_csv: Path, scenario: str) -> None:
    """Mean over ids and seeds per (strategy, depth, buffer, stored steps, compression)."""
    if not summary_csv.is_file():
        return
    groups = defaultdict(list)
    for r in read_csv(summary_csv):
        key = (r["strategy"], r["depth"], r["replay_batches"], r["stored_steps"], r["compression"])
        groups[key].append(r)
    print(f"\n{'strategy':<26}{'depth':>6}{'buffer':>7}{'S':>5}{'mode':>5}{'runs':>5}"
          f"{'old':>8}{'new':>8}{'all':>8}{'forget':>8}{'memory KB':>11}")
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = groups[key]
        mean = {c: float(np.mean([float(r[c]) for r in rs])) for c in
                ("old_after", "new_after", "all_after", "forgetting", "memory_bytes")}
        strategy, depth, n, s, mode = key
        s = s if s not in ("", "None") else "-"
        print(f"{strategy:<26}{depth if depth not in ('', 'None') else '-':>6}{n:>7}{s:>5}"
              f"{mode if s != '-' else '-':>5}{len(rs):>5}{mean['old_after']:>8.3f}{mean['new_after']:>8.3f}"
              f"{mean['all_after']:>8.3f}{mean['forgetting']:>8.3f}{mean['memory_bytes'] / 1000:>11.1f}")
