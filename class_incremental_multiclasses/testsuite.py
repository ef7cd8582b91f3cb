"""Sweep the progressive scenario (classes 0-9, then 10..19 one at a time): strategies x depths x k x stored steps. Resumable: finished runs (by stamp) are skipped, failed or interrupted ones rerun; missing
pretrained models are trained first. Example (quick):

    python class_incremental_multiclasses/testsuite.py --depths 0-3 --latent-batches 1-4 --subsample none,50
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from sccl.cli.cl_sweep import main  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402


if __name__ == "__main__":
    sys.exit(run_cli(lambda argv: main(argv, scenario="progressive")))
