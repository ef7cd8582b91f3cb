"""Sweep sample-incremental runs: speakers x strategies x depths x memory sizes x stored steps. Resumable: finished runs (by stamp) are skipped, failed or interrupted ones rerun; missing
pretrained models are trained first. Example (quick):

    python sample_incremental/testsuite.py --speakers 3 --strategies naive,latent_replay --depths 1,2 \\
        --latent-batches 10,40 --epochs 5 --pretrain-epochs 20
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from sccl.cli.cl_sweep import main  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402


if __name__ == "__main__":
    sys.exit(run_cli(lambda argv: main(argv, scenario="sample_incremental")))
