"""Sweep class-incremental runs: classes x strategies x depths x memory sizes x stored steps. Resumable: finished runs (by stamp) are skipped, failed or interrupted ones rerun; missing
pretrained models are trained first. Example (quick):

    python class_incremental/testsuite.py --classes 7 --strategies naive,latent_replay --depths 2 \\
        --latent-batches 1,2 --epochs 5 --pretrain-epochs 20
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from sccl.cli.cl_sweep import main  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402


if __name__ == "__main__":
    sys.exit(run_cli(lambda argv: main(argv, scenario="class_incremental")))
