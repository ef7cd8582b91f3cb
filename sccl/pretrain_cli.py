"""Command-line front end of pretraining, shared by statedicts/pretrain.py and the sweep driver."""

from __future__ import annotations

import argparse
from pathlib import Path

from sccl.data import NB_SPEAKERS
from sccl.defaults import PRETRAIN
from sccl.errors import ConfigError
from sccl.splits import SPLITS
from sccl.sweep import parse_int_list
from sccl.merge import ensure_merged
from sccl.pretraining import PretrainConfig, pretrain
from sccl.training import load_dataset

DEFAULT_DATA_DIR = "~/data/hdspikes"


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                   help="folder with shd_merged.h5, or shd_train.h5 + shd_test.h5 to merge (default: %(default)s)")
    p.add_argument("--out-dir", default="runs", help="where run folders go (default: %(default)s)")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper",
                   help="paper: merged data, random stratified 1/5 test split; official: SHD's own train/test files")
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


def parse_classes(text: str) -> None:
    if text.replace(" ", "") not in ("0-9", "0,1,2,3,4,5,6,7,8,9"):
        raise ConfigError(f"--classes supports only 0-9 (the English digits of the progressive scenario), got '{text}'")


def config_from_args(args, scenario: str, held_out: int | None, first_speakers=None) -> PretrainConfig:
    return PretrainConfig(scenario=scenario, held_out=held_out, split=args.split, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                          threads=args.threads, drop_last=not args.keep_last, shuffle=args.shuffle, quiet=args.quiet,
                          first_speakers=first_speakers)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Pretrain the recurrent SNN with one speaker or one class held out, on the English digits, or on a first group of speakers. "
                    "Writes model.pt, split.npz, config.json, epochs.csv and log.txt under "
                    "OUT_DIR/pretrain/SPLIT/ID_seedSEED/; an interrupted run resumes from its last epoch.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--speaker", type=int, help="hold out this speaker (0-11): sample-incremental scenario")
    what.add_argument("--removed-class", type=int, help="hold out this class (0-19): class-incremental scenario")
    what.add_argument("--classes", help="'0-9': train on the English digits only (progressive scenario)")
    what.add_argument("--first-speakers",
                      help="e.g. 0-5: train on these speakers only (speakers scenario: the others arrive one at a time)")
    add_common_flags(p)
    return p


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    first = None
    if args.speaker is not None:
        scenario, held_out = "sample_incremental", args.speaker
    elif args.removed_class is not None:
        scenario, held_out = "class_incremental", args.removed_class
    elif args.first_speakers is not None:
        scenario, held_out = "speakers", None
        first = tuple(parse_int_list(args.first_speakers, 0, NB_SPEAKERS - 1, "speaker"))
    else:
        parse_classes(args.classes)
        scenario, held_out = "progressive", None
    ds = load_dataset(ensure_merged(Path(args.data_dir).expanduser(), quiet=args.quiet))
    return pretrain(config_from_args(args, scenario, held_out, first), ds, args.out_dir, force=args.force)
