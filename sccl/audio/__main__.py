"""``python -m sccl.audio``: convert recordings into SHD-layout spike files."""

import sys

from sccl.audio.convert import main
from sccl.core.entry import run_cli


sys.exit(run_cli(main))
