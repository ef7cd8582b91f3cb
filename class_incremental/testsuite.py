"""Sweep class-incremental runs: classes x strategies x depths x buffer sizes (batches per old class) x
stored steps. Resumable: finished runs (by config stamp) are skipped, failed or interrupted ones rerun;
missing pretrained models are trained first. Example (quick):

    python class_incremental/testsuite.py --classes 7 --strategies naive,latent_replay_subsampled --depths 2 \\
        --latent-batches 1,2 --subsample 10 --epochs 5 --pretrain-epochs 20
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sccl.cl_sweep import add_sweep_flags, run_sweep  # noqa: E402
from sccl.cli import run_cli  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_flags(p, "class")
    if run_sweep(p.parse_args(argv), "class"):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
