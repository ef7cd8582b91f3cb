"""Sweep sample-incremental runs: speakers x strategies x depths x buffer sizes x stored steps. Resumable:
finished runs (by config stamp) are skipped, failed or interrupted ones rerun; missing pretrained models are
trained first. Example (quick):

    python sample_incremental/testsuite.py --speakers 3 --strategies naive,latent_replay --depths 1,2 \\
        --latent-batches 10,40 --epochs 5 --pretrain-epochs 20
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sccl.cl_sweep import add_sweep_flags, run_sweep  # noqa: E402
from sccl.cli import run_cli  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_flags(p, "speaker")
    if run_sweep(p.parse_args(argv), "speaker"):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
