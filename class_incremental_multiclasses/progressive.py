"""Progressive scenario: from the English-digit model, learn the German digits 10..19 one at a time (see --help;
--strategy chooses the method, latent replay by default). Results go to OUT_DIR/progressive/<stamp>/.

    python class_incremental_multiclasses/progressive.py --latent-depth 2 --latent-batches 2
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from sccl.cli.continual import main_any  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402


if __name__ == "__main__":
    sys.exit(run_cli(lambda argv: main_any(argv, scenario="progressive")))
