"""Shared command-line plumbing: one clear error line and exit status 2 instead of a traceback."""

import sys
from collections.abc import Callable

from sccl.errors import SCCLError

EXIT_USER_ERROR = 2


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; report an :class:`SCCLError` as ``error: ...`` and return 2."""
    try:
        main(argv)
    except SCCLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
