"""Progressive protocol: from the English-digit model, learn the German digits 10..19 one at a time with
(compressed) latent replay. Results go to OUT_DIR/class_incremental_multiclasses/<stamp>/.

    python class_incremental_multiclasses/progressive.py --latent-depth 2 --latent-batches 2
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sccl.cli import run_cli  # noqa: E402
from sccl.merge import ensure_merged  # noqa: E402
from sccl.progressive import ProgressiveConfig, run_progressive  # noqa: E402
from sccl.training import load_dataset  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latent-depth", type=int, default=2, help="cut depth 0-3 (default: %(default)s)")
    p.add_argument("--latent-batches", type=int, default=1,
                   help="k: batches of 64 per class stored in the memory; 0 = no replay (default: %(default)s)")
    p.add_argument("--latent-subsample", type=int, default=None,
                   help="stored time steps S (must divide 100); default: no compression")
    p.add_argument("--compression", choices=["or", "sum"], default="or")
    p.add_argument("--epochs", type=int, default=20, help="epochs per new class (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="~/data/hdspikes")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--pretrained", help="the classes 0-9 pretraining run folder (default: found in --out-dir)")
    p.add_argument("--protocol", choices=["paper", "official"], default="paper")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--float16", action="store_true", help="store depth-0 currents as float16")
    p.add_argument("--force", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def config_from_args(args) -> ProgressiveConfig:
    return ProgressiveConfig(latent_depth=args.latent_depth, latent_batches=args.latent_batches,
                             stored_steps=args.latent_subsample, compression=args.compression, epochs=args.epochs,
                             lr=args.lr, batch_size=args.batch_size, seed=args.seed, protocol=args.protocol,
                             device=args.device, threads=args.threads, float16_currents=args.float16,
                             pretrained=args.pretrained, quiet=args.quiet)


def main(argv=None):
    args = build_parser().parse_args(argv)
    ds = load_dataset(ensure_merged(Path(args.data_dir).expanduser(), quiet=args.quiet))
    return run_progressive(config_from_args(args), ds, args.out_dir, force=args.force)


if __name__ == "__main__":
    sys.exit(run_cli(main))
