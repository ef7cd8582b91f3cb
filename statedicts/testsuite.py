"""Pretrain every model the continual-learning protocols need; resumable (finished runs are skipped,
failed runs are retried, never counted done).

    python statedicts/testsuite.py --speakers all --classes none --progressive
"""

import argparse
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sccl.core.defaults import PRETRAIN  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402
from sccl.core.errors import ConfigError  # noqa: E402
from sccl.data.merge import merged_if_present  # noqa: E402
from sccl.data.splits import SPLIT_HELP, SPLITS  # noqa: E402
from sccl.jobs.launch import add_launcher_flags, launch  # noqa: E402
from sccl.jobs.sweep import id_list, parse_int_list, pretrain_job  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speakers", default="all",
                   help="speakers to hold out, e.g. 0-11, 3,5, all (the data's) or none (default: all)")
    p.add_argument("--classes", default="all",
                   help="classes to hold out, e.g. 0-19, 7, all (the data's) or none (default: all)")
    p.add_argument("--progressive", action=argparse.BooleanOptionalAction, default=True,
                   help="also pretrain the progressive scenario's model: the first half of the classes (SHD: the "
                        "English digits 0-9) (default: on)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process (one thread) each")
    p.add_argument("--retries", type=int, default=1, help="immediate retries of a failed run (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="only list what would run")
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper", help=SPLIT_HELP)
    p.add_argument("--first-speakers", default=None,
                   help="also pretrain on this first group of speakers (speakers scenario), e.g. 0-5")
    p.add_argument("--epochs", type=int, default=PRETRAIN["epochs"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    add_launcher_flags(p)
    args = p.parse_args(argv)
    seeds = parse_int_list(args.seeds, 0, 2**31 - 1, "seed")
    data_file = merged_if_present(args.data_dir, quiet=args.dry_run)  # 'all': the data's ids
    speakers = [] if args.speakers == "none" else id_list(args.speakers, data_file, "speaker")
    classes = [] if args.classes == "none" else id_list(args.classes, data_file, "class")
    targets = [("sample_incremental", s, None) for s in speakers] + [("class_incremental", c, None) for c in classes]
    targets += [("progressive", None, None)] if args.progressive else []
    if args.first_speakers:
        targets.append(("speakers", None, tuple(id_list(args.first_speakers, data_file, "speaker"))))
    if not targets:
        raise ConfigError("nothing to run: choose --speakers, --classes, --progressive or --first-speakers")
    rest = ["--data-dir", args.data_dir, "--device", args.device, "--quiet"]
    jobs = [pretrain_job(scenario, held, seed, args.epochs, args.out_dir, args.split, rest, first_speakers=first,
                         data_file=data_file)
            for seed in seeds for scenario, held, first in targets]
    failed = launch([("pretrain", jobs)], args, args.out_dir)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
