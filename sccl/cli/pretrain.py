"""Command-line front end of pretraining, shared by statedicts/pretrain.py and the sweep driver."""

from __future__ import annotations

import argparse
from pathlib import Path

from sccl.core.defaults import PRETRAIN
from sccl.core.errors import ConfigError
from sccl.data.merge import ensure_merged
from sccl.data.splits import SPLIT_HELP, SPLITS
from sccl.jobs.sweep import parse_int_list
from sccl.learn.pretraining import PretrainConfig, pretrain
from sccl.learn.training import load_dataset, parse_max_time


DEFAULT_DATA_DIR = "~/data/hdspikes"


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                   help="folder with shd_merged.h5, or shd_train.h5 + shd_test.h5 to merge (default: %(default)s)")
    p.add_argument("--out-dir", default="runs", help="where run folders go (default: %(default)s)")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper",
                   help=SPLIT_HELP)
    p.add_argument("--epochs", type=int, default=PRETRAIN["epochs"],
                   help="training epochs (default: %(default)s, as the original)")
    p.add_argument("--batch-size", type=int, default=PRETRAIN["batch_size"], help="batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=PRETRAIN["lr"], help="Adamax learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and any shuffle")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="(default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default 1: faster on small CPUs; parallelise across runs instead)")
    p.add_argument("--keep-last", action="store_true", help="keep the last incomplete training batch (original: dropped)")
    p.add_argument("--shuffle", action="store_true",
                   help="reshuffle the training batches every epoch (original: one fixed order)")
    p.add_argument("--force", action="store_true", help="discard an existing run with the same id and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--max-time", default=None,
                   help="binning window in seconds, or 'auto': just past the data's last spike (default: SHD's "
                        "1.4 s); spikes beyond it are dropped and counted in the log")


def ids(text: str, what: str) -> tuple[int, ...]:
    """An id list of the command line (checked against the data later, where it is known)."""
    return tuple(parse_int_list(text, 0, 2**16 - 1, what))


def config_from_args(args, scenario: str, held_out: int | None, first_speakers=None, first_classes=None,
                     classes_per_step: int = 1) -> PretrainConfig:
    return PretrainConfig(scenario=scenario, held_out=held_out, split=args.split, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                          threads=args.threads, drop_last=not args.keep_last, shuffle=args.shuffle, quiet=args.quiet,
                          first_speakers=first_speakers, first_classes=first_classes,
                          classes_per_step=classes_per_step)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Pretrain the recurrent SNN with one speaker or one class held out, on a first group of classes "
                    "(progressive; SHD: the English digits), or on a first group of speakers. "
                    "Writes model.pt, split.npz, config.json, epochs.csv and log.txt under "
                    "OUT_DIR/pretrain/SPLIT/ID_seedSEED/; an interrupted run resumes from its last epoch.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--speaker", type=int, help="hold out this speaker (SHD: 0-11): sample-incremental scenario")
    what.add_argument("--removed-class", type=int, help="hold out this class (SHD: 0-19): class-incremental scenario")
    what.add_argument("--classes", "--first-classes", dest="classes",
                      help="progressive scenario: train on these classes, e.g. 0-9, or 'first-half' (the default "
                           "group: the first half of the data's classes; SHD: the English digits 0-9)")
    what.add_argument("--first-speakers",
                      help="e.g. 0-5: train on these speakers only (speakers scenario: the others arrive one at a time)")
    p.add_argument("--classes-per-step", type=int, default=1,
                   help="progressive scenario: the later classes arrive this many at a time (default: 1)")
    add_common_flags(p)
    return p


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    first = first_classes = None
    if args.speaker is not None:
        scenario, held_out = "sample_incremental", args.speaker
    elif args.removed_class is not None:
        scenario, held_out = "class_incremental", args.removed_class
    elif args.first_speakers is not None:
        scenario, held_out = "speakers", None
        first = ids(args.first_speakers, "speaker")
    else:
        scenario, held_out = "progressive", None
        first_classes = None if args.classes == FIRST_HALF else ids(args.classes, "class")
    if args.classes_per_step != 1 and scenario != "progressive":
        raise ConfigError("--classes-per-step applies to the progressive scenario only (--classes)")
    max_time = parse_max_time(args.max_time)
    ds = load_dataset(ensure_merged(Path(args.data_dir).expanduser(), quiet=args.quiet), max_time=max_time)
    if first_classes is not None and first_classes == ds.shape.default_first_classes:
        first_classes = None  # the default group, named as such (the same run as without the flag)
    cfg = config_from_args(args, scenario, held_out, first, first_classes, args.classes_per_step)
    return pretrain(cfg, ds, args.out_dir, force=args.force)


FIRST_HALF = "first-half"
