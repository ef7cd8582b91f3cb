"""Command lines of continual-learning runs: one parser for every strategy in every scenario.

The strategy's own flags come from its class (:mod:`sccl.cl.strategies`), every default from :mod:`sccl.core.defaults`.
The original's flag names (``--speaker``, ``--removed-class``, ``--latent-batches``, ``--latent-subsample``)
stay here, at the edge; inside, a run is a :class:`~sccl.cl.runs.RunConfig`.

    python -m sccl.cli.continual --scenario speakers --strategy latent_replay --latent-depth 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sccl.cl.engine import run
from sccl.cl.runs import RunConfig, config_fields, pretrained_dir
from sccl.cl.scenarios import CLASS_SCENARIOS
from sccl.cl.strategies import DEFAULT_STRATEGY, REGISTRY, get_strategy
from sccl.core.defaults import COMMON, scenario_defaults
from sccl.data.merge import ensure_merged
from sccl.data.splits import SCENARIOS, SPLIT_HELP, SPLITS
from sccl.jobs.sweep import parse_int_list
from sccl.learn.pretraining import is_finished, read_config
from sccl.learn.quantize import PRECISIONS
from sccl.learn.training import load_dataset, parse_max_time
from sccl.report.records import gather


SCENARIO_TEXT = {
    "sample_incremental": "sample-incremental: pretrained without one speaker, learn that speaker",
    "class_incremental": "class-incremental: pretrained without one class, learn that class",
    "progressive": "progressive: pretrained on a first group of classes (SHD: 0-9), learn the others k at a time",
    "speakers": "speakers: pretrained on a first group of speakers, learn the others one at a time",
}


def _ids(text: str) -> tuple[int, ...]:
    return tuple(parse_int_list(text, 0, 10**6, "speaker"))


def build_parser(strategy: str, scenario: str, entry: str | None = None) -> argparse.ArgumentParser:
    """The parser of one strategy in one scenario (``entry``: one of the strategy's entry points, whose defaults
    replace the scenario's and the flags')."""
    cls = get_strategy(strategy)
    overrides = cls.entry_points[entry].defaults if entry else {}
    defaults = {**scenario_defaults(scenario), **overrides}
    p = argparse.ArgumentParser(
        description=f"{cls.description} Scenario {SCENARIO_TEXT[scenario]}. Results go to OUT_DIR/{scenario}/<stamp>/: "
                    "epochs.csv, accuracy_matrix.csv, log.txt, summary.json.")
    p.add_argument("--scenario", choices=[scenario], default=scenario, help="(this command's: %(default)s)")
    p.add_argument("--strategy", choices=list(REGISTRY), default=strategy,
                   help="continual-learning strategy (this command's: %(default)s)")
    if scenario == "sample_incremental":
        p.add_argument("--speaker", type=int, required=True, help="the new speaker, held out in pretraining")
    elif scenario == "class_incremental":
        p.add_argument("--removed-class", type=int, required=True, help="the new class, held out in pretraining")
    elif scenario == "speakers":
        p.add_argument("--first-speakers", type=_ids, default=None,
                       help="the pretraining's speaker group, e.g. 0-5 (default: the first half of the data's "
                            "speakers; SHD: 0-5); the others arrive one at a time")
    elif scenario == "progressive":
        p.add_argument("--first-classes", type=_ids, default=None,
                       help="the pretraining's classes, e.g. 0-9 (default: the first half of the data's classes; "
                            "SHD: 0-9)")
        p.add_argument("--classes-per-step", type=int, default=1,
                       help="the other classes arrive this many at a time (default: %(default)s)")
    if scenario in CLASS_SCENARIOS:
        p.add_argument("--keep-readout", action="store_true",
                       help="keep a new class's readout column (default: re-draw it from N(0.003, 0.003))")
    p.add_argument("--data-dir", default="~/data/hdspikes", help="folder with the SHD files (default: %(default)s)")
    p.add_argument("--out-dir", default="runs",
                   help="where pretrained models are found and results go (default: %(default)s)")
    p.add_argument("--pretrained", help="a pretraining run folder to start from (default: found in --out-dir)")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default=COMMON["split"],
                   help=SPLIT_HELP)
    p.add_argument("--epochs", type=int, default=defaults["epochs"],
                   help="training epochs per new task (default: %(default)s)")
    p.add_argument("--lr", type=float, default=defaults["lr"], help="Adamax learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=COMMON["seed"],
                   help="seed of the memory's choice and of the pretrained model to use (default: %(default)s)")
    p.add_argument("--device", default=COMMON["device"], choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=COMMON["threads"], help="torch threads (default 1)")
    p.add_argument("--eval-every", type=int, default=1, metavar="K",
                   help="test accuracy after every K-th epoch of a task and after its last (default: every epoch); "
                        "the run's results are the same, only epochs.csv has fewer accuracy cells")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="int16 / int8: the weights run at that fixed-point precision, trained through 16-bit shadow "
                        "weights and optimiser state, as a microcontroller would hold them (default: %(default)s)")
    p.add_argument("--keep-last", action="store_true", help="keep the last incomplete new-data batch")
    p.add_argument("--max-time", default=None,
                   help="binning window in seconds or 'auto' (default: the pretraining's)")
    for flag in cls.all_flags():
        if not flag.offered_in(scenario):
            continue
        default = flag.default_in(scenario, overrides)
        if flag.action:
            p.add_argument(flag.name, dest=flag.dest, action=flag.action, help=flag.help)
        else:
            p.add_argument(flag.name, dest=flag.dest, type=flag.type, default=default, choices=flag.choices,
                           metavar=None if flag.choices else flag.name.lstrip("-").upper().replace("-", "_"),
                           help=flag.help + " (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="run again even if this exact run has finished")
    p.add_argument("--quiet", action="store_true")
    return p


def config_from_args(args, strategy: str, scenario: str) -> RunConfig:
    """The run's configuration from its parsed command line (:func:`build_parser`): the one way every command
    line, sweep and study builds one."""
    held = getattr(args, "speaker", None) if scenario == "sample_incremental" else getattr(args, "removed_class", None)
    own = {f.dest: getattr(args, f.dest) for f in get_strategy(strategy).used_flags(vars(args))
           if hasattr(args, f.dest)}
    values = {k: v for k, v in own.items() if k in config_fields()}
    values["options"] = {k: v for k, v in own.items() if k not in config_fields()}
    return RunConfig(scenario=scenario, strategy=strategy, held_out=held, split=args.split, epochs=args.epochs,
                     lr=args.lr, seed=args.seed, device=args.device, threads=args.threads, batch_size=args.batch_size,
                     keep_last=args.keep_last, pretrained=args.pretrained, quiet=args.quiet,
                     reinit_readout=not getattr(args, "keep_readout", False),
                     first_speakers=getattr(args, "first_speakers", None),
                     first_classes=getattr(args, "first_classes", None),
                     classes_per_step=getattr(args, "classes_per_step", 1), eval_every=args.eval_every,
                     precision=args.precision, **values)


def main(strategy: str, scenario: str, argv=None, entry: str | None = None) -> Path:
    args = build_parser(strategy, scenario, entry).parse_args(argv)
    cfg = config_from_args(args, strategy, scenario)
    path = ensure_merged(Path(args.data_dir).expanduser(), quiet=args.quiet)
    max_time = parse_max_time(args.max_time)
    if max_time is None:  # bin as the pretraining did
        pre = pretrained_dir(cfg, args.out_dir, path)
        if is_finished(pre):
            max_time = read_config(pre)["data"].get("max_time")
    ds = load_dataset(path, max_time=max_time)
    if cfg.scenario == "progressive" and cfg.first_classes == ds.shape.default_first_classes:
        cfg.first_classes = None  # the default group, named as such (the same run as without the flag)
    for line in get_strategy(strategy).resolve_settings(cfg, ds.shape, ds.binned.nb_steps):
        print(line, flush=True)  # what the strategy chose from the data (e.g. for a byte budget)
    folder = run(cfg, ds, args.out_dir, force=args.force)
    gather(folder.parent)  # the folder's tables of every run: all_runs.csv, summary.csv
    return folder


def main_any(argv=None, scenario: str | None = None, strategy: str | None = None) -> Path:
    """``--scenario`` and ``--strategy`` first, then that strategy's own flags."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--scenario", choices=SCENARIOS, default=scenario, required=scenario is None)
    pre.add_argument("--strategy", choices=list(REGISTRY), default=strategy or DEFAULT_STRATEGY)
    known, rest = pre.parse_known_args(argv)
    return main(known.strategy, known.scenario, rest)


if __name__ == "__main__":
    from sccl.core.entry import run_cli

    sys.exit(run_cli(main_any))
