"""Pretrain every model the continual-learning protocols need; resumable (finished runs are skipped,
failed runs are retried, never counted done).

    python statedicts/testsuite.py --speakers all --classes none --progressive
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sccl.cli import run_cli  # noqa: E402
from sccl.defaults import PRETRAIN  # noqa: E402
from sccl.splits import SPLITS  # noqa: E402
from sccl.errors import ConfigError  # noqa: E402
from sccl.launch import add_launcher_flags, launch  # noqa: E402
from sccl.sweep import parse_int_list, pretrain_job  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speakers", default="all", help="speakers to hold out, e.g. 0-11, 3,5, all or none (default: all)")
    p.add_argument("--classes", default="all", help="classes to hold out, e.g. 0-19, 7, all or none (default: all)")
    p.add_argument("--progressive", action=argparse.BooleanOptionalAction, default=True,
                   help="also pretrain the English-digit model (classes 0-9) (default: on)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process (one thread) each")
    p.add_argument("--retries", type=int, default=1, help="immediate retries of a failed run (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="only list what would run")
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper")
    p.add_argument("--first-speakers", default=None,
                   help="also pretrain on this first group of speakers (speakers scenario), e.g. 0-5")
    p.add_argument("--epochs", type=int, default=PRETRAIN["epochs"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    add_launcher_flags(p)
    args = p.parse_args(argv)
    speakers = [] if args.speakers == "none" else parse_int_list(args.speakers, 0, 11, "speaker")
    classes = [] if args.classes == "none" else parse_int_list(args.classes, 0, 19, "class")
    seeds = parse_int_list(args.seeds, 0, 2**31 - 1, "seed")
    targets = [("sample_incremental", s, None) for s in speakers] + [("class_incremental", c, None) for c in classes]
    targets += [("progressive", None, None)] if args.progressive else []
    if args.first_speakers:
        targets.append(("speakers", None, tuple(parse_int_list(args.first_speakers, 0, 11, "speaker"))))
    if not targets:
        raise ConfigError("nothing to run: choose --speakers, --classes, --progressive or --first-speakers")
    rest = ["--data-dir", args.data_dir, "--device", args.device, "--quiet"]
    jobs = [pretrain_job(scenario, held, seed, args.epochs, args.out_dir, args.split, rest, first_speakers=first)
            for seed in seeds for scenario, held, first in targets]
    failed = launch([("pretrain", jobs)], args, args.out_dir)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
