"""Choose the methods' settings on validation data: a grid of one method's own flags, run over at least two seeds
on a split with validation sets (default ``paper_valid``: each group's validation set is carved from its training
samples), scored by the validation ACC after the last task (summary.json "valid_metrics"), averaged over the
seeds; ties go to the smaller value. The test sets are never read to choose. The grid, every candidate's scores
per seed, their mean and std, the choice, the metric, the command, the data file and the date are merged into
``sccl/core/tuned_defaults.json`` ("runs"), whose "defaults" the strategies read (:func:`sccl.core.defaults.tuned`).

    python -m sccl.cli.tune --method ewc --scenario class_incremental --grid ewc.ewc-lambda=1,10,100 --seeds 3,4 \\
        --epochs 30 --data-dir data/offline/demo
    python -m sccl.cli.tune --method latent_replay+ewc --scenario class_incremental --grid ewc.ewc-lambda=1,10,100 \\
        --latent-depth 2 --latent-batches 1 --lr 1e-3 --epochs 30 --data-dir data/offline/demo
    python -m sccl.cli.tune --plan quick --data-dir data/offline/demo --jobs 2   # every method (sccl/cli/tune_plan.py)

The runs are ordinary sweep runs (:mod:`sccl.cli.cl_sweep`) in their own folder (``--out-dir``, default
results/tuning), pretrained there for the tuning seeds on the same split; a rerun skips what is finished.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from sccl.cl.engine import validate
from sccl.cl.runs import run_folder
from sccl.cl.strategies import REGISTRY
from sccl.cli.cl_sweep import ID_FLAGS, sweep_jobs, sweep_parser
from sccl.cli.continual import build_parser, config_from_args
from sccl.cli.tune_plan import HELD_OUT, PLANS, Entry
from sccl.cli.tune_select import METRIC_TEXT, Dim, choose, valid_score, write_tuned
from sccl.core.defaults import SCENARIO, SHD, TUNED_FILE, reload_tuned
from sccl.core.errors import ConfigError
from sccl.core.results import read_json
from sccl.data.datasets import SOURCE_CODES
from sccl.data.merge import ensure_merged, merged_if_present
from sccl.data.splits import SCENARIOS, SPLITS
from sccl.jobs.launch import add_launcher_flags, check_launcher_args, launch, launcher_argv
from sccl.jobs.sweep import parse_int_list


DEFAULT_SEEDS = "3,4"  # the reported results use seeds 0-2
REPORTED_SEEDS = {0, 1, 2}
PLAN_ONLY_FLAGS = ("method", "host", "scenario", "grid", "epochs", "lr", "batch_size", "ids", "latent_depth",
                   "latent_batches")


@dataclass
class Spec:
    """One method's tuning: ``strategy`` runs, ``tuned`` owns the flags (the same unless hosted)."""

    method: str
    strategy: str
    tuned: str
    entry: Entry
    dims: list[Dim]
    runs: list = field(default_factory=list)  # (values, cfg) of every run
    jobs: list = field(default_factory=list)
    pre_jobs: list = field(default_factory=list)


def resolve_method(method: str) -> tuple[str, str]:
    """(strategy that runs, strategy whose flags are tuned): ``ewc`` -> (ewc, ewc); ``latent_replay+ewc`` ->
    (latent_replay, ewc)."""
    host, plus, name = method.rpartition("+")
    if name not in REGISTRY or (plus and host not in REGISTRY):
        bad = name if name not in REGISTRY else host
        raise ConfigError(f"unknown method '{method}': no strategy '{bad}' (choose from {', '.join(REGISTRY)}, or "
                          "HOST+NAME such as latent_replay+ewc)")
    if not plus:
        return name, name
    hosted = next((f for f in REGISTRY[host].all_flags() if f.dest == "regularizer"), None)
    if hosted is None or name not in (hosted.choices or ()):
        can = ", ".join(c for c in (hosted.choices if hosted else ()) if c != "none") or "none"
        raise ConfigError(f"unknown method '{method}': {host} cannot host {name} (it hosts: {can})")
    return host, name


def parse_grid(method: str, tuned: str, texts) -> list[Dim]:
    """``["ewc.ewc-lambda=1,10"]`` -> the dims, every value converted and checked by the flag's type and choices."""
    own = {f.name: f for f in REGISTRY[tuned].flags if not f.action}
    if not texts:
        raise ConfigError(f"nothing to tune: give --grid {tuned}.FLAG=V1,V2 (flags: {', '.join(own) or 'none'})")
    dims = []
    for text in texts:
        target, _, values = text.partition("=")
        prefix, dot, name = target.rpartition(".")
        if not dot:
            prefix = tuned
        if prefix not in (tuned, method) or not name or not values.strip():
            example = f"{tuned}.{next(iter(own))[2:]}=1,10" if own else f"{tuned}.FLAG=V1,V2"
            raise ConfigError(f"--grid takes {tuned}.FLAG=V1,V2 (e.g. {example}), got '{text}'")
        flag = own.get("--" + name)
        if flag is None:
            raise ConfigError(f"--grid {text}: {tuned} has no flag --{name} to tune (its flags: "
                              f"{', '.join(own) or 'none'})")
        parts = [v.strip() for v in values.split(",")]
        typed = []
        for v in parts:
            try:
                typed.append(flag.type(v))
            except (TypeError, ValueError):
                raise ConfigError(f"--grid {text}: '{v}' is not a valid {getattr(flag.type, '__name__', 'value')} "
                                  f"for {flag.name}") from None
            if flag.choices and typed[-1] not in flag.choices:
                raise ConfigError(f"--grid {text}: {flag.name} takes one of {', '.join(map(str, flag.choices))}, "
                                  f"got '{v}'")
        if len(set(typed)) != len(typed):
            raise ConfigError(f"--grid {text}: a value is listed twice")
        if any(d.dest == flag.dest for d in dims):
            raise ConfigError(f"--grid names {flag.name} twice: list its values once, comma-separated")
        dims.append(Dim(tuned, flag.name, flag.dest, typed, parts))
    return dims


def check_split(split: str, data_file: Path) -> None:
    """Tuning chooses on validation sets only: a split without them is refused."""
    if split.endswith("_valid"):
        return
    if split == "official" and Path(data_file).is_file():
        with h5py.File(data_file, "r") as f:
            if "extra/source" in f and (f["extra/source"][:] == SOURCE_CODES["valid"]).any():
                return
    raise ConfigError(f"--split {split} has no validation sets on this data, and tuning never chooses on the test "
                      "set: use --split paper_valid (or official_valid)")


# ----------------------------------------------------------------------------------------------
# the runs (sccl.cli.cl_sweep's machinery)


def sweep_namespace(spec: Spec, args) -> argparse.Namespace:
    """The cl_sweep flags of one method's grid."""
    e = spec.entry
    argv = ["--strategies", spec.strategy, "--seeds", args.seeds, "--epochs", str(e.epochs), "--subsample", "none",
            "--pretrain-epochs", str(args.pretrain_epochs), "--jobs", str(args.jobs), "--retries", str(args.retries),
            "--data-dir", args.data_dir, "--out-dir", args.out_dir, "--split", args.split, "--device", args.device]
    argv += ["--batch-size", str(e.batch_size)] if e.batch_size else []
    argv += ["--lr", str(e.lr)] if e.lr is not None else []
    if e.scenario in ID_FLAGS:
        argv += [ID_FLAGS[e.scenario][0], e.ids or HELD_OUT[e.scenario]]
    elif e.ids:
        raise ConfigError(f"{spec.method}: the {e.scenario} scenario has no held-out id (leave out --ids)")
    if spec.strategy != spec.tuned:  # hosted: the host's cut and memory, and the regularizer
        depth = SCENARIO[e.scenario]["latent_depth"] if e.latent_depth is None else e.latent_depth
        n = SCENARIO[e.scenario]["latent_batches"] if e.latent_batches is None else e.latent_batches
        argv += ["--depths", str(depth), "--latent-batches", str(n),
                 "--set", f"{spec.strategy}.regularizer={spec.tuned}"]
    for d in spec.dims:
        argv += ["--set", f"{spec.strategy}.{d.flag[2:]}={','.join(d.texts)}"]
    argv += (["--dry-run"] if args.dry_run else []) + launcher_argv(args)
    return sweep_parser(e.scenario).parse_args(argv)


def prepare(spec: Spec, args) -> None:
    """The method's pretraining and run jobs, every run's settings checked by the engine and the strategy."""

    e = spec.entry
    spec.pre_jobs, spec.jobs = sweep_jobs(sweep_namespace(spec, args), e.scenario)
    for job in spec.pre_jobs:  # pretrained as the reported runs' models (later flags win)
        job.argv += ["--lr", str(args.pretrain_lr), "--batch-size", str(args.pretrain_batch_size)]
    for job in spec.jobs:
        argv = job.argv[3:]  # after python -m sccl.cli.continual
        strategy = argv[argv.index("--strategy") + 1]
        cfg = config_from_args(build_parser(strategy, e.scenario).parse_args(argv), strategy, e.scenario)
        try:
            validate(cfg, SHD["nb_steps"])
        except ConfigError as exc:
            raise ConfigError(f"{spec.method}: {exc}") from None
        values = tuple(cfg.options.get(d.dest, getattr(cfg, d.dest, None)) for d in spec.dims)
        job.name += " " + " ".join(f"{d.dest}={t}" for d, t in zip(spec.dims, map(str, values)))
        spec.runs.append((values, cfg))


def collect(spec: Spec, out_dir, data_file) -> tuple[dict, int, dict | None, dict | None]:
    """(scores {values: {seed: validation score, averaged over held-out ids}}, runs not finished, the data's
    identity and the pretraining's settings from the runs' records)."""
    per = defaultdict(lambda: defaultdict(list))
    missing, data, pretrain = 0, None, None
    for values, cfg in spec.runs:
        folder = run_folder(cfg, out_dir, data_file)
        if folder is None or not (folder / "summary.json").is_file():
            missing += 1
            continue
        summary = read_json(folder / "summary.json")
        per[values][cfg.seed].append(valid_score(summary))
        data = data or {k: summary.get("data", {}).get(k) for k in ("path", "sha256", "label")}
        pretrain = pretrain or {k: summary.get("pretrained_config", {}).get(k) for k in ("epochs", "lr", "batch_size",
                                                                                       "split")}
    return {v: {s: float(np.mean(x)) for s, x in d.items()} for v, d in per.items()}, missing, data, pretrain


def print_table(spec: Spec, table, chosen, seeds) -> None:
    names = [d.dest for d in spec.dims]
    print(f"\n{spec.method} on {spec.entry.scenario}: validation ACC after the last task, seeds "
          f"{','.join(map(str, seeds))}")
    print("  " + "".join(f"{n:>16}" for n in names) + "".join(f"{'seed ' + str(s):>9}" for s in seeds)
          + f"{'mean':>9}{'std':>8}")
    for row in table:
        cells = "".join(f"{'-' if x is None else f'{x:.4f}':>9}" for x in row["scores"].values())
        mean = "-" if row["mean"] is None else f"{row['mean']:.4f}"
        std = "-" if row["std"] is None else f"{row['std']:.4f}"
        print("  " + "".join(f"{str(row['values'][n]):>16}" for n in names) + cells + f"{mean:>9}{std:>8}"
              + ("  <- chosen" if row is chosen else ""))


def record_of(spec: Spec, args, table, chosen, warnings, data, pretrain, command: str) -> dict:
    seeds = parse_int_list(args.seeds, 0, 2**31 - 1, "seed")
    cfg = spec.runs[0][1]
    settings = {k: v for k, v in cfg.settings().items() if k not in ("seed", "held_out", "device")}
    settings["options"] = {k: v for k, v in settings["options"].items() if k not in {d.dest for d in spec.dims}}
    rnd = lambda x: None if x is None else round(x, 6)  # noqa: E731
    return {
        "method": spec.method, "strategy": spec.strategy, "tuned_strategy": spec.tuned,
        "scenario": spec.entry.scenario,
        "held_out": sorted({c.held_out for _, c in spec.runs if c.held_out is not None}),
        "split": args.split, "seeds": seeds, "selection_metric": METRIC_TEXT,
        "grid": {d.dest: d.values for d in spec.dims}, "flags": {d.dest: d.flag for d in spec.dims},
        "candidates": [{**r, "scores": {s: rnd(x) for s, x in r["scores"].items()}, "mean": rnd(r["mean"]),
                        "std": rnd(r["std"])} for r in table],
        "chosen": dict(chosen["values"]), "chosen_mean": rnd(chosen["mean"]), "chosen_std": rnd(chosen["std"]),
        "warnings": warnings, "run_settings": settings,
        "pretrain": pretrain,
        "out_dir": str(args.out_dir), "command": command, "data": data,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------------------------
# command line


def build_specs(args) -> list[Spec]:
    if args.plan:
        given = [f"--{k.replace('_', '-')}" for k in PLAN_ONLY_FLAGS if getattr(args, k) not in (None, [])]
        if given:
            raise ConfigError(f"--plan takes every method's settings from its table (sccl/cli/tune_plan.py): leave out "
                              f"{', '.join(given)}")
        entries = list(PLANS[args.plan]["entries"])
        if args.only:
            known = [e.method for e in entries]
            bad = [m for m in args.only.split(",") if m not in known]
            if bad:
                raise ConfigError(f"--only: the {args.plan} plan has no method '{bad[0]}' (it has {', '.join(known)})")
            entries = [e for e in entries if e.method in args.only.split(",")]
    else:
        if args.only:
            raise ConfigError("--only selects methods of a --plan")
        if not args.method or not args.scenario:
            raise ConfigError("give --method and --scenario (and --grid), or --plan quick")
        method = f"{args.host}+{args.method}" if args.host and "+" not in args.method else args.method
        if args.host and not method.startswith(args.host + "+"):
            raise ConfigError(f"--host {args.host} and --method {args.method} name different hosts")
        if (args.latent_depth is not None or args.latent_batches is not None) and "+" not in method:
            raise ConfigError("--latent-depth and --latent-batches set the host's cut and memory: add --host "
                              "latent_replay")
        epochs = SCENARIO[args.scenario]["epochs"] if args.epochs is None else args.epochs
        entries = [Entry(method, args.scenario, epochs, tuple(args.grid), args.lr, args.batch_size, args.ids,
                         args.latent_depth, args.latent_batches)]
    specs = []
    for e in entries:
        strategy, tuned = resolve_method(e.method)
        specs.append(Spec(e.method, strategy, tuned, e, parse_grid(e.method, tuned, e.grid)))
    return specs


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", choices=list(PLANS), help="tune every method of a built-in plan (sccl/cli/tune_plan.py)")
    p.add_argument("--only", help="with --plan: only these methods, comma-separated (e.g. ewc,latent_replay+ewc)")
    p.add_argument("--method", help="a strategy (e.g. ewc) or HOST+NAME (e.g. latent_replay+ewc)")
    p.add_argument("--host", help="the strategy hosting --method (e.g. latent_replay): --method ewc --host "
                   "latent_replay is latent_replay+ewc")
    p.add_argument("--scenario", choices=SCENARIOS)
    p.add_argument("--grid", action="append", default=[], metavar="STRATEGY.FLAG=V1,V2",
                   help="values of one of the method's flags, e.g. ewc.ewc-lambda=1,10,100 (repeatable: every "
                        "combination runs)")
    p.add_argument("--seeds", default=None,
                   help=f"at least two; default: {DEFAULT_SEEDS} (the reported results use 0-2)")
    p.add_argument("--epochs", type=int, help="epochs per new task (default: the scenario's)")
    p.add_argument("--lr", type=float, help="learning rate of the runs (default: the scenario's)")
    p.add_argument("--batch-size", type=int, help="(default: the scenario's)")
    p.add_argument("--ids", help="held-out speaker / class of a two-task scenario (default: "
                   + ", ".join(f"{k} {v}" for k, v in HELD_OUT.items()) + ")")
    p.add_argument("--latent-depth", type=int, help="hosted methods: the host's cut (default: the scenario's)")
    p.add_argument("--latent-batches", type=int, help="hosted methods: the host's memory (default: the scenario's)")
    quick = PLANS["quick"]["pretrain"]
    p.add_argument("--pretrain-epochs", type=int, default=quick["epochs"],
                   help="pretraining of the tuning seeds (default: %(default)s, as reproduce.py's quick configuration)")
    p.add_argument("--pretrain-lr", type=float, default=quick["lr"], help="(default: %(default)s)")
    p.add_argument("--pretrain-batch-size", type=int, default=quick["batch_size"], help="(default: %(default)s)")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper_valid",
                   help="a split with validation sets (default: %(default)s)")
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="results/tuning", help="the tuning runs (default: %(default)s)")
    p.add_argument("--defaults-file", default=str(TUNED_FILE),
                   help="where the choices are merged (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (default: %(default)s)")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--dry-run", action="store_true", help="list what would run; write nothing")
    add_launcher_flags(p)
    args = p.parse_args(argv)
    check_launcher_args(args)
    specs = build_specs(args)
    args.seeds = args.seeds or (PLANS[args.plan]["seeds"] if args.plan else DEFAULT_SEEDS)
    seeds = parse_int_list(args.seeds, 0, 2**31 - 1, "seed")
    if len(seeds) < 2:
        raise ConfigError(f"--seeds {args.seeds}: tuning needs at least 2 seeds (e.g. {DEFAULT_SEEDS})")
    if REPORTED_SEEDS & set(seeds):
        print(f"warning: seed(s) {', '.join(map(str, sorted(REPORTED_SEEDS & set(seeds))))} are the reported "
              "results' seeds: tune on others (e.g. 3,4)", file=sys.stderr)
    data_file = merged_if_present(args.data_dir, quiet=True) if args.dry_run else ensure_merged(args.data_dir, True)
    check_split(args.split, data_file)
    for spec in specs:  # every run's settings checked before anything starts
        prepare(spec, args)
    pre = list({j.name: j for spec in specs for j in spec.pre_jobs}.values())
    jobs = [j for spec in specs for j in spec.jobs]
    print(f"[tune] {len(specs)} method(s) ({', '.join(s.method for s in specs)}) on the {args.split} split, seeds "
          f"{args.seeds}: {len(jobs)} runs after {len(pre)} pretraining(s), in {args.out_dir}", flush=True)
    if args.launcher == "local":
        print("[tune 1/3] pretraining", flush=True)
        failed = launch([("pretrain", pre)], args, args.out_dir)
        print("[tune 2/3] runs", flush=True)
        failed += launch([("tuning", jobs)], args, args.out_dir)
    else:
        failed = launch([("pretrain", pre), ("tuning", jobs)], args, args.out_dir)
    if args.dry_run:
        print("[tune] dry run: nothing written")
        return
    print("[tune 3/3] choosing on the validation sets", flush=True)
    command = "python -m sccl.cli.tune " + shlex.join(argv)
    records, unfinished = [], []
    for spec in specs:
        scores, missing, data, pretrain = collect(spec, args.out_dir, data_file)
        table, chosen, warnings = choose(spec.dims, scores, seeds)
        print_table(spec, table, chosen, seeds)
        if chosen is None:
            unfinished.append(f"{spec.method} ({missing} of {len(spec.runs)} runs not finished)")
            continue
        for w in warnings:
            print(f"warning: {spec.method}: {w}")
        records.append(record_of(spec, args, table, chosen, warnings, data, pretrain, command))
        print(f"[tune] {spec.method}: " + ", ".join(f"{k} = {v}" for k, v in chosen["values"].items())
              + f" (valid ACC {chosen['mean']:.4f} ± {chosen['std']:.4f})")
    path = Path(args.defaults_file)
    if records:
        write_tuned(path, records, Path(args.out_dir))
        if path.resolve() == TUNED_FILE.resolve():
            reload_tuned()
        print(f"[tune] wrote {', '.join(r['method'] for r in records)} into {path}")
    if unfinished:
        print(f"[tune] not chosen yet: {'; '.join(unfinished)}"
              + (f" ({failed} run(s) failed: the line above says why, and whether rerunning can help)" if failed
                 else "")
              + ("" if args.launcher == "local" else ": rerun the same command when the submitted arrays are done"),
              file=sys.stderr)
        if args.launcher == "local":
            raise SystemExit(1)


if __name__ == "__main__":
    from sccl.core.entry import run_cli

    sys.exit(run_cli(main))
