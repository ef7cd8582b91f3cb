"""``python -m sccl.report``: tables, figures, REPORT.md and the docs' generated result blocks from finished runs."""

import sys

from sccl.report.build import main


sys.exit(main())
