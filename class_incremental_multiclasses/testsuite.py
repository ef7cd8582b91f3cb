"""Sweep the progressive protocol: depths x k, uncompressed and/or compressed. Resumable: finished runs (by
config stamp) are skipped, failed ones rerun; the English-digit model is pretrained first if missing.

    python class_incremental_multiclasses/testsuite.py --depths 0-3 --latent-batches 1-4 --subsample none,50
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "class_incremental_multiclasses"))

from progressive import build_parser, config_from_args  # noqa: E402

from sccl.cli import run_cli  # noqa: E402
from sccl.progressive import is_done  # noqa: E402
from sccl.sweep import Job, parse_int_list, pretrain_job, run_jobs  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", default="0-3")
    p.add_argument("--latent-batches", default="1-4", help="k values (default: 1-4)")
    p.add_argument("--subsample", default="none,50",
                   help="stored steps S, 'none' = uncompressed (default: none,50, i.e. also 1:2 as the paper)")
    p.add_argument("--compression", choices=["or", "sum"], default="or")
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the script's, 2e-4)")
    p.add_argument("--pretrain-epochs", type=int, default=200)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--protocol", choices=["paper", "official"], default="paper")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = p.parse_args(argv)
    common = ["--data-dir", args.data_dir, "--out-dir", args.out_dir, "--protocol", args.protocol,
              "--device", args.device, "--quiet"]
    subsample = [None if s == "none" else s for s in args.subsample.split(",")]
    jobs, seeds = [], parse_int_list(args.seeds, 0, 2**31 - 1, "seed")
    for seed in seeds:
        for d in parse_int_list(args.depths, 0, 3, "depth"):
            for k in parse_int_list(args.latent_batches, 0, 100, "k"):
                for s in subsample:
                    argv_run = ["--latent-depth", str(d), "--latent-batches", str(k), "--seed", str(seed),
                                "--epochs", str(args.epochs), "--compression", args.compression,
                                "--batch-size", str(args.batch_size)] + common
                    argv_run += ["--lr", str(args.lr)] if args.lr else []
                    argv_run += ["--latent-subsample", s] if s else []
                    cfg = config_from_args(build_parser().parse_args(argv_run))
                    jobs.append(Job(cfg.stamp().rsplit("-", 1)[0],
                                    [sys.executable, str(ROOT / "class_incremental_multiclasses" / "progressive.py")]
                                    + argv_run, lambda cfg=cfg: is_done(cfg, args.out_dir)))
    rest = ["--data-dir", args.data_dir, "--device", args.device, "--quiet"]
    pre = [pretrain_job("classes", None, seed, args.pretrain_epochs, args.out_dir, args.protocol, rest,
                        require_epochs=False) for seed in seeds]
    failed = run_jobs(pre, args.jobs, args.retries, args.dry_run) + run_jobs(jobs, args.jobs, args.retries, args.dry_run)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
