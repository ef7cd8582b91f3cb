"""Sample-incremental latent replay (see --help). Example: python sample_incremental/latent_replay.py --speaker 3"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from sccl.cli.continual import main  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402


if __name__ == "__main__":
    sys.exit(run_cli(lambda argv: main("latent_replay", "sample_incremental", argv)))
